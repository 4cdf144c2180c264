"""El CSV de notas y el libro de notas maestro de nbgrader.

CSV (``CLASE/calificaciones.csv``, UTF-8, separado por comas): una fila por alumno/a y cuaderno,
ordenadas, sin fechas ni tiempos (repetir la orden da el mismo archivo, byte a byte).

==================  =========================================================================
columna             contenido
==================  =========================================================================
alumno              identificador (el de nbgrader y el de las carpetas)
nombre              nombre tal como venía en la exportación
cuaderno            p. ej. ``01_introduccion_peft``
puntuacion          nota obtenida; vacía si no hay nota (falta la entrega o no se pudo calificar)
puntuacion_maxima   nota máxima del cuaderno
estado              ``calificado``, ``revisar: posible manipulación de las pruebas``,
                    ``no calificable: <motivo>`` o ``falta la entrega``
observaciones       lo que el profesorado debe saber (separado por « | »), también
                    «revisar: posible copia» si el informe de copias (``copias.csv``) lo ve
==================  =========================================================================

Ninguna celda de texto empieza por ``=``, ``+``, ``-``, ``@``, tabulador ni retorno de carro: si
empezaría así (p. ej. un nombre ``=HYPERLINK(...)`` en Moodle), se le antepone un apóstrofo
(``'=HYPERLINK(...)``), como recomienda OWASP contra la inyección de fórmulas al abrir el CSV en
una hoja de cálculo. Las columnas numéricas las escribe el calificador y nunca llevan signo.

Con «no calificable: kernel muerto», «no calificable: memoria agotada» o «no calificable: tiempo
total agotado» la puntuación es la parcial de las celdas que llegaron a ejecutarse (las
observaciones lo dicen): nunca un 0 sin motivo. «revisar: posible manipulación de las pruebas»
lleva la nota que salió y, en las observaciones, qué se encontró: revísala antes de darla por buena.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

from ..locking import file_lock
from .grading import STATUS_MISSING, ungradable
from .layout import ClassDir, read_json, write_atomic

COLUMNS = ["alumno", "nombre", "cuaderno", "puntuacion", "puntuacion_maxima", "estado", "observaciones"]
NUMERIC = ("puntuacion", "puntuacion_maxima")
# Lo que una hoja de cálculo interpreta como el principio de una fórmula (OWASP, «CSV Injection»).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PENDING = ungradable("sin calificar todavía (vuelve a ejecutar la orden)")


def _num(value) -> str:
    return "" if value is None else f"{float(value):g}"


def rows(cd: ClassDir) -> list[dict]:
    """Filas del CSV a partir del índice de entregas y de los resultados guardados."""
    index = read_json(cd.index, {}) or {}
    copies = read_json(cd.copies_json, {}) or {}  # observaciones del informe de copias (copies.py)
    out = []
    for nb in index.get("cuadernos", []):
        info = read_json(cd.template(nb) / "info.json", {}) or {}
        for sid in sorted(index.get("alumnos", {})):
            name = index["alumnos"][sid].get("nombre", sid)
            sub = index.get("entregas", {}).get(sid, {}).get(nb)
            row = {
                "alumno": sid,
                "nombre": name,
                "cuaderno": nb,
                "puntuacion": "",
                "puntuacion_maxima": _num(info.get("puntuacion_maxima")),
                "estado": STATUS_MISSING,
                "observaciones": " | ".join(index["alumnos"][sid].get("avisos", [])),
            }
            if sub is not None:
                result = read_json(cd.result_dir(nb, sid) / "resultado.json")
                if result is None or result.get("sha256") != sub["sha256"]:
                    row["estado"] = PENDING
                else:
                    row.update(
                        puntuacion=_num(result.get("puntuacion")),
                        puntuacion_maxima=_num(result.get("puntuacion_maxima")),
                        estado=result["estado"],
                        observaciones=" | ".join(result.get("observaciones", []) + copies.get(nb, {}).get(sid, [])),
                    )
            out.append(row)
    out.sort(key=lambda r: (r["alumno"], r["cuaderno"]))
    return out


def neutralize(text: str) -> str:
    """``'=HYPERLINK(...)`` en vez de ``=HYPERLINK(...)``: la hoja de cálculo lo muestra como texto.

    Los retornos de carro pasan a saltos de línea (el módulo csv no entrecomilla un campo con «\\r»
    suelto y partiría la fila)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "'" + text if text.lstrip().startswith(FORMULA_START) or text.startswith(("\t", "\n")) else text


