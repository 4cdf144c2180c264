"""``helpers.validar``: el informe del alumnado antes de entregar, en los cuatro casos de la issue.

Con el cuaderno 01 (el más rápido) y el perfil ``tiny`` (el del calificador), cada caso se valida
de verdad (se ejecuta en un núcleo aparte) una sola vez, en una fixture del módulo:

- el publicado tal cual: todo sin responder;
- el resuelto: todo superado;
- con una respuesta errónea (``tests/wrong_answers/nb01.py``): falla justo su comprobación, con su
  mensaje; las demás, superadas;
- con una celda de pruebas borrada: el problema de estructura, y la comprobación se ejecuta con la
  celda publicada (como el calificador, que la restaura).

Es el mismo veredicto que da el calificador: ``test_notebooks.test_calificacion_automatica``
comprueba con nbgrader que el publicado saca 0 en cada celda, la solución la nota máxima y cada
respuesta errónea 0 exactamente en sus ``BREAKS``; aquí se comprueba que validar marca como
fallidas exactamente esas mismas celdas (la errónea elegida la detectan las pruebas visibles).
"""

import copy
import json
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import importlib  # noqa: E402

from solution_code import solution_cells  # noqa: E402
from wrong_answers import broken_cells, wrong_cells  # noqa: E402

import helpers  # noqa: E402

validar_module = importlib.import_module("helpers.validar")
from helpers.course_files import NOTEBOOKS, ROOT, generate  # noqa: E402

NAME = "01_introduccion_peft"
WRONG = "count_params"
DELETED = "test_freeze_all_but"


def _meta(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def _with_answers(nb, answers):
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if _meta(cell).get("grade_id") in answers:
            cell.source = answers[_meta(cell)["grade_id"]]
    return nb


def _bytes(nb) -> bytes:
    return nbformat.writes(nb).encode("utf-8")


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = generate(NAME, release_dir=tmp_path_factory.mktemp("publicado"))
    return nbformat.read(out / f"{NAME}.ipynb", as_version=4)


@pytest.fixture(scope="module")
def reports(released, tmp_path_factory):
    answers = solution_cells(NAME)
    solved = _with_answers(released, answers)
    wrong = _with_answers(released, dict(answers, **{WRONG: wrong_cells(NAME)[WRONG]}))
    deleted = copy.deepcopy(solved)
    deleted.cells = [c for c in deleted.cells if _meta(c).get("grade_id") != DELETED]
    cases = {"publicado": released, "resuelto": solved, "erroneo": wrong, "borrada": deleted}
    out = {}
    for case, nb in cases.items():
        report = validar_module.check_notebook(_bytes(nb), NAME, "tiny")
        print(f"\n=== {case}\n{report.text()}")  # lo que vería el alumnado (pytest -s)
        out[case] = report
    return out


def _failed(report):
    return {c.grade_id for e in report.exercises for c in e.checks if c.status != validar_module.OK}


def _tests():
    return {gid for cells in broken_cells(NAME).values() for gid in cells}


@pytest.mark.slow
@pytest.mark.xdist_group("validar")
def test_publicado_todo_sin_responder(reports):
    report = reports["publicado"]
    assert [e.grade_id for e in report.exercises] == list(solution_cells(NAME))
    assert not any(e.answered for e in report.exercises) and not report.ok
    assert _failed(report) == _tests()
    assert all("NotImplementedError" in c.message for e in report.exercises for c in e.checks)
    assert report.problems == []
    assert "SIN RESPONDER" in report.text() and "0 de 12 puntos" in report.text()


@pytest.mark.slow
@pytest.mark.xdist_group("validar")
def test_resuelto_todo_superado(reports):
    report = reports["resuelto"]
    assert all(e.answered and e.passed for e in report.exercises) and report.ok, report.text()
    assert sum(e.points for e in report.exercises) == 12
    assert "Todo listo para entregar" in report.text()


@pytest.mark.slow
@pytest.mark.xdist_group("validar")
def test_respuesta_erronea_da_su_mensaje(reports):
    report = reports["erroneo"]
    assert _failed(report) == set(broken_cells(NAME)[WRONG]), report.text()
    check = next(c for e in report.exercises for c in e.checks if c.status == validar_module.FAIL)
    assert check.message.startswith("AssertionError") and "parámetros" in check.message, check.message
    assert check.message in report.text() and not report.ok


@pytest.mark.slow
@pytest.mark.xdist_group("validar")
def test_celda_de_pruebas_borrada(reports):
    report = reports["borrada"]
    assert len(report.problems) == 1 and f"falta la celda de pruebas «{DELETED}»" in report.problems[0]
    # Como el calificador, que la restaura: se ejecuta la publicada y pasa.
    assert _failed(report) == set() and not report.ok
    assert "Problemas de estructura" in report.text()


def test_otro_cuaderno_se_dice_sin_ejecutarlo():
    data = (NOTEBOOKS / "02_lora_matematicas" / "02_lora_matematicas.ipynb").read_bytes()
    report = validar_module.check_notebook(data, "01")
    assert report.exercises == [] and "es el cuaderno 02_lora_matematicas, no 01_introduccion_peft" in report.text()
    assert not report.ok


def test_archivo_roto_o_enorme():
    report = validar_module.check_notebook(b"{esto no es json", NAME)
    assert "no puede leer" in report.problems[0] and "JSON" in report.problems[0]
    from helpers.repair import MAX_BYTES

    report = validar_module.check_notebook(b" " * (MAX_BYTES + 1), NAME)
    assert "no acepta más de" in report.problems[0] and "Borrar todas las salidas" in report.problems[0]


def test_salida_enorme_se_avisa_sin_ejecutar(monkeypatch):
    nb = nbformat.read(NOTEBOOKS / NAME / f"{NAME}.ipynb", as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text="x" * (validar_module.MAX_OUTPUT_CHARS + 10))]
    monkeypatch.setattr(validar_module, "_execute", lambda *a, **k: [])  # solo la estructura
    report = validar_module.check_notebook(_bytes(nb), NAME, "tiny")
    assert any("salida de la celda" in p and "enorme" in p for p in report.problems)


