"""Respuestas erróneas a propósito, una por cuaderno: ``WRONG = {grade_id: código}``.

La prueba de calificación sustituye esas celdas de la solución y exige una nota parcial.
"""
import importlib


def wrong_cells(name: str) -> dict[str, str]:
    """Celdas erróneas del cuaderno ``name`` (vacío si no hay módulo)."""
    try:
        module = importlib.import_module(f"wrong_answers.nb{name[:2]}")
    except ModuleNotFoundError:
        return {}
    return module.WRONG
