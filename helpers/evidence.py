"""Veredictos con pruebas: una conclusión solo cuando los datos la sostienen.

Todos los cuadernos que comparan opciones (rangos, métodos, variantes) imprimen su veredicto con
:func:`compare`. Nombra la mejor opción solo si se cumplen **todas** estas condiciones; si falla
alguna, el veredicto es *no concluyente* y dice cuáles fallaron (con su código en
:attr:`Verdict.failed`):

``"pocas_semillas"``
    Cada opción tiene al menos ``min_seeds`` semillas (3 por defecto). Con menos, la dispersión
    entre semillas no se puede medir o no significa nada.
``"ruido"``
    La diferencia supera la dispersión entre semillas. Regla exacta: **la peor semilla de la
    mejor opción es mejor que la mejor semilla de cada una de las demás** (los intervalos
    [mínimo, máximo] no se solapan). La mejor opción es la de mejor media. Por qué esta regla y
    no «diferencia de medias > dispersión»: es la prueba de rangos de Mann–Whitney con U = 0, cuya
    probabilidad sin ningún efecto real se calcula exactamente y sin suponer una distribución:
    con n semillas por opción, dos opciones iguales se separan del todo por azar con probabilidad
    2 / C(2n, n) (0.10 con 3 semillas, 0.029 con 4, 0.0079 con 5). Por eso 3 semillas es el
    mínimo: con 2, la probabilidad es 1/3. Una semilla rara de la mejor opción o de cualquier
    otra basta para tumbar el veredicto, y eso es lo que se quiere. Se compara
    con **todas** las demás, no solo con la segunda: una tercera opción de media peor puede tener
    una semilla mejor que la peor de la ganadora. Con k opciones de n semillas, la probabilidad
    de cumplir la regla por azar es k / C(kn, n) (:func:`seed_separation_chance`).
``"sin_converger"``
    Cada curva de pérdida de ``curves`` ha dejado de bajar. Regla exacta: en el último tercio de
    la curva (al menos 3 puntos; ``CONVERGE_FRACTION``), la pendiente de la recta de mínimos
    cuadrados, dividida entre la media de esos puntos, no baja más de ``converge_tol`` por punto
    (por paso si guardas la pérdida en cada paso): ``-pendiente / media <= converge_tol``. La recta
    aguanta el ruido de una pérdida por lote mejor que comparar el primer punto con el último.
    Una curva de menos de 10 puntos (``CONVERGE_MIN_POINTS``) no se puede juzgar y cuenta como no
    convergida: con 3 o 4 pérdidas de lote al final, el ruido de lote tapa la tendencia (4 pasos
    que suben y bajan parecen una meseta aunque a la pérdida le quede mucho por bajar).
``"borde_rejilla"``
    La tasa de aprendizaje elegida para cada opción (``chosen_lr``) está **estrictamente dentro**
    de su rejilla (``lr_grid``): ni la menor ni la mayor. En el borde, la mejor tasa podría estar
    fuera de lo probado, y comparar opciones con tasas mal elegidas compara tasas, no opciones.
    Una «rejilla» de una sola tasa (la tasa no se barrió) no tiene interior y también falla.

``curves=None`` o ``lr_grid=None`` quieren decir «no aplica» (p. ej., comparar tiempos, o una
sola tasa fijada de antemano): no se comprueban. Si hay entrenamiento, pásalas.

Además, ``"no_finito"``: una opción con algún valor NaN o infinito (una ejecución que diverge) no
se puede comparar, y el veredicto lo dice.

**Sin veredicto de «no hay efecto».** Que los intervalos se solapen no prueba que dos opciones
sean iguales: con pocas semillas, un efecto real pequeño también se solapa. Afirmar equivalencia
exige fijar de antemano qué diferencia es despreciable y acotarla (p. ej., con dos pruebas
unilaterales), y aquí no hay ese margen; así que el veredicto se queda en *no concluyente* y da
la diferencia y la dispersión medidas, para que juzgues tú su tamaño.

Uso::

    from helpers.evidence import compare
    veredicto = compare({"r = 4": [1.61, 1.62, 1.60], "r = 8": [1.64, 1.65, 1.63]},
                        curves=curvas, lr_grid=(1e-4, 3e-4, 1e-3), chosen_lr={"r = 4": 3e-4, "r = 8": 3e-4})
    print(veredicto)

No importa torch: funciona con listas de números.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "CONVERGE_FRACTION",
    "FAILURES",
    "Verdict",
    "compare",
    "grid_edge",
    "relative_slope",
    "seed_separation_chance",
]

# Parte final de la curva en la que se mide si sigue bajando (y el mínimo de puntos).
CONVERGE_FRACTION = 1 / 3
# Una curva más corta no se juzga: con la pérdida de cada lote, 3 o 4 puntos finales no separan una
# tendencia del ruido de lote (4 pasos que suben y bajan parecen una meseta aunque falte mucho).
CONVERGE_MIN_POINTS = 10
CONVERGE_TAIL_MIN = 3

# Código de cada condición → qué comprueba (para el glosario y los mensajes).
FAILURES = {
    "pocas_semillas": "hay pocas semillas por opción",
    "ruido": "la diferencia no supera la dispersión entre semillas",
    "sin_converger": "el entrenamiento no ha convergido",
    "borde_rejilla": "la tasa de aprendizaje elegida está en el borde de su rejilla",
    "no_finito": "hay valores no finitos (una ejecución divergió)",
}


@dataclass(frozen=True)
class Verdict:
    """El veredicto de :func:`compare`.

    ``conclusive``: si la conclusión está sostenida por los datos. ``text``: la frase en español
    que se imprime (la conclusión, o «no concluyente: …» con cada condición que falló).
    ``failed``: los códigos de las condiciones que fallaron (vacío si es concluyente), en el orden
    de ``FAILURES``. ``best``: la opción ganadora si es concluyente; si no, ``None``.
    """

    conclusive: bool
    text: str
    failed: tuple[str, ...] = ()
    best: str | None = None

    def __str__(self) -> str:
        return self.text


def seed_separation_chance(counts: Sequence[int]) -> float:
    """Probabilidad de que la regla de ``"ruido"`` se cumpla por azar, sin ningún efecto real.

    ``counts``: semillas de cada opción. Si todas las opciones son iguales (los valores de todas
    las semillas, intercambiables), la regla se cumple cuando los ``n_i`` mejores valores de todos
    son los de una misma opción ``i``: probabilidad ``Σ_i 1 / C(N, n_i)``, con ``N`` el total de
    semillas. Dos opciones con 3 semillas: 2 / C(6, 3) = 0.10; seis opciones con 3: 6 / C(18, 3) ≈ 0.0074.
    """
    counts = [int(c) for c in counts]
    total = sum(counts)
    return min(1.0, sum(1 / math.comb(total, c) for c in counts))


def relative_slope(
    curve: Sequence[float], fraction: float = CONVERGE_FRACTION, min_points: int = CONVERGE_MIN_POINTS
) -> float:
    """Cuánto baja la curva por punto al final, en fracción de su valor (positivo = aún baja).

    Toma los últimos ``max(3, ceil(fraction · len))`` puntos, ajusta una recta por mínimos
    cuadrados y devuelve ``-pendiente / media``. Con menos de ``min_points`` puntos en toda la curva
    (10 por defecto), o valores no finitos, devuelve ``inf``: no se puede decir que haya convergido.
    """
    values = [float(v) for v in curve]
    if len(values) < min_points or not all(math.isfinite(v) for v in values):
        return math.inf
    k = max(CONVERGE_TAIL_MIN, math.ceil(fraction * len(values)))
    tail = values[-k:]
    xs = range(len(tail))
    x_mean = (len(tail) - 1) / 2
    y_mean = sum(tail) / len(tail)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, tail)) / sum((x - x_mean) ** 2 for x in xs)
    if y_mean == 0:
        return 0.0 if slope == 0 else math.copysign(math.inf, -slope)
    return -slope / abs(y_mean)


def grid_edge(lr: float, grid: Sequence[float]) -> str | None:
    """``"la menor"``, ``"la mayor"`` o ``"la única"`` si ``lr`` es un borde de ``grid``; ``None`` si está dentro.

    La regla de ``"borde_rejilla"`` de :func:`compare`. Una rejilla de menos de 3 tasas no tiene
    interior: cualquier tasa es un borde. Si ``lr`` no está en la rejilla, ``ValueError``.
    """
    values = sorted(float(g) for g in grid)
    if not values:
        raise ValueError("grid_edge: la rejilla está vacía.")
    if not any(math.isclose(float(lr), g, rel_tol=1e-9) for g in values):
        raise ValueError(
            f"la tasa {_fmt_lr(lr)} no está en su rejilla {{{', '.join(_fmt_lr(g) for g in values)}}}; "
            "pasa la rejilla que barriste."
        )
    if len(values) == 1:
        return "la única"
    if math.isclose(float(lr), values[0], rel_tol=1e-9):
        return "la menor"
    if math.isclose(float(lr), values[-1], rel_tol=1e-9):
        return "la mayor"
    return None


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e-3 or abs(x) >= 1e4 else f"{x:.4f}"


def _fmt_lr(x: float) -> str:
    return f"{x:g}"


def _listing(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " y " + names[-1]


def compare(
    results: Mapping[str, Sequence[float]],
    *,
    lower_is_better: bool = True,
    curves: Mapping[str, Sequence[float]] | None = None,
    converge_tol: float = 0.01,
    lr_grid: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
    chosen_lr: Mapping[str, float] | None = None,
    min_seeds: int = 3,
    metric: str = "pérdida de validación",
    repeats: str = "semillas",
) -> Verdict:
    """Compara opciones medidas con varias semillas y da un veredicto solo si los datos lo sostienen.

    ``results``: opción → valores finales, uno por semilla (p. ej. la pérdida de validación de
    cada semilla). ``lower_is_better``: ``False`` para métricas como la exactitud.
    ``curves``: nombre → curva de pérdida (una por ejecución; el nombre es libre, p. ej.
    ``"LoRA, semilla 1"``) para comprobar la convergencia con ``converge_tol`` (fracción por punto).
    ``lr_grid``: la rejilla de tasas de aprendizaje (una para todas las opciones, o un diccionario
    opción → rejilla si cada opción tiene la suya) y ``chosen_lr``: opción → tasa elegida.
    ``min_seeds``: semillas mínimas por opción. ``metric``: cómo se llama lo comparado en la frase.
    ``repeats``: cómo se llaman las repeticiones en plural (``"medidas"`` si comparas tiempos
    medidos varias veces en vez de semillas); las reglas son las mismas.

    Las condiciones y sus reglas exactas están en la documentación del módulo
    (``help(helpers.evidence)``). Devuelve un :class:`Verdict`; ``print(veredicto)`` imprime su
    frase. Los datos mal formados (menos de dos opciones, una opción sin valores, una tasa
    elegida que no está en su rejilla) dan un ``ValueError`` que dice qué corregir.
    """
    options = {str(name): [float(v) for v in values] for name, values in results.items()}
    if len(options) < 2:
        raise ValueError(
            f"compare necesita al menos dos opciones que comparar; recibí {len(options)}. "
            "Pásale un diccionario opción → lista de valores (uno por semilla)."
        )
    empty = [name for name, values in options.items() if not values]
    if empty:
        raise ValueError(f"compare: {_listing(empty)} no tiene ningún valor; pon un valor por semilla.")
    if min_seeds < 1:
        raise ValueError(f"compare: min_seeds debe ser al menos 1 (recibí {min_seeds}).")
    if not converge_tol >= 0:
        raise ValueError(f"compare: converge_tol debe ser una fracción ≥ 0 (recibí {converge_tol}).")

    reasons: dict[str, str] = {}
    many = repeats
    one = repeats[:-1] if repeats.endswith("s") else repeats

    # Valores no finitos: esa opción no se puede ordenar.
    broken = [name for name, values in options.items() if not all(math.isfinite(v) for v in values)]
    if broken:
        reasons["no_finito"] = f"{_listing(broken)} tiene valores no finitos (la ejecución divergió)"
    finite = {name: values for name, values in options.items() if name not in broken}

    # Semillas.
    few = {name: len(values) for name, values in options.items() if len(values) < min_seeds}
    if few:
        counts = sorted(set(few.values()))
        count_text = " o ".join(str(c) for c in counts)
        where = "" if len(few) == len(options) else f" en {_listing(list(few))}"
        reasons["pocas_semillas"] = (
            f"{count_text} {one if counts == [1] else many} por opción{where} "
            f"(hacen falta al menos {min_seeds} para medir la dispersión entre {many})"
        )

    # La mejor opción (por la media) y su separación de cada una de las demás.
    sign = 1 if lower_is_better else -1
    mean = {name: sum(values) / len(values) for name, values in finite.items()}
    ranking = sorted(finite, key=lambda name: sign * mean[name])
    best = ranking[0] if ranking else None
    if best is not None and len(ranking) >= 2:
        worst_of_best = max(finite[best], key=lambda v: sign * v)
        overlapping = [
            name for name in ranking[1:] if not sign * worst_of_best < sign * min(finite[name], key=lambda v: sign * v)
        ]
        if overlapping:
            spread = max(max(finite[n]) - min(finite[n]) for n in [best, *overlapping])
            gap = abs(mean[overlapping[0]] - mean[best])
            if len(finite[best]) < 2 and all(len(finite[n]) < 2 for n in overlapping):
                detail = "no hay dispersión medida"
            else:
                detail = f"dispersión entre {many} de hasta {_fmt(spread)}"
            reasons["ruido"] = (
                f"{best} y {_listing(overlapping)} se solapan: la peor {one} de {best} no es mejor "
                f"que la mejor de {_listing(overlapping)} (diferencia de medias {_fmt(gap)}; {detail})"
            )
    elif best is not None and len(ranking) < 2:
        # Solo queda una opción finita: nada con qué compararla con garantías.
        pass

    # Convergencia.
    if curves is not None:
        if not curves:
            reasons["sin_converger"] = "no hay curvas de pérdida con las que comprobar la convergencia"
        else:
            slow = {}
            for name, curve in curves.items():
                rate = relative_slope(curve)
                if not rate <= converge_tol:
                    slow[str(name)] = rate
            if slow:
                short = [name for name, rate in slow.items() if math.isinf(rate)]
                falling = [f"{name} ({100 * rate:.2g} %)" for name, rate in slow.items() if not math.isinf(rate)]
                parts = []
                if falling:
                    everywhere = len(falling) == len(curves) and len(curves) > 1
                    parts.append(
                        f"la pérdida sigue bajando más de un {100 * converge_tol:g} % por paso al final de "
                        f"{'todas las curvas' if everywhere else 'la curva'}: {_listing(falling)}"
                    )
                if short:
                    everywhere = len(short) == len(curves) and len(curves) > 1
                    parts.append(
                        f"no se puede comprobar que {'ninguna curva' if everywhere else _listing(short)} haya "
                        f"convergido (hacen falta al menos {CONVERGE_MIN_POINTS} puntos finitos)"
                    )
                reasons["sin_converger"] = "; ".join(parts)

    # Tasa de aprendizaje en el borde de su rejilla.
    if lr_grid is not None:
        if chosen_lr is None:
            raise ValueError("compare: con lr_grid pasa también chosen_lr (opción → tasa elegida).")
        edges, single = [], []
        for name, lr in chosen_lr.items():
            grid = lr_grid.get(name) if isinstance(lr_grid, Mapping) else lr_grid
            if grid is None:
                raise ValueError(f"compare: lr_grid no tiene la rejilla de {name!r}.")
            try:
                side = grid_edge(lr, grid)
            except ValueError as error:
                raise ValueError(f"compare: {name}: {error}") from None
            if side == "la única":
                single.append((name, float(lr)))
            elif side is not None:
                listed = ", ".join(_fmt_lr(g) for g in sorted(float(g) for g in grid))
                edges.append(f"{name} ({_fmt_lr(lr)}, {side} de {{{listed}}})")
        parts = []
        if single:
            rates = sorted({lr for _, lr in single})
            who = (
                "ninguna opción"
                if len(single) == len(chosen_lr) and len(single) > 1
                else _listing([name for name, _ in single])
            )
            parts.append(
                f"no se ha barrido la tasa de aprendizaje en {who} (una sola tasa, "
                f"{' y '.join(_fmt_lr(r) for r in rates)}): la mejor para cada opción podría ser otra"
            )
        if edges:
            parts.append(
                f"la tasa de aprendizaje elegida está en el borde de su rejilla en {_listing(edges)}: la "
                "mejor podría estar fuera de lo probado"
            )
        if parts:
            reasons["borde_rejilla"] = "; ".join(parts)

    failed = tuple(code for code in FAILURES if code in reasons)
    if failed:
        return Verdict(False, "no concluyente: " + "; ".join(reasons[code] for code in failed) + ".", failed)

    runner_up = ranking[1]
    n_best = len(finite[best])
    text = (
        f"{best} da la mejor {metric}: {_fmt(mean[best])} de media en {n_best} {many} "
        f"(de {_fmt(min(finite[best]))} a {_fmt(max(finite[best]))}), frente a {_fmt(mean[runner_up])} de "
        f"{runner_up}, la segunda (de {_fmt(min(finite[runner_up]))} a {_fmt(max(finite[runner_up]))}); "
        f"cada {one} de {best} es mejor que cada {one} de las demás opciones (sin efecto real, "
        f"esto pasaría por azar con probabilidad {seed_separation_chance([len(v) for v in finite.values()]):.2g})."
    )
    return Verdict(True, text, (), best)
