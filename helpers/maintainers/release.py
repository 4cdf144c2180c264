"""Genera los cuadernos del alumnado (notebooks/) desde los del profesorado (solutions/).

``python -m helpers.maintainers.release [NN_nombre ...]``:

1. anota en ``pyproject.toml`` (``[tool.curso-peft] ref``, el único sitio) la etiqueta o el commit
   desde el que se publica: la de ``HEAD``, o la que digas con ``--ref`` (``make release REF=v1.0``);
2. pone en cada cuaderno de solutions/ la insignia "Abrir en Colab" que apunta a su propio
   archivo en notebooks/ y la celda de preparación común (idéntica en todos), que en Colab instala
   el curso de esa etiqueta o commit: un cuaderno viejo guardado en Drive sigue con *sus* helpers;
3. ejecuta ``nbgrader generate_assignment`` para cada uno, que quita las soluciones y las
   pruebas ocultas y bloquea las celdas calificadas.

notebooks/ nunca se edita a mano: se regenera con ``make release``.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat

from ..cli import ArgumentParser
from ..course_files import NOTEBOOKS, ROOT, SOLUTIONS, generate, notebook_names
from .pins import PYPROJECT, read_pyproject, repository_url

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


def release_ref(data: dict | None = None) -> str:
    """La etiqueta o el commit desde el que se publicaron los cuadernos (``[tool.curso-peft] ref``)."""
    data = data or read_pyproject()
    ref = data["tool"]["curso-peft"].get("ref", "").strip()
    if not ref:
        raise ValueError("Falta [tool.curso-peft] ref en pyproject.toml: ejecuta `make release`.")
    return ref


def install_requirement(url: str | None = None, ref: str | None = None) -> str:
    """Lo que instala la celda de preparación: el curso en la etiqueta o el commit publicado."""
    return f"curso-peft @ git+{url or repository_url()}@{ref or release_ref()}"


def setup_cell_source() -> str:
    """La celda de preparación, igual en todos los cuadernos."""
    return (
        "# Preparación: en Colab instala el curso con sus versiones fijadas, en la versión con la que se\n"
        "# publicó este cuaderno; en tu máquina o en el calificador no instala nada. Después muestra\n"
        "# dónde se ejecuta el cuaderno.\n"
        "import subprocess, sys\n"
        "if \"google.colab\" in sys.modules:\n"
        f"    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\",\n"
        f"                    \"{install_requirement()}\"], check=True)\n"
        "import helpers\n"
        "helpers.show_environment()"
    )


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def current_ref() -> str:
    """La etiqueta de ``HEAD`` si la tiene; si no, su commit completo."""
    tag = _git("describe", "--tags", "--exact-match", "HEAD")
    if tag.returncode == 0 and tag.stdout.strip():
        return tag.stdout.strip()
    head = _git("rev-parse", "HEAD")
    if head.returncode != 0:
        raise RuntimeError(f"No puedo leer el commit actual con git: {head.stderr.strip()}. Pasa --ref <etiqueta>.")
    return head.stdout.strip()


REF_LINE = re.compile(r'^ref = ".*"$', re.M)


def write_release_ref(ref: str, path: Path = PYPROJECT) -> bool:
    """Escribe ``ref`` en ``[tool.curso-peft] ref`` de pyproject.toml; True si cambió."""
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", ref):
        raise ValueError(f"Referencia de git no válida: {ref!r} (usa una etiqueta como v1.0 o un commit).")
    text = path.read_text(encoding="utf-8")
    if not REF_LINE.search(text):
        raise ValueError(f"{path} no tiene la línea `ref = \"...\"` en [tool.curso-peft].")
    new = REF_LINE.sub(f'ref = "{ref}"', text, count=1)
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


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


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m helpers.maintainers.release",
                            description="Regenera notebooks/ (alumnado) desde solutions/ (profesorado) con nbgrader.")
    parser.add_argument("--ref", help="etiqueta o commit desde el que Colab instala el curso (por defecto, HEAD)")
    parser.add_argument("cuadernos", nargs="*", metavar="NN_nombre",
                        help="cuadernos que se publican, por nombre o número (p. ej. 03); por defecto, todos")
    args = parser.parse_args(argv)
    argv = args.cuadernos
    ref = args.ref or current_ref()
    if write_release_ref(ref):
        print(f"Celda de preparación: Colab instalará curso-peft en {ref} (anotado en pyproject.toml)")
    dirty = _git("status", "--porcelain", "--", "helpers", "pyproject.toml").stdout.split("\n")
    if any(line and not line.endswith("pyproject.toml") for line in dirty):
        print(f"AVISO: hay cambios sin confirmar en helpers/; {ref} no los incluye. Confírmalos y vuelve a "
              "ejecutar `make release` para que Colab instale los helpers con los que se probó el cuaderno.",
              file=sys.stderr)
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
