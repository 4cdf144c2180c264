"""Construye el sitio web del curso (Jupyter Book 1: Sphinx, myst-nb y sphinx-book-theme) en build/web/.

``python -m helpers.maintainers.web [--curso build/curso] [--salida build/web] [--permitir-sin-ejecutar]``

El sitio muestra los cuadernos **del alumnado** (notebooks/) con las salidas de la ejecución de
``make curso`` (build/curso/, que ejecuta los cuadernos de solutions/): cada celda normal lleva la
salida de la celda con el mismo código en esa ejecución; las celdas calificadas (la de tu código y
la de las pruebas) salen como en el cuaderno del alumnado y sin salida, así que ni las soluciones ni
las pruebas ocultas (ni lo que imprimen) llegan nunca a la web. El sitio no ejecuta nada
(``execute_notebooks: off``). Además tiene una portada (docs/web/index.md), el glosario
(docs/glosario.md), el rendimiento (docs/rendimiento.md) y la guía del profesorado (la sección
«Calificar una clase» del README), con búsqueda e interfaz en español.
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import yaml

from .pins import read_pyproject, repository_url
from .release import BADGE_IMAGE, ROOT, SETUP_TAG, notebook_names

NOTEBOOKS = ROOT / "notebooks"
DOCS = ROOT / "docs"
SITE_SOURCE = DOCS / "web"
DEFAULT_RUN = ROOT / "build" / "curso"
DEFAULT_OUT = ROOT / "build" / "web"
PROJECT = ROOT / "build" / "web-fuente"
README = ROOT / "README.md"
GUIDE_HEADING = "## Calificar una clase (profesorado)"
# Lo que nunca debe aparecer en el sitio: marcas de soluciones y de pruebas ocultas de nbgrader.
LEAK_MARKERS = (
    "BEGIN SOLUTION",
    "END SOLUTION",
    "BEGIN HIDDEN TESTS",
    "END HIDDEN TESTS",
    "BEGIN MARK SCHEME",
)
TIERS = {"🐢": "básico", "🐕": "intermedio", "🦁": "avanzado"}
EXERCISE_HEADING = re.compile(r"^#{2,4} .*(?:Ejercicio|Comprobación)")
MARKDOWN_LINK = re.compile(r"(\]\()([^)\s]+)(\))")
BUILD_TIMEOUT = 900


class WebError(RuntimeError):
    """Algo impide construir el sitio; el mensaje dice qué hacer."""


def nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_graded(cell) -> bool:
    """Celda de nbgrader con solución o con pruebas: en la web sale sin salida."""
    meta = nbgrader(cell)
    return bool(meta.get("solution") or meta.get("grade"))


def _match_key(cell) -> str:
    """Con qué se empareja una celda con su ejecución: su código o, la de preparación, su etiqueta.

    La celda de preparación cambia con cada `make release` (lleva la referencia que instala Colab),
    pero lo que imprime no depende de esa referencia.
    """
    return SETUP_TAG if SETUP_TAG in cell.get("metadata", {}).get("tags", []) else cell.source


def with_outputs(student, executed) -> tuple[nbformat.NotebookNode, int]:
    """El cuaderno del alumnado con las salidas de la ejecución de ``make curso``.

    Cada celda de código normal recibe la salida de la celda ejecutada con el mismo código (en
    orden); las calificadas se quedan como las ve el alumnado, sin salida. Devuelve también
    cuántas celdas normales no encontraron su ejecución (0 si el cuaderno está al día).
    """
    pending: dict[str, list] = {}
    for cell in executed.cells:
        if cell.cell_type == "code" and not is_graded(cell):
            pending.setdefault(_match_key(cell), []).append(cell)
    nb = copy.deepcopy(student)
    missing = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        if is_graded(cell):
            continue
        runs = pending.get(_match_key(cell))
        if runs:
            done = runs.pop(0)
            # Sin los avisos de las bibliotecas (stderr): ruido con rutas de la máquina que lo ejecutó.
            cell.outputs = [copy.deepcopy(o) for o in done.get("outputs", []) if o.get("name") != "stderr"]
            cell.execution_count = done.get("execution_count")
        else:
            missing += 1
    return nb, missing


def split_exercise(source: str) -> tuple[str, str, str, str] | None:
    """(texto antes, título del ejercicio, nivel en emoji, enunciado) si la celda abre un ejercicio."""
    lines = source.split("\n")
    for i, line in enumerate(lines):
        match = EXERCISE_HEADING.match(line)
        tier = next((emoji for emoji in TIERS if emoji in line), None) if match else None
        if tier:
            return "\n".join(lines[:i]), line, tier, "\n".join(lines[i + 1 :]).strip()
    return None


def exercise_points(cells, start: int) -> int:
    """Puntos de las celdas calificadas que siguen al enunciado hasta el próximo ejercicio o apartado."""
    points = 0
    for cell in cells[start + 1 :]:
        if cell.cell_type == "markdown" and (split_exercise(cell.source) or cell.source.startswith("## ")):
            break
        if nbgrader(cell).get("grade"):
            points += int(nbgrader(cell).get("points", 0) or 0)
    return points


def mark_exercises(nb) -> int:
    """Pone el enunciado de cada ejercicio en un recuadro con su nivel y sus puntos."""
    count = 0
    for index, cell in enumerate(nb.cells):
        parts = split_exercise(cell.source) if cell.cell_type == "markdown" else None
        if not parts:
            continue
        before, heading, tier, body = parts
        points = exercise_points(nb.cells, index)
        kind = "Comprobación calificada" if "Comprobación" in heading else "Ejercicio"
        title = f"{tier} {kind} · nivel {TIERS[tier]}" + (
            f" · {points} {'punto' if points == 1 else 'puntos'}" if points else ""
        )
        box = f"::::{{admonition}} {title}\n:class: tip\n{body}\n::::\n"
        cell.source = "\n\n".join(part for part in (before.strip(), heading, box) if part)
        count += 1
    return count


def relink(text: str, source_dir: Path, page_dir: Path, project: Path, pages: dict[Path, Path]) -> str:
    """Los enlaces relativos de un texto del repositorio, válidos en el sitio.

    ``source_dir`` es la carpeta del repositorio donde está el texto y ``page_dir``, la de su página
    en el proyecto del sitio (``project``). Si el destino es una página del sitio (``pages``: archivo
    del repositorio → archivo relativo al proyecto) o un archivo que el proyecto ya tiene (una imagen copiada),
    apunta ahí; si no, a ese archivo en el repositorio de GitHub (la web solo tiene el sitio).
    """
    branch = read_pyproject()["tool"]["curso-peft"]["branch"]

    def fix(match: re.Match) -> str:
        url = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", url) or url.startswith(("#", "/")):
            return match.group(0)
        path, _, anchor = url.partition("#")
        target = (source_dir / path).resolve()
        if target in pages:
            new = Path(os.path.relpath(project / pages[target], page_dir)).as_posix()
        elif (page_dir / path).exists():
            return match.group(0)
        else:
            try:
                relative = target.relative_to(ROOT).as_posix()
            except ValueError:
                return match.group(0)
            new = f"{repository_url()}/blob/{branch}/{relative}"
        return f"{match.group(1)}{new}{'#' + anchor if anchor else ''}{match.group(3)}"

    return MARKDOWN_LINK.sub(fix, text)


def executed_run(name: str, run_dir: Path, summary: dict) -> tuple[nbformat.NotebookNode | None, str]:
    """El cuaderno de ``name`` ejecutado por `make curso` y, si no sirve, por qué (``""`` si sirve)."""
    path = run_dir / name / f"{name}.ipynb"
    if not path.exists():
        return None, f"no encuentro {path}"
    state = summary.get(name, ("correcto",))[0]
    if state != "correcto":
        return None, f"`make curso` falló ({state})"
    nb = nbformat.read(path, as_version=4)
    if any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", [])):
        return None, "`make curso` falló (una celda dio un error)"
    pending = [c for c in nb.cells if c.cell_type == "code" and c.source.strip() and not c.get("execution_count")]
    if pending:  # sin ejecutar del todo: `make curso` sigue en marcha, o se cortó (p. ej. por tiempo)
        return None, (
            f"{path} no se ejecutó entero ({len(pending)} {'celda' if len(pending) == 1 else 'celdas'} "
            "sin ejecutar; ¿sigue en marcha `make curso`?)"
        )
    return nb, ""


def notebook_page(name: str, executed: nbformat.NotebookNode | None, project: Path, pages: dict) -> dict:
    """Escribe la página de un cuaderno y su descarga; devuelve lo que se hizo (para el resumen).

    ``executed`` es el cuaderno ejecutado por `make curso`; None, la página sale sin salidas.
    """
    student_path = NOTEBOOKS / name / f"{name}.ipynb"
    if not student_path.exists():
        raise WebError(f"Falta {student_path.relative_to(ROOT)}: ejecuta `make release`.")
    student = nbformat.read(student_path, as_version=4)
    nb, missing = with_outputs(student, executed or nbformat.v4.new_notebook())
    if executed is not None and missing:
        raise WebError(
            f"{missing} celdas de {name} no están en su ejecución de `make curso`: el cuaderno ejecutado y "
            "el del alumnado son de versiones distintas. Ejecuta `make release` y después `make curso`."
        )
    downloads = project / "descargas"
    downloads.mkdir(parents=True, exist_ok=True)
    shutil.copy2(student_path, downloads / f"{name}.ipynb")

    # La cabecera: el título primero (Sphinx lo toma de ahí para la página y el menú), después la
    # insignia de Colab (con una imagen local: el sitio no pide nada de fuera) y la descarga.
    first = next((c for c in nb.cells[:3] if c.cell_type == "markdown" and re.search(r"^# ", c.source, re.M)), None)
    if first is None:
        raise WebError(f"{name}: ninguna de sus primeras celdas tiene el título (una línea «# ...»).")
    lines = first.source.split("\n")
    title_line = next(line for line in lines if line.startswith("# "))
    lines.remove(title_line)
    body = "\n".join(lines).replace(BADGE_IMAGE, "../colab.svg").strip()
    download = f"{{download}}`Descarga el cuaderno del alumnado (.ipynb) </descargas/{name}.ipynb>`"
    first.source = f"{title_line}\n\n{download}\n\n{body}"
    page_dir = project / "cuadernos"
    page_dir.mkdir(parents=True, exist_ok=True)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = relink(cell.source, student_path.parent, page_dir, project, pages)
    exercises = mark_exercises(nb)
    nbformat.write(nb, page_dir / f"{name}.ipynb")
    title = title_line[2:].strip().replace("*", "").replace("`", "")
    return {"cuaderno": name, "titulo": title, "ejecutado": executed is not None, "ejercicios": exercises}


def instructors_guide() -> str:
    """La guía del profesorado: la sección «Calificar una clase» del README (fuente única)."""
    text = README.read_text(encoding="utf-8")
    start = text.find(GUIDE_HEADING)
    if start < 0:
        raise WebError(f"El README no tiene la sección «{GUIDE_HEADING[3:]}»: la guía del profesorado sale de ahí.")
    body = text[start + len(GUIDE_HEADING) :]
    end = body.find("\n## ")
    body = body if end < 0 else body[:end]
    return "# Guía del profesorado\n\nCómo calificar una clase con el calificador del curso.\n" + body


def run_summary(run_dir: Path) -> dict[str, tuple[str, str]]:
    """De ``resumen.csv`` de ``make curso``: cuaderno → (estado, perfil). Vacío si no hay resumen."""
    path = run_dir / "resumen.csv"
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["cuaderno"]: (row["estado"], row.get("perfil", "")) for row in csv.DictReader(handle)}


def prepare_project(run_dir: Path, project: Path, allow_unexecuted: bool = False) -> list[dict]:
    """Escribe el proyecto de Jupyter Book del sitio (páginas, cuadernos y configuración) en ``project``."""
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    names = notebook_names()
    if not names:
        raise WebError("No hay cuadernos en solutions/: el sitio no tendría nada que mostrar.")
    summary = run_summary(run_dir)
    runs = {name: executed_run(name, run_dir, summary) for name in names}
    problems = [f"{name}: {why}" for name, (_, why) in runs.items() if why]
    if problems and not allow_unexecuted:
        raise WebError(
            "El sitio muestra las salidas de una ejecución real, y faltan las de estos cuadernos:\n  "
            + "\n  ".join(problems)
            + "\nEjecuta antes `make curso` (y arregla lo que falle). Para construirlo "
            "igualmente, con esos cuadernos sin salidas: `make web WEB_OPCIONES=--permitir-sin-ejecutar`."
        )
    # Las imágenes primero: los enlaces que ya llevan a un archivo del proyecto se quedan como están.
    for image in ("colab.svg", "favicon.svg"):
        shutil.copy2(SITE_SOURCE / image, project / image)
    if (DOCS / "img").is_dir():
        shutil.copytree(DOCS / "img", project / "img")
    # Archivos del repositorio que son páginas del sitio: un enlace a ellos lleva a la página.
    pages = {(NOTEBOOKS / n / f"{n}.ipynb").resolve(): Path("cuadernos", f"{n}.ipynb") for n in names}
    pages.update({(DOCS / f).resolve(): Path(f) for f in ("glosario.md", "rendimiento.md")})
    rows = [notebook_page(name, runs[name][0], project, pages) for name in names]

    listing = "\n".join(f"{i}. [{row['titulo']}](cuadernos/{row['cuaderno']}.ipynb)" for i, row in enumerate(rows, 1))
    profiles = sorted(
        {summary[r["cuaderno"]][1] for r in rows if r["ejecutado"] and summary.get(r["cuaderno"], ("", ""))[1]}
    )
    origin = (
        f"Las salidas que ves son de una ejecución de `make curso` con el perfil del modelo «{', '.join(profiles)}»."
        if profiles
        else ""
    )
    unexecuted = [r["cuaderno"] for r in rows if not r["ejecutado"]]
    if unexecuted:
        origin += f" Sin salidas (no se ejecutaron o fallaron en `make curso`): {', '.join(unexecuted)}."
    index = (SITE_SOURCE / "index.md").read_text(encoding="utf-8")
    for placeholder in ("{{ lista_de_cuadernos }}", "{{ origen_de_las_salidas }}"):
        if placeholder not in index:
            raise WebError(f"docs/web/index.md debe contener {placeholder}: ahí lo escribe `make web`.")
    index = index.replace("{{ lista_de_cuadernos }}", listing).replace("{{ origen_de_las_salidas }}", origin.strip())
    (project / "index.md").write_text(index, encoding="utf-8")
    for doc in ("glosario.md", "rendimiento.md"):
        text = relink((DOCS / doc).read_text(encoding="utf-8"), DOCS, project, project, pages)
        (project / doc).write_text(text, encoding="utf-8")
    guide = relink(instructors_guide(), ROOT, project, project, pages)
    (project / "profesorado.md").write_text(guide, encoding="utf-8")

    config = yaml.safe_load((SITE_SOURCE / "_config.yml").read_text(encoding="utf-8"))
    config.setdefault("repository", {})["url"] = repository_url()
    (project / "_config.yml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    toc = {
        "format": "jb-book",
        "root": "index",
        "parts": [
            {"caption": "Cuadernos", "chapters": [{"file": f"cuadernos/{row['cuaderno']}"} for row in rows]},
            {
                "caption": "Referencia",
                "chapters": [{"file": "glosario"}, {"file": "rendimiento"}, {"file": "profesorado"}],
            },
        ],
    }
    (project / "_toc.yml").write_text(yaml.safe_dump(toc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return rows


def leaked_markers(site: Path) -> list[str]:
    """Archivos del sitio con marcas de soluciones o de pruebas ocultas (debe salir vacío)."""
    found = []
    for path in sorted(p for p in site.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path.relative_to(site)}: {marker}" for marker in LEAK_MARKERS if marker.encode() in data]
    return found


def jupyter_book() -> str:
    """La orden ``jupyter-book`` del entorno (la instala `make install`)."""
    command = Path(sys.executable).parent / "jupyter-book"
    if not command.exists():
        raise WebError(
            "Falta jupyter-book en el entorno: ejecuta `make install` (lo instala con las versiones fijadas)."
        )
    return str(command)


def build_site(project: Path, out: Path) -> float:
    """Construye el HTML estático con Jupyter Book; devuelve los segundos que tardó.

    Cualquier aviso de Sphinx (un enlace roto, una imagen que falta) hace fallar la construcción.
    """
    start = time.perf_counter()
    result = subprocess.run(
        [jupyter_book(), "build", str(project), "--builder", "html", "--all", "-W", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - start
    html = project / "_build" / "html"
    if result.returncode != 0 or not (html / "index.html").exists():
        log = (result.stdout + result.stderr).splitlines()
        warnings = [line for line in log if "WARNING" in line or "ERROR" in line]
        tail = "\n".join((warnings or log)[-30:])
        raise WebError(f"Jupyter Book no pudo construir el sitio (código {result.returncode}):\n{tail}")
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(html, out)
    leaks = leaked_markers(out)
    if leaks:
        shutil.rmtree(out, ignore_errors=True)
        raise WebError("El sitio contenía soluciones o pruebas ocultas y se ha borrado:\n" + "\n".join(leaks[:20]))
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Construye el sitio web del curso (Jupyter Book) en build/web/.")
    parser.add_argument(
        "--curso",
        type=Path,
        default=DEFAULT_RUN,
        help="cuadernos ejecutados por `make curso` (por defecto build/curso)",
    )
    parser.add_argument("--salida", type=Path, default=DEFAULT_OUT, help="carpeta del sitio (por defecto build/web)")
    parser.add_argument(
        "--fuente", type=Path, default=PROJECT, help="carpeta del proyecto intermedio (por defecto build/web-fuente)"
    )
    parser.add_argument(
        "--permitir-sin-ejecutar",
        action="store_true",
        help="publica sin salidas los cuadernos que no estén ejecutados o que fallaron en `make curso`",
    )
    args = parser.parse_args(argv)
    try:
        rows = prepare_project(args.curso.resolve(), args.fuente.resolve(), args.permitir_sin_ejecutar)
        seconds = build_site(args.fuente.resolve(), args.salida.resolve())
    except WebError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    for row in rows:
        state = "con salidas" if row["ejecutado"] else "SIN salidas (no ejecutado)"
        print(f"  {row['cuaderno']}: {state}, {row['ejercicios']} ejercicios")
    print(f"Sitio construido en {args.salida} en {seconds:.0f} s. Ábrelo con:")
    print(f"  python3 -m http.server --directory {args.salida} 8000   # y visita http://127.0.0.1:8000")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
