"""Pruebas de helpers.evidence: el veredicto sale solo cuando los datos lo sostienen.

Cada caso sintético tiene el veredicto correcto escrito a mano; varios están hechos para engañar
a una implementación ingenua (comparar solo medias, solo con la segunda, mirar el primer y el
último punto de una curva ruidosa, una diferencia relativa fija...).
"""

import math
import random
import subprocess
import sys

import pytest

from helpers.evidence import Verdict, compare, relative_slope, seed_separation_chance

# Una curva de pérdida que ha convergido (meseta con algo de ruido) y otra que aún baja.
FLAT = [3.0, 2.2, 1.9, 1.75, 1.7, 1.68, 1.67, 1.665, 1.66, 1.662, 1.659, 1.661]
FALLING = [3.0 - 0.2 * i for i in range(12)]


def _curves(names):
    return {f"{n}, semilla {s}": FLAT for n in names for s in range(3)}


def test_efecto_real_da_veredicto_concluyente():
    # El efecto es pequeño en términos relativos (≈1 %) pero todas las semillas de A ganan a todas las de B:
    # un umbral relativo fijo (p. ej. «más de un 5 %») lo llamaría ruido.
    v = compare(
        {"A": [1.000, 1.002, 1.001], "B": [1.010, 1.012, 1.011]},
        curves=_curves("AB"),
        lr_grid=(1e-4, 3e-4, 1e-3),
        chosen_lr={"A": 3e-4, "B": 3e-4},
    )
    assert isinstance(v, Verdict)
    assert v.conclusive and v.failed == () and v.best == "A"
    assert str(v) == v.text and v.text.startswith("A da la mejor pérdida de validación")
    assert "no concluyente" not in v.text


def test_efecto_real_con_metrica_que_sube():
    # Exactitud: más es mejor. Con lower_is_better=True ganaría la peor.
    results = {"LoRA": [0.81, 0.83, 0.82], "prompt": [0.70, 0.72, 0.71]}
    up = compare(results, lower_is_better=False, metric="exactitud")
    assert up.conclusive and up.best == "LoRA" and "mejor exactitud" in up.text
    down = compare(results, lower_is_better=True)
    assert down.conclusive and down.best == "prompt"


def test_ruido_puro_no_concluyente():
    # Seis opciones iguales (mismo generador): las medias difieren, los intervalos se solapan.
    rng = random.Random(0)
    results = {f"r = {r}": [1.63 + rng.gauss(0, 0.005) for _ in range(3)] for r in (1, 2, 4, 8, 16, 32)}
    v = compare(results, curves=_curves(results))
    assert not v.conclusive and v.failed == ("ruido",) and v.best is None
    assert v.text.startswith("no concluyente: ") and "se solapan" in v.text


def test_medias_separadas_pero_una_semilla_rara_es_ruido():
    # Diferencia de medias (0.04) mayor que la desviación típica de B y que la mitad del rango de A:
    # una regla de «medias separadas» diría que A gana; la peor semilla de A (1.20) es peor que todas las de B.
    v = compare({"A": [1.00, 1.01, 1.20], "B": [1.10, 1.11, 1.12]})
    assert not v.conclusive and v.failed == ("ruido",)


def test_se_compara_con_todas_no_solo_con_la_segunda():
    # A gana a B (la segunda por media) sin solaparse, pero C (tercera por media) tiene una semilla
    # mejor que la peor de A: comparar solo con la segunda lo daría por concluyente.
    results = {"A": [1.00, 1.00, 1.05], "B": [1.06, 1.06, 1.06], "C": [1.02, 1.20, 1.20]}
    v = compare(results)
    assert not v.conclusive and v.failed == ("ruido",)
    assert "C" in v.text and "A" in v.text


def test_curva_sin_converger():
    results = {"A": [1.0, 1.001, 1.002], "B": [1.1, 1.101, 1.102]}
    curves = {"A, semilla 0": FLAT, "B, semilla 0": FALLING}
    v = compare(results, curves=curves)
    assert not v.conclusive and v.failed == ("sin_converger",)
    assert "B, semilla 0" in v.text and "A, semilla 0" not in v.text
    # La misma curva con una tolerancia enorme (50 % por paso) sí se da por convergida.
    assert compare(results, curves=curves, converge_tol=0.5).conclusive


