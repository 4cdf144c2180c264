"""Respuestas erróneas a propósito, una por celda de solución de cada cuaderno.

Cada módulo ``nbNN`` define ``WRONG = {grade_id de la solución: código erróneo}`` y
``BREAKS = {grade_id de la solución: [celdas calificadas que ese error deja a 0]}``. La prueba de
calificación junta en una misma entrega las respuestas erróneas que rompen celdas distintas (así
cada 0 sigue teniendo un solo culpable, con el menor número de ejecuciones) y exige, celda a
celda, un 0 en las que rompe cada una y la nota máxima en todas las demás.
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
    """Las respuestas erróneas en entregas cuyas celdas rotas no se pisan (en el orden del cuaderno).

    Cada respuesta va a la primera entrega en la que ninguna otra rompe sus mismas celdas; si no
    cabe en ninguna, abre otra. Dos errores que rompen la misma celda nunca van juntos: el 0 de
    esa celda no diría cuál de los dos falla.
    """
    breaks = broken_cells(name)
    packed: list[tuple[list[str], set[str]]] = []
    for grade_id in (g for g in solution_order if g in wrong_cells(name)):
        cells = set(breaks.get(grade_id, ()))
        for group, taken in packed:
            if not cells & taken:
                group.append(grade_id)
                taken |= cells
                break
        else:
            packed.append(([grade_id], set(cells)))
    return [group for group, _ in packed]
