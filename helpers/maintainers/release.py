"""Genera los cuadernos del alumnado (notebooks/) desde los del profesorado (solutions/).

``python -m helpers.maintainers.release [NN_nombre ...]``:

1. anota en ``pyproject.toml`` (``[tool.curso-peft] ref``, el único sitio) la etiqueta o el commit
   desde el que se publica: la de ``HEAD``, o la que digas con ``--ref`` (``make release REF=v1.0``);
2. pone en cada cuaderno de solutions/ la insignia "Abrir en Colab" que apunta a su propio
   archivo en notebooks/, los metadatos con los que Colab lo abre en una GPU T4, la celda de
   preparación común (idéntica en todos), que en Colab instala el curso de esa etiqueta o commit
   (un cuaderno viejo guardado en Drive sigue con *sus* helpers), y al final las celdas «Antes de
   entregar», que llaman a ``helpers.validar``;
3. ejecuta ``nbgrader generate_assignment`` para cada uno, que quita las soluciones y las
   pruebas ocultas y bloquea las celdas calificadas;
4. guarda las celdas calificadas publicadas en ``helpers/data/cuadernos_publicados.json``: con ellas
   ``helpers.validar`` comprueba la entrega también en Colab, donde no está notebooks/.

notebooks/ nunca se edita a mano: se regenera con ``make release``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat

from ..cli import ArgumentParser
from ..course_files import NOTEBOOKS, ROOT, SOLUTIONS, generate, notebook_names
from ..validar import MANIFEST, released_cells
from .pins import PYPROJECT, read_pyproject, repository_url

__all__ = [
    "COLAB_METADATA",
    "NOTEBOOKS",
    "ROOT",
    "SOLUTIONS",
    "SETUP_TAG",
    "SUBMIT_TAG",
    "badge_line",
    "colab_url",
    "generate",
    "main",
    "notebook_names",
    "setup_cell_source",
    "submit_cells_source",
    "sync_solution",
]

SETUP_TAG = "preparacion"
SUBMIT_TAG = "antes-de-entregar"
# Metadatos del cuaderno con los que Colab lo abre ya en una GPU T4 (los mismos que escribe Colab
# al elegir «Entorno de ejecución → Cambiar tipo → T4 GPU» y guardar).
COLAB_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}
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
        "# publicó este cuaderno, y te dice si hay que reiniciar la sesión (solo si la instalación cambió\n"
        "# un paquete que ya estaba cargado); en tu máquina o en el calificador no instala nada. Después\n"
        "# muestra dónde se ejecuta el cuaderno.\n"
        "import subprocess, sys\n"
        "reiniciar = False\n"
        'if "google.colab" in sys.modules:\n'
        "    from importlib.metadata import distributions\n"
        '    antes = {d.metadata["Name"]: d.version for d in distributions() if d.metadata["Name"]}\n'
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q",\n'
        f'                    "{install_requirement()}"], check=True)\n'
        "    from helpers.colab import restart_notice\n"
        "    reiniciar = restart_notice(antes)\n"
        "if not reiniciar:\n"
        "    import helpers\n"
        "    helpers.show_environment()"
    )


def submit_cells_source(name: str) -> tuple[str, str]:
    """Las celdas «Antes de entregar» del final de cada cuaderno: (Markdown, código)."""
    text = (
        "## Antes de entregar\n\n"
        "Guarda el cuaderno (*Archivo → Guardar*) y ejecuta la celda de abajo. `helpers.validar` vuelve a "
        "ejecutar tu cuaderno en un núcleo aparte, como lo hará el calificador, y te dice, ejercicio a "
        "ejercicio, si está respondido, si pasan las comprobaciones visibles (o su mensaje) y cuántos puntos "
        "hay en juego; también si falta, cambió o está repetida alguna celda calificada, si es otro cuaderno "
        "o si las salidas pesan demasiado para subirlo. No ejecuta las pruebas ocultas: aunque todo pase, la "
        "nota final puede ser menor.\n\n"
        f"Desde una terminal: `python -m helpers.validar {name}.ipynb`."
    )
    return text, f'helpers.validar("{name}")'


def _sync_submit_cells(nb, name: str) -> bool:
    """Deja al final del cuaderno las celdas «Antes de entregar» canónicas; True si cambió algo."""
    text, code = submit_cells_source(name)
    tagged = [c for c in nb.cells if SUBMIT_TAG in c.get("metadata", {}).get("tags", [])]
    wanted = [("markdown", text), ("code", code)]
    if [(c.cell_type, c.source) for c in tagged] == wanted and nb.cells[-2:] == tagged:
        return False
    nb.cells = [c for c in nb.cells if c not in tagged]
    make = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    for kind, source in wanted:
        nb.cells.append(make[kind](source, metadata={"tags": [SUBMIT_TAG]}))
    return True


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
        raise ValueError(f'{path} no tiene la línea `ref = "..."` en [tool.curso-peft].')
    new = REF_LINE.sub(f'ref = "{ref}"', text, count=1)
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def sync_solution(path: Path) -> bool:
    """Pone la insignia, los metadatos de Colab, la celda de preparación y las celdas «Antes de
    entregar» canónicas; devuelve True si cambió algo."""
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
    for key, value in COLAB_METADATA.items():
        if nb.metadata.get(key) != value:
            nb.metadata[key] = value
            changed = True
    if _sync_submit_cells(nb, name):
        changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


def manifest_data(folder: Path = NOTEBOOKS) -> dict[str, list[dict]]:
    """Las celdas calificadas de cada cuaderno publicado (sin soluciones ni pruebas ocultas)."""
    return {
        name: released_cells(nbformat.read(Path(folder) / name / f"{name}.ipynb", as_version=4))
        for name in notebook_names()
    }


def manifest_text(folder: Path = NOTEBOOKS) -> str:
    return json.dumps(manifest_data(folder), ensure_ascii=False, indent=1, sort_keys=True) + "\n"


def write_manifest(folder: Path = NOTEBOOKS) -> bool:
    """Escribe ``helpers/data/cuadernos_publicados.json`` (lo que usa ``helpers.validar``); True si cambió."""
    text = manifest_text(folder)
    if MANIFEST.exists() and MANIFEST.read_text(encoding="utf-8") == text:
        return False
    MANIFEST.write_text(text, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m helpers.maintainers.release",
        description="Regenera notebooks/ (alumnado) desde solutions/ (profesorado) con nbgrader.",
    )
    parser.add_argument("--ref", help="etiqueta o commit desde el que Colab instala el curso (por defecto, HEAD)")
    parser.add_argument(
        "cuadernos",
        nargs="*",
        metavar="NN_nombre",
        help="cuadernos que se publican, por nombre o número (p. ej. 03); por defecto, todos",
    )
    args = parser.parse_args(argv)
    argv = args.cuadernos
    ref = args.ref or current_ref()
    if write_release_ref(ref):
        print(f"Celda de preparación: Colab instalará curso-peft en {ref} (anotado en pyproject.toml)")
    dirty = _git("status", "--porcelain", "--", "helpers", "pyproject.toml").stdout.split("\n")
    if any(line and not line.endswith("pyproject.toml") for line in dirty):
        print(
            f"AVISO: hay cambios sin confirmar en helpers/; {ref} no los incluye. Confírmalos y vuelve a "
            "ejecutar `make release` para que Colab instale los helpers con los que se probó el cuaderno.",
            file=sys.stderr,
        )
    known = notebook_names()
    # Se acepta el nombre completo o solo su número («03»).
    names = [next((n for n in known if n == arg or n.startswith(f"{arg}_")), arg) for arg in argv] or known
    unknown = sorted(set(names) - set(known))
    if unknown:
        print(
            f"No existen en solutions/: {', '.join(unknown)}. Usa el nombre de la carpeta o su número "
            f"(p. ej. 03); los cuadernos son: {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    for name in names:
        path = SOLUTIONS / name / f"{name}.ipynb"
        if sync_solution(path):
            print(f"{name}: insignia, metadatos de Colab o celdas comunes actualizados en solutions/")
        out = generate(name)
        print(f"{name}: publicado en {out.relative_to(ROOT)}/")
    if write_manifest():
        print(f"Celdas calificadas publicadas (para helpers.validar) en {MANIFEST.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