def test_convergencia_con_ruido_de_lote():
    # Una meseta en 1.6 (30 puntos) con ruido de lote en los dos extremos del último tercio: el
    # primero 6 % alto, el último 6 % bajo. «Primero contra último» diría que baja un 1.3 % por paso;
    # la recta de mínimos cuadrados, que es casi plana.
    noisy_flat = [3.0, 2.2, 1.8] + [1.6] * 17 + [1.6 * 1.06] + [1.6] * 8 + [1.6 * 0.94]
    tail = noisy_flat[-10:]
    assert (tail[0] - tail[-1]) / tail[0] / 9 > 0.01
    assert 0 < relative_slope(noisy_flat) <= 0.01
    # Y al revés: una curva que baja un ~2 % por paso sin parar, con un último punto alto por ruido
    # (más alto que el primero del tramo final: «primero contra último» diría que ya no baja).
    falling = [2.8 - 0.04 * i for i in range(29)]
    falling.append(falling[-9] + 0.02)
    tail = falling[-10:]
    assert tail[-1] > tail[0]
    assert relative_slope(falling) > 0.01


def test_curva_demasiado_corta_no_se_da_por_convergida():
    v = compare({"A": [1.0, 1.0, 1.0], "B": [2.0, 2.0, 2.0]}, curves={"A": [2.0, 1.0]})
    assert not v.conclusive and v.failed == ("sin_converger",) and "al menos 10 puntos" in v.text
    assert math.isinf(relative_slope([1.0, 0.9]))
    # Cuatro pérdidas de lote que suben y bajan (una ejecución en vivo de 4 pasos): parecen una meseta,
    # pero con tan pocos puntos no se puede juzgar (con la regla sin mínimo, saldría «convergida»).
    assert math.isinf(relative_slope([3.2, 3.5, 3.1, 3.3]))
    assert math.isinf(relative_slope([1.0, float("nan"), 0.9, 0.8]))
    assert not compare({"A": [1.0, 1.0, 1.0], "B": [2.0, 2.0, 2.0]}, curves={}).conclusive


def test_tasa_en_el_borde_de_la_rejilla():
    results = {"A": [1.0, 1.001, 1.002], "B": [1.1, 1.101, 1.102]}
    grid = (1e-4, 3e-4, 1e-3)
    v = compare(results, lr_grid=grid, chosen_lr={"A": 1e-3, "B": 3e-4})
    assert not v.conclusive and v.failed == ("borde_rejilla",)
    assert "A (0.001, la mayor" in v.text and "B (" not in v.text
    assert compare(results, lr_grid=grid, chosen_lr={"A": 3e-4, "B": 1e-4}).failed == ("borde_rejilla",)
    # El orden de la rejilla no importa, y en el interior no hay fallo.
    assert compare(results, lr_grid=(1e-3, 1e-4, 3e-4), chosen_lr={"A": 3e-4, "B": 3e-4}).conclusive


def test_rejilla_por_opcion():
    # Cada método con su escala (cuaderno 07): 6e-4 es el borde de la del completo y el interior de otra.
    results = {"completo": [1.0, 1.001, 1.002], "LoRA": [1.1, 1.101, 1.102]}
    grids = {"completo": (6e-5, 2e-4, 6e-4), "LoRA": (3e-4, 6e-4, 1e-3)}
    inside = compare(results, lr_grid=grids, chosen_lr={"completo": 2e-4, "LoRA": 6e-4})
    assert inside.conclusive
    edge = compare(results, lr_grid=grids, chosen_lr={"completo": 6e-4, "LoRA": 6e-4})
    assert edge.failed == ("borde_rejilla",) and "completo" in edge.text and "LoRA (" not in edge.text


def test_pocas_semillas():
    # Una semilla por opción y una diferencia enorme: aun así, no concluyente.
    v = compare({"A": [1.0], "B": [2.0]})
    assert not v.conclusive and v.failed == ("pocas_semillas",)
    assert "1 semilla por opción" in v.text and "al menos 3" in v.text
    # Dos semillas separadas: tampoco (por azar pasa 1 de cada 3 veces).
    assert compare({"A": [1.0, 1.01], "B": [2.0, 2.01]}).failed == ("pocas_semillas",)
    # Bajando el mínimo, lo mismo sí es concluyente.
    assert compare({"A": [1.0, 1.01], "B": [2.0, 2.01]}, min_seeds=2).conclusive


