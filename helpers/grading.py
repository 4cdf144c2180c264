"""Comprobaciones para las celdas calificadas: fallan con un mensaje en español que dice qué se
esperaba, sin revelar la respuesta de las pruebas ocultas.

Todas devuelven ``None`` (una celda calificada nunca debe terminar en un valor: nbgrader lo
tomaría como nota parcial).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def check_equal(actual, expected, what: str, *, reveal: bool = False) -> None:
    """Exige ``actual == expected``. Con ``reveal=True`` el mensaje dice el valor esperado."""
    if actual != expected:
        hint = f" Se esperaba {expected!r}." if reveal else ""
        raise AssertionError(f"{what}: el valor {actual!r} no es correcto.{hint}")


def check_close(actual, expected, what: str, *, rtol: float = 1e-6, atol: float = 0.0, reveal: bool = False) -> None:
    """Exige ``|actual - expected| <= atol + rtol·|expected|`` (números finitos)."""
    try:
        actual_f = float(actual)
    except (TypeError, ValueError):
        raise AssertionError(f"{what}: esperaba un número y recibí {type(actual).__name__}.") from None
    if not math.isfinite(actual_f):
        raise AssertionError(f"{what}: el valor {actual_f} no es finito.")
    if abs(actual_f - expected) > atol + rtol * abs(expected):
        hint = f" Se esperaba {expected!r}." if reveal else ""
        raise AssertionError(f"{what}: {actual_f!r} no está dentro de la tolerancia.{hint}")


def check_type(obj, types, what: str) -> None:
    """Exige que ``obj`` sea de alguno de los tipos dados."""
    if not isinstance(obj, types):
        names = types.__name__ if isinstance(types, type) else " o ".join(t.__name__ for t in types)
        raise AssertionError(f"{what}: esperaba un {names} y recibí {type(obj).__name__}.")


def check_loss_decreases(
    history: Sequence[float],
    *,
    min_steps: int = 5,
    window: int = 3,
    margin: float = 0.05,
    what: str = "historial de pérdida",
) -> None:
    """Exige una pérdida que baja de verdad.

    - al menos ``min_steps`` valores, todos números finitos (ni NaN ni infinito);
    - la media de los ``window`` últimos es menor que la de los ``window`` primeros en al menos
      ``margin`` (fracción: 0.05 = 5 %).
    """
    if history is None or isinstance(history, (str, bytes)):
        raise AssertionError(f"{what}: esperaba una lista de números.")
    try:
        values = [float(v) for v in history]
    except (TypeError, ValueError):
        raise AssertionError(f"{what}: todos los elementos deben ser números.") from None
    if len(values) < min_steps:
        raise AssertionError(f"{what}: tiene {len(values)} valores y hacen falta al menos {min_steps}.")
    if not all(math.isfinite(v) for v in values):
        raise AssertionError(f"{what}: contiene NaN o infinito; revisa la tasa de aprendizaje y los datos.")
    window = max(1, min(window, len(values) // 2))
    first = sum(values[:window]) / window
    last = sum(values[-window:]) / window
    if not last < first * (1 - margin):
        raise AssertionError(
            f"{what}: la pérdida no baja lo suficiente (media inicial {first:.3f}, final "
            f"{last:.3f}; se pide una bajada de al menos el {100 * margin:.0f} %)."
        )
