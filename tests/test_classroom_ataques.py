"""Entregas hostiles calificadas con la orden de verdad (``python -m helpers.classroom calificar``).

Un solo lote (perfil rápido, 2 trabajadores) con una entrega por ataque
(:mod:`fixtures_classroom.ataques`): el cuaderno 01 tiene examinador (docs/examinador.md), así que
cada entrega sin resolver, haga lo que haga su núcleo, saca 0 puntos del examinador; las resueltas,
la nota máxima; cada una con el estado esperado. Después se comprueba desde fuera que nada apareció fuera de la
carpeta de la clase, que no queda ningún proceso y que el libro de notas está sano.

También: el calificador completo ejecutado por un usuario sin privilegios (``nobody``), y la caja
de arena de bubblewrap creada sin root.
"""

from __future__ import annotations

import csv
import html as html_lib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_classroom import ataques, casos  # noqa: E402
from polling import wait_until_empty  # noqa: E402

from helpers.classroom import export, probe, sandbox  # noqa: E402
from helpers.course_files import ROOT  # noqa: E402

NB1 = "01_introduccion_peft"
PUBLIC_NAME = re.compile(r'^"[A-Za-z_][A-Za-z0-9_]*",?$')
SECRET = "hf_secreto_del_profesorado_" + uuid.uuid4().hex[:8]
OPTIONS = [
    "--perfil",
    "tiny",
    "--trabajadores",
    "2",
    "--tiempo-celda",
    "120",
    "--tiempo-total",
    "600",
    "--memoria",
    "4",
]
NO_SANDBOX = sandbox.available()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("ataques"),
    pytest.mark.skipif(not NO_SANDBOX[0], reason=f"sin caja de arena en esta máquina: {NO_SANDBOX[1]}"),
]


def untracked() -> set[str]:
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    return {line[3:] for line in out.splitlines() if line.startswith("??")}


def token_files(token: str) -> list[str]:
    """Archivos con la marca de la prueba en /tmp (y un nivel por debajo) y en la carpeta personal."""
    found = []
    for base in (Path("/tmp"), Path.home()):
        for pattern in (f"*{token}*", f"*/*{token}*"):
            try:
                found += [str(p) for p in base.glob(pattern)]
            except OSError:
                continue
    return found


def live_processes(token: str) -> list[str]:
    needle = f"CURSO_PEFT_LOTE={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes():
                    found.append(f"{entry.name}: {(entry / 'cmdline').read_bytes()[:80]!r}")
            except OSError:
                continue
    return found


@pytest.fixture(scope="module")
def lote(tmp_path_factory):
    base = tmp_path_factory.mktemp("ataques")
    class_dir = base / "clase"
    token = "ataque" + uuid.uuid4().hex[:10]
    nbk = casos.Notebook(NB1)
    other = class_dir / "entregas" / "enlace" / f"{NB1}.ipynb"
    reads = [
        str(class_dir / "curso" / "gradebook.db"),
        str(class_dir / ".plantillas" / NB1 / "source"),
        str(other),
        str(ROOT / "solutions" / NB1 / f"{NB1}.ipynb"),
        "../../../gradebook.db",
        f"../../../source/{NB1}",
        "../../../autograded",
        "/proc/1/environ",
        str(Path.home() / ".cache"),
    ]
    writes = [
        str(class_dir / "curso" / "gradebook.db"),
        str(other.parent / f"{token}.txt"),
        f"/tmp/{token}-escrito",
        str(ROOT / "helpers" / f"{token}.py"),
        "permitido.txt",
    ]
    spy_code = probe.probe_source(reads, writes, [("1.1.1.1", 53), ("127.0.0.1", 22)])
    source = base / "entregas"
    expected = {}
    builders = dict(ataques.ATTACKS, inofensivos=lambda nb, tok: ataques.harmless_together(nb, tok, spy_code))
    for student, build in builders.items():
        data, expect = build(nbk, token)
        (source / student).mkdir(parents=True)
        (source / student / f"{NB1}.ipynb").write_bytes(data)
        expected[student] = expect
    before = untracked()
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "helpers.classroom",
            "calificar",
            "--entregas",
            str(source),
            "--tarea",
            NB1,
            "--clase",
            str(class_dir),
            *OPTIONS,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
        env=dict(os.environ, HF_TOKEN=SECRET, HF_HUB_TOKEN=SECRET, CURSO_PEFT_LOTE=token),
    )
    seconds = time.monotonic() - started
    processes = wait_until_empty(lambda: live_processes(token))  # los que se cierran tras la orden
    rows = list(csv.DictReader(io.StringIO((class_dir / "calificaciones.csv").read_text(encoding="utf-8"))))
    yield {
        "dir": class_dir,
        "run": run,
        "rows": {r["alumno"]: r for r in rows},
        "expected": expected,
        "token": token,
        "nb": nbk,
        "untracked_before": before,
        "untracked_after": untracked(),
        "token_files": token_files(token),
        "processes": processes,
        "seconds": seconds,
        "writes": writes,
        "reads": reads,
    }


