"""Lectura y reparación de la estructura de una entrega antes de dársela a nbgrader.

nbgrader ya restaura el contenido de las celdas bloqueadas (por su suma de verificación), los
puntos, el tipo de celda y las celdas de pruebas borradas. Aquí se arregla lo que le hace fallar o
calificar mal (ver ``grading-faults.md``), comparando la entrega con el cuaderno publicado:

- archivo que no es JSON o no es un cuaderno → no calificable, con el motivo;
- ruido de versión de nbformat (4.4 con ``id`` de 4.5, campos desconocidos, ``id`` repetidos);
- metadatos de nbgrader borrados por otro editor → se recuperan emparejando las celdas por su
  contenido (pruebas: el mismo texto; soluciones: la misma primera línea, p. ej. la firma);
- celdas calificadas duplicadas o divididas → se califican una vez y se anota;
- celdas reordenadas (pruebas encima de su solución) → se vuelven al orden original y se anota;
  una celda de pruebas movida (p. ej. arrastrada arriba del todo) vuelve sola a su sitio, sin
  llevarse las celdas que la seguían;
- celdas que faltan → se añaden (pruebas: las publicadas; soluciones: una celda vacía, para no
  tapar con el enunciado una respuesta que el alumno haya escrito en otra celda);
- tipo de celda cambiado (pruebas convertidas en Markdown) → se restaura;
- indicadores de nbgrader cambiados (``grade``, ``solution``, ``locked``, ``points``) → los del
  publicado (nbgrader restaura el código de una celda bloqueada, pero no sus indicadores);
- núcleo inexistente → el del cuaderno publicado.

Todas las funciones son puras: reciben cuadernos y devuelven cuadernos y observaciones en español
(para el profesorado) y la lista de problemas (``Repaired.problems``: tipo e identificador), con la
que ``helpers.validar`` se los explica al alumnado. Lo usan el calificador de la clase
(:mod:`helpers.classroom`) y ``helpers.validar``; solo depende de nbformat.
"""

from __future__ import annotations

import copy
import difflib
import json
import logging
import re
import uuid
import warnings
from dataclasses import dataclass, field

import nbformat
from nbformat.notebooknode import NotebookNode, from_dict

MAX_BYTES = 50 * 1024 * 1024
# Lo que queda del cuaderno sin sus salidas (código, texto, imágenes adjuntas): se copia en el
# cuaderno ejecutado, el calificado y la retroalimentación, así que también tiene tope.
MAX_CONTENT_BYTES = 8 * 1024 * 1024
# Niveles de anidamiento de un cuaderno (uno de verdad no pasa de 10; los *widgets*, de 20).
MAX_DEPTH = 64
_CELL_ID = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")
_CODE_KEYS = {"id", "cell_type", "metadata", "source", "outputs", "execution_count"}
_TEXT_KEYS = {"id", "cell_type", "metadata", "source", "attachments"}
MISSING_SOLUTION_SOURCE = "# (celda de solución ausente en la entrega)"
FLAG_KEYS = ("grade", "solution", "locked", "task", "points", "schema_version")


class Ungradable(Exception):
    """La entrega no se puede calificar; el mensaje es el motivo (en español, corto)."""


@dataclass
class Repaired:
    nb: NotebookNode
    notes: list[str] = field(default_factory=list)
    # (tipo, grade_id): "duplicada", "sin_metadatos", "indicadores", "tipo", "modificada", "ausente",
    # "reordenadas" (este, con grade_id vacío).
    problems: list[tuple[str, str]] = field(default_factory=list)


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def grade_ids(nb) -> list[str]:
    """Identificadores de nbgrader de un cuaderno, en orden."""
    return [m["grade_id"] for m in (nbgrader_meta(c) for c in nb.cells) if m.get("grade_id")]


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _is_test(meta: dict) -> bool:
    """Celda bloqueada que no es de solución (pruebas o enunciado bloqueado)."""
    return bool(meta.get("locked")) and not meta.get("solution")


