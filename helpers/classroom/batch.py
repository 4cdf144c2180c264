"""El lote: importar, calificar cada entrega (con uno o varios trabajadores) y exportar.

Garantías:

- **el lote siempre termina**: cada entrega acaba con un estado; si un trabajador se cuelga más
  allá del tiempo total del cuaderno (más un margen) o muere, esa entrega queda «no calificable» con
  el motivo, el trabajador se reinicia y el lote sigue;
- **nada se pierde**: cada resultado se escribe de una vez en ``resultados/`` en cuanto termina; si
  el lote se corta a mitad, al repetir la orden se reutiliza lo ya calificado (misma entrega, mismo
  cuaderno y mismos ajustes) y solo se califica lo que falta;
- **mismo resultado al repetir**: el CSV no lleva fechas ni tiempos y sus filas van ordenadas;
- **libro de notas sano**: se actualiza sobre una copia que sustituye al original de una vez.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import select
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from filelock import FileLock, Timeout

from ..course_files import ROOT, SOLUTIONS
from . import assignments, copies, export, lms_import, sandbox
from .grading import Settings, job_fingerprint, ungradable
from .layout import ClassDir, read_json, write_json

# Arranque del trabajador: importar helpers no carga nada pesado (su __init__ es perezoso), así que
# el trabajador solo carga nbgrader; el código del alumnado corre en el núcleo, aparte.
WORKER_BOOT = (
    "import sys; from helpers.classroom.grading import worker_main; raise SystemExit(worker_main(sys.argv[1:]))"
)
# Margen del vigilante sobre el tiempo total del cuaderno (arranque, nbgrader, retroalimentación).
WATCHDOG_MARGIN = 180


class BatchError(RuntimeError):
    """Error que impide empezar el lote (mensaje en español para el profesorado)."""


SYSTEM_DIRS = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib64",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/var",
    "/home",
    "/media",
    "/mnt",
)


def check_class_dir(class_dir: Path, source: Path | None = None) -> None:
    """La carpeta de la clase es una carpeta propia: ni la raíz, ni tu carpeta personal (ni una que
    la contenga), ni una del sistema, ni el repositorio o las entregas, ni una carpeta con otras
    cosas (el calificador la deja solo para ti, 0700, y escribe dentro)."""
    class_dir = Path(class_dir).expanduser().resolve()
    hint = "Elige una carpeta nueva solo para la clase, por ejemplo ~/curso-peft-clase."
    home = Path.home().resolve()
    if class_dir == Path("/") or class_dir in (home, *home.parents) or str(class_dir) in SYSTEM_DIRS:
        raise BatchError(
            f"La carpeta de la clase no puede ser {class_dir}: el calificador cambia sus permisos "
            f"y escribe dentro. {hint}"
        )
    places = [(ROOT.resolve(), "del repositorio del curso")]
    if source is not None:
        places.append((Path(source).expanduser().resolve(), "de la carpeta de entregas"))
    for forbidden, what in places:
        if class_dir == forbidden or forbidden in class_dir.parents or class_dir in forbidden.parents:
            raise BatchError(
                f"La carpeta de la clase ({class_dir}) no puede estar dentro {what} ({forbidden}) ni contenerla. {hint}"
            )
    if class_dir.is_dir() and any(class_dir.iterdir()) and not ClassDir(class_dir).is_class():
        raise BatchError(f"La carpeta {class_dir} ya existe y tiene otras cosas: no es la carpeta de una clase. {hint}")


class _Worker:
    """Un proceso trabajador (``python -m helpers.classroom.grading``) y el hilo que lo atiende."""

    def __init__(
        self, slot: int, settings_path: Path, cd: ClassDir, settings: Settings, jobs: queue.Queue, done: queue.Queue
    ):
        self.slot, self.settings_path, self.cd, self.settings = slot, settings_path, cd, settings
        self.jobs, self.done = jobs, done
        self.proc: subprocess.Popen | None = None
        self._returncode: int | None = None
        self.thread = threading.Thread(target=self._loop, name=f"trabajador-{slot}", daemon=True)

    def _start(self) -> None:
        log = open(self.cd.root / f".trabajador{self.slot}.log", "ab")
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER_BOOT,
                "--ajustes",
                str(self.settings_path),
                "--hueco",
                str(self.slot),
                "--padre",
                str(os.getpid()),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=str(ROOT),
            env=env,
        )
        log.close()

    def _stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self._returncode = self.proc.wait()
        self.proc = None

    def _run_job(self, job: dict) -> str | None:
        """Manda el trabajo y espera la respuesta; ``None`` y el motivo si el trabajador falló."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        try:
            self.proc.stdin.write((json.dumps({"trabajo": job}, ensure_ascii=False) + "\n").encode())
            self.proc.stdin.flush()
            line = self._read_line(self.settings.total_budget + WATCHDOG_MARGIN)
        except (BrokenPipeError, OSError):
            line = None
        if line is not None:
            return None
        timed_out = self.proc is not None and self.proc.poll() is None
        self._stop()
        if timed_out:
            return "el calificador no terminó a tiempo"
        return f"el proceso calificador terminó de forma inesperada (código {self._returncode})"

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                break
            started = time.monotonic()
            failure = self._run_job(job)
            if failure and not failure.startswith("el calificador no terminó"):
                # Un trabajador que muere (p. ej. lo mata el sistema) no es culpa de la entrega:
                # se reintenta una vez con un trabajador nuevo.
                self.cd.log(f"{job['id']}: {failure}; se reintenta")
                failure = self._run_job(job)
            if failure:
                self.cd.log(f"{job['id']}: {failure}")
                _write_failure(self.cd, job, ungradable(failure.split(" (código")[0]), time.monotonic() - started)
            self.done.put(job)
        self._close()

    def _read_line(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        buffer = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], min(left, 5))
            if not ready:
                if self.proc.poll() is not None:
                    return None
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            buffer += chunk
            if b"\n" in buffer:
                return buffer.split(b"\n", 1)[0].decode()

    def _close(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
        self.proc = None


def _write_failure(cd: ClassDir, job: dict, status: str, seconds: float) -> None:
    """Resultado de una entrega cuyo trabajador falló (lo escribe el lote)."""
    from . import feedback

    info = read_json(cd.template(job["cuaderno"]) / "info.json", {}) or {}
    result = {
        "alumno": job["alumno"],
        "nombre": job.get("nombre", job["alumno"]),
        "cuaderno": job["cuaderno"],
        "huella": job["huella"],
        "sha256": job["sha256"],
        "archivo": job.get("archivo", ""),
        "estado": status,
        "puntuacion": None,
        "puntuacion_maxima": info.get("puntuacion_maxima"),
        "celdas": {},
        "observaciones": list(job.get("notas", [])),
        "segundos": round(seconds, 2),
    }
    outdir = cd.result_dir(job["cuaderno"], job["alumno"])
    staging = outdir.with_name(f".{job['alumno']}.fallo")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / "retroalimentacion.html").write_text(
        feedback.standalone_page(
            student=result["nombre"],
            notebook=result["cuaderno"],
            status=status,
            max_score=result["puntuacion_maxima"],
            notes=result["observaciones"],
        ),
        encoding="utf-8",
    )
    write_json(staging / "resultado.json", result)
    shutil.rmtree(outdir, ignore_errors=True)
    staging.rename(outdir)