def graded_output(lote, student: str) -> str:
    nb = nbformat.read(lote["dir"] / "resultados" / NB1 / student / "calificado.ipynb", as_version=4)
    # El texto de las salidas seguido (una línea puede llegar partida en dos mensajes) y, en su
    # propia línea, los datos de cada salida que los tenga.
    return "".join(
        str(o.get("text", "")) + ("\n" + json.dumps(o["data"], ensure_ascii=False) + "\n" if o.get("data") else "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )


def test_el_lote_termina(lote):
    assert lote["run"].returncode == 0, lote["run"].stdout[-3000:] + lote["run"].stderr[-3000:]
    assert set(lote["rows"]) == set(lote["expected"])
    print(f"\nlote de ataques: {len(lote['rows'])} entregas en {lote['seconds']:.0f} s")
    for student, r in sorted(lote["rows"].items()):
        print(f"  {student:<16} {r['puntuacion']:>4}/{r['puntuacion_maxima']} · {r['estado']}")


@pytest.mark.parametrize("student", sorted(ataques.ATTACKS))
def test_ataque(lote, student):
    expect = lote["expected"][student]
    r = lote["rows"][student]
    res = json.loads((lote["dir"] / "resultados" / NB1 / student / "resultado.json").read_text(encoding="utf-8"))
    assert r["estado"] == expect.estado, res
    assert float(r["puntuacion"]) == pytest.approx(expect.puntuacion), res
    for cell, score in expect.celdas.items():
        assert res["celdas"][cell][0] == pytest.approx(score), (cell, res["celdas"])
    for fragment in expect.notas:
        assert fragment in r["observaciones"], (fragment, r["observaciones"])
    out = graded_output(lote, student)
    for fragment in expect.salida:
        assert fragment in out, (fragment, out[-2000:])


def test_nada_fuera_de_la_clase(lote):
    assert lote["token_files"] == [], f"la entrega creó archivos fuera: {lote['token_files']}"
    assert lote["untracked_after"] <= lote["untracked_before"], lote["untracked_after"] - lote["untracked_before"]
    assert not (ROOT / "helpers" / f"{lote['token']}.py").exists()
    # Dentro de la clase, todo lo que queda es del calificador: carpetas y archivos normales, sin enlaces.
    for path in lote["dir"].rglob("*"):
        mode = path.lstat().st_mode
        assert stat.S_ISDIR(mode) or stat.S_ISREG(mode), f"{path} no es un archivo normal"
        assert path.lstat().st_uid == os.geteuid(), f"{path} no es del calificador"
        assert lote["token"] not in path.name, path


def test_no_quedan_procesos(lote):
    assert lote["processes"] == [], lote["processes"]


def test_libro_de_notas_intacto(lote):
    from nbgrader.api import Gradebook

    db = lote["dir"] / "curso" / "gradebook.db"
    assert export.check_integrity(db)
    with Gradebook(f"sqlite:///{db}") as gb:
        students = {s.id for s in gb.students}
        assert students == set(lote["rows"])
        for student, r in lote["rows"].items():
            sub = gb.find_submission_notebook(NB1, NB1, student)
            assert sub.score == pytest.approx(float(r["puntuacion"])), student
            assert sub.max_score == pytest.approx(lote["nb"].max_score)


def test_el_espia_no_ve_ni_toca_nada(lote):
    # Solo lo que imprimió la sonda: el volcado del final (ataques.dump_everything) repite su marca.
    found = probe.parse(graded_output(lote, "inofensivos").split(ataques.DUMP_MARK)[0].replace("\\n", "\n"))
    assert found is not None
    assert {t: o for t, o in found["leer"].items() if o == "permitido"} == {}
    # Solo escribe en lo suyo: su carpeta y su /tmp, que son de la caja (test_nada_fuera_de_la_clase
    # comprueba que no aparecen fuera).
    own = {"permitido.txt", f"/tmp/{lote['token']}-escrito"}
    assert {t for t, o in found["escribir"].items() if o == "permitido"} == own, found["escribir"]
    assert all(o != "permitido" for o in found["red"].values()), found["red"]
    assert found["uid"] != 0 or os.geteuid() != 0


def _secret_lines() -> dict[str, str]:
    """Cada línea oculta de cada cuaderno (pruebas ocultas y examen.py), con dónde está: las que no
    están en ningún cuaderno publicado (una línea corta como ``try:`` no es un secreto)."""
    from helpers.classroom.feedback import hidden_lines
    from helpers.course_files import EXAM_FILE, notebook_names

    released = "\n".join(
        c.source
        for name in notebook_names()
        for c in nbformat.read(ROOT / "notebooks" / name / f"{name}.ipynb", as_version=4).cells
    )
    lines = {}
    for name in notebook_names():
        solution = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
        for line in hidden_lines(solution):
            if len(line) >= 10 and line not in released:
                lines[line] = f"{name}: prueba oculta"
        exam = ROOT / "solutions" / name / EXAM_FILE
        if exam.exists():
            for line in exam.read_text(encoding="utf-8").splitlines():
                # Un nombre suelto entre comillas (``"count_params",``) es el de una celda publicada.
                if len(line.strip()) >= 20 and line.strip() not in released and not PUBLIC_NAME.match(line.strip()):
                    lines[line.strip()] = f"{name}: {EXAM_FILE}"
    return lines


def _artifacts(lote, student: str) -> dict[str, str]:
    """Todo lo que el calificador escribió de esta entrega: resultados, retroalimentación y las copias
    del curso maestro (lo que abre formgrader)."""
    folders = [
        lote["dir"] / "resultados" / NB1 / student,
        lote["dir"] / "retroalimentacion" / student,
        lote["dir"] / "curso" / "autograded" / student,
        lote["dir"] / "curso" / "submitted" / student,
        lote["dir"] / "curso" / "feedback" / student,
    ]
    out = {}
    for folder in folders:
        for path in folder.rglob("*") if folder.exists() else []:
            if path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")
                out[str(path)] = text + "\n" + html_lib.unescape(text)
    return out


def test_ni_pruebas_ocultas_ni_examen_ni_token_en_la_salida(lote):
    """La entrega «inofensivos» vuelca todo lo que vio su núcleo (historial, espacio de nombres, el
    recogedor, cada archivo legible): ninguna línea de las pruebas ocultas de ningún cuaderno ni de
    ningún examen.py aparece en ningún artefacto de ninguna entrega, y el HF_TOKEN tampoco."""
    out = graded_output(lote, "inofensivos")
    seen = re.search(r"OCULTAS=no cuadernos vistos: (\d+)", out)
    assert seen and int(seen.group(1)) >= 1  # vio su propia copia (sin pruebas ocultas), y nada más
    assert ataques.DUMP_MARK in out and "curso_peft_recogedor" in out  # el volcado se hizo
    secret = _secret_lines()
    assert any(where.endswith("examen.py") for where in secret.values())
    for student in lote["rows"]:
        artifacts = _artifacts(lote, student)
        assert artifacts, student
        for path, text in artifacts.items():
            assert SECRET not in text, f"{student}: el HF_TOKEN llegó a {path}"
            leaked = [f"{where}: {line}" for line, where in secret.items() if line in text]
            assert leaked == [], f"{student}: {path} contiene líneas ocultas: {leaked[:5]}"
    assert "HF_" not in out.split("VARIABLES=")[1].split("\n")[0].replace("HF_HOME", "").replace(
        "HF_HUB_OFFLINE", ""
    ).replace("HF_DATASETS_OFFLINE", "")


def _no_active_html(page: str) -> None:
    for match in re.finditer(r"<script[^>]*>(.*?)</script>", page, re.S | re.I):
        assert ataques.SCRIPT_MARK not in match.group(1), match.group(0)[:200]
    assert not re.search(r"<[a-z][^>]*\sonerror\s*=", page, re.I)  # (en el código fuente sale escapado)


def test_script_ni_en_la_retroalimentacion_ni_en_formgrader(lote):
    page = (lote["dir"] / "retroalimentacion" / "inofensivos" / f"{NB1}.html").read_text(encoding="utf-8")
    assert "hola" in page  # la salida está, pero sin su parte activa
    _no_active_html(page)
    # formgrader muestra el cuaderno calificado con el HTMLExporter de la configuración del curso maestro.
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(lote["dir"] / "curso")).load_config()
    extra = Config()
    extra.HTMLExporter.template_name = "formgrade"
    extra.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    config.merge(extra)
    assert config.HTMLExporter.sanitize_html is True
    notebook = lote["dir"] / "curso" / "autograded" / "inofensivos" / NB1 / f"{NB1}.ipynb"
    resources = {
        "assignment_id": NB1,
        "notebook_id": NB1,
        "submission_id": "x",
        "index": 0,
        "total": 1,
        "base_url": "/",
        "student": "inofensivos",
        "last_name": "",
        "first_name": "inofensivos",
        "notebook_path": "/x",
    }  # los de formgrader (handlers.SubmissionHandler)
    body, _ = HTMLExporter(config=config).from_filename(str(notebook), resources=resources)
    assert "hola" in body
    _no_active_html(body)


# --- sin root ------------------------------------------------------------------------------------
def _as_nobody() -> list[str]:
    return ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--"]


def _nobody_base() -> Path:
    base = Path(tempfile.mkdtemp(prefix="curso-peft-nobody-", dir="/tmp"))
    os.chmod(base, 0o755)
    return base


def _chown_nobody(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        os.lchown(p, 65534, 65534)


needs_root_to_switch = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="hace falta root (y setpriv) para cambiar al usuario nobody",
)


@needs_root_to_switch
@pytest.mark.xdist_group("sin-root")
def test_caja_de_arena_sin_root():
    """bubblewrap como ``nobody`` (Python del sistema): aísla igual, sin ningún privilegio."""
    base = _nobody_base()
    try:
        sonda = base / "entrega"
        sonda.mkdir()
        code = probe.probe_source(
            [str(ROOT / "solutions"), "/root", "/etc/shadow"], ["/etc/x", "/usr/x", "bien.txt"], [("1.1.1.1", 53)]
        )
        (sonda / "sonda.py").write_text(code, encoding="utf-8")
        spec = {"files": [[str(sonda / "sonda.py"), f"{sandbox.HOME}/s/sonda.py"]], "cwd": f"{sandbox.HOME}/s"}
        _chown_nobody(base)
        proc = subprocess.run(
            [
                *_as_nobody(),
                "/usr/bin/python3",
                sandbox.__file__,
                json.dumps(spec),
                "--",
                "/usr/bin/python3",
                "sonda.py",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "HF_TOKEN": SECRET},
        )
        result = probe.parse(proc.stdout)
        assert result is not None, proc.stdout + proc.stderr
        assert result["uid"] == 65534 and result["procesos_visibles"] <= 3
        assert set(result["leer"].values()) - {"PermissionError", "FileNotFoundError"} == set(), result
        assert {t: o for t, o in result["escribir"].items() if o == "permitido"} == {"bien.txt": "permitido"}
        assert result["red"]["1.1.1.1:53"] != "permitido"
    finally:
        shutil.rmtree(base, ignore_errors=True)


_NEIGHBOUR = r"""
import ctypes, json, os, sys, threading
secret, wanted = sys.argv[1].encode(), int(sys.argv[2])
libc = ctypes.CDLL(None, use_errno=True)
r = {}
key = libc.syscall(248, b"user", b"curso-peft-buzon", b"hola", 4, ctypes.c_int(-4))   # add_key en @u
r["add_key"] = "permitido" if key >= 0 else os.strerror(ctypes.get_errno())
found = libc.syscall(250, 10, ctypes.c_int(-4), b"user", b"curso-peft-buzon", 0)     # keyctl(SEARCH)
r["buscar"] = "encontrada" if found >= 0 else os.strerror(ctypes.get_errno())
r["fugas"] = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if secret in f.read():
                    r["fugas"].append(pid)
        except OSError:
            pass
stop, threads = threading.Event(), []
for _ in range(wanted):
    try:
        t = threading.Thread(target=stop.wait)
        t.start()
        threads.append(t)
    except RuntimeError:
        break
r["hilos"] = len(threads)
stop.set()
print("VECINA=" + json.dumps(r), flush=True)
"""


@needs_root_to_switch
@pytest.mark.xdist_group("sin-root")
def test_entregas_vecinas_no_comparten_nada():
    """Sin root y como root: una entrega con cientos de procesos dormidos no deja sin hilos a la de
    al lado (el límite de procesos es de cada caja), ninguna lee el entorno del calificador (ni en
    /proc/1/environ, el proceso de bubblewrap) ni puede dejar nada en el llavero del núcleo."""
    base = _nobody_base()
    try:
        (base / "vecina.py").write_text(_NEIGHBOUR, encoding="utf-8")
        _chown_nobody(base)
        limits = {"nproc": 512}
        hog_spec = {"cwd": f"{sandbox.HOME}/s", "rlimits": limits}
        spec = {
            "files": [[str(base / "vecina.py"), f"{sandbox.HOME}/s/vecina.py"]],
            "cwd": f"{sandbox.HOME}/s",
            "rlimits": limits,
            "uid": 65533,
        }
        env = {"PATH": "/usr/bin:/bin", "HF_TOKEN": SECRET}
        for who in (_as_nobody(), []):  # sin root y como root
            hog = subprocess.Popen(
                [
                    *who,
                    "/usr/bin/python3",
                    sandbox.__file__,
                    json.dumps(hog_spec),
                    "--",
                    "/bin/sh",
                    "-c",
                    "for i in $(seq 350); do sleep 300 & done; echo listo; wait",
                ],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            try:
                assert hog.stdout.readline().strip() == "listo"
                results = []
                for _ in range(2):  # la que escribe en el llavero y la que lo lee después
                    proc = subprocess.run(
                        [
                            *who,
                            "/usr/bin/python3",
                            sandbox.__file__,
                            json.dumps(spec),
                            "--",
                            "/usr/bin/python3",
                            "vecina.py",
                            SECRET,
                            "300",
                        ],
                        capture_output=True,
                        text=True,
                        timeout=120,
                        env=env,
                    )
                    line = next((x for x in proc.stdout.splitlines() if x.startswith("VECINA=")), None)
                    assert line is not None, proc.stdout + proc.stderr
                    results.append(json.loads(line.removeprefix("VECINA=")))
            finally:
                hog.kill()
                hog.wait()
            for r in results:
                assert r["hilos"] == 300, (who, r)
                assert r["fugas"] == [], (who, r)
                assert r["add_key"] != "permitido" and r["buscar"] != "encontrada", (who, r)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@needs_root_to_switch
@pytest.mark.xdist_group("sin-root")
def test_califica_sin_root():
    """La orden entera (nbgrader, trabajador, examinador, caja y núcleo) como ``nobody``: una entrega
    correcta que además planta un enlace simbólico (nota máxima) y una sin resolver que falsifica las
    respuestas del núcleo (0), con el Python del sistema y los paquetes del
    entorno del curso en PYTHONPATH (el Python del entorno vive en /root, que nobody no ve)."""
    site = next((ROOT / ".venv" / "lib").glob("python3*/site-packages"), None)
    if site is None or not Path("/usr/bin/python3").exists():
        pytest.skip("falta el entorno .venv o /usr/bin/python3")
    base = _nobody_base()
    try:
        nbk = casos.Notebook(NB1)
        token = "sinroot" + uuid.uuid4().hex[:8]
        (base / "entregas" / "enlace").mkdir(parents=True)
        (base / "entregas" / "enlace" / f"{NB1}.ipynb").write_bytes(ataques.symlink_plant(nbk, token)[0])
        # Y un ataque contra el examinador, sin resolver: 0 también sin root.
        (base / "entregas" / "falsificadas").mkdir(parents=True)
        (base / "entregas" / "falsificadas" / f"{NB1}.ipynb").write_bytes(ataques.forged_replies(nbk, token)[0])
        from helpers import models

        # El modelo diminuto ya construido (en la caché de root, que nobody no puede leer).
        shutil.copytree(models.tiny_checkpoint(), base / "cache" / models.tiny_checkpoint().name)
        (base / "bin").mkdir()
        (base / "bin" / "alembic").write_text('#!/bin/sh\nexec /usr/bin/python3 -m alembic "$@"\n')
        os.chmod(base / "bin" / "alembic", 0o755)
        _chown_nobody(base)
        env = {
            "PATH": f"{base / 'bin'}:/usr/bin:/bin",
            "HOME": str(base / "casa"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": f"{ROOT}:{site}",
            "JUPYTER_PATH": str(ROOT / ".venv" / "share" / "jupyter"),
            "CURSO_PEFT_CACHE": str(base / "cache"),
            "OMP_NUM_THREADS": "1",
        }
        proc = subprocess.run(
            [
                *_as_nobody(),
                "/usr/bin/python3",
                "-m",
                "helpers.classroom",
                "calificar",
                "--entregas",
                str(base / "entregas"),
                "--tarea",
                NB1,
                "--clase",
                str(base / "clase"),
                "--perfil",
                "tiny",
                "--memoria",
                "4",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        rows = {
            r["alumno"]: r for r in csv.DictReader(io.StringIO((base / "clase" / "calificaciones.csv").read_text()))
        }
        assert (rows["enlace"]["estado"], float(rows["enlace"]["puntuacion"])) == ("calificado", nbk.max_score), rows
        assert (rows["falsificadas"]["estado"], float(rows["falsificadas"]["puntuacion"])) == ("calificado", 0.0), rows
        assert token_files(token) == []
        assert all(p.lstat().st_uid == 65534 for p in (base / "clase").rglob("*"))
    finally:
        shutil.rmtree(base, ignore_errors=True)
