"""Calificación automática con nbgrader en un directorio de curso temporal: el arnés de las pruebas.

Vive en tests/ porque solo lo usan las pruebas (``tests/test_notebooks.py``).

Lo usan las pruebas de los cuadernos (la solución saca la nota máxima, el cuaderno publicado un 0,
cada respuesta errónea un 0 justo en las celdas que rompe). El calificador de la clase
(``helpers.classroom``) tiene su propio flujo; los dos comparten :mod:`helpers.course_files`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import kernel_pool  # tests/kernel_pool.py: núcleos que nacen con torch, transformers y peft ya importados

from helpers.course_files import ROOT, SOLUTIONS, copy_source, nbgrader_env, run_nbgrader, write_config

__all__ = [
    "NotebookGrade",
    "autograde",
    "autograded_notebook",
    "copy_source",
    "course_template",
    "make_course",
    "nbgrader_env",
    "released_notebook",
    "write_config",
    "ROOT",
    "SOLUTIONS",
]

# La variable de entorno del perfil (la misma que helpers.models.ENV_VAR; sin importar torch aquí).
ENV_VAR = "CURSO_PEFT_PROFILE"


@dataclass
class NotebookGrade:
    student: str
    score: float
    max_score: float
    cells: dict[str, tuple[float, float]] = field(default_factory=dict)


def make_course(workdir: Path, names: list[str], extra_config: str = "", template: Path | None = None) -> Path:
    """Crea un directorio de curso de nbgrader con los cuadernos ``names`` ya generados.

    Con ``template`` (ver :func:`course_template`) copia lo ya generado en vez de volver a ejecutar
    ``nbgrader generate_assignment``: el resultado es el mismo, un arranque de nbgrader menos.
    """
    workdir = Path(workdir)
    (workdir / "source").mkdir(parents=True, exist_ok=True)
    write_config(workdir, extra_config)
    if template is not None:
        for folder in ("source", "release"):
            for name in names:
                shutil.copytree(Path(template) / folder / name, workdir / folder / name, dirs_exist_ok=True)
        shutil.copy(Path(template) / "gradebook.db", workdir / "gradebook.db")
        return workdir
    for name in names:
        copy_source(name, workdir / "source" / name)
        run_nbgrader(workdir, "generate_assignment", name, "--force")
    return workdir


def course_template(shared: Path) -> Path:
    """Un curso de nbgrader con todos los cuadernos generados de una vez (``generate_assignment "*"``),
    en ``shared``: la carpeta común a los procesos de pytest-xdist. El primero que llega lo construye
    (con un cerrojo); los demás lo reutilizan. Cada prueba copia de aquí su curso (:func:`make_course`)."""
    from helpers.locking import file_lock
    from helpers.maintainers.release import notebook_names

    folder = Path(shared) / "curso-plantilla"
    with file_lock(Path(shared) / "curso-plantilla.lock"):
        if not (folder / "listo").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            write_config(folder)
            for name in notebook_names():
                copy_source(name, folder / "source" / name)
            run_nbgrader(folder, "generate_assignment", "*", "--force")
            (folder / "listo").touch()
    return folder


def released_notebook(course: Path, name: str) -> Path:
    return Path(course) / "release" / name / f"{name}.ipynb"


def autograde(
    course: Path,
    name: str,
    submissions: dict[str, Path],
    profile: str = "tiny",
    student_env: dict[str, dict[str, str]] | None = None,
) -> dict[str, NotebookGrade]:
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
    # Los núcleos de estas ejecuciones nacen del zigoto de tests/kernel_pool.py (ver su docstring).
    env = nbgrader_env(**{ENV_VAR: profile, "JUPYTER_PATH": kernel_pool.kernel_path()})
    for student, extra in student_env.items():
        run_nbgrader(course, "autograde", name, "--force", f"--student={student}", env=dict(env, **extra))
    rest = [s for s in submissions if s not in student_env]
    present = {p.name for p in (course / "submitted").iterdir() if (p / name).is_dir()} - set(student_env)
    if rest and present == set(rest):
        # Una sola ejecución de nbgrader para todas las demás (se ahorra arrancarlo cada vez).
        exclude = [f"--CourseDirectory.student_id_exclude={','.join(student_env)}"] if student_env else []
        run_nbgrader(course, "autograde", name, "--force", *exclude, env=env)
    else:
        for student in rest:
            run_nbgrader(course, "autograde", name, "--force", f"--student={student}", env=env)
    grades = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in submissions:
            sub = gb.find_submission_notebook(name, name, student)
            cells = {g.name: (g.score, g.max_score) for g in sub.grades}
            grades[student] = NotebookGrade(student, sub.score, sub.max_score, cells)
    return grades


def autograded_notebook(course: Path, name: str, student: str) -> Path:
    return Path(course) / "autograded" / student / name / f"{name}.ipynb"