def test_cada_condicion_que_falla_aparece():
    # Una ejecución en vivo típica: 1 semilla, pocos pasos, la tasa en el borde.
    v = compare(
        {"A": [1.62], "B": [1.62]},
        curves={"A": FALLING, "B": [2.0, 1.9]},
        lr_grid=(1e-4, 3e-4, 1e-3),
        chosen_lr={"A": 1e-3, "B": 1e-4},
    )
    assert v.failed == ("pocas_semillas", "ruido", "sin_converger", "borde_rejilla")
    assert v.text.startswith("no concluyente: ")
    for words in ("semilla", "se solapan", "sigue bajando", "borde"):
        assert words in v.text


def test_valores_no_finitos():
    v = compare({"A": [1.0, 1.0, 1.0], "B": [float("nan"), 2.0, 2.0], "C": [1.5, 1.5, 1.5]})
    assert not v.conclusive and v.failed == ("no_finito",) and "B" in v.text


def test_errores_en_espanol():
    with pytest.raises(ValueError, match="al menos dos opciones"):
        compare({"A": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="no tiene ningún valor"):
        compare({"A": [1.0], "B": []})
    with pytest.raises(ValueError, match="no está en su rejilla"):
        compare({"A": [1.0], "B": [2.0]}, lr_grid=(1e-4, 1e-3), chosen_lr={"A": 5e-4})
    with pytest.raises(ValueError, match="chosen_lr"):
        compare({"A": [1.0], "B": [2.0]}, lr_grid=(1e-4, 1e-3))


def test_probabilidad_de_separarse_por_azar():
    assert seed_separation_chance([3, 3]) == pytest.approx(0.1)
    assert seed_separation_chance([2, 2]) == pytest.approx(1 / 3)
    assert seed_separation_chance([3] * 6) == pytest.approx(6 / math.comb(18, 3))
    # Simulación: opciones iguales (ruido puro) → la regla se cumple con esa frecuencia.
    rng = random.Random(1)
    hits = sum(compare({k: [rng.random() for _ in range(3)] for k in "AB"}).conclusive for _ in range(4000))
    assert abs(hits / 4000 - 0.1) < 0.02


def test_no_importa_torch():
    code = "import sys, helpers.evidence; assert 'torch' not in sys.modules, 'importa torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_una_sola_tasa_es_un_borde():
    # Sin barrer la tasa (una rejilla de un valor) no se sabe si es buena para cada opción.
    v = compare({"A": [1.0, 1.001, 1.002], "B": [1.1, 1.101, 1.102]}, lr_grid=(1e-3,), chosen_lr={"A": 1e-3, "B": 1e-3})
    assert (
        v.failed == ("borde_rejilla",)
        and "no se ha barrido la tasa de aprendizaje en ninguna opción (una sola tasa, 0.001)" in v.text
    )


def test_repeticiones_con_otro_nombre():
    # Tiempos: cada paso medido es una repetición; la frase habla de medidas, no de semillas.
    fast, slow = [0.10, 0.11, 0.10], [0.13, 0.14, 0.135]
    v = compare({"LoRA": fast, "DoRA": slow}, metric="tiempo por paso (s)", repeats="medidas")
    assert v.conclusive and v.best == "LoRA" and "3 medidas" in v.text and "semilla" not in v.text
    short = compare({"LoRA": fast[:1], "DoRA": slow[:1]}, repeats="medidas")
    assert short.failed == ("pocas_semillas",) and "1 medida por opción" in short.text


# Frases que concluían de una ejecución en vivo de una semilla y pocos pasos (issue 22) y no deben volver.
UNSUPPORTED = {
    "05": ("más rango no compra nada", "el rango que hace falta es ese"),
    "07": ("suele ganar la tasa", "en el borde de la rejilla: ampliarla" + '" \\'),
    "08": ('"supera el ruido" if', "DoRA es más lenta que LoRA"),
}


@pytest.mark.parametrize("number", ["05", "07", "08"])
def test_los_cuadernos_dan_el_veredicto_con_evidence(number):
    import nbformat

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from solution_code import notebook_path

    nb = nbformat.read(notebook_path(number), as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    text = "\n".join(c.source for c in nb.cells)
    assert "from helpers.evidence import" in code, f"el cuaderno {number} debe dar su veredicto con helpers.evidence"
    assert "no concluyente" in text
    for phrase in UNSUPPORTED[number]:
        assert phrase not in text, f"«{phrase}» vuelve al cuaderno {number}: concluye sin pruebas"
