"""Cuaderno 09 (del adaptador a producción): las soluciones de los ejercicios, ejecutadas desde
solutions/, contra casos hechos a mano, contra peft y contra los archivos que escribe export_gguf;
y la caja de herramientas que usa (helpers.serving)."""

import math
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import helpers
from helpers import serving
from helpers.adapters import add_random_adapters, tiny_llama
from helpers.export import export_gguf, load_gguf_model, read_gguf
from helpers.memory_planner import GPUS_GB

sys.path.insert(0, str(Path(__file__).parent))
from solution_code import solution_namespace  # noqa: E402
from wrong_answers.nb09 import WRONG  # noqa: E402

NAME = "09"


def solution(grade_id, **extra):
    return solution_namespace(NAME, grade_id, torch=torch, pd=pd, **extra)[grade_id]


def wrong(grade_id):
    namespace = {"torch": torch, "pd": pd}
    exec(WRONG[grade_id], namespace)
    return namespace[grade_id]


# ---------------------------------------------------------------- ejercicio 1: top1_agreement


def test_top1_agreement_solo_cuenta_posiciones_reales():
    top1 = solution("top1_agreement")
    a = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(0))
    b = a.clone()
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    b[0, 3, (a[0, 3].argmax() + 1) % 6] = a[0, 3].max() + 1  # relleno: no cuenta
    assert top1(a, b, mask) == pytest.approx(1.0)
    b[1, 0, (a[1, 0].argmax() + 2) % 6] = a[1, 0].max() + 1  # una de las 5 reales
    assert top1(a, b, mask) == pytest.approx(4 / 5)
    assert isinstance(top1(a, b, mask), float)
    # La respuesta errónea (sin máscara) da otro número: la prueba del cuaderno la distingue.
    assert wrong("top1_agreement")(a, b, mask) != pytest.approx(4 / 5)


