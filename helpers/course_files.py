"""Dónde están los archivos del curso y cómo se prepara con ellos un directorio de nbgrader.

Solo usa la biblioteca estándar (importarlo no carga torch): lo comparten el calificador de la
clase (``helpers.classroom``) y las herramientas de mantenimiento (``helpers.maintainers``).

- :data:`ROOT`, :data:`SOLUTIONS`, :data:`NOTEBOOKS`: la raíz del repositorio, los cuadernos del
  profesorado (con soluciones) y los del alumnado (generados).
- :func:`write_config` / :func:`copy_source`: un directorio de curso de nbgrader con su propia
  configuración y libro de notas.
- :func:`generate`: ``nbgrader generate_assignment`` (quita soluciones y pruebas ocultas).
- :func:`ipc_kernel_settings`: núcleos de Jupyter por sockets de Unix (sin red y sin el aviso
  «Kernel is running over TCP without encryption» en cada ejecución).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"

CONFIG_TEMPLATE = """\
# Generado por helpers.course_files: la configuración del curso con este directorio como raíz.
exec(open({repo_config!r}, encoding="utf-8").read())
c.CourseDirectory.root = {root!r}
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.db_url = "sqlite:///" + {db!r}
"""


_IPC_DIR: str | None = None


def ipc_kernel_settings() -> dict:
    """Ajustes de ``KernelManager`` para hablar con el núcleo por sockets de Unix (transporte ``ipc``).

    Por TCP, ipykernel escribe en cada arranque «Kernel is running over TCP without encryption»;
    con ``ipc`` los sockets son archivos de una carpeta propia de este proceso (ruta absoluta: el
    núcleo corre en otra carpeta de trabajo), que se borra al salir.
    """
    global _IPC_DIR
    if _IPC_DIR is None:
        _IPC_DIR = tempfile.mkdtemp(prefix="curso-peft-nucleo-")
        atexit.register(shutil.rmtree, _IPC_DIR, True)
    return {"transport": "ipc", "ip": os.path.join(_IPC_DIR, "k")}


def notebook_names(solutions: Path = SOLUTIONS) -> list[str]:
    """Carpetas de solutions/ con un cuaderno del mismo nombre, en orden."""
    return sorted(p.parent.name for p in Path(solutions).glob("*/*.ipynb") if p.stem == p.parent.name)


# Lo que decide la nota de un cuaderno en el calificador (helpers.classroom.examiner); nunca se publica.
EXAM_FILE = "examen.py"


def write_config(workdir: Path, extra: str = "") -> Path:
    """Escribe ``nbgrader_config.py`` en ``workdir``: la configuración del curso con ese directorio
    como raíz y su propio libro de notas, más las líneas ``extra`` (ajustes de quien califica)."""
    workdir = Path(workdir)
    path = workdir / "nbgrader_config.py"
    text = CONFIG_TEMPLATE.format(
        repo_config=str(ROOT / "nbgrader_config.py"), root=str(workdir), db=str(workdir / "gradebook.db")
    )
    path.write_text(text + (extra.rstrip() + "\n" if extra else ""), encoding="utf-8")
    return path


def copy_source(name: str, dest: Path, solutions: Path = SOLUTIONS) -> Path:
    """Copia ``solutions/<name>`` (sin puntos de control, salidas ni el examen) en ``dest``.

    El examen (:data:`EXAM_FILE`) lo lee solo el examinador del calificador, desde ``solutions/``:
    nunca va a un curso de nbgrader, y así tampoco a la carpeta que ve el núcleo de una entrega."""
    shutil.copytree(
        Path(solutions) / name,
        dest,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "salidas", "__pycache__", EXAM_FILE),
    )
    return Path(dest)


def nbgrader_env(**extra: str) -> dict:
    """Entorno para nbgrader: el ``bin`` de este Python primero (nbgrader llama a ``alembic``)."""
    env = dict(os.environ, **extra)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def run_nbgrader(
    course: Path, *args: str, env: dict | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """``nbgrader <args>`` en el directorio de curso ``course``; un fallo lanza ``RuntimeError`` con su salida."""
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        capture_output=True,
        text=True,
        env=env or nbgrader_env(),
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} falló:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def generate(name: str, root: Path = ROOT, release_dir: Path | None = None) -> Path:
    """Ejecuta ``nbgrader generate_assignment`` y devuelve la carpeta publicada.

    ``name="*"`` los genera todos en una sola ejecución; entonces devuelve la carpeta que los contiene.
    """
    args = ["generate_assignment", name, "--force", "--no-db"]
    if release_dir is not None:
        args.append(f"--CourseDirectory.release_directory={release_dir}")
    try:
        run_nbgrader(Path(root), *args)
    except RuntimeError as exc:
        raise RuntimeError(f"nbgrader no pudo generar {name}:\n{exc}") from None
    folder = Path(release_dir or Path(root) / "notebooks")
    return folder if name == "*" else folder / name
