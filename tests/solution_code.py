"""El código de las soluciones, leído de solutions/ (la única copia de las respuestas).

Las pruebas ejecutan las celdas de solución de un cuaderno por su ``grade_id`` en un espacio de
nombres nuevo, y la prueba de arquitectura saca de aquí los nombres que definen las respuestas.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
BEGIN = "### BEGIN SOLUTION"


def notebook_path(name: str) -> Path:
    """``solutions/<name>/<name>.ipynb``; ``name`` puede ser solo el número («02»)."""
    folder = next(p for p in sorted(SOLUTIONS.iterdir()) if p.name == name or p.name.startswith(f"{name}_"))
    return folder / f"{folder.name}.ipynb"


def solution_cells(name: str) -> dict[str, str]:
    """``{grade_id: código}`` de las celdas de respuesta (las que tienen ``### BEGIN SOLUTION``)."""
    nb = nbformat.read(notebook_path(name), as_version=4)
    return {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in nb.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution") and BEGIN in c.source
    }


def solution_namespace(name: str, *grade_ids: str, **extra) -> dict:
    """Ejecuta esas celdas de solución, en orden, en un espacio de nombres con ``extra``."""
    cells = solution_cells(name)
    namespace = dict(extra)
    for grade_id in grade_ids:
        exec(compile(cells[grade_id], f"{name}:{grade_id}", "exec"), namespace)
    return namespace


def defined_names(source: str) -> set[str]:
    """Funciones y clases que define una celda (en su nivel superior)."""
    tree = ast.parse(source)
    return {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def answer_names() -> dict[str, set[str]]:
    """``{"NN:grade_id": nombres}``: lo que define cada respuesta de cada cuaderno de solutions/."""
    answers = {}
    for path in sorted(SOLUTIONS.glob("*/*.ipynb")):
        if path.stem != path.parent.name:
            continue
        for grade_id, source in solution_cells(path.stem).items():
            answers[f"{path.stem[:2]}:{grade_id}"] = defined_names(source)
    return answers


# --- qué cuadernos entrenan (derivado del código, no una lista a mano) -------------------------------
def training_functions(package: Path = ROOT / "helpers", sink: str = "check_finite_losses") -> set[str]:
    """Funciones de la caja de herramientas que acaban anotando un historial de pérdida: las que llaman
    a ``sink`` (``helpers.training.check_finite_losses``) directamente o a través de otras (por nombre)."""
    calls: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        if {"classroom", "maintainers"} & set(path.relative_to(package).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef):
                calls.setdefault(node.name, set()).update(
                    c.func.id if isinstance(c.func, ast.Name) else c.func.attr
                    for c in ast.walk(node)
                    if isinstance(c, ast.Call) and isinstance(c.func, (ast.Name, ast.Attribute))
                )
    found = {sink}
    while new := {fn for fn, names in calls.items() if fn not in found and names & found}:
        found |= new
    return found - {sink}


def trains(name: str) -> bool:
    """True si alguna celda de código de la solución de ``name`` usa una de :func:`training_functions`."""
    names: set[str] = set()
    for cell in nbformat.read(notebook_path(name), as_version=4).cells:
        if cell.cell_type == "code":
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:  # magias de IPython
                continue
            names |= {
                n.id if isinstance(n, ast.Name) else n.attr
                for n in ast.walk(tree)
                if isinstance(n, (ast.Name, ast.Attribute))
            }
    return bool(names & training_functions())
