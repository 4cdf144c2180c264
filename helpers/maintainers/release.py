"""Genera los cuadernos del alumnado (notebooks/) desde los del profesorado (solutions/).

``python -m helpers.maintainers.release [NN_nombre ...]``:

1. pone en cada cuaderno de solutions/ la insignia "Abrir en Colab" que apunta a su propio
   archivo en notebooks/ y la celda de preparación común (idéntica en todos);
2. ejecuta ``nbgrader generate_assignment`` para cada uno, que quita las soluciones y las
   pruebas ocultas y bloquea las celdas calificadas.

notebooks/ nunca se edita a mano: se regenera con ``make release``.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

from ..course_files import NOTEBOOKS, ROOT, SOLUTIONS, generate, notebook_names
from .pins import read_pyproject, repository_url

__all__ = ["NOTEBOOKS", "ROOT", "SOLUTIONS", "SETUP_TAG", "badge_line", "colab_url", "generate", "main",
           "notebook_names", "setup_cell_source", "sync_solution"]

SETUP_TAG = "preparacion"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_RE = re.compile(r"^\[!\[Abrir en Colab\]\([^)]*\)\]\([^)]*\)\s*$")


def colab_url(name: str) -> str:
    """URL de Colab que abre notebooks/<name>/<name>.ipynb del repositorio."""
    repo = repository_url().removeprefix("https://github.com/")
    branch = read_pyproject()["tool"]["curso-peft"]["branch"]
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/{name}/{name}.ipynb"


def badge_line(name: str) -> str:
    return f"[![Abrir en Colab]({BADGE_IMAGE})]({colab_url(name)})"


def setup_cell_source() -> str:
    """La celda de preparación, igual en todos los cuadernos."""
    return (
        "# Preparación: en Colab instala el curso con sus versiones fijadas; en tu máquina o en el\n"
        "# calificador no instala nada. Después muestra dónde se ejecuta el cuaderno.\n"
        "import subprocess, sys\n"
        "if \"google.colab\" in sys.modules:\n"
        f"    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\",\n"
        f"                    \"curso-peft @ git+{repository_url()}\"], check=True)\n"
        "import helpers\n"
        "helpers.show_environment()"
    )


def sync_solution(path: Path) -> bool:
    """Pone la insignia y la celda de preparación canónicas; devuelve True si cambió algo."""
    nb = nbformat.read(path, as_version=4)
    name = path.stem
    changed = False
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "markdown":
        raise ValueError(f"{path}: la primera celda debe ser Markdown con el título y la insignia.")
    lines = first.source.split("\n")
    if lines and BADGE_RE.match(lines[0]):
        if lines[0] != badge_line(name):
            lines[0] = badge_line(name)
            changed = True
    else:
        lines = [badge_line(name), ""] + lines
        changed = True
    first.source = "\n".join(lines)
    setup = [c for c in nb.cells if SETUP_TAG in c.get("metadata", {}).get("tags", [])]
    if len(setup) != 1:
        raise ValueError(f"{path}: hace falta exactamente una celda de código con la etiqueta '{SETUP_TAG}'.")
    if setup[0].source != setup_cell_source():
        setup[0].source = setup_cell_source()
        changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


def main(argv: list[str]) -> int:
    known = notebook_names()
    # Se acepta el nombre completo o solo su número («03»).
    names = [next((n for n in known if n == arg or n.startswith(f"{arg}_")), arg) for arg in argv] or known
    unknown = sorted(set(names) - set(known))
    if unknown:
        print(f"No existen en solutions/: {', '.join(unknown)}. Usa el nombre de la carpeta o su número "
              f"(p. ej. 03); los cuadernos son: {', '.join(known)}", file=sys.stderr)
        return 2
    for name in names:
        path = SOLUTIONS / name / f"{name}.ipynb"
        if sync_solution(path):
            print(f"{name}: insignia o celda de preparación actualizadas en solutions/")
        out = generate(name)
        print(f"{name}: publicado en {out.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