# --- lectura -------------------------------------------------------------------------------
def load_notebook(data: bytes) -> NotebookNode:
    """Lee una entrega; lanza :class:`Ungradable` con el motivo si no es un cuaderno válido."""
    if len(data) > MAX_BYTES:
        raise Ungradable(f"archivo demasiado grande ({len(data) // 2**20} MB)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Ungradable("JSON inválido (no es texto UTF-8)") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        raise Ungradable("JSON inválido") from None
    except RecursionError:
        raise Ungradable(f"JSON inválido (anidado a más de {MAX_DEPTH} niveles)") from None
    if _too_deep(raw):
        # Lo que se lee bien pero rompería después (copias, validación) por recursión.
        raise Ungradable(f"JSON inválido (anidado a más de {MAX_DEPTH} niveles)")
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise Ungradable("no es un cuaderno de Jupyter (faltan las celdas)")
    if raw.get("nbformat") != 4:
        try:
            with _quiet():
                raw = json.loads(nbformat.writes(nbformat.reads(text, as_version=4)))
        except Exception:  # noqa: BLE001 - cualquier fallo de conversión es "no calificable"
            raise Ungradable(f"versión de cuaderno no admitida (nbformat {raw.get('nbformat')!r})") from None
    nb = _normalize(raw)
    size = len(nbformat.writes(nb).encode("utf-8"))
    if size > MAX_CONTENT_BYTES:
        raise Ungradable(
            f"cuaderno demasiado grande sin sus salidas ({size / 1e6:.1f} MB; el máximo es "
            f"{MAX_CONTENT_BYTES / 1e6:.1f} MB)"
        )
    return nb


def _too_deep(value) -> bool:
    """¿Tiene ``value`` listas o diccionarios anidados a más de ``MAX_DEPTH`` niveles? (sin recursión)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


class _quiet:
    """Silencia los avisos de validación de nbformat (el ruido de versión se arregla aquí)."""

    def __enter__(self):
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")
        self._logger = logging.getLogger("traitlets")
        self._level = self._logger.level
        self._logger.setLevel(logging.CRITICAL)
        return self

    def __exit__(self, *exc):
        self._logger.setLevel(self._level)
        return self._w.__exit__(*exc)


def _normalize(raw: dict) -> NotebookNode:
    """Cuaderno 4.5 limpio: campos conocidos, ``id`` válidos y únicos, sin salidas."""
    cells = []
    seen_ids: set[str] = set()
    for cell in raw.get("cells", []):
        if not isinstance(cell, dict):
            continue
        kind = cell.get("cell_type")
        if kind not in ("code", "markdown", "raw"):
            continue
        keep = _CODE_KEYS if kind == "code" else _TEXT_KEYS
        new = {k: v for k, v in cell.items() if k in keep}
        new["source"] = _source(cell)
        new["metadata"] = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        if kind == "code":
            new["outputs"] = []
            new["execution_count"] = None
        elif not isinstance(new.get("attachments", {}), dict):
            new.pop("attachments")
        cid = new.get("id")
        if not isinstance(cid, str) or not _CELL_ID.match(cid) or cid in seen_ids:
            cid = uuid.uuid4().hex[:8]
            while cid in seen_ids:
                cid = uuid.uuid4().hex[:8]
        seen_ids.add(cid)
        new["id"] = cid
        cells.append(new)
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    nb = from_dict({"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5})
    try:
        with _quiet():
            nbformat.validate(nb)
    except nbformat.ValidationError:
        # Metadatos de celda raros (de otro editor): se quitan los que no son de nbgrader.
        for cell in nb.cells:
            cell.metadata = {k: v for k, v in cell.metadata.items() if k in ("nbgrader", "tags")}
        nb.metadata = {k: v for k, v in nb.metadata.items() if k in ("kernelspec", "language_info")}
        try:
            with _quiet():
                nbformat.validate(nb)
        except nbformat.ValidationError as exc:
            raise Ungradable(f"formato de cuaderno no válido ({exc.message[:80]})") from None
    return nb


# --- reparación ----------------------------------------------------------------------------
def _signature(source: str) -> str:
    """Primera línea con contenido que no es comentario (p. ej. ``def f(x):``)."""
    for line in source.splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            return text
    return ""


def _similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.strip(), b.strip(), autojunk=False).ratio()


def _set_type(cell, kind: str) -> None:
    if cell.cell_type == kind:
        return
    cell.cell_type = kind
    if kind == "code":
        cell.outputs = []
        cell.execution_count = None
        cell.pop("attachments", None)
    else:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)


def _between(released: NotebookNode, after: str | None, before: str) -> list[str]:
    """Código de las celdas normales del publicado entre la celda ``after`` (o el principio) y ``before``."""
    out: list[str] = []
    started = after is None
    for cell in released.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid == before:
            break
        if started and gid is None:
            out.append(_source(cell).strip())
        if gid == after:
            started = True
    return out


def _longest_increasing(values: list[int], weights: list[int]) -> set[int]:
    """Posiciones de la subsecuencia creciente de ``values`` de más peso (las celdas que no se movieron)."""
    best = list(weights)
    prev = [-1] * len(values)
    for i, value in enumerate(values):
        for j in range(i):
            if values[j] < value and best[j] + weights[i] > best[i]:
                best[i], prev[i] = best[j] + weights[i], j
    out: set[int] = set()
    i = max(range(len(values)), key=lambda k: best[k], default=-1)
    while i >= 0:
        out.add(i)
        i = prev[i]
    return out


def repair(nb: NotebookNode, released: NotebookNode) -> Repaired:
    """Adapta la estructura de ``nb`` a la del cuaderno publicado ``released``."""
    nb = copy.deepcopy(nb)
    notes: list[str] = []
    problems: list[tuple[str, str]] = []
    ref = {nbgrader_meta(c)["grade_id"]: c for c in released.cells if nbgrader_meta(c).get("grade_id")}
    rank = {gid: i for i, gid in enumerate(ref)}

    # 1. Metadatos que no corresponden a ninguna celda publicada: celda normal.
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if meta is not None and (not isinstance(meta, dict) or meta.get("grade_id") not in ref):
            del cell.metadata["nbgrader"]

    # 2. Duplicadas o divididas: la primera se queda; las copias de pruebas se quitan y las de
    #    solución quedan como código normal (todo su código se ejecuta).
    seen: dict[str, object] = {}
    duplicated: list[str] = []
    cells = []
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid is None or gid not in seen:
            if gid is not None:
                seen[gid] = cell
            cells.append(cell)
            continue
        if gid not in duplicated:
            duplicated.append(gid)
        if _is_test(nbgrader_meta(ref[gid])):
            continue
        del cell.metadata["nbgrader"]
        cells.append(cell)
    nb.cells = cells
    for gid in duplicated:
        notes.append(f"revisar: la celda «{gid}» estaba duplicada o dividida; se califica una sola vez")
        problems.append(("duplicada", gid))

    # 3. Metadatos borrados: se emparejan celdas sin metadatos con las celdas publicadas que faltan.
    recovered = []
    free = [c for c in nb.cells if not nbgrader_meta(c)]
    for gid, rcell in ref.items():
        if gid in seen:
            continue
        rmeta = nbgrader_meta(rcell)
        rsrc = _source(rcell)
        match = None
        if _is_test(rmeta):
            exact = [c for c in free if _source(c).strip() == rsrc.strip()]
            if exact:
                match = exact[0]
            elif rsrc.strip():
                scored = [(_similar(_source(c), rsrc), i) for i, c in enumerate(free)]
                best = max(scored, default=(0.0, -1))
                if best[0] >= 0.85:
                    match = free[best[1]]
        elif rmeta.get("solution"):
            sig = _signature(rsrc)
            if sig:
                same = [c for c in free if c.cell_type == "code" and _signature(_source(c)) == sig]
                if same:
                    match = same[0]
        if match is not None:
            match.metadata["nbgrader"] = copy.deepcopy(rmeta)
            free.remove(match)
            seen[gid] = match
            recovered.append(gid)
    if recovered:
        notes.append(f"metadatos de nbgrader recuperados en {len(recovered)} celda(s): " + ", ".join(recovered))
        problems.extend(("sin_metadatos", gid) for gid in recovered)

    # 3b. Indicadores de nbgrader cambiados (grade, solution, locked, points...): los del publicado.
    #     nbgrader restaura el código de una celda bloqueada, pero no sus indicadores.
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id")
        if gid and gid not in recovered:
            rmeta = nbgrader_meta(ref[gid])
            if any(meta.get(k) != rmeta.get(k) for k in FLAG_KEYS if k != "points") or (
                not _is_test(rmeta) and meta.get("points") != rmeta.get("points")
            ):
                notes.append(
                    f"revisar: los indicadores de nbgrader de la celda «{gid}» estaban cambiados; "
                    "se califican con los originales"
                )
                problems.append(("indicadores", gid))
            points_changed = meta.get("points") != rmeta.get("points")
            cell.metadata["nbgrader"] = copy.deepcopy(rmeta)
            if points_changed and _is_test(rmeta):
                cell.metadata["nbgrader"]["_puntos_cambiados"] = True

    # 4. Tipo de celda cambiado.
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid and cell.cell_type != ref[gid].cell_type:
            notes.append(f"la celda «{gid}» había cambiado de tipo ({cell.cell_type}); se restaura")
            problems.append(("tipo", gid))
            _set_type(cell, ref[gid].cell_type)

    # 5. Pruebas modificadas (nbgrader las restaura; aquí solo se anota para el profesorado).
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id")
        if gid and _is_test(nbgrader_meta(ref[gid])) and gid not in recovered:
            points_changed = meta.pop("_puntos_cambiados", False)
            if _source(cell).strip() != _source(ref[gid]).strip() or points_changed:
                notes.append(f"revisar: la celda bloqueada «{gid}» estaba modificada; se califica con la original")
                problems.append(("modificada", gid))

    # 6. Las que siguen faltando se añaden (al final; el paso 7 las coloca).
    added = []
    for gid, rcell in ref.items():
        if gid in seen:
            continue
        new = copy.deepcopy(rcell)
        new["id"] = uuid.uuid4().hex[:8]
        if new.cell_type == "code":
            new.outputs = []
            new.execution_count = None
        if nbgrader_meta(rcell).get("solution"):
            new.source = MISSING_SOLUTION_SOURCE
        nb.cells.append(new)
        seen[gid] = new
        added.append(gid)
    if added:
        notes.append(f"celda(s) ausente(s) en la entrega, añadida(s) desde el original: {', '.join(added)}")
        problems.extend(("ausente", gid) for gid in added)

    # 7. Orden original: cada celda de nbgrader arrastra las celdas normales que la siguen... salvo
    #    una celda de pruebas movida, que vuelve sola a su sitio (si alguien la arrastró arriba del
    #    todo, las celdas de preparación que la seguían no deben irse con ella). «Movida» es no estar
    #    en la subsecuencia creciente más larga de las celdas de nbgrader: las demás no se mueven.
    #    Ante dos explicaciones igual de largas, se da por movida una de pruebas antes que una de solución.
    graded = [nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c).get("grade_id")]
    in_place = _longest_increasing(
        [rank[g] for g in graded], [1 if _is_test(nbgrader_meta(ref[g])) else len(graded) + 1 for g in graded]
    )
    chunks: list[tuple[int, list]] = []
    current: list | None = None  # la celda de la que cuelgan las celdas normales que siguen
    moved_tests: list[tuple[int, object]] = []
    position = 0
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid is None:
            if current is None:
                current = []
                chunks.append((-1, current))
            current.append(cell)
            continue
        if position in in_place or not _is_test(nbgrader_meta(ref[gid])):
            chunks.append((rank[gid], [cell]))
            current = chunks[-1][1]
        else:
            moved_tests.append((rank[gid], cell))
        position += 1
    ordered = sorted(chunks, key=lambda ch: ch[0])
    flat = [cell for _, group in ordered for cell in group]
    # Cada prueba movida va detrás de la celda calificada que la precede en el publicado y de las
    # celdas normales que las separan allí (si siguen igual en la entrega).
    order = list(ref)
    for r, cell in sorted(moved_tests, key=lambda rc: rc[0]):
        at = 0
        if r > 0:
            at = next(i for i, c in enumerate(flat) if nbgrader_meta(c).get("grade_id") == order[r - 1]) + 1
        for source in _between(released, order[r - 1] if r > 0 else None, order[r]):
            if at < len(flat) and not nbgrader_meta(flat[at]) and _source(flat[at]).strip() == source:
                at += 1
            else:
                break
        flat.insert(at, cell)
    submitted_ranks = [rank[gid] for gid in graded if gid not in added]
    if submitted_ranks != sorted(submitted_ranks):
        notes.append("revisar: las celdas calificadas estaban reordenadas; se califican en el orden original")
        problems.append(("reordenadas", ""))
    nb.cells = flat

    # 8. Núcleo y versión: los del publicado.
    if "kernelspec" in released.metadata:
        nb.metadata["kernelspec"] = copy.deepcopy(released.metadata["kernelspec"])
    nb.nbformat, nb.nbformat_minor = 4, 5
    return Repaired(nb, notes, problems)