@pytest.mark.slow
def test_ida_y_vuelta_f16_del_fusionado_coincide(tmp_path):
    """Lo que califica el cuaderno: fusionar un adaptador, exportar a f16 y volver a leer da el mismo
    token más probable en al menos el 99 % de las posiciones reales."""
    top1 = solution("top1_agreement")
    tokenizer = helpers.load_tokenizer("tiny")
    model = add_random_adapters(
        helpers.load_model("tiny", dtype=torch.float32, verbose=False),
        {"geo": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj", "down_proj"]}},
        seed=2,
    )
    merged = model.merge_and_unload().eval()
    batch = tokenizer(
        ["Hola, ¿qué tal?", "La capital de Chile es Santiago y la de Perú, Lima."], return_tensors="pt", padding=True
    )
    path = export_gguf(merged, tmp_path / "m-f16.gguf", "f16")
    back = load_gguf_model(path, reader=read_gguf(path))
    with torch.no_grad():
        agreement = top1(back(**batch).logits, merged(**batch).logits, batch["attention_mask"])
    assert agreement >= 0.99


# ---------------------------------------------------------------- ejercicio 2: gguf_tensor_bytes


@pytest.mark.parametrize(("tied", "quantization"), [(True, "f16"), (True, "q8_0"), (False, "f16"), (False, "q8_0")])
def test_gguf_tensor_bytes_es_lo_que_escribe_export_gguf(tmp_path, tied, quantization):
    count = solution("gguf_tensor_bytes")
    model = tiny_llama(seed=1, intermediate_size=64, tie_word_embeddings=tied)
    reader = read_gguf(export_gguf(model, tmp_path / "m.gguf", quantization))
    written = sum(int(t.n_bytes) for t in reader.tensors)
    assert count(model, quantization) == written
    if quantization == "q8_0":
        assert wrong("gguf_tensor_bytes")(model, quantization) != written
    with pytest.raises(ValueError):
        count(model, "q4_k")


# ---------------------------------------------------------------- ejercicio 3: serve_mixed


def one_by_one(peft_model, tokenizer, requests, new_tokens):
    answers = []
    for name, question in requests:
        if name is None:
            with peft_model.disable_adapter():
                answers.append(helpers.generate(peft_model, tokenizer, question, max_new_tokens=new_tokens))
        else:
            peft_model.set_adapter(name, inference_mode=True)
            answers.append(helpers.generate(peft_model, tokenizer, question, max_new_tokens=new_tokens))
    return answers


@pytest.fixture(scope="module")
def served():
    tokenizer = helpers.load_tokenizer("tiny")
    targets = ["q_proj", "v_proj", "o_proj", "down_proj"]
    model = add_random_adapters(
        helpers.load_model("tiny", dtype=torch.float32, verbose=False),
        {n: {"r": 4, "lora_alpha": 16, "target_modules": targets} for n in ("norte", "sur")},
        seed=17,
    )
    questions = ["Hola", "¿Cuál es la capital de Chile y por qué?", "Dime un número", "Reseña: muy mal, nada"]
    requests = [
        ("norte", questions[0]),
        ("sur", questions[1]),
        (None, questions[2]),
        ("sur", questions[3]),
        ("norte", questions[1]),
    ]
    return model, tokenizer, requests, one_by_one(model, tokenizer, requests, 6)


def agreement(answers, expected):
    return sum(a == b for a, b in zip(answers, expected)) / len(expected)


def test_serve_mixed_igual_que_una_a_una(served):
    model, tokenizer, requests, expected = served
    serve = solution("serve_mixed")
    tokenizer.padding_side = "right"
    answers = serve(model, tokenizer, requests, max_new_tokens=6)
    assert tokenizer.padding_side == "right"
    assert agreement(answers, expected) >= 0.75
    assert len(set(one_by_one(model, tokenizer, [("norte", "Hola"), ("sur", "Hola"), (None, "Hola")], 6))) > 1
    with pytest.raises(ValueError, match="no cargados"):
        serve(model, tokenizer, [("c", "Hola")])


def test_serve_mixed_con_relleno_a_la_derecha_no_pasa(served):
    """La prueba del cuaderno distingue el error típico (relleno a la derecha)."""
    model, tokenizer, requests, expected = served
    tokenizer.padding_side = "right"
    assert agreement(wrong("serve_mixed")(model, tokenizer, requests, max_new_tokens=6), expected) < 0.75


# ---------------------------------------------------------------- ejercicio 4: latency_table


def test_latency_table_casos_a_mano():
    table = solution("latency_table")({"cola": [(1.0, 10), (3.0, 20)], "lote": [(2.0, 15), (2.0, 15)]})
    assert list(table.index) == ["cola", "lote"]
    assert table.loc["cola", "tokens/s"] == pytest.approx(10.0)
    assert table.loc["lote", "tokens/s"] == pytest.approx(15.0)
    assert table.loc["cola", "latencia media (s)"] == pytest.approx(2.0)
    assert table.loc["cola", "latencia máxima (s)"] == pytest.approx(3.0)
    assert int(table.loc["cola", "peticiones"]) == 2
    with pytest.raises(ValueError):
        solution("latency_table")({"vacía": []})
    # La media de velocidades de cada petición no es el rendimiento: (10/1 + 20/3) / 2 ≠ 10.
    assert wrong("latency_table")({"cola": [(1.0, 10), (3.0, 20)]}).loc["cola", "tokens/s"] != pytest.approx(10.0)


def test_latency_table_con_tiempos_medidos_de_verdad():
    """Con completion_times (lo que usa el cuaderno): la cola termina más tarde que cada petición sola."""
    ends = serving.completion_times([lambda: sum(range(20_000))] * 3)
    assert len(ends) == 3 and ends == sorted(ends) and ends[0] > 0
    table = solution("latency_table")({"cola": [(end, 5) for end in ends]})
    assert table.loc["cola", "tokens/s"] == pytest.approx(15 / ends[-1])


# ---------------------------------------------------------------- ejercicio 5: training_cost


@pytest.mark.parametrize(
    ("tokens", "epochs", "speed", "price", "hours"),
    [(1_000_000, 2, 500, 0.35, 4000 / 3600), (3_600_000, 1, 1000, 2.0, 1.0), (7_200_000, 0.5, 1000, 1.0, 1.0)],
)
def test_training_cost_casos_a_mano(tokens, epochs, speed, price, hours):
    got_hours, cost = solution("training_cost")(tokens, epochs, speed, price)
    assert got_hours == pytest.approx(hours) and cost == pytest.approx(hours * price)


def test_training_cost_errores_y_respuesta_erronea():
    cost = solution("training_cost")
    for args in [(1000, 1, 0, 1.0), (1000, 0, 100, 1.0), (1000, 1, -5, 1.0)]:
        with pytest.raises(ValueError):
            cost(*args)
    assert wrong("training_cost")(1_000_000, 2, 500, 0.35)[0] != pytest.approx(4000 / 3600)


# ---------------------------------------------------------------- helpers.serving


def test_flops_por_token_y_tokens_por_segundo():
    assert serving.training_flops_per_token(10) == 40
    assert serving.training_flops_per_token(10, gradient_checkpointing=True) == 60
    # 50 % de 1,2·10¹² FLOP/s con 4·10⁹ FLOPs por token (N = 10⁹): 150 tokens/s.
    assert serving.estimated_tokens_per_second(10**9, 1.2e12, 0.5) == pytest.approx(150.0)
    assert serving.estimated_tokens_per_second(10**9, 1.2e12, 0.5, gradient_checkpointing=True) == pytest.approx(100.0)
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ValueError):
            serving.estimated_tokens_per_second(10**9, 1e12, bad)
    with pytest.raises(ValueError):
        serving.training_flops_per_token(0)


def test_matmul_flops_es_positivo_y_finito():
    flops = serving.matmul_flops(size=128, repeats=2)
    assert math.isfinite(flops) and flops > 1e6


def test_cada_gpu_tiene_fuentes_y_esta_en_el_planificador():
    assert set(serving.GPUS) == {"T4", "L4", "A100"}
    for gpu in serving.GPUS.values():
        assert gpu.planner_name in GPUS_GB
        assert gpu.peak_tflops > 0 and gpu.price_per_hour > 0 and gpu.currency
        assert gpu.tflops_source.startswith("https://") and "http" in gpu.price_source
        assert gpu.price_date
        if gpu.price_checked:  # una cifra comprobada lleva fecha (AAAA-MM-DD)
            assert gpu.price_date[:4].isdigit() and gpu.price_date[4] == "-"
    # Más potencia de pico, en el orden de siempre.
    assert serving.GPUS["T4"].peak_tflops < serving.GPUS["L4"].peak_tflops < serving.GPUS["A100"].peak_tflops
