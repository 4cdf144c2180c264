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

from .models import ENV_VAR
from .release import ROOT, SOLUTIONS

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


def make_course(workdir: Path, names: list[str]) -> Path:
    """Crea un directorio de curso de nbgrader con los cuadernos ``names`` ya generados."""
    workdir = Path(workdir)
    (workdir / "source").mkdir(parents=True, exist_ok=True)
    (workdir / "nbgrader_config.py").write_text(
        CONFIG_TEMPLATE.format(
            repo_config=str(ROOT / "nbgrader_config.py"), root=str(workdir), db=str(workdir / "gradebook.db")
        ),
        encoding="utf-8",
    )
    for name in names:
        shutil.copytree(SOLUTIONS / name, workdir / "source" / name, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "salidas"))
        _nbgrader(workdir, "generate_assignment", name, "--force")
    return workdir


def nbgrader_env(**extra: str) -> dict:
    """Entorno para nbgrader: el ``bin`` de este Python primero (nbgrader llama a ``alembic``)."""
    env = dict(os.environ, **extra)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _nbgrader(course: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = env or nbgrader_env()
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} falló:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def released_notebook(course: Path, name: str) -> Path:
    return Path(course) / "release" / name / f"{name}.ipynb"


def autograde(course: Path, name: str, submissions: dict[str, Path], profile: str = "tiny") -> dict[str, NotebookGrade]:
    """Califica las entregas ``{alumno: ruta del .ipynb}`` de ``name`` y devuelve sus notas."""
    from nbgrader.api import Gradebook

    course = Path(course)
    for student, path in submissions.items():
        dest = course / "submitted" / student / name
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest / f"{name}.ipynb")
    env = nbgrader_env(**{ENV_VAR: profile})
    for student in submissions:
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
