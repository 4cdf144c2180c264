"""Pruebas de los cuadernos: publicación al día, estructura, celdas calificadas honestas y
calificación automática real con nbgrader (solución = nota máxima, publicado = 0 y, celda a
celda, cada respuesta errónea = 0 justo en las celdas que rompe y nota máxima en las demás)."""

import ast
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import autograde  # noqa: E402  (tests/autograde.py, el arnés de nbgrader)
from solution_code import solution_cells, trains  # noqa: E402
from wrong_answers import broken_cells, groups, wrong_cells  # noqa: E402

from helpers.maintainers.release import (
    ROOT,
    SETUP_TAG,
    SUBMIT_TAG,
    badge_line,
    generate,  # noqa: E402
    notebook_names,
    setup_cell_source,
    submit_cells_source,
)

NAMES = notebook_names()


def read(path):
    return nbformat.read(path, as_version=4)


def solution(name):
    return ROOT / "solutions" / name / f"{name}.ipynb"


def released(name):
    return ROOT / "notebooks" / name / f"{name}.ipynb"


def nbgrader_meta(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def grade_cells(nb):
    return [c for c in nb.cells if nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")]


def comparable(nb):
    return [(c.cell_type, c.source, nbgrader_meta(c)) for c in nb.cells]


def test_hay_cuadernos():
    assert NAMES, "solutions/ no tiene cuadernos"
    assert NAMES[0] == "01_introduccion_peft"


@pytest.fixture(scope="module")
def fresh_release(tmp_path_factory):
    """Los cuadernos del alumnado generados otra vez desde solutions/: todos en una sola ejecución
    de nbgrader (arrancarlo cuesta unos segundos; una por cuaderno los multiplicaba por 8)."""
    out = tmp_path_factory.mktemp("publicado")
    generate("*", release_dir=out)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_publicado_al_dia(name, fresh_release):
    """notebooks/ es exactamente lo que genera nbgrader desde solutions/ (nadie lo edita a mano)."""
    assert released(name).exists(), f"Falta notebooks/{name}: ejecuta `make release`"
    fresh = read(fresh_release / name / f"{name}.ipynb")
    assert comparable(fresh) == comparable(read(released(name))), (
        f"notebooks/{name} está desfasado: ejecuta `make release`"
    )


@pytest.mark.parametrize("name", NAMES)
def test_insignia_y_preparacion(name):
    for path in (solution(name), released(name)):
        nb = read(path)
        assert nb.cells[0].source.split("\n")[0] == badge_line(name)
        setup = [c for c in nb.cells if SETUP_TAG in c.metadata.get("tags", [])]
        assert len(setup) == 1 and setup[0].source == setup_cell_source()
        assert nb.cells.index(setup[0]) == 1 + next(i for i, c in enumerate(nb.cells[1:]) if c.cell_type == "code"), (
            "la celda de preparación debe ser la primera de código"
        )
        # Colab lo abre ya en una T4 desde la insignia.
        assert nb.metadata.get("accelerator") == "GPU", f"{path}: faltan los metadatos de GPU de Colab: `make release`"
        assert nb.metadata.get("colab", {}).get("gpuType") == "T4", f"{path}: Colab no lo abriría en una T4"
        # Termina con «Antes de entregar», que llama a helpers.validar con su nombre.
        assert [(c.cell_type, c.source) for c in nb.cells[-2:]] == list(
            zip(("markdown", "code"), submit_cells_source(name))
        )
        assert all(SUBMIT_TAG in c.metadata.get("tags", []) for c in nb.cells[-2:])
    target = re.search(r"/blob/[^/]+/(notebooks/.+\.ipynb)\)$", badge_line(name)).group(1)
    assert (ROOT / target).exists()


@pytest.mark.parametrize("name", NAMES)
def test_estructura(name):
    nb = read(solution(name))
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for needed in ("Objetivos", "🐢", "🐕", "🦁", "Resumen", "Para saber más"):
        assert needed in text, f"{name}: falta «{needed}» en el texto"
    graded = grade_cells(nb)
    assert len(graded) >= 4, f"{name}: hacen falta al menos 4 celdas calificadas"
    assert any("### BEGIN HIDDEN TESTS" in c.source for c in graded), f"{name}: ninguna celda con pruebas ocultas"
    ids = [nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c)]
    assert len(ids) == len(set(ids)), "grade_id repetidos"


@pytest.mark.parametrize("name", NAMES)
def test_celdas_calificadas_solo_comprueban(name):
    """Una celda calificada nunca termina en una expresión con valor (nbgrader la tomaría como nota parcial)."""
    for cell in grade_cells(read(solution(name))):
        tree = ast.parse(cell.source.replace("### BEGIN HIDDEN TESTS", "").replace("### END HIDDEN TESTS", ""))
        last = tree.body[-1]
        ok = isinstance(last, ast.Assert) or (
            isinstance(last, ast.Expr)
            and isinstance(last.value, ast.Call)
            and getattr(last.value.func, "attr", getattr(last.value.func, "id", "")).startswith("check_")
        )
        assert ok, f"{name}/{nbgrader_meta(cell)['grade_id']}: debe terminar en assert o en helpers.check_*(...)"


def _errors(path):
    return [
        (i, o.get("ename"))
        for i, c in enumerate(read(path).cells)
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


@pytest.mark.parametrize("name", NAMES)
def test_cada_solucion_tiene_su_respuesta_erronea(name):
    """Toda celda de solución tiene una variante errónea que la cambia de verdad, con las celdas que rompe."""
    answers = solution_cells(name)
    wrong, breaks = wrong_cells(name), broken_cells(name)
    assert set(wrong) == set(answers), (
        f"tests/wrong_answers/nb{name[:2]}.py: faltan {sorted(set(answers) - set(wrong))}"
    )
    assert set(breaks) == set(wrong)
    graded = {nbgrader_meta(c)["grade_id"] for c in grade_cells(read(solution(name)))}
    for grade_id, source in wrong.items():
        assert source.strip() != answers[grade_id].strip()
        assert breaks[grade_id] and set(breaks[grade_id]) <= graded, (
            f"{grade_id}: BREAKS debe nombrar celdas calificadas"
        )
    # Cada celda calificada depende de alguna respuesta: hay un error que la deja a 0.
    assert graded == {cell for cells in breaks.values() for cell in cells}, "celdas calificadas que ningún error rompe"


def _with_wrong(name: str, grade_ids: list[str], path: Path) -> Path:
    nb = read(solution(name))
    by_id = {nbgrader_meta(c).get("grade_id"): c for c in nb.cells}
    for grade_id in grade_ids:
        by_id[grade_id].source = wrong_cells(name)[grade_id]
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="session")
def course_template(tmp_path_factory):
    """Todos los cuadernos generados una sola vez para todos los procesos de pytest (autograde.course_template)."""
    base = tmp_path_factory.getbasetemp()
    # Con xdist, la carpeta de cada proceso cuelga de una común a esta ejecución; sin xdist, la propia.
    return autograde.course_template(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_calificacion_automatica(name, tmp_path, course_template):
    """Con el perfil rápido: la solución se ejecuta entera sin errores y saca la nota máxima; el
    cuaderno publicado sin tocar saca 0 en cada celda; cada entrega con respuestas erróneas saca 0
    exactamente en las celdas que rompen (``BREAKS``) y la nota máxima en todas las demás."""
    course = autograde.make_course(tmp_path, [name], template=course_template)
    wrong_groups = groups(name, list(solution_cells(name)))
    assert wrong_groups, f"tests/wrong_answers/nb{name[:2]}.py debe definir WRONG y BREAKS"
    submissions = {"solucion": solution(name), "publicado": autograde.released_notebook(course, name)}
    for i, group in enumerate(wrong_groups):
        submissions[f"erronea{i + 1}"] = _with_wrong(name, group, tmp_path / f"erronea{i + 1}.ipynb")

    # La solución se califica con la T4 simulada (CURSO_PEFT_SIMULAR=t4: pesos congelados fp16,
    # entrenables fp32, autocast fp16, GradScaler...) y anota cada historial de pérdida; la
    # publicada y las erróneas, con la precisión normal de la CPU. Así la capa «T4 simulada» cuesta
    # solo un arranque más de nbgrader por cuaderno, no una ejecución más de la solución.
    losses_log = tmp_path / "perdidas.jsonl"
    t4 = {"CURSO_PEFT_SIMULAR": "t4", "CURSO_PEFT_REGISTRO_PERDIDAS": str(losses_log)}
    grades = autograde.autograde(course, name, submissions, student_env={"solucion": t4})

    sol = grades["solucion"]
    assert _errors(autograde.autograded_notebook(course, name, "solucion")) == [], (
        "la solución (T4 simulada) tiene celdas con error"
    )
    assert sol.score == sol.max_score > 0, sol.cells
    check_t4_losses(name, losses_log)
    assert all(score == 0 for score, _ in grades["publicado"].cells.values()), grades["publicado"].cells
    breaks = broken_cells(name)
    for i, group in enumerate(wrong_groups):
        cells = grades[f"erronea{i + 1}"].cells
        expected_zero = {cell for grade_id in group for cell in breaks[grade_id]}
        assert expected_zero <= set(cells)
        scores = {cell: score for cell, (score, _) in cells.items() if sol.cells[cell][1] > 0}
        wrong_scores = {cell: score for cell, score in scores.items() if cell in expected_zero and score != 0}
        missing = {
            cell: score for cell, score in scores.items() if cell not in expected_zero and score != sol.cells[cell][1]
        }
        assert not wrong_scores and not missing, (
            f"entrega con {group} mal: debían ser 0 {sorted(expected_zero)}; no lo son {wrong_scores}; "
            f"sin nota máxima fuera de ellas {missing}"
        )


def check_t4_losses(name, log):
    """Cada historial de pérdida de la solución en la T4 simulada: finito, de la T4 y, si tiene al
    menos DECREASING_MIN_STEPS pasos, con la media de sus últimos pasos por debajo de la de los primeros."""
    import json
    import math

    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []
    # Qué cuadernos entrenan sale del código (solution_code.trains), no de una lista a mano: uno nuevo
    # que entrene con las funciones del curso debe anotar sus pérdidas, y uno que anote pérdidas sin
    # que la derivación lo vea delata una función de entrenamiento que esta no reconoce.
    assert bool(records) == trains(name), (
        f"{name}: la solución entrena pero no anotó ningún historial de pérdida"
        if trains(name)
        else f"{name}: anotó pérdidas pero solution_code.trains no ve con qué entrena"
    )
    for rec in records:
        where = f"{name} · {rec['origen']} · {rec['perdidas']}"
        assert rec["precision"].startswith("t4 (T4 simulada"), where
        assert rec["perdidas"] and all(math.isfinite(v) for v in rec["perdidas"]), f"pérdida no finita: {where}"
        values = rec["perdidas"]
        if len(values) >= DECREASING_MIN_STEPS:
            window = max(1, min(3, len(values) // 2))
            assert sum(values[-window:]) < sum(values[:window]), f"la pérdida no baja: {where}"


DECREASING_MIN_STEPS = 4