def write_csv(cd: ClassDir) -> list[dict]:
    data = rows(cd)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: v if k in NUMERIC else neutralize(str(v)) for k, v in row.items()} for row in data)
    write_atomic(cd.csv, buffer.getvalue())
    return data


# --- libro de notas maestro -------------------------------------------------------------------
def check_integrity(db: Path) -> bool:
    """``PRAGMA integrity_check`` del libro de notas (True si está sano).

    Se abre para escritura (sin crearlo): si un lote murió a mitad de una transacción, queda un
    diario «caliente» (``gradebook.db-journal``) y SQLite lo deshace al abrir, con lo que el libro
    vuelve a su último estado confirmado. En solo lectura no puede deshacerlo y la comprobación
    fallaría con «attempt to write a readonly database» aunque no se haya perdido nada.
    """
    con = sqlite3.connect(f"file:{db}?mode=rw", uri=True)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def _has_manual_work(submission) -> bool:
    """¿Puso el profesorado algo a mano (nota o comentario) en esta entrega desde formgrader?"""
    for notebook in submission.notebooks:
        if any(g.manual_score is not None for g in notebook.grades):
            return True
        if any((c.manual_comment or "").strip() for c in notebook.comments):
            return True
    return False


def merge_into_gradebook(cd: ClassDir, results: list[dict]) -> None:
    """Pasa resultados al libro de notas maestro (``CLASE/curso/gradebook.db``).

    Se actualiza **en su sitio**, en una transacción de SQLite: si algo falla a mitad, nada cambia, y
    un ``nbgrader formgrader`` abierto sobre el mismo archivo sigue viendo (y guardando en) el libro
    de verdad. Solo se tocan las notas automáticas: las notas y comentarios que el profesorado puso a
    mano en formgrader se conservan, y una entrega con trabajo a mano nunca se borra.
    """
    import warnings

    from nbgrader.api import Gradebook, MissingEntry

    db = cd.course / "gradebook.db"
    with file_lock(cd.course / ".gradebook.lock"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # avisos internos de SQLAlchemy en nbgrader
        with Gradebook(f"sqlite:///{db}") as gb:
            try:
                for res in results:
                    nb, sid = res["cuaderno"], res["alumno"]
                    if not res.get("celdas"):
                        try:
                            if not _has_manual_work(gb.find_submission(nb, sid)):
                                gb.remove_submission(nb, sid)
                        except MissingEntry:
                            pass
                        continue
                    gb.update_or_create_student(sid, first_name=res.get("nombre", sid))
                    gb.update_or_create_submission(nb, sid)
                    for cell, (score, _max) in res["celdas"].items():
                        grade = gb.find_grade(cell, nb, nb, sid)
                        grade.auto_score = float(score)
                        if grade.manual_score is None:
                            grade.needs_manual_grade = False
                    # Mensajes del examinador (helpers.classroom.examiner): el comentario automático
                    # de cada celda de solución; el comentario a mano no se toca.
                    for cell, text in (res.get("comentarios") or {}).items():
                        try:
                            gb.find_comment(cell, nb, nb, sid).auto_comment = str(text)
                        except MissingEntry:
                            pass
                gb.db.commit()
            except BaseException:
                gb.db.rollback()
                raise
    if not check_integrity(db):
        raise RuntimeError(f"el libro de notas {db} no pasa PRAGMA integrity_check")


def publish_result(cd: ClassDir, res: dict) -> None:
    """Copia lo que ve el profesorado y el alumnado: retroalimentación y cuadernos del curso."""
    nb, sid = res["cuaderno"], res["alumno"]
    folder = cd.result_dir(nb, sid)
    page = folder / "retroalimentacion.html"
    if page.exists():
        write_atomic(cd.feedback_file(sid, nb), page.read_bytes())
    for src, kind in ((folder / "entregado.ipynb", "submitted"), (folder / "calificado.ipynb", "autograded")):
        target = cd.course / kind / sid / nb / f"{nb}.ipynb"
        if src.exists():
            write_atomic(target, src.read_bytes())
        elif target.exists():
            target.unlink()
