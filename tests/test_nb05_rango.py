"""Cuaderno 05 (experimentos de rango): el módulo helpers.sweep y lo que el cuaderno debe cumplir."""

import math
import statistics
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

import helpers
from helpers.sweep import final_loss, fixed_batches, memory_in_use, train_adapter, train_steps

sys.path.insert(0, str(Path(__file__).parent))
from solution_code import notebook_path, solution_namespace  # noqa: E402

SOLUTION = notebook_path("05")


def namespace(*grade_ids):
    """Las celdas de solución del 05, con lo que importa el cuaderno y sus columnas."""
    columns = next(c.source for c in nbformat.read(SOLUTION, as_version=4).cells if c.source.startswith("COLUMNS ="))
    extra = {
        "helpers": helpers,
        "torch": torch,
        "nn": nn,
        "math": math,
        "statistics": statistics,
        "pd": pd,
        "LoraConfig": LoraConfig,
        "get_peft_model": get_peft_model,
        "final_loss": final_loss,
        "train_steps": train_steps,
    }
    exec(columns, extra)
    return solution_namespace("05", *grade_ids, **extra)


def low_rank(d_out, d_in, singular_values, seed):
    """ΔW con valores singulares conocidos: U diag(σ) Vᵀ con U y V ortonormales."""
    g = torch.Generator().manual_seed(seed)
    k = len(singular_values)
    U = torch.linalg.qr(torch.randn(d_out, k, generator=g)).Q
    V = torch.linalg.qr(torch.randn(d_in, k, generator=g)).Q
    return U @ torch.diag(torch.tensor(singular_values)) @ V.T


@pytest.fixture(scope="module")
def tokenizer():
    return helpers.load_tokenizer("tiny")


def test_lotes_fijos_reproducibles_y_enmascarados(tokenizer):
    a = fixed_batches(tokenizer, 2, batch_size=3, max_length=64)
    b = fixed_batches(tokenizer, 2, batch_size=3, max_length=64)
    assert len(a) == 2
    for x, y in zip(a, b):
        assert x["input_ids"].shape == (3, 64)
        assert all(torch.equal(x[k], y[k]) for k in ("input_ids", "attention_mask", "labels"))
        # Relleno y pregunta sin pérdida; la respuesta sí cuenta.
        assert (x["labels"][x["attention_mask"] == 0] == -100).all()
        assert (x["labels"][:, 0] == -100).all() and (x["labels"] != -100).any()
    other = fixed_batches(tokenizer, 2, batch_size=3, max_length=64, seed=1)
    assert not torch.equal(a[0]["input_ids"], other[0]["input_ids"])


def test_perdida_de_entrenamiento_final():
    assert final_loss([4.0, 3.0, 2.0, 1.0]) == 2.0
    assert final_loss([5.0, 1.0], last=3) == 3.0
    assert math.isnan(final_loss([]))


def test_train_adapter_aprende(tokenizer):
    model = helpers.load_model("tiny", verbose=False)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    batch = fixed_batches(tokenizer, 1)[0]
    losses = train_adapter(model, [batch] * 4, learning_rate=1e-2, progress=False)
    assert len(losses) == 4 and losses[-1] < losses[0]


def test_memoria_en_uso():
    assert isinstance(memory_in_use(), int) and memory_in_use() > 0


def test_suelo_y_ajuste_de_la_solucion_con_rango_conocido():
    """Eckart–Young con valores singulares elegidos (3, 1): la solución llega a σ₂² / (σ₁² + σ₂²) con r = 1."""
    ns = namespace("rank_floor", "fit_lora_to_update")
    delta = low_rank(10, 12, [3.0, 1.0], seed=4)
    assert ns["rank_floor"](delta, 1) == pytest.approx(0.1, abs=1e-5)
    W = torch.randn(10, 12, generator=torch.Generator().manual_seed(1)) / 12**0.5
    fit = ns["fit_lora_to_update"]
    one, two = fit(W, delta, 1), fit(W, delta, 2)
    assert one[0] == pytest.approx(1.0, abs=1e-5)
    assert one[-1] == pytest.approx(0.1, abs=0.01) and two[-1] < 1e-3
    # Misma escala (α/√r = 4/√4 = 2 = α/r con α = 2r): mismo entrenamiento.
    assert fit(W, delta, 4, steps=20, alpha=4, use_rslora=True) == pytest.approx(fit(W, delta, 4, steps=20), rel=1e-5)


