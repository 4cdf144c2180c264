"""Calificación automática con nbgrader en un directorio de curso temporal o elegido.

Lo usan las pruebas (la solución saca la nota máxima, el cuaderno publicado un 0) y es la base
del flujo de calificación del profesorado.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .release import ROOT, SOLUTIONS

# La variable de entorno del perfil (la misma que helpers.models.ENV_VAR; sin importar torch aquí,
# para que el calificador de la clase arranque rápido).
ENV_VAR = "CURSO_PEFT_PROFILE"

CONFIG_TEMPLATE = """\
# Generado por helpers.autograde: la configuración del curso con este directorio como raíz.
exec(open({repo_config!r}, encoding="utf-8").read())
c.CourseDirectory.root = {root!r}
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.db_url = "sqlite:///" + {db!r}
"""


@dataclass
class NotebookGrade:
    student: str
    score: float
    max_score: float
    cells: dict[str, tuple[float, float]] = field(default_factory=dict)


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
    """Copia ``solutions/<name>`` (sin puntos de control ni salidas) en ``dest``."""
    shutil.copytree(Path(solutions) / name, dest, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "salidas", "__pycache__"))
    return Path(dest)


def make_course(workdir: Path, names: list[str], extra_config: str = "") -> Path:
    """Crea un directorio de curso de nbgrader con los cuadernos ``names`` ya generados."""
    workdir = Path(workdir)
    (workdir / "source").mkdir(parents=True, exist_ok=True)
    write_config(workdir, extra_config)
    for name in names:
        copy_source(name, workdir / "source" / name)
        _nbgrader(workdir, "generate_assignment", name, "--force")
    return workdir


def nbgrader_env(**extra: str) -> dict:
    """Entorno para nbgrader: el ``bin`` de este Python primero (nbgrader llama a ``alembic``)."""
    env = dict(os.environ, **extra)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _nbgrader(course: Path, *args: str, env: dict | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    env = env or nbgrader_env()
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True,
                            env=env, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} falló:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def released_notebook(course: Path, name: str) -> Path:
    return Path(course) / "release" / name / f"{name}.ipynb"


def autograde(course: Path, name: str, submissions: dict[str, Path], profile: str = "tiny",
              student_env: dict[str, dict[str, str]] | None = None) -> dict[str, NotebookGrade]:
    """Califica las entregas ``{alumno: ruta del .ipynb}`` de ``name`` y devuelve sus notas.

    ``student_env`` da variables de entorno propias a algunas entregas (p. ej. la solución con la
    T4 simulada, ``{"solucion": {"CURSO_PEFT_SIMULAR": "t4"}}``): esas se califican aparte, cada
    una en su ejecución de nbgrader; las demás, juntas en una sola.
    """
    from nbgrader.api import Gradebook

    course = Path(course)
    student_env = student_env or {}
    for student, path in submissions.items():
        dest = course / "submitted" / student / name
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest / f"{name}.ipynb")
    env = nbgrader_env(**{ENV_VAR: profile})
    for student, extra in student_env.items():
        _nbgrader(course, "autograde", name, "--force", f"--student={student}", env=dict(env, **extra))
    rest = [s for s in submissions if s not in student_env]
    present = {p.name for p in (course / "submitted").iterdir() if (p / name).is_dir()} - set(student_env)
    if rest and present == set(rest):
        # Una sola ejecución de nbgrader para todas las demás (se ahorra arrancarlo cada vez).
        exclude = [f"--CourseDirectory.student_id_exclude={','.join(student_env)}"] if student_env else []
        _nbgrader(course, "autograde", name, "--force", *exclude, env=env)
    else:
        for student in rest:
            _nbgrader(course, "autograde", name, "--force", f"--student={student}", env=env)
    grades = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in submissions:
            sub = gb.find_submission_notebook(name, name, student)
            cells = {g.name: (g.score, g.max_score) for g in sub.grades}
            grades[student] = NotebookGrade(student, sub.score, sub.max_score, cells)
    return grades


def autograded_notebook(course: Path, name: str, student: str) -> Path:
    return Path(course) / "autograded" / student / name / f"{name}.ipynb"