def test_no_hace_nada_en_el_calificador_ni_en_make_curso(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert helpers.validar(NAME) is None
    assert "el calificador no lo ejecuta" in capsys.readouterr().out
    monkeypatch.delenv("NBGRADER_EXECUTION")
    monkeypatch.setenv(validar_module.SKIP_ENV, "1")
    assert helpers.validar(NAME) is None
    assert f"python -m helpers.validar {NAME}.ipynb" in capsys.readouterr().out
    monkeypatch.delenv(validar_module.SKIP_ENV)
    # Sin Jupyter ni Colab ni ruta: dice cómo ejecutarlo, sin ejecutar nada.
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert helpers.validar(NAME) is None
    assert f"python -m helpers.validar {NAME}.ipynb" in capsys.readouterr().out
    assert helpers.validar(ruta=tmp_path / "no_existe.ipynb") is None
    assert "No encuentro" in capsys.readouterr().out


def test_encuentra_el_cuaderno_de_la_sesion_de_jupyter(monkeypatch, tmp_path):
    path = tmp_path / f"{NAME}.ipynb"
    path.write_text("{}", encoding="utf-8")
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    assert validar_module._session_path() == path
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "otro.ipynb"))
    assert validar_module._session_path() is None


def test_helpers_validar_es_la_funcion_aunque_se_importe_el_modulo():
    import importlib

    module = importlib.import_module("helpers.validar")
    assert callable(helpers.validar) and callable(module)


def test_manifiesto_al_dia_con_notebooks():
    """``helpers/data/cuadernos_publicados.json`` es lo que escribe `make release` desde notebooks/,
    y no lleva soluciones ni pruebas ocultas."""
    from helpers.maintainers.release import manifest_text

    assert validar_module.MANIFEST.read_text(encoding="utf-8") == manifest_text(), (
        "helpers/data/cuadernos_publicados.json está desfasado: ejecuta `make release`"
    )
    text = validar_module.MANIFEST.read_text(encoding="utf-8")
    assert "BEGIN HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text
    for name, _cells in json.loads(text).items():
        for answer in solution_cells(name).values():
            assert answer.strip() not in text


def test_limites_iguales_que_el_calificador():
    import runpy

    from helpers.classroom.grading import Settings

    settings = Settings(class_dir="x")
    assert (validar_module.CELL_TIMEOUT, validar_module.TOTAL_BUDGET, validar_module.MAX_OUTPUT_CHARS) == (
        settings.cell_timeout,
        settings.total_budget,
        settings.max_output_chars,
    )

    class _Section(dict):
        def __getattr__(self, key):
            return self.setdefault(key, _Section())

        def __setattr__(self, key, value):
            self[key] = value

    config = _Section()
    runpy.run_path(str(ROOT / "nbgrader_config.py"), init_globals={"get_config": lambda: config})
    assert config["Execute"]["timeout"] == validar_module.CELL_TIMEOUT
    assert config["KernelManager"]["transport"] == "ipc"


def _structure(monkeypatch, nb):
    """Solo la estructura: la ejecución (que prueban los cuatro casos de arriba) no hace falta."""
    monkeypatch.setattr(validar_module, "_execute", lambda *a, **k: [])
    return validar_module.check_notebook(_bytes(nb), NAME, "tiny").problems


def _cell(nb, grade_id):
    return next(c for c in nb.cells if _meta(c).get("grade_id") == grade_id)


def test_celdas_editadas_repetidas_o_en_markdown(monkeypatch):
    published = nbformat.read(NOTEBOOKS / NAME / f"{NAME}.ipynb", as_version=4)
    assert _structure(monkeypatch, published) == []
    edited = copy.deepcopy(published)
    _cell(edited, "test_count_params").source = "pass"
    assert any("«test_count_params» está modificada" in p for p in _structure(monkeypatch, edited))
    markdown = copy.deepcopy(published)
    cell = _cell(markdown, "test_count_params")
    markdown.cells[markdown.cells.index(cell)] = nbformat.v4.new_markdown_cell(cell.source, metadata=cell.metadata)
    assert any("«test_count_params» ya no es de código" in p for p in _structure(monkeypatch, markdown))
    repeated = copy.deepcopy(published)
    repeated.cells.append(copy.deepcopy(_cell(repeated, "count_params")))
    repeated.cells[-1]["id"] = "copia1"
    assert any("«count_params» está repetida" in p for p in _structure(monkeypatch, repeated))
    stripped = copy.deepcopy(published)
    for cell in stripped.cells:
        cell.metadata.pop("nbgrader", None)
    problems = _structure(monkeypatch, stripped)
    assert len(problems) == 1 and "no tiene los metadatos de nbgrader" in problems[0], problems
