"""Los cuadernos que se califican: plantilla de nbgrader por cuaderno y curso maestro de la clase.

- La *plantilla* (``CLASE/.plantillas/<cuaderno>/``) es un curso de nbgrader con solo ese cuaderno
  generado desde ``solutions/``: su libro de notas (con las pruebas ocultas) se copia para
  calificar cada entrega por separado.
- El *curso maestro* (``CLASE/curso/``) es el curso de nbgrader de la clase: su libro de notas
  reúne las notas de todas las entregas (se puede abrir con ``nbgrader formgrader``).

Ambos se regeneran solos si cambia el cuaderno de solutions/ (se compara su huella).
"""

from __future__ import annotations

import ast
import hashlib
import shutil
from pathlib import Path

import nbformat

from .. import course_files
from ..course_files import SOLUTIONS
from .layout import ClassDir, read_json, write_json


def fingerprint(name: str, solutions: Path = SOLUTIONS) -> str:
    """Huella (sha256) de todos los archivos de ``solutions/<name>``."""
    digest = hashlib.sha256()
    folder = Path(solutions) / name
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not {".ipynb_checkpoints", "salidas", "__pycache__"} & set(rel.parts):
            digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def test_cells_only_assert(nb) -> list[str]:
    """``grade_id`` de las celdas de pruebas que no terminan en ``assert`` ni en ``check_*(...)``.

    nbgrader tomaría un número al final de una celda de pruebas como nota parcial.
    """
    bad = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        code = cell.source.replace("### BEGIN HIDDEN TESTS", "").replace("### END HIDDEN TESTS", "")
        try:
            body = ast.parse(code).body
        except SyntaxError:
            bad.append(meta["grade_id"])
            continue
        last = body[-1] if body else None
        ok = isinstance(last, ast.Assert) or (
            isinstance(last, ast.Expr)
            and isinstance(last.value, ast.Call)
            and getattr(last.value.func, "attr", getattr(last.value.func, "id", "")).startswith("check_")
        )
        if not ok:
            bad.append(meta["grade_id"])
    return bad


def generate_assignment(course: Path, name: str) -> None:
    """``nbgrader generate_assignment <name> --force`` en este proceso (sin arrancar otro Python)."""
    import logging
    import os
    import sys

    from .nbgrader_api import api, env

    logging.getLogger("traitlets").setLevel(logging.ERROR)
    # nbgrader llama al programa ``alembic`` del entorno (al crear el libro de notas).
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    with env(PATH=path):
        outcome = api(Path(course)).generate_assignment(name, force=True, create=True)
    if not outcome.get("success"):
        raise RuntimeError(
            f"nbgrader generate_assignment {name} falló:\n{(outcome.get('log') or '')[-3000:]}\n"
            f"{outcome.get('error') or ''}"
        )


def _read_template_gradebook(course: Path, name: str) -> tuple[float, dict]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_notebook(name, name)
        cells = {c.name: float(c.max_score) for c in nb.grade_cells}
    return float(sum(cells.values())), cells


def prepare_template(cd: ClassDir, name: str, solutions: Path = SOLUTIONS) -> dict:
    """Crea (o reutiliza) la plantilla de ``name``; devuelve su información."""
    folder = cd.template(name)
    fp = fingerprint(name, solutions)
    info = read_json(folder / "info.json")
    if info and info.get("huella") == fp and (folder / "gradebook.db").exists():
        return info
    fresh = folder.with_name(folder.name + ".nueva")
    shutil.rmtree(fresh, ignore_errors=True)
    (fresh / "source").mkdir(parents=True)
    course_files.copy_source(name, fresh / "source" / name, solutions)
    course_files.write_config(fresh)
    generate_assignment(fresh, name)
    max_score, cells = _read_template_gradebook(fresh, name)
    source_nb = nbformat.read(fresh / "source" / name / f"{name}.ipynb", as_version=4)
    info = {
        "cuaderno": name,
        "huella": fp,
        "puntuacion_maxima": max_score,
        "celdas": cells,
        "pruebas_sin_assert": test_cells_only_assert(source_nb),
    }
    write_json(fresh / "info.json", info)
    # Cambio atómico de la plantilla vieja por la nueva.
    old = folder.with_name(folder.name + ".vieja")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    fresh.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    # Las rutas absolutas del config apuntaban a la carpeta ".nueva".
    course_files.write_config(folder)
    return info


def released_path(cd: ClassDir, name: str) -> Path:
    return cd.template(name) / "release" / name / f"{name}.ipynb"


