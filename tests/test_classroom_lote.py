"""El calificador de la clase de principio a fin, con nbgrader de verdad y la caja de arena.

Una clase de prueba (zip de Moodle) con una entrega por cada fallo de ``grading-faults.md``:

1. el lote se corta a mitad con SIGKILL: el libro de notas sigue sano y no quedan procesos;
2. se repite la orden: reutiliza lo ya calificado y termina;
3. se califica otro cuaderno desde una carpeta normal;
4. se repite todo otra vez: el CSV sale idéntico byte a byte.

Después se comprueba, caso a caso, el estado, la nota (también celda a celda) y las observaciones.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_classroom import casos  # noqa: E402
from polling import wait_until_empty  # noqa: E402

from helpers.classroom import export, probe, sandbox  # noqa: E402
from helpers.course_files import ROOT, notebook_names  # noqa: E402

NB1 = "01_introduccion_peft"
NB2 = "02_lora_matematicas"
SANDBOX = sandbox.available()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("clase"),
    pytest.mark.skipif(not SANDBOX[0], reason=f"sin caja de arena en esta máquina: {SANDBOX[1]}"),
]
# Ajustes de la prueba: perfil rápido, 2 trabajadores, celdas de hasta 30 s (el bucle infinito
# consume exactamente eso; la celda legítima más lenta del 01 tarda unos 4 s), 4 GiB por núcleo (la
# entrega espía pide 5).
OPTIONS = ["--perfil", "tiny", "--trabajadores", "2", "--tiempo-celda", "30", "--tiempo-total", "600", "--memoria", "4"]
DATE_OLD = (2025, 1, 10, 9, 0, 0)
DATE_NEW = (2025, 1, 12, 18, 30, 0)


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "helpers.classroom", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
        **kwargs,
    )


def batch_processes(token: str) -> list[str]:
    """Procesos vivos del lote marcado con ``token`` (trabajadores, cajas de arena y núcleos)."""
    found = []
    needle = f"CURSO_PEFT_LOTE={token}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "environ").read_bytes():
                    uid = int((entry / "status").read_text().split("Uid:")[1].split()[0])
                    found.append(f"{entry.name} (uid {uid}): {(entry / 'cmdline').read_bytes()[:120]!r}")
            except (OSError, IndexError, ValueError):
                continue
    return found


def add(zf: zipfile.ZipFile, path: str, data: bytes, date=DATE_NEW) -> None:
    zf.writestr(zipfile.ZipInfo(path, date_time=date), data)


@pytest.fixture(scope="session")  # de sesión: con xdist no se repite aunque se intercalen otras pruebas
def clase(tmp_path_factory):
    base = tmp_path_factory.mktemp("clase")
    class_dir = base / "clase"
    nb1 = casos.Notebook(NB1)
    cases: dict[str, tuple[str, casos.Expect]] = {}
    other = class_dir / "entregas" / "ana-garcia-1001" / f"{NB1}.ipynb"
    zip_path = base / "descargar_todas_las_entregas.zip"
    spy_reads = [
        str(ROOT / "solutions" / NB1 / f"{NB1}.ipynb"),
        str(ROOT / ".git" / "HEAD"),
        str(class_dir / "curso" / "gradebook.db"),
        str(other),
        str(class_dir / ".plantillas"),
        str(zip_path),
        "../../../gradebook.db",
        f"../../../source/{NB1}",
        "../../../submitted",
        "/root/.cache/curso-peft",
    ]
    spy_writes = [
        str(class_dir / "curso" / "gradebook.db"),
        "../../../gradebook.db",
        str(ROOT / "helpers" / "entrega_espia.py"),
        str(other.parent / "espia.txt"),
        "permitido.txt",
    ]
    spy = casos.spy_cells(spy_reads, spy_writes, [("1.1.1.1", 53), ("127.0.0.1", 22)])
    # Varios fallos independientes por entrega (cada kernel cuesta ~15 s de CPU): la nota esperada
    # se comprueba celda a celda, así que cada caso sigue siendo identificable.
    builders = {
        "Ana García_1001": ("01_introduccion_peft (1).ipynb", casos.correct_with_noise(nb1, reorder=True)),
        "Beto Ruiz_1002": ("01_Introducción_PEFT.ipynb", casos.structure(nb1)),
        "Carla Díaz_1003": ("mi_entrega_final.ipynb", casos.no_metadata(nb1)),
        "Elena Mora_1005": (f"{NB1}.ipynb", casos.loop_stderr_output(nb1, spy)),
        "Fran Gil_1006": (f"{NB1}.ipynb", casos.dead_kernel(nb1)),
        "Gabi León_1007": (f"{NB1}.ipynb", casos.no_traceback(nb1)),
        "Inés Peña_1009": (f"{NB1}.ipynb", casos.truncated_json(nb1)),
    }
    with zipfile.ZipFile(zip_path, "w") as zf:
        for folder, (fname, (data, expect)) in builders.items():
            add(zf, f"{folder}_assignsubmission_file_/{fname}", data)
            student = casos_id(folder)
            cases[student] = expect
        # 19: una segunda subida, más antigua (sin resolver): se califica la más reciente.
        add(zf, f"Ana García_1001_assignsubmission_file_/{NB1}.ipynb", casos.unsolved(nb1), DATE_OLD)
        # 3: carpeta vacía.
        zf.writestr(zipfile.ZipInfo("Juan Luna_1010_assignsubmission_file_/", date_time=DATE_NEW), b"")
    log: dict[str, object] = {}

    # 1. Primera ejecución, cortada con SIGKILL en cuanto hay una entrega calificada.
    results = class_dir / "resultados" / NB1
    token = uuid.uuid4().hex
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "helpers.classroom",
            "calificar",
            "--entregas",
            str(zip_path),
            "--tarea",
            NB1,
            "--clase",
            str(class_dir),
            *OPTIONS,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=dict(os.environ, CURSO_PEFT_LOTE=token),
    )
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(results.glob("*/resultado.json"))) >= 1:
            break
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log["before"] = {p.parent.name: p.stat().st_mtime_ns for p in results.glob("*/resultado.json")}
    log["leftover"] = wait_until_empty(lambda: batch_processes(token))  # el SIGKILL llega a todos
    db = class_dir / "curso" / "gradebook.db"
    log["integrity_after_kill"] = export.check_integrity(db) if db.exists() else True

    # 2. Se repite: termina, reutilizando lo ya hecho.
    log["run2"] = cli("calificar", "--entregas", str(zip_path), "--tarea", NB1, "--clase", str(class_dir), *OPTIONS)
    log["after"] = {p.parent.name: p.stat().st_mtime_ns for p in results.glob("*/resultado.json")}

    # 3. Otro cuaderno desde una carpeta normal (si ya existe en el curso).
    if NB2 in notebook_names():
        nb2 = casos.Notebook(NB2)
        folder = base / "entregas02"
        (folder / "ana-garcia-1001").mkdir(parents=True)
        (folder / "ana-garcia-1001" / f"{NB2}.ipynb").write_bytes(casos.to_bytes(nb2.solved()))
        log["nb2"] = nb2
        log["run3"] = cli("calificar", "--entregas", str(folder), "--tarea", NB2, "--clase", str(class_dir), *OPTIONS)
    csv_before = (class_dir / "calificaciones.csv").read_bytes()

    # 4. Misma orden, mismas entradas: mismo CSV.
    log["run4"] = cli("calificar", "--entregas", str(zip_path), "--tarea", NB1, "--clase", str(class_dir), *OPTIONS)
    log["csv_before"] = csv_before
    log["csv_after"] = (class_dir / "calificaciones.csv").read_bytes()
    rows = list(csv.DictReader(io.StringIO(log["csv_after"].decode("utf-8"))))
    yield {"dir": class_dir, "cases": cases, "rows": rows, "log": log, "nb1": nb1, "zip": zip_path}


def casos_id(folder: str) -> str:
    from helpers.classroom.layout import slug

    name, sid = folder.rsplit("_", 1)
    return f"{slug(name)}-{sid}"


def row(clase, student: str, nb: str = NB1) -> dict:
    return next(r for r in clase["rows"] if r["alumno"] == student and r["cuaderno"] == nb)


def result(clase, student: str, nb: str = NB1) -> dict:
    import json

    return json.loads((clase["dir"] / "resultados" / nb / student / "resultado.json").read_text(encoding="utf-8"))


def graded(clase, student: str, nb: str = NB1):
    return nbformat.read(clase["dir"] / "resultados" / nb / student / "calificado.ipynb", as_version=4)


# --- el lote -----------------------------------------------------------------------------------
def test_el_corte_no_rompe_nada_y_se_reanuda(clase):
    log = clase["log"]
    assert log["integrity_after_kill"], "el libro de notas quedó dañado tras el SIGKILL"
    assert log["leftover"] == [], f"quedaron procesos de la caja de arena tras el SIGKILL: {log['leftover']}"
    assert len(log["before"]) >= 1
    run2 = log["run2"]
    assert run2.returncode == 0, run2.stdout + run2.stderr
    assert f"{len(log['before'])} ya calificada(s)" in run2.stdout, run2.stdout
    for student, mtime in log["before"].items():
        assert log["after"][student] == mtime, f"{student}: se volvió a calificar algo ya calificado"


def test_repetir_da_el_mismo_csv(clase):
    run4 = clase["log"]["run4"]
    assert run4.returncode == 0, run4.stdout + run4.stderr
    assert "0 entrega(s) por calificar" in run4.stdout, run4.stdout
    assert clase["log"]["csv_after"] == clase["log"]["csv_before"]
    assert export.check_integrity(clase["dir"] / "curso" / "gradebook.db")


def test_una_fila_por_alumno_y_cuaderno(clase):
    students = {casos_id(f) for f in ["Juan Luna_1010"]} | set(clase["cases"])
    notebooks = {NB1} | ({NB2} if "nb2" in clase["log"] else set())
    assert {(r["alumno"], r["cuaderno"]) for r in clase["rows"]} == {(s, n) for s in students for n in notebooks}
    assert list(clase["rows"][0]) == export.COLUMNS
    for r in clase["rows"]:
        assert r["estado"] in ("calificado", "falta la entrega", "revisar: posible manipulación de las pruebas") or r[
            "estado"
        ].startswith("no calificable: ")
        if r["puntuacion"] == "":
            assert r["estado"] != "calificado", r  # nunca un 0 (ni un vacío) sin motivo
        assert r["puntuacion_maxima"] != ""


@pytest.mark.parametrize(
    "student",
    [
        "ana-garcia-1001",
        "beto-ruiz-1002",
        "carla-diaz-1003",
        "elena-mora-1005",
        "fran-gil-1006",
        "gabi-leon-1007",
        "ines-pena-1009",
    ],
)
def test_caso(clase, student):
    expect: casos.Expect = clase["cases"][student]
    r = row(clase, student)
    res = result(clase, student)
    assert r["estado"] == expect.estado, res
    if expect.puntuacion is None:
        assert r["puntuacion"] == "", r
    else:
        assert float(r["puntuacion"]) == pytest.approx(expect.puntuacion), res
    assert float(r["puntuacion_maxima"]) == clase["nb1"].max_score
    for cell, score in expect.celdas.items():
        assert res["celdas"][cell][0] == pytest.approx(score), (cell, res["celdas"])
    for fragment in expect.notas:
        assert fragment in r["observaciones"], (fragment, r["observaciones"])


def test_falta_la_entrega(clase):
    r = row(clase, "juan-luna-1010")
    assert (r["estado"], r["puntuacion"]) == ("falta la entrega", "")
    if "nb2" in clase["log"]:
        assert row(clase, "beto-ruiz-1002", NB2)["estado"] == "falta la entrega"


def test_dos_subidas_y_archivos_renombrados(clase):
    ana = row(clase, "ana-garcia-1001")["observaciones"]
    assert "2 subidas" in ana and "01_introduccion_peft (1).ipynb" in ana
    assert "mi_entrega_final.ipynb" in row(clase, "carla-diaz-1003")["observaciones"]
    assert "01_Introducción_PEFT.ipynb" in row(clase, "beto-ruiz-1002")["observaciones"]
    log = (clase["dir"] / "registro.txt").read_text(encoding="utf-8")
    assert "se califica la más reciente" in log


def test_bucle_infinito_salida_enorme_y_stderr(clase):
    nb = graded(clase, "elena-mora-1005")
    last = [c for c in nb.cells if casos.is_solution(c)][-1]
    assert any(o.get("ename") == "CellTimeoutError" for o in last.outputs), last.outputs
    after = nb.cells[nb.cells.index(last) + 1 :]
    assert any(c.cell_type == "code" and c.get("execution_count") for c in after), "el cuaderno no siguió"
    huge = next(c for c in nb.cells if c.cell_type == "code" and "200_000" in c.source)
    text = "".join(o.get("text", "") for o in huge.outputs)
    assert text.count("\n") <= 1001 and "truncated" in text.lower()


def test_espia_no_ve_ni_toca_nada(clase):
    nb = graded(clase, "elena-mora-1005")
    out = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    found = probe.parse(out)
    assert found is not None, out[:2000]
    assert found["uid"] != 0
    for target, outcome in found["leer"].items():
        assert outcome != "permitido", f"la entrega pudo leer {target}"
    for target, outcome in found["escribir"].items():
        assert (outcome == "permitido") == (target == "permitido.txt"), (target, outcome)
    assert all(outcome != "permitido" for outcome in found["red"].values()), found["red"]
    assert found["procesos_visibles"] < 10
    assert "MEMORIA=denegada" in out
    # Y desde fuera: nada apareció donde intentó escribir.
    assert not (ROOT / "helpers" / "entrega_espia.py").exists()
    assert not (clase["dir"] / "entregas" / "ana-garcia-1001" / "espia.txt").exists()


def test_retroalimentacion_en_espanol_sin_pruebas_ocultas(clase):
    import html as html_lib

    from helpers.classroom.feedback import HIDDEN_PLACEHOLDER, hidden_lines

    nb1 = clase["nb1"]
    hidden = hidden_lines(nb1.solution)
    assert hidden, "el cuaderno 01 debería tener pruebas ocultas"
    visible = "\n".join(c.source for c in nb1.released.cells)
    # Las líneas que delatan una prueba oculta: largas y que no aparecen en el cuaderno publicado.
    telltale = [line for line in hidden if len(line) >= 10 and line not in visible]
    assert telltale
    for student in clase["cases"]:
        page = (clase["dir"] / "retroalimentacion" / student / f"{NB1}.html").read_text(encoding="utf-8")
        text = html_lib.unescape(page)
        assert 'lang="es"' in page and "Retroalimentación de" in page
        assert "Score" not in page and "Test cell" not in page
        for line in telltale:
            assert line not in text, f"{student}: la retroalimentación muestra una prueba oculta: {line}"
    gabi = (clase["dir"] / "retroalimentacion" / "gabi-leon-1007" / f"{NB1}.html").read_text(encoding="utf-8")
    assert "Puntuación: 0.0" in gabi
    # La entrega espía imprimió el historial de IPython (su última celda): el 01 tiene examen.py, así que
    # el examinador no ejecutó ninguna prueba oculta en su núcleo. El historial está en la página (el código
    # de las celdas sale coloreado, partido en etiquetas; la línea entera solo está en el historial impreso)
    # y no trae ni una línea oculta, ni tapada.
    elena = html_lib.unescape(
        (clase["dir"] / "retroalimentacion" / "elena-mora-1005" / f"{NB1}.html").read_text(encoding="utf-8")
    )
    assert "print('MEMORIA=concedida')" in elena, "la entrega espía no imprimió su historial"
    assert HIDDEN_PLACEHOLDER not in elena
    sources = "\n".join(c.source for c in graded(clase, "elena-mora-1005").cells)
    assert not any(line in sources for line in telltale)  # ni en el cuaderno calificado: nunca se ejecutaron


def test_libro_de_notas_maestro(clase):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{clase['dir'] / 'curso' / 'gradebook.db'}") as gb:
        for r in clase["rows"]:
            if r["cuaderno"] != NB1:
                continue
            if r["estado"] == "calificado":
                sub = gb.find_submission_notebook(NB1, NB1, r["alumno"])
                assert sub.score == pytest.approx(float(r["puntuacion"]))


def test_segundo_cuaderno(clase):
    if "nb2" not in clase["log"]:
        pytest.skip(f"{NB2} todavía no existe en solutions/")
    run3 = clase["log"]["run3"]
    assert run3.returncode == 0, run3.stdout + run3.stderr
    r = row(clase, "ana-garcia-1001", NB2)
    assert r["estado"] == "calificado", result(clase, "ana-garcia-1001", NB2)
    assert float(r["puntuacion"]) == clase["log"]["nb2"].max_score == float(r["puntuacion_maxima"])


@pytest.mark.xdist_group("presupuesto")
def test_tiempo_total_del_cuaderno(tmp_path):
    """Un cuaderno que duerme más que el tiempo total no termina: nota parcial y estado claro.

    La lentitud es a propósito (una celda que duerme 120 s con 20 s de tiempo total), así que el
    resultado no depende de lo rápida que sea la máquina; y no se mide ningún tiempo."""
    nb1 = casos.Notebook(NB1)
    folder = tmp_path / "entregas" / "ana"
    folder.mkdir(parents=True)
    (folder / f"{NB1}.ipynb").write_bytes(casos.slow_on_purpose(nb1, 120))
    run = cli(
        "calificar",
        "--entregas",
        str(tmp_path / "entregas"),
        "--tarea",
        NB1,
        "--clase",
        str(tmp_path / "clase"),
        "--tiempo-total",
        "20",
        "--tiempo-celda",
        "300",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "clase" / "calificaciones.csv").read_text(encoding="utf-8"))))
    assert rows[0]["estado"] == "no calificable: tiempo total agotado", rows
    assert float(rows[0]["puntuacion"]) < nb1.max_score
    assert "parcial" in rows[0]["observaciones"]
