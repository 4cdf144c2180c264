"""Respuestas erróneas a propósito, una por celda de solución de cada cuaderno.

Cada módulo ``nbNN`` define ``WRONG = {grade_id de la solución: código erróneo}`` y
``BREAKS = {grade_id de la solución: [celdas calificadas que ese error deja a 0]}``. La prueba de
calificación reparte las respuestas erróneas en dos entregas y exige, celda a celda, un 0 en las
que rompe cada una y la nota máxima en todas las demás.
"""
import importlib


def _module(name: str):
    try:
        return importlib.import_module(f"wrong_answers.nb{name[:2]}")
    except ModuleNotFoundError:
        return None


def wrong_cells(name: str) -> dict[str, str]:
    """Celdas erróneas del cuaderno ``name`` (vacío si no hay módulo)."""
    module = _module(name)
    return dict(module.WRONG) if module else {}


def broken_cells(name: str) -> dict[str, list[str]]:
    """Qué celdas calificadas deja a 0 cada respuesta errónea del cuaderno ``name``."""
    module = _module(name)
    return dict(module.BREAKS) if module else {}


def groups(name: str, solution_order: list[str]) -> list[list[str]]:
    """Las respuestas erróneas en dos entregas, alternando en el orden del cuaderno."""
    ordered = [grade_id for grade_id in solution_order if grade_id in wrong_cells(name)]
    return [group for group in (ordered[0::2], ordered[1::2]) if group]