def prepare_master(cd: ClassDir, name: str, info: dict, solutions: Path = SOLUTIONS) -> None:
    """Deja el cuaderno ``name`` generado en el curso maestro con la huella actual."""
    from nbgrader.api import Gradebook

    course = cd.course
    course.mkdir(parents=True, exist_ok=True)
    course_files.write_config(course)
    stamps = read_json(course / "huellas.json", {})
    if stamps.get(name) == info["huella"] and (course / "gradebook.db").exists():
        return
    target = course / "source" / name
    shutil.rmtree(target, ignore_errors=True)
    course_files.copy_source(name, target, solutions)
    try:
        generate_assignment(course, name)
    except RuntimeError:
        # Se añadieron o quitaron celdas y el libro de notas tiene entregas de la versión vieja:
        # nbgrader solo regenera el cuaderno sin entregas. Lo puesto a mano en formgrader (notas,
        # créditos extra, comentarios) se guarda antes, se quitan las entregas, se regenera y se
        # vuelve a poner en las celdas que siguen existiendo; además queda una copia del libro viejo.
        db = course / "gradebook.db"
        backup = backup_gradebook(db, course / "copias" / f"gradebook-{name}-{stamps.get(name, 'antes')[:12]}.db")
        saved = manual_work(db, name)
        with Gradebook(f"sqlite:///{db}") as gb:
            for sub in list(gb.find_assignment(name).submissions):
                gb.remove_submission(name, sub.student.id)
        generate_assignment(course, name)
        lost = restore_manual_work(db, name, saved)
        cd.log(
            f"{name}: el cuaderno cambió de celdas; las entregas se recalifican con el nuevo. Copia del libro "
            f"de notas anterior: {backup}. Trabajo a mano conservado de {len(saved)} alumno(s)"
            + (f"; sin celda en el cuaderno nuevo (solo en la copia): {', '.join(lost)}" if lost else "")
        )
    stamps[name] = info["huella"]
    write_json(course / "huellas.json", stamps)


# --- lo puesto a mano en formgrader --------------------------------------------------------------
def backup_gradebook(db: Path, target: Path) -> Path:
    """Copia coherente del libro de notas (API de copia de SQLite: vale con formgrader abierto)."""
    import sqlite3

    target.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while target.exists():
        target = target.with_name(f"{target.stem.split('.')[0]}.{n}.db")
        n += 1
    src, dst = sqlite3.connect(f"file:{db}?mode=ro", uri=True), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return target


def manual_work(db: Path, name: str) -> dict:
    """``{alumno: {"notas": {celda: [nota, crédito extra]}, "comentarios": {celda: texto}}}`` de ``name``."""
    from nbgrader.api import Gradebook, MissingEntry

    out: dict = {}
    with Gradebook(f"sqlite:///{db}") as gb:
        try:
            assignment = gb.find_assignment(name)
        except MissingEntry:
            return out
        for sub in assignment.submissions:
            work = {"notas": {}, "comentarios": {}}
            for notebook in sub.notebooks:
                for grade in notebook.grades:
                    if grade.manual_score is not None or grade.extra_credit is not None:
                        work["notas"][grade.name] = [grade.manual_score, grade.extra_credit]
                for comment in notebook.comments:
                    if (comment.manual_comment or "").strip():
                        work["comentarios"][comment.name] = comment.manual_comment
            if work["notas"] or work["comentarios"]:
                out[sub.student.id] = work
    return out


def restore_manual_work(db: Path, name: str, saved: dict) -> list[str]:
    """Vuelve a poner ``saved`` (de :func:`manual_work`); devuelve «alumno/celda» de lo que ya no tiene celda."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry

    lost = []
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{db}") as gb:
        warnings.simplefilter("ignore")  # avisos internos de SQLAlchemy en nbgrader
        for student, work in sorted(saved.items()):
            gb.update_or_create_student(student)
            gb.update_or_create_submission(name, student)
            for cell, (score, extra) in sorted(work["notas"].items()):
                try:
                    grade = gb.find_grade(cell, name, name, student)
                except MissingEntry:
                    lost.append(f"{student}/{cell}")
                    continue
                grade.manual_score, grade.extra_credit = score, extra
            for cell, text in sorted(work["comentarios"].items()):
                try:
                    gb.find_comment(cell, name, name, student).manual_comment = text
                except MissingEntry:
                    lost.append(f"{student}/{cell}")
        gb.db.commit()
    return lost