def default_memory_bytes(workers: int) -> int:
    """Memoria por núcleo del alumnado: el 80 % de la RAM repartido entre los trabajadores (≥ 2 GiB)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 8 * 1024**3
    return max(2 * 1024**3, int(0.8 * total / max(1, workers)))


def run(
    *,
    source: Path,
    notebooks: list[str],
    class_dir: Path,
    settings: Settings,
    workers: int = 1,
    force: bool = False,
    solutions: Path = SOLUTIONS,
    say=print,
) -> list[dict]:
    """Ejecuta el lote completo y devuelve las filas del CSV."""
    source = Path(source).expanduser()
    check_class_dir(class_dir, source)
    if not source.exists():
        raise BatchError(f"No existen las entregas: {source}")
    known = {p.parent.name for p in Path(solutions).glob("*/*.ipynb") if p.stem == p.parent.name}
    unknown = [nb for nb in notebooks if nb not in known]
    if unknown:
        raise BatchError(
            f"No existe el cuaderno {', '.join(unknown)} en {solutions}. "
            f"Disponibles: {', '.join(sorted(known)) or 'ninguno'}."
        )
    if settings.sandbox:
        ok, why = sandbox.available()
        if not ok:
            raise BatchError(
                f"No se puede aislar el código del alumnado: {why}. "
                "Usa --sin-aislamiento solo si confías en todas las entregas."
            )
    # Marca de este lote en el entorno de sus procesos (trabajadores, cajas y núcleos): permite
    # encontrarlos todos, p. ej. para comprobar que no queda ninguno vivo tras cortar el lote.
    os.environ.setdefault("CURSO_PEFT_LOTE", uuid.uuid4().hex)
    cd = ClassDir(class_dir)
    cd.create()
    try:
        lock = FileLock(str(cd.lock), timeout=0)
        lock.acquire()
    except Timeout:
        raise BatchError(f"Ya hay otra calificación en marcha en {cd.root}.") from None
    try:
        return _run_locked(cd, source, notebooks, settings, workers, force, solutions, say)
    finally:
        lock.release()


def _run_locked(cd, source, notebooks, settings, workers, force, solutions, say) -> list[dict]:
    t0 = time.monotonic()
    settings.class_dir = str(cd.root)
    say(f"Clase: {cd.root}")
    say(f"Preparando {', '.join(notebooks)} (nbgrader generate_assignment)...")
    infos = {}
    for nb in notebooks:
        infos[nb] = assignments.prepare_template(cd, nb, solutions)
        assignments.prepare_master(cd, nb, infos[nb], solutions)
        if infos[nb]["pruebas_sin_assert"]:
            say(
                f"AVISO: en {nb} estas celdas de pruebas no terminan en assert ni en check_*(...): "
                f"{', '.join(infos[nb]['pruebas_sin_assert'])}. Su valor final no cuenta como nota parcial."
            )
    from .grading import prepare_models

    prepare_models(cd, settings.profile)
    released_ids = {}
    for nb in notebooks:
        import nbformat

        from ..repair import grade_ids

        released_ids[nb] = set(grade_ids(nbformat.read(assignments.released_path(cd, nb), as_version=4)))
    index = lms_import.import_submissions(cd, source, released_ids)
    n_students = len(index["alumnos"])
    say(f"Entregas importadas de {source}: {n_students} alumno(s).")
    cd.log(f"calificar · entregas={source} · cuadernos={','.join(notebooks)} · ajustes={json.dumps(asdict(settings))}")

    jobs, reused = [], []
    for nb in notebooks:
        for sid in sorted(index["alumnos"]):
            sub = index["entregas"].get(sid, {}).get(nb)
            if sub is None:
                continue
            data = cd.submission(sid, nb).read_bytes()
            fp = job_fingerprint(data, infos[nb]["huella"], settings)
            job = {
                "id": f"{nb}/{sid}",
                "cuaderno": nb,
                "alumno": sid,
                "nombre": index["alumnos"][sid].get("nombre", sid),
                "entrega": str(cd.submission(sid, nb)),
                "huella": fp,
                "sha256": hashlib.sha256(data).hexdigest(),
                "archivo": sub.get("archivo", ""),
                "notas": sub.get("notas", []),
            }
            old = read_json(cd.result_dir(nb, sid) / "resultado.json")
            if old and old.get("huella") == fp and not force:
                reused.append(old)
            else:
                jobs.append(job)
    say(f"{len(jobs)} entrega(s) por calificar, {len(reused)} ya calificada(s) con estos mismos datos (se reutilizan).")
    if reused:
        export.merge_into_gradebook(cd, reused)
        for res in reused:
            export.publish_result(cd, res)

    timings = []
    grading_started = time.monotonic()
    if jobs:
        settings_path = cd.work / "ajustes.json"
        settings_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(settings_path, asdict(settings))
        todo: queue.Queue = queue.Queue()
        done: queue.Queue = queue.Queue()
        for job in jobs:
            todo.put(job)
        n_workers = max(1, min(workers, len(jobs)))
        pool = [_Worker(i, settings_path, cd, settings, todo, done) for i in range(n_workers)]
        for _ in pool:
            todo.put(None)
        for w in pool:
            w.thread.start()
        for i in range(len(jobs)):
            job = done.get()
            res = read_json(cd.result_dir(job["cuaderno"], job["alumno"]) / "resultado.json") or {}
            export.merge_into_gradebook(cd, [res])
            export.publish_result(cd, res)
            export.write_csv(cd)
            score = "" if res.get("puntuacion") is None else f" {res['puntuacion']:g}/{res['puntuacion_maxima']:g}"
            say(
                f"[{i + 1}/{len(jobs)}] {job['alumno']} · {job['cuaderno']}: {res.get('estado')}{score} "
                f"({res.get('segundos', 0):.1f} s)"
            )
            timings.append(res.get("segundos", 0))
        for w in pool:
            w.thread.join()
    grading = time.monotonic() - grading_started
    for nb in notebooks:  # informe de copias (no cambia notas: deja observaciones y copias.csv)
        try:
            copies.write_report(cd, nb, index, *copies.load_notebooks(cd, nb, solutions))
        except Exception as exc:  # noqa: BLE001 - el informe nunca para el lote
            cd.log(f"informe de copias de {nb}: no se pudo hacer ({type(exc).__name__}: {exc})")
    data = export.write_csv(cd)
    elapsed = time.monotonic() - t0
    write_json(
        cd.timings,
        {
            "entregas_calificadas": len(jobs),
            "trabajadores": workers,
            "segundos_totales": round(elapsed, 2),
            "segundos_calificando": round(grading, 2),
            "segundos_por_entrega": round(grading / len(jobs), 2) if jobs else None,
            "segundos_de_cada_entrega": timings,
        },
    )
    cd.log(f"fin · {len(jobs)} calificada(s), {len(reused)} reutilizada(s), {elapsed:.1f} s")
    if not os.environ.get("CURSO_PEFT_CONSERVAR_TRABAJO"):  # para depurar el calificador
        shutil.rmtree(cd.work, ignore_errors=True)
    summary: dict[str, int] = {}
    for row in data:
        key = row["estado"] if not row["estado"].startswith("no calificable") else "no calificable"
        summary[key] = summary.get(key, 0) + 1
    say("Resumen: " + ", ".join(f"{v} {k}" for k, v in sorted(summary.items())))
    say(f"Notas: {cd.csv}")
    say(f"Informe de copias (solo avisos): {cd.copies_csv}")
    say(f"Retroalimentación: {cd.feedback}/<alumno>/<cuaderno>.html")
    say(f"Libro de notas de nbgrader: {cd.course / 'gradebook.db'}")
    return data
