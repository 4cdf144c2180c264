"""Cuaderno 05 (experimentos de rango): el módulo helpers.sweep y lo que el cuaderno debe cumplir."""
import math
from pathlib import Path

import nbformat
import pytest
import torch
from peft import LoraConfig, get_peft_model

import helpers
from helpers.sweep import final_loss, fixed_batches, memory_in_use, train_adapter

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "05_experimentos_rango" / "05_experimentos_rango.ipynb"


def solution_namespace(*grade_ids):
    """Ejecuta las celdas de la solución con esos grade_id en un espacio de nombres nuevo."""
    import pandas as pd

    import helpers.sweep as sweep

    nb = nbformat.read(SOLUTION, as_version=4)
    sources = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nb.cells}
    namespace = {"helpers": helpers, "torch": torch, "LoraConfig": LoraConfig, "get_peft_model": get_peft_model,
                 "pd": pd, "final_loss": sweep.final_loss, "train_adapter": sweep.train_adapter,
                 "COLUMNS": ["r", "alpha", "módulos", "parámetros entrenables", "pérdida final", "segundos", "% sobre la mejor"]}
    for grade_id in grade_ids:
        exec(sources[grade_id], namespace)
    return namespace


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


def test_perdida_final():
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
    rank_sweep = solution_namespace("rank_sweep")["rank_sweep"]
    results = rank_sweep([1, 2, 4], fixed_batches(tokenizer, 2), learning_rate=1e-2, profile="tiny")
    assert calls == {"load": 3, "free": 3}
    assert [x["trainable"] for x in results] == [results[0]["trainable"] * r for r in (1, 2, 4)]
    # Misma semilla y mismos lotes: el primer paso (antes de actualizar nada) da la misma pérdida.
    assert len({round(x["losses"][0], 6) for x in results}) == 1


def test_tabla_y_rango_minimo_de_la_solucion():
    ns = solution_namespace("conclusion_table", "smallest_good_rank")
    results = [
        {"r": 1, "alpha": 2, "target_modules": "all-linear", "trainable": 10, "losses": [2.0], "final_loss": 2.2, "seconds": 1.0},
        {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"], "trainable": 40, "losses": [2.0], "final_loss": 2.0, "seconds": 1.1},
    ]
    table = ns["conclusion_table"](results)
    assert table.shape == (2, 7) and table["módulos"].tolist() == ["all-linear", "q_proj,v_proj"]
    assert table["% sobre la mejor"].tolist() == pytest.approx([10.0, 0.0])
    assert ns["smallest_good_rank"](results, 0.05) == 4 and ns["smallest_good_rank"](results, 0.2) == 1


def test_cuaderno_barre_los_rangos_del_temario_y_cita_la_regla():
    nb = nbformat.read(SOLUTION, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "RANKS = [1, 2, 4, 8, 16, 32]" in code
    assert "helpers.plot_xy" in code and "helpers.free_memory()" in code
    for needed in ("regla práctica", "Raschka", "2106.09685", "2312.03732", "ruido"):
        assert needed in text, f"falta «{needed}» en el texto del cuaderno 05"


def test_train_adapter_sin_entrenables_avisa(tokenizer):
    model = helpers.load_model("tiny", verbose=False).requires_grad_(False)
    with pytest.raises(ValueError, match="entrenables"):
        train_adapter(model, fixed_batches(tokenizer, 1), progress=False)
