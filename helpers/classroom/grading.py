"""Calificar UNA entrega con nbgrader, aislada, y guardar su resultado.

Cada entrega se califica en su propio curso temporal de nbgrader
(``CLASE/.trabajo/<hueco>/``), que contiene solo la configuración, una copia del libro de notas de
la plantilla (con las pruebas ocultas, que nbgrader vuelve a poner en las celdas de pruebas) y esa
entrega ya reparada (:mod:`helpers.repair`). nbgrader corre aquí; el código del alumnado
corre solo en el núcleo, dentro de la caja de arena (:mod:`helpers.classroom.sandbox`), cuya carpeta
de trabajo es una *copia* en memoria de lo entregado: el núcleo no ve ni puede escribir ninguna
carpeta de nbgrader (tampoco el cuaderno con las pruebas ocultas), así que nada de lo que escribe
lo lee, cambia de permisos o copia después el calificador.

Si el cuaderno tiene examen (``solutions/<nb>/examen.py``), las celdas de pruebas no se ejecutan en
el núcleo: el examinador (:mod:`helpers.classroom.examiner`, en este proceso) le hace sus preguntas
en su lugar y decide los puntos de cada una; lo que detecten la guardia y el examen del código queda
como aviso. Sin examen, como siempre:

Antes de cada celda de pruebas, la guardia del núcleo (:mod:`helpers.classroom.guard`) restaura lo
que usan las pruebas; lo que hubiera cambiado, y lo que encuentra el examen del código entregado
(:mod:`helpers.classroom.tamper`), deja la fila en «revisar: posible manipulación de las pruebas».

El resultado (``CLASE/resultados/<cuaderno>/<alumno>/``) se escribe de una vez al final:
``resultado.json`` (estado, nota, observaciones), el cuaderno calificado y la retroalimentación.

``python -m helpers.classroom.grading`` es el proceso trabajador que lanza el lote: lee trabajos
(JSON, uno por línea) de la entrada estándar y contesta por la salida estándar al terminar cada uno.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from .. import repair
from ..course_files import ROOT
from . import examiner, feedback, kernel, sandbox, tamper
from .assignments import released_path
from .layout import ClassDir, read_json, write_json
from .nbgrader_api import api as nbgrader_api
from .nbgrader_api import env as temp_env

# Si el calificador es root, cada núcleo corre con un uid sin privilegios propio del lote y de la
# entrega (lo que cuenta por uid, como el límite de procesos, no se comparte entre entregas).
SANDBOX_UID_BASE = 200_000
SANDBOX_UIDS = 1 << 20
MODELS_MOUNT = "/opt/curso-peft/modelos"
TIMEOUT_MESSAGE = "la celda superó el tiempo máximo por celda y se interrumpió"
# Límites de la caja (bytes y procesos): lo que el núcleo puede escribir está en tmpfs acotados.
SANDBOX_SIZES = {"tmp": 256 << 20, "home": 256 << 20, "shm": 64 << 20}
MAX_FILE_BYTES = 256 << 20
MAX_PROCESSES = 512
# Lo de helpers/ que no decide una nota (las herramientas de mantenimiento). Todo lo demás forma
# parte de la huella: la caja de herramientas que usa el núcleo y el calificador entero
# (helpers/classroom/, con la guardia que corre en cada núcleo).
NOT_GRADING = ("maintainers", "__pycache__")
# Paquetes que califican o ejecutan: si cambia su versión, las notas guardadas dejan de valer.
GRADING_PACKAGES = (
    "nbgrader",
    "nbclient",
    "nbconvert",
    "nbformat",
    "ipykernel",
    "ipython",
    "jupyter_client",
    "torch",
    "transformers",
    "peft",
    "numpy",
)

STATUS_GRADED = "calificado"
STATUS_MISSING = "falta la entrega"
STATUS_REVIEW = "revisar: posible manipulación de las pruebas"
# Con examinador, la manipulación no cambia la nota: se informa para el profesorado.
NOTICE_TAMPERING = "aviso: el núcleo intentó manipular las pruebas (la nota la decide el examinador y no cambia)"


def ungradable(reason: str) -> str:
    return f"no calificable: {reason}"


@dataclass
class Settings:
    """Ajustes de una ejecución (los que cambian la nota forman parte de la huella)."""

    class_dir: str
    profile: str = "tiny"
    cell_timeout: int = 300
    total_budget: int = 1800
    memory_bytes: int | None = None
    sandbox: bool = True
    threads: int = 1
    max_output_chars: int = 2_000_000

    def fingerprint(self) -> str:
        key = {k: v for k, v in asdict(self).items() if k not in ("class_dir", "threads")}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


_HELPERS_FINGERPRINT: str | None = None


def helpers_fingerprint(folder: Path = ROOT / "helpers") -> str:
    """Huella del código que decide una nota: los archivos de ``helpers/`` que usa el núcleo
    (comprobaciones, modelos, datos...), los del calificador (``helpers/classroom/``, también la
    guardia que corre en cada núcleo) y las versiones de los paquetes que califican. Si se corrige
    una comprobación o el calificador, las notas guardadas dejan de valer (sin números a mano)."""
    global _HELPERS_FINGERPRINT
    if _HELPERS_FINGERPRINT is not None and folder == ROOT / "helpers":
        return _HELPERS_FINGERPRINT
    from importlib import metadata

    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not set(rel.parts) & set(NOT_GRADING) and path.suffix != ".pyc":
            digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    for package in GRADING_PACKAGES:
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"{package}=={version}\0".encode())
    value = digest.hexdigest()
    if folder == ROOT / "helpers":
        _HELPERS_FINGERPRINT = value
    return value


def job_fingerprint(data: bytes, template_fingerprint: str, settings: Settings) -> str:
    digest = hashlib.sha256()
    for part in (data, template_fingerprint.encode(), settings.fingerprint().encode(), helpers_fingerprint().encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


# --- preparación de la caja de arena ----------------------------------------------------------
def prepare_models(cd: ClassDir, profile: str) -> Path:
    """Copia legible por la caja de los modelos del perfil (los de la caché de root no lo son)."""
    from .. import models

    wanted = [models.tiny_checkpoint()]
    if models.resolve_profile(profile).name == "embedded":
        wanted.append(models.embedded_checkpoint())
    for src in wanted:
        dest = cd.models / src.name
        same = dest.exists() and all(
            (dest / f.name).exists() and (dest / f.name).stat().st_size == f.stat().st_size
            for f in src.iterdir()
            if f.is_file()
        )
        if same:
            continue
        tmp = cd.models / f".{src.name}.copia"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        for path in [tmp, *tmp.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    os.chmod(cd.models, 0o755)
    return cd.models


def _python_dirs() -> list[str]:
    """Carpetas que necesita el Python del curso: el entorno virtual y el Python base."""
    dirs = []
    for path in (
        sys.prefix,
        os.path.realpath(sys.base_prefix),
        os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
    ):
        path = os.path.realpath(path)
        if path not in dirs and not path.startswith(("/usr/", "/bin", "/lib")) and path != "/usr":
            dirs.append(path)
    # PYTHONPATH (p. ej. un Python del sistema con los paquetes del entorno): también, salvo la raíz
    # del repositorio (dentro se ve solo helpers/, montado aparte).
    for path in _pythonpath():
        if path not in dirs:
            dirs.append(path)
    # Si uno está dentro de otro, basta el de fuera.
    return [d for d in dirs if not any(d != o and d.startswith(o + os.sep) for o in dirs)]


def _pythonpath() -> list[str]:
    root = str(ROOT.resolve())
    out = []
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        path = os.path.realpath(entry) if entry else ""
        if path and os.path.isdir(path) and not (root == path or root.startswith(path.rstrip(os.sep) + os.sep)):
            out.append(path)
    return out


def _matplotlib_fonts() -> list[Path]:
    """La caché de fuentes de matplotlib (construirla en cada núcleo tarda segundos)."""
    try:
        import matplotlib
        import matplotlib.font_manager  # noqa: F401 - crea la caché si no existe

        return sorted(Path(matplotlib.get_cachedir()).glob("fontlist-*.json"))
    except Exception:  # noqa: BLE001
        return []


_SCOPE: dict = {}


def sandbox_uid(owner: str) -> int:
    """uid (si el calificador es root) del núcleo de ``owner`` (una entrega) en este lote."""
    key = hashlib.sha256(f"{os.environ.get('CURSO_PEFT_LOTE', '')}\0{owner}".encode()).digest()
    return SANDBOX_UID_BASE + int.from_bytes(key[:4], "big") % SANDBOX_UIDS


def sandbox_spec(
    cd: ClassDir, settings: Settings, slot: int, files: Path, cwd_name: str, workdir: Path, owner: str | None = None
) -> dict:
    """Especificación de la caja de una entrega: ``files`` (carpeta del calificador) se copia en la
    carpeta de trabajo del núcleo, ``HOME/<cwd_name>``; ``workdir`` recibe la conexión y el PID;
    ``owner`` (la entrega) decide el uid del núcleo si el calificador es root."""
    home = sandbox.HOME
    cwd = f"{home}/{cwd_name}"
    threads = str(max(1, settings.threads))
    binds = [[d, d] for d in _python_dirs()]
    binds.append([str(ROOT / "helpers"), str(ROOT / "helpers")])
    binds.append([str(cd.models), MODELS_MOUNT])
    copies, dirs = [], [f"{home}/.matplotlib"]
    for path in sorted(Path(files).rglob("*")):
        if path.is_symlink():
            continue
        target = f"{cwd}/{path.relative_to(files).as_posix()}"
        if path.is_dir():
            dirs.append(target)
        elif path.is_file():
            copies.append([str(path), target])
    copies += [[str(p), f"{home}/.matplotlib/{p.name}"] for p in _matplotlib_fonts()]
    limits = {"nproc": MAX_PROCESSES, "core": 0, "fsize": MAX_FILE_BYTES, "nofile": 4096}
    if settings.memory_bytes:
        limits["as"] = int(settings.memory_bytes)
    if settings.memory_bytes not in _SCOPE:
        _SCOPE[settings.memory_bytes] = sandbox.memory_scope(settings.memory_bytes)
    return {
        "uid": sandbox_uid(owner or f"hueco{slot}"),
        "ro_binds": binds,
        "files": copies,
        "dirs": dirs,
        "cwd": cwd,
        "sizes": SANDBOX_SIZES,
        "rlimits": limits,
        "scope": _SCOPE[settings.memory_bytes],
        "connection_file": str(workdir / "conexion.json"),
        "info_path": str(workdir / "caja-pid.json"),
        "env": {
            "HOME": home,
            "USER": "alumno",
            "LOGNAME": "alumno",
            "TMPDIR": "/tmp",
            "PATH": f"{sys.prefix}/bin:/usr/local/bin:/usr/bin:/bin",
            "MPLCONFIGDIR": f"{home}/.matplotlib",
            "MPLBACKEND": "Agg",
            "IPYTHONDIR": f"{home}/.ipython",
            "JUPYTER_RUNTIME_DIR": "/tmp/jupyter",
            "CURSO_PEFT_CACHE": MODELS_MOUNT,
            "CURSO_PEFT_PROFILE": settings.profile,
            "HF_HOME": f"{home}/.cache/huggingface",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "PYTHONDONTWRITEBYTECODE": "1",
            "LANG": "C.UTF-8",
            **({"PYTHONPATH": os.pathsep.join([str(ROOT), *_pythonpath()])} if _pythonpath() else {}),
        },
    }


def course_config(settings: Settings, template_base: Path) -> str:
    """Ajustes de nbgrader para calificar (se añaden a la configuración del curso)."""
    return "\n".join(
        [
            "# Ajustes del calificador de la clase (helpers.classroom).",
            f"c.Execute.timeout = {int(settings.cell_timeout)}",
            # Si la salida de una celda interrumpida tarda, se anota en la celda y se sigue (por defecto
            # nbgrader abandonaría el cuaderno entero).
            "c.Execute.raise_on_iopub_timeout = False",
            "c.Execute.error_on_timeout = {{'ename': 'CellTimeoutError', 'evalue': {!r}, 'traceback': [{!r}]}}".format(
                TIMEOUT_MESSAGE, "CellTimeoutError: " + TIMEOUT_MESSAGE
            ),
            f"c.SandboxedExecute.total_budget = {int(settings.total_budget)}",
            f"c.SandboxedExecute.max_output_chars = {int(settings.max_output_chars)}",
            f"c.SandboxedExecute.memory_limit = {int(settings.memory_bytes or 0)}",
            "c.Autograde.autograde_preprocessors = [",
            "    'helpers.classroom.kernel.SandboxedExecute',",
            "    'nbgrader.preprocessors.IgnorePattern',",
            "    'nbconvert.preprocessors.ClearMetadataPreprocessor',",
            "    'nbgrader.preprocessors.LimitOutput',",
            "    'nbgrader.preprocessors.SaveAutoGrades',",
            "    'nbgrader.preprocessors.AssignLatePenalties',",
            "    'nbgrader.preprocessors.CheckCellMetadata',",
            "]",
            feedback.nbgrader_config(template_base),
        ]
    )


# --- nbgrader en este proceso -------------------------------------------------------------------
def _generate_feedback(api, name: str, student: str) -> dict:
    """``generate_feedback`` con nuestra plantilla (el de NbGraderAPI impone la suya, en inglés)."""
    from nbgrader.converters import GenerateFeedback
    from nbgrader.utils import capture_log, temp_attrs

    with temp_attrs(api.coursedir, assignment_id=name, student_id=student):
        app = GenerateFeedback(coursedir=api.coursedir, parent=api)
        app.force = True
        return capture_log(app)


def _grades(course: Path, name: str, student: str) -> tuple[float, float, dict]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        sub = gb.find_submission_notebook(name, name, student)
        cells = {g.name: [float(g.score), float(g.max_score)] for g in sub.grades}
        return float(sub.score), float(sub.max_score), cells


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "error desconocido"


# --- una entrega -------------------------------------------------------------------------------
def grade(cd: ClassDir, job: dict, settings: Settings, slot: int = 0) -> dict:
    """Califica el trabajo ``job`` y guarda su resultado; devuelve ``resultado.json``."""
    started = time.monotonic()
    name, student = job["cuaderno"], job["alumno"]
    info = read_json(cd.template(name) / "info.json")
    result = {
        "alumno": student,
        "nombre": job.get("nombre", student),
        "cuaderno": name,
        "huella": job["huella"],
        "sha256": job.get("sha256"),
        "archivo": job.get("archivo", ""),
        "estado": None,
        "puntuacion": None,
        "puntuacion_maxima": info["puntuacion_maxima"],
        "celdas": {},
        "observaciones": list(job.get("notas", [])),
    }
    workdir = cd.work / f"hueco{slot}"
    outdir = cd.result_dir(name, student)
    staging = outdir.with_name(f".{student}.nuevo")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        data = Path(job["entrega"]).read_bytes()
        try:
            nb = repair.load_notebook(data)
        except repair.Ungradable as exc:
            result["estado"] = ungradable(str(exc))
            return result
        released = nbformat.read(released_path(cd, name), as_version=4)
        fixed = repair.repair(nb, released)
        result["observaciones"] += fixed.notes
        suspicious = tamper.scan_notebook(fixed.nb)

        # Curso temporal con solo esta entrega (solo lo ve el calificador).
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        os.chmod(workdir, 0o700)
        feedback.write_template(workdir / "plantillas")
        from .. import course_files

        course_files.write_config(workdir, course_config(settings, workdir / "plantillas"))
        shutil.copy(cd.template(name) / "gradebook.db", workdir / "gradebook.db")
        src_assets = cd.template(name) / "source" / name
        shutil.copytree(src_assets, workdir / "source" / name, ignore=shutil.ignore_patterns("*.ipynb"))
        sub_dir = workdir / "submitted" / student / name
        sub_dir.mkdir(parents=True)
        nbformat.write(fixed.nb, sub_dir / f"{name}.ipynb")
        report_path = workdir / "ejecucion.json"
        exam = _exam(cd, name, job)
        asks = {q.cell: examiner.asks_json(q) for q in exam} if exam is not None else None
        if settings.sandbox:
            # Lo que verá el núcleo: la entrega (sin pruebas ocultas) y los archivos del cuaderno.
            copy = workdir / "copia-para-el-nucleo"
            shutil.copytree(src_assets, copy, ignore=shutil.ignore_patterns("*.ipynb"))
            shutil.copy(sub_dir / f"{name}.ipynb", copy / f"{name}.ipynb")
            spec = sandbox_spec(cd, settings, slot, copy, name, workdir, owner=job["id"])
            spec_path = workdir / "caja.json"
            write_json(spec_path, spec)
            kernel.configure(
                spec_path=str(spec_path),
                info_path=spec["info_path"],
                report_path=str(report_path),
                log_path=str(workdir / "nucleo.log"),
                exam=asks,
            )
        else:
            kernel.configure(spec_path=None, info_path=None, report_path=str(report_path), exam=asks)

        api = nbgrader_api(workdir)
        with temp_env(CURSO_PEFT_PROFILE=settings.profile, OMP_NUM_THREADS=str(max(1, settings.threads))):
            outcome = api.autograde(name, student, force=True, create=True)
        report = read_json(report_path, {})
        autograded = workdir / "autograded" / student / name / f"{name}.ipynb"
        if not outcome.get("success") or not autograded.exists():
            result["estado"] = ungradable("error de nbgrader")
            result["observaciones"].append("nbgrader: " + _last_line(outcome.get("error") or outcome.get("log")))
            (staging / "nbgrader.log").write_text(
                (outcome.get("log") or "") + "\n" + (outcome.get("error") or ""), encoding="utf-8"
            )
            return result
        if exam is not None:
            result["comentarios"] = _examine(workdir, name, student, exam, info, autograded)
        score, max_score, cells = _grades(workdir, name, student)
        result.update(puntuacion=score, puntuacion_maxima=max_score, celdas=cells)
        suspicious += [x for x in report.get("tampering", []) if x not in suspicious]
        result["estado"] = _status(result["observaciones"], report, settings, suspicious, examined=exam is not None)
        shutil.copy(autograded, staging / "calificado.ipynb")
        shutil.copy(sub_dir / f"{name}.ipynb", staging / "entregado.ipynb")
        fb = _generate_feedback(api, name, student)
        page_path = workdir / "feedback" / student / name / f"{name}.html"
        if fb.get("success") and page_path.exists():
            page = page_path.read_text(encoding="utf-8")
        else:
            page = None
            (staging / "retroalimentacion.log").write_text(
                (fb.get("log") or "") + "\n" + (fb.get("error") or ""), encoding="utf-8"
            )
            result["observaciones"].append(
                "no se pudo generar la retroalimentación: " + _last_line(fb.get("error") or fb.get("log"))
            )
        result["_pagina"] = page
        return result
    except Exception as exc:  # noqa: BLE001 - una entrega nunca para el lote
        result["estado"] = ungradable("error del calificador")
        result["puntuacion"] = None
        result["observaciones"].append(f"{type(exc).__name__}: {exc}"[:300])
        (staging / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        return result
    finally:
        kernel.configure(spec_path=None, info_path=None, report_path=None)
        page = result.pop("_pagina", None)
        result["segundos"] = round(time.monotonic() - started, 2)
        _finish(cd, result, staging, outdir, page)
        if not os.environ.get("CURSO_PEFT_CONSERVAR_TRABAJO"):  # para depurar el calificador
            shutil.rmtree(workdir, ignore_errors=True)


def _exam(cd: ClassDir, name: str, job: dict) -> list | None:
    """Las preguntas del examinador para esta entrega (None si el cuaderno no tiene ``examen.py``).

    Las entradas salen de una semilla secreta de la clase y de la huella de la entrega: la misma
    entrega recibe las mismas preguntas, y ninguna entrega puede saberlas de antemano."""
    if not examiner.has_exam(name):
        return None
    rng = examiner.rng_for(examiner.class_secret(cd.root), name, str(job.get("sha256") or job["huella"]))
    return examiner.questions(examiner.load_exam(name), rng)


def _examine(workdir: Path, name: str, student: str, exam: list, info: dict, autograded: Path) -> dict:
    """Juzga las respuestas del núcleo, escribe los puntos y mensajes en el libro de notas de esta
    entrega y en el cuaderno calificado; devuelve ``{celda de solución: mensaje}``."""
    answers = kernel.answers()
    verdicts = {}
    for question in exam:
        if question.cell in info["celdas"]:
            points = float(info["celdas"][question.cell])
            verdicts[question.cell] = examiner.judge(name, question, answers.get(question.cell), points)
    by_cell = {q.cell: q for q in exam}
    examiner.write_gradebook(workdir / "gradebook.db", name, student, verdicts, by_cell)
    examiner.annotate(autograded, verdicts, {c: float(p) for c, p in info["celdas"].items()})
    return {by_cell[c].solution: v.message for c, v in verdicts.items()}


def _status(notes: list[str], report: dict, settings: Settings, suspicious: list[str], examined: bool = False) -> str:
    """Estado de una entrega ejecutada (y sus observaciones, que se añaden a ``notes``).

    Con examinador (``examined``), lo que encuentran la guardia y el examen del código se anota
    como aviso, sin cambiar el estado: la nota no depende de nada que dijera el núcleo."""
    partial = "la puntuación es parcial: solo cuentan las celdas ejecutadas antes"
    status = STATUS_GRADED
    if report.get("memory") is not None:
        status = ungradable("memoria agotada")
        how = "sus procesos juntos pasaron de" if report.get("memory_watchdog") else "agotó"
        notes.append(
            f"la celda {report['memory']} {how} la memoria del núcleo "
            f"({(settings.memory_bytes or 0) / 1024**3:.1f} GiB) y se detuvo; " + partial
        )
    if report.get("stuck") is not None and status == STATUS_GRADED:
        status = ungradable("núcleo bloqueado")
        notes.append(
            f"la celda {report['stuck']} superó el tiempo máximo por celda y el núcleo no atendió la "
            f"interrupción en {kernel.INTERRUPT_GRACE} s: se detuvo; " + partial
        )
    if report.get("dead_kernel") is not None and report.get("memory_watchdog") is None:
        if status == STATUS_GRADED:
            status = ungradable("kernel muerto")
        notes.append(
            f"el núcleo murió en la celda {report['dead_kernel']} (salida del proceso o falta de memoria); " + partial
        )
    elif report.get("budget_exhausted") is not None and status == STATUS_GRADED:
        status = ungradable("tiempo total agotado")
        notes.append(
            f"se agotó el tiempo total del cuaderno ({settings.total_budget} s) en la celda "
            f"{report['budget_exhausted']}; " + partial
        )
    for index in report.get("timeouts", []):
        notes.append(f"la celda {index} superó el tiempo máximo por celda ({settings.cell_timeout} s) y se interrumpió")
    for index in report.get("truncated", []):
        notes.append(f"la salida de la celda {index} era demasiado larga y se recortó")
    for index in report.get("ignored_results", []):
        notes.append(
            f"la celda de pruebas {index} devolvió un valor; no cuenta como nota parcial (solo cuentan los errores)"
        )
    for index in report.get("guard_unchecked", []):
        notes.append(
            f"antes de la celda de pruebas {index} el núcleo seguía ocupado: no se pudo comprobar si "
            "alguien cambió las pruebas"
        )
    for what in suspicious[:10]:
        notes.append(f"{NOTICE_TAMPERING} ({what})" if examined else f"{STATUS_REVIEW} ({what})")
    if suspicious and status == STATUS_GRADED and not examined:
        status = STATUS_REVIEW
    return status


def _finish(cd: ClassDir, result: dict, staging: Path, outdir: Path, page: str | None) -> None:
    """Escribe el resultado completo y lo pone en su sitio de una vez (cambio de carpeta atómico)."""
    notes = result["observaciones"]
    if page is not None:
        page = feedback.add_summary(
            page,
            student=result["nombre"],
            notebook=result["cuaderno"],
            status=result["estado"],
            score=result["puntuacion"],
            max_score=result["puntuacion_maxima"],
            notes=notes,
        )
    else:
        page = feedback.standalone_page(
            student=result["nombre"],
            notebook=result["cuaderno"],
            status=result["estado"],
            max_score=result["puntuacion_maxima"],
            notes=notes,
        )
    (staging / "retroalimentacion.html").write_text(page, encoding="utf-8")
    write_json(staging / "resultado.json", result)
    old = outdir.with_name(f".{outdir.name}.viejo")
    shutil.rmtree(old, ignore_errors=True)
    if outdir.exists():
        outdir.rename(old)
    staging.rename(outdir)
    shutil.rmtree(old, ignore_errors=True)


# --- proceso trabajador ----------------------------------------------------------------------------
def worker_main(argv: list[str]) -> int:
    """Bucle del trabajador: ``{"trabajo": {...}}`` por línea → ``{"hecho": id}`` por línea."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m helpers.classroom.grading", description="Proceso trabajador del calificador (lo lanza el lote)."
    )
    parser.add_argument("--ajustes", required=True, help="JSON con los ajustes de la ejecución")
    parser.add_argument("--hueco", type=int, required=True, help="número de trabajador (0, 1, ...)")
    parser.add_argument("--padre", type=int, default=None, help="PID del lote")
    args = parser.parse_args(argv)
    # Si el lote muere, este proceso muere también (y con él, por la misma vía, sus núcleos).
    kernel.die_with_parent()
    if args.padre is not None and os.getppid() != args.padre:
        return 1
    settings = Settings(**json.loads(Path(args.ajustes).read_text(encoding="utf-8")))
    cd = ClassDir(settings.class_dir)
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    # El protocolo va por una copia de la salida estándar; la salida estándar de verdad (la que
    # heredan nbgrader y los núcleos) pasa a ser la de errores, para que nada se mezcle.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        job = json.loads(line)["trabajo"]
        result = grade(cd, job, settings, args.hueco)
        out.write(json.dumps({"hecho": job["id"], "estado": result["estado"]}, ensure_ascii=False) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(worker_main(sys.argv[1:]))
