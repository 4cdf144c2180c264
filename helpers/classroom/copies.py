"""Informe de copias: cuánto del código de cada entrega está en la solución publicada o en otra entrega.

``solutions/`` es público (el repositorio del curso lo es), así que alguien puede entregar la
solución publicada tal cual y las pruebas darían la nota máxima. Esto no cambia ninguna nota: lo
**informa** (``CLASE/copias.csv``) y deja una observación en la fila de quien pasa del umbral.

Cómo se compara (*winnowing*, Schleimer, Wilkerson y Aiken, SIGMOD 2003, el método de MOSS):

1. de cada entrega se toman sus celdas de solución (las de ``### BEGIN SOLUTION`` del publicado,
   después de reparar la estructura) y se convierten en *tokens* de Python: los nombres pasan a
   ``V``, los textos a ``S`` y los números a ``N``, y se quitan comentarios y espacios (renombrar
   variables o cambiar comentarios no esconde una copia);
2. cada ``K`` *tokens* seguidos forman un *k-grama*, que se resume en un número (BLAKE2b, siempre el
   mismo); de cada ventana de ``W`` números seguidos se queda el menor: esas son las *huellas*. Dos
   códigos que comparten un trozo de al menos ``K + W - 1`` *tokens* comparten al menos una huella;
3. se quitan las huellas del cuaderno publicado (el enunciado, las firmas y los docstrings que ya
   trae la plantilla son de todos);
4. ``parecido`` de A con B = huellas de A que también están en B / huellas de A.

Qué **no** demuestra: un parecido alto en ejercicios cortos puede ser casualidad (hay pocas formas
de sumar ``numel()``), y dos personas pueden llegar a la misma solución canónica; una copia
reescrita a mano (u obra de un asistente) puede tener un parecido bajo. Es un aviso para mirar
los dos cuadernos, nunca una prueba.
"""

from __future__ import annotations

import csv
import hashlib
import io
import keyword
import tokenize
from pathlib import Path

import nbformat

from .layout import ClassDir, read_json, write_atomic, write_json

K = 10  # tokens por k-grama
W = 4  # ventana del winnowing
THRESHOLD = 0.8  # desde aquí, la fila del CSV de notas lleva una observación
MIN_FINGERPRINTS = 15  # con menos huellas propias, el parecido no dice nada (se informa sin observación)
MIN_LISTED = 0.5  # en copias.csv solo aparecen los pares desde este parecido
PUBLISHED = "solución publicada"
COLUMNS = ["cuaderno", "alumno", "comparado_con", "parecido", "huellas_comunes", "huellas_propias"]


def tokens(source: str) -> list[str]:
    """*Tokens* normalizados de un código (``V`` nombres, ``S`` textos, ``N`` números)."""
    out: list[str] = []
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]  # magias
    try:
        for tok in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
            if tok.type == tokenize.NAME:
                out.append(tok.string if keyword.iskeyword(tok.string) else "V")
            elif tok.type == tokenize.STRING:
                out.append("S")
            elif tok.type == tokenize.NUMBER:
                out.append("N")
            elif tok.type == tokenize.OP:
                out.append(tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # código a medias: cuenta lo que se pudo leer
    return out


def fingerprints(source: str) -> set[int]:
    """Huellas del *winnowing* de ``source``."""
    toks = tokens(source)
    hashes = [
        int.from_bytes(hashlib.blake2b(" ".join(toks[i : i + K]).encode(), digest_size=8).digest(), "big")
        for i in range(len(toks) - K + 1)
    ]
    if len(hashes) <= W:
        return set(hashes)
    return {min(hashes[i : i + W]) for i in range(len(hashes) - W + 1)}


def solution_code(nb, solution_ids: set[str]) -> str:
    """El código de las celdas de solución de un cuaderno (en su orden)."""
    parts = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and isinstance(meta, dict) and meta.get("grade_id") in solution_ids:
            parts.append(cell.source)
    return "\n".join(parts)


def similarity(mine: set[int], other: set[int]) -> float:
    return len(mine & other) / len(mine) if mine else 0.0


def compare(submissions: dict[str, str], published: str, template: str) -> list[dict]:
    """Filas del informe: cada entrega contra la solución publicada y contra las demás."""
    common = fingerprints(template)
    prints = {sid: fingerprints(code) - common for sid, code in submissions.items()}
    reference = fingerprints(published) - common
    rows = []
    for sid in sorted(prints):
        mine = prints[sid]
        others = [(PUBLISHED, reference)] + [(o, prints[o]) for o in sorted(prints) if o != sid]
        for name, theirs in others:
            value = similarity(mine, theirs)
            if value >= MIN_LISTED:
                rows.append(
                    {
                        "alumno": sid,
                        "comparado_con": name,
                        "parecido": round(value, 3),
                        "huellas_comunes": len(mine & theirs),
                        "huellas_propias": len(mine),
                    }
                )
    rows.sort(key=lambda r: (-r["parecido"], r["alumno"], r["comparado_con"]))
    return rows


def note(row: dict) -> str:
    """La observación de la fila del CSV de notas."""
    who = "la solución publicada" if row["comparado_con"] == PUBLISHED else f"la entrega de {row['comparado_con']}"
    return (
        f"revisar: posible copia: el {row['parecido']:.0%} de su código de solución coincide con {who} "
        f"(ver copias.csv; es un aviso, no cambia la nota)"
    )


def write_report(cd: ClassDir, notebook: str, index: dict, solution_nb, released_nb) -> None:
    """Escribe ``copias.csv`` (todas las tareas) y las observaciones de ``copias.json`` de ``notebook``."""
    from .. import repair

    solution_ids = {
        c.metadata["nbgrader"]["grade_id"]
        for c in released_nb.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("solution")
    }
    submissions = {}
    for sid in sorted(index.get("alumnos", {})):
        if notebook not in index.get("entregas", {}).get(sid, {}):
            continue
        try:
            nb = repair.repair(repair.load_notebook(cd.submission(sid, notebook).read_bytes()), released_nb).nb
        except Exception:  # noqa: BLE001 - una entrega ilegible ya sale como no calificable
            continue
        submissions[sid] = solution_code(nb, solution_ids)
    published = (
        solution_code(solution_nb, solution_ids).replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", "")
    )
    rows = compare(submissions, published, solution_code(released_nb, solution_ids))
    report = read_json(cd.copies_json, {}) or {}
    report[notebook] = {}
    for row in rows:
        if row["parecido"] >= THRESHOLD and row["huellas_propias"] >= MIN_FINGERPRINTS:
            report[notebook].setdefault(row["alumno"], []).append(note(row))
    write_json(cd.copies_json, report)
    old = [r for r in _read_csv(cd.copies_csv) if r["cuaderno"] != notebook]
    _write_csv(cd, old + [{"cuaderno": notebook, **r} for r in rows])


def _read_csv(path: Path) -> list[dict]:
    try:
        return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))
    except FileNotFoundError:
        return []


def _write_csv(cd: ClassDir, rows: list[dict]) -> None:
    from .export import neutralize

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: neutralize(str(v)) for k, v in row.items()} for row in rows)
    write_atomic(cd.copies_csv, buffer.getvalue())


def load_notebooks(cd: ClassDir, notebook: str, solutions: Path):
    """(solución, publicado) de ``notebook``."""
    from .assignments import released_path

    return (
        nbformat.read(Path(solutions) / notebook / f"{notebook}.ipynb", as_version=4),
        nbformat.read(released_path(cd, notebook), as_version=4),
    )