def test_barrido_de_la_solucion_carga_y_libera_en_cada_rango(tokenizer, monkeypatch):
    """La solución carga un modelo base nuevo y libera la memoria una vez por rango."""
    calls = {"load": 0, "free": 0}
    real_load, real_free = helpers.load_model, helpers.free_memory

    def load(*args, **kwargs):
        calls["load"] += 1
        return real_load(*args, **kwargs)

    def free():
        calls["free"] += 1
        real_free()

    monkeypatch.setattr(helpers, "load_model", load)
    monkeypatch.setattr(helpers, "free_memory", free)
    rank_sweep = namespace("rank_sweep")["rank_sweep"]
    eval_batches = helpers.held_out_batches(tokenizer, limit=4)
    results = rank_sweep([1, 2, 4], fixed_batches(tokenizer, 2), eval_batches, learning_rate=1e-2, profile="tiny")
    assert calls == {"load": 3, "free": 3}
    assert [x["trainable"] for x in results] == [results[0]["trainable"] * r for r in (1, 2, 4)]
    assert [x["alpha"] for x in results] == [2, 4, 8]
    # Misma semilla y mismos lotes: el primer paso (antes de actualizar nada) da la misma pérdida.
    assert len({round(x["train_losses"][0], 6) for x in results}) == 1
    # La pérdida final es la de validación, no la de entrenamiento.
    assert all(x["held_out_loss"] != x["train_loss"] and math.isfinite(x["held_out_loss"]) for x in results)
    assert all(x["memory_bytes"] > 0 and x["seconds_per_step"] > 0 for x in results)


def test_tabla_y_rango_minimo_de_la_solucion():
    ns = namespace("conclusion_table", "smallest_good_rank")
    results = [
        {
            "r": 1,
            "alpha": 16,
            "trainable": 10,
            "train_loss": 1.0,
            "held_out_loss": 2.2,
            "seconds_per_step": 1.0,
            "memory_bytes": 3e6,
        },
        {
            "r": 4,
            "alpha": 16,
            "trainable": 40,
            "train_loss": 0.5,
            "held_out_loss": 2.0,
            "seconds_per_step": 1.1,
            "memory_bytes": 5e6,
        },
    ]
    table = ns["conclusion_table"](results)
    assert table.shape == (2, 8) and table["memoria (MB)"].tolist() == pytest.approx([3.0, 5.0])
    assert table["% sobre la mejor"].tolist() == pytest.approx([10.0, 0.0])
    assert ns["smallest_good_rank"](results, 0.05) == 4 and ns["smallest_good_rank"](results, 0.2) == 1


def test_cuaderno_barre_los_rangos_del_temario_y_cita_la_regla():
    nb = nbformat.read(SOLUTION, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "RANKS = [1, 2, 4, 8, 16, 32]" in code
    assert "helpers.plot_xy" in code and "helpers.free_memory()" in code
    assert "helpers.held_out_loss" in code and "use_rslora" in code
    for needed in (
        "regla práctica",
        "Raschka",
        "2106.09685",
        "2312.03732",
        "ruido",
        "Eckart–Young",
        "2\\sqrt{r}",
        "α fijo",
        "pérdida de entrenamiento (media de los últimos 3 pasos)",
    ):
        assert needed in text, f"falta «{needed}» en el texto del cuaderno 05"
    # El consejo equivocado (rsLoRA con α = 2r «para que la velocidad no dependa del rango») no vuelve.
    assert "no dependa del rango" not in text


def test_train_adapter_sin_entrenables_avisa(tokenizer):
    model = helpers.load_model("tiny", verbose=False).requires_grad_(False)
    with pytest.raises(ValueError, match="entrenables"):
        train_adapter(model, fixed_batches(tokenizer, 1), progress=False)
