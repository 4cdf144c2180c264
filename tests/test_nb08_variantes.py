"""Cuaderno 08 (variantes de LoRA): el módulo helpers.variants y las soluciones, contra peft."""

import math
import statistics
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.optimizers import create_loraplus_optimizer

import helpers
from helpers.sweep import fixed_batches
from helpers.variants import (
    lora_layers,
    measure_variant,
    nf4_roundtrip,
    quantize_base,
    set_lora_init,
    train_with_optimizer,
)

sys.path.insert(0, str(Path(__file__).parent))
from solution_code import notebook_path, solution_namespace  # noqa: E402

NAME = "08_variantes_lora"
PROFILE = "tiny"
COLUMNS = [
    "variante",
    "entrenables",
    "s/paso",
    "memoria pico (MB)",
    "pérdida final",
    "Δ frente a LoRA",
    "¿supera el ruido?",
]


@pytest.fixture(scope="module")
def tokenizer():
    return helpers.load_tokenizer(PROFILE)


@pytest.fixture(scope="module")
def batches(tokenizer):
    return fixed_batches(tokenizer, 3, batch_size=2)


@pytest.fixture(scope="module")
def held_out(tokenizer):
    return helpers.held_out_batches(tokenizer, limit=4)


@pytest.fixture(scope="module")
def answers():
    import pandas as pd

    return solution_namespace(
        NAME,
        "lora_scale",
        "dora_trainable",
        "dora_weight",
        "loftq_factors",
        "variants_table",
        torch=torch,
        math=math,
        pd=pd,
        nf4_roundtrip=nf4_roundtrip,
        COLUMNS=COLUMNS,
    )


def tiny_lora(**options):
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], **options)
    return get_peft_model(helpers.load_model(PROFILE, verbose=False), config)


# ---------------------------------------------------------------- helpers.variants


def test_nf4_roundtrip_cuantiza_de_verdad():
    w = torch.randn(32, 128, generator=torch.Generator().manual_seed(0))
    q = nf4_roundtrip(w)
    assert q.shape == w.shape and q.dtype == w.dtype
    error = float((w - q).norm() / w.norm())
    assert 0.01 < error < 0.2, error  # NF4: ni exacta ni basura
    assert torch.equal(nf4_roundtrip(q), q)  # ya cuantizada: no cambia
    # Cada bloque de 64 valores usa como mucho los 16 niveles de NF4.
    assert all(len(torch.unique(block)) <= 16 for block in q.reshape(-1, 64))
    with pytest.raises(ValueError, match="matriz"):
        nf4_roundtrip(torch.randn(2, 3, 4))


def test_quantize_base_solo_cambia_las_capas_con_lora():
    model = tiny_lora()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    layers = lora_layers(model)
    assert quantize_base(model) == len(layers) > 0
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.endswith("base_layer.weight") for n in changed)
    for layer in layers:
        weight = layer.get_base_layer().weight
        assert torch.equal(nf4_roundtrip(weight.data), weight.data)


def test_set_lora_init_pone_q_a_b_y_respeta_la_escala(held_out):
    model = tiny_lora()
    reference = helpers.held_out_loss(tiny_lora(), held_out)
    gen = torch.Generator().manual_seed(1)

    def split(weight, r):
        a = torch.randn(r, weight.shape[1], generator=gen)
        b = torch.randn(weight.shape[0], r, generator=gen)
        return weight - b @ a, a, b

    assert set_lora_init(model, split) == len(lora_layers(model))
    layer = lora_layers(model)[0]
    assert float(layer.lora_B["default"].weight.norm()) > 0  # B ya no empieza en 0
    # Q + s·(B/s)·A = W: el modelo da lo mismo que antes.
    assert helpers.held_out_loss(model, held_out) == pytest.approx(reference, rel=1e-4)
    with pytest.raises(ValueError, match="forma"):
        set_lora_init(model, lambda w, r: (w, torch.zeros(r + 1, w.shape[1]), torch.zeros(w.shape[0], r)))


def test_lora_layers_sin_adaptador_avisa():
    with pytest.raises(ValueError, match="get_peft_model"):
        lora_layers(helpers.load_model(PROFILE, verbose=False))


def test_train_with_optimizer_aprende(batches):
    model = tiny_lora()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses, seconds = train_with_optimizer(model, [batches[0]] * 5, optimizer)
    assert len(losses) == len(seconds) == 5 and all(s > 0 for s in seconds)
    assert losses[-1] < losses[0]


def test_measure_variant_mide_una_fila(batches, held_out):
    model = tiny_lora()
    row = measure_variant("LoRA", model, batches, held_out, learning_rate=1e-2)
    assert set(row) == {
        "variante",
        "entrenables",
        "s/paso",
        "memoria pico (bytes)",
        "pérdida final",
        "pérdidas",
        "segundos",
    }
    # Los segundos de cada paso medido (sin los dos perfilados, o solo el segundo con 2 lotes): su mediana es s/paso.
    assert len(row["segundos"]) == max(1, len(batches) - 2) and all(t > 0 for t in row["segundos"])
    assert row["s/paso"] == pytest.approx(statistics.median(row["segundos"]))
    assert row["entrenables"] == helpers.count_parameters(model).trainable
    assert len(row["pérdidas"]) == len(batches) and all(math.isfinite(v) for v in row["pérdidas"])
    assert row["s/paso"] > 0 and row["memoria pico (bytes)"] > 0
    assert row["pérdida final"] == pytest.approx(helpers.held_out_loss(model, held_out), rel=1e-6)
    with pytest.raises(ValueError, match="2 lotes"):
        measure_variant("LoRA", tiny_lora(), batches[:1], held_out, learning_rate=1e-2)


def test_measure_variant_pico_de_dos_pasos_es_el_de_todos(batches, held_out):
    """Perfilar solo los dos primeros pasos da el mismo pico que perfilar todo el entrenamiento."""
    assert len(batches) > 2
    row = measure_variant("LoRA", tiny_lora(), batches, held_out, learning_rate=1e-2)
    model = tiny_lora()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    with helpers.PeakMemory(tensors=True) as peak:
        train_with_optimizer(model, batches, optimizer)
    assert row["memoria pico (bytes)"] == pytest.approx(peak.peak_bytes, rel=0.01)


def test_measure_variant_usa_el_optimizador_de_lora_plus(batches, held_out):
    """Con el optimizador de LoRA+ (tasa 16 veces mayor para B), B se mueve más que con AdamW."""
    moved = {}
    for name, make in (
        ("adamw", None),
        ("plus", lambda m, lr: create_loraplus_optimizer(m, torch.optim.AdamW, lr=lr, loraplus_lr_ratio=16)),
    ):
        model = tiny_lora()
        measure_variant(name, model, batches, held_out, learning_rate=1e-3, make_optimizer=make)
        moved[name] = float(lora_layers(model)[0].lora_B["default"].weight.norm())
    assert moved["plus"] > 5 * moved["adamw"] > 0


# ---------------------------------------------------------------- soluciones


@pytest.mark.parametrize("alpha,r,rslora", [(16, 8, False), (16, 8, True), (7, 3, True), (5, 2, False)])
def test_solucion_escala_igual_que_peft(answers, alpha, r, rslora):
    model = get_peft_model(
        helpers.load_model(PROFILE, verbose=False),
        LoraConfig(r=r, lora_alpha=alpha, use_rslora=rslora, target_modules=["q_proj"]),
    )
    assert answers["lora_scale"](alpha, r, rslora) == pytest.approx(lora_layers(model)[0].scaling["default"], rel=1e-12)


def test_solucion_dora_entrenables_igual_que_peft(answers):
    for r, modules in ((2, ["q_proj", "up_proj"]), (6, ["k_proj", "o_proj", "down_proj"])):
        base = helpers.load_model(PROFILE, verbose=False)
        expected = answers["dora_trainable"](base, r, modules)
        model = get_peft_model(base, LoraConfig(r=r, lora_alpha=r, use_dora=True, target_modules=modules))
        assert expected == helpers.count_parameters(model).trainable
        # DoRA = LoRA + un valor de magnitud por neurona de salida de cada capa adaptada.
        out = sum(layer.get_base_layer().out_features for layer in lora_layers(model))
        assert expected - out == sum(p.numel() for n, p in model.named_parameters() if "lora_A" in n or "lora_B" in n)


@torch.no_grad()
def test_solucion_dora_igual_que_peft(answers):
    model = get_peft_model(
        helpers.load_model(PROFILE, verbose=False),
        LoraConfig(r=4, lora_alpha=8, use_dora=True, lora_dropout=0.0, target_modules=["gate_proj"]),
    )
    layer = lora_layers(model)[0].eval()
    gen = torch.Generator().manual_seed(0)
    layer.lora_B["default"].weight.copy_(0.2 * torch.randn(layer.lora_B["default"].weight.shape, generator=gen))
    layer.lora_magnitude_vector["default"].weight.mul_(1.5)
    weight = layer.get_base_layer().weight.detach().clone()
    mine = answers["dora_weight"](
        weight,
        layer.lora_A["default"].weight,
        layer.lora_B["default"].weight,
        layer.lora_magnitude_vector["default"].weight,
        layer.scaling["default"],
    )
    x = torch.randn(5, weight.shape[1], generator=gen)
    assert torch.allclose(x @ mine.T, layer(x), atol=1e-5, rtol=1e-4)
    layer.merge()
    assert torch.allclose(mine, layer.get_base_layer().weight, atol=1e-6, rtol=1e-5)
    # Una norma por fila (neurona de salida): cada fila de W' mide lo que dice m.
    assert torch.allclose(mine.norm(dim=1), 1.5 * torch.linalg.norm(weight, dim=1), rtol=1e-5)


def test_solucion_loftq_reduce_el_error_y_es_optima(answers):
    w = torch.randn(96, 64, generator=torch.Generator().manual_seed(3)) * 0.05
    plain = float((w - nf4_roundtrip(w)).norm())
    errors = []
    for iters in (1, 3):
        q, a, b = answers["loftq_factors"](w, 4, iters)
        assert torch.equal(nf4_roundtrip(q), q)
        errors.append(float((w - q - b @ a).norm()))
        tail = torch.linalg.svdvals(w - q)[4:].square().sum().sqrt()
        assert errors[-1] == pytest.approx(float(tail), rel=1e-4)
    q1, _, _ = answers["loftq_factors"](w, 4, 1)
    assert torch.equal(q1, nf4_roundtrip(w))
    assert errors[0] < plain


def test_solucion_tabla(answers):
    runs = [
        {
            "variante": v,
            "entrenables": 10,
            "s/paso": 1.0,
            "memoria pico (bytes)": 3e6,
            "pérdida final": loss,
            "pérdidas": [],
        }
        for v, loss in (("X", 1.9), ("LoRA", 2.0), ("Y", 2.05))
    ]
    table = answers["variants_table"](runs, 0.06)
    assert list(table.columns) == COLUMNS and table["variante"].tolist() == ["X", "LoRA", "Y"]
    assert table["Δ frente a LoRA"].tolist() == pytest.approx([-0.1, 0.0, 0.05])
    assert table["¿supera el ruido?"].tolist() == [True, False, False]
    assert table["memoria pico (MB)"].tolist() == pytest.approx([3.0] * 3)


# ---------------------------------------------------------------- el cuaderno


def test_cuaderno_usa_peft_y_cita_los_articulos():
    nb = nbformat.read(notebook_path(NAME), as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for needed in (
        "use_dora=True",
        "use_rslora=True",
        '"pissa_niter_4"',
        '"olora"',
        "create_loraplus_optimizer",
        "fixed_batches",
        "measure_variant",
        "helpers.held_out_batches",
    ):
        assert needed in code, f"falta «{needed}» en el código del cuaderno 08"
    for needed in (
        "2402.09353",
        "2312.03732",
        "2404.02948",
        "2406.01775",
        "2310.08659",
        "2402.12354",
        "LoftQConfig",
        "ruido",
        "validación",
        "DoRA (descomposición de pesos en magnitud y dirección",
    ):
        assert needed in text, f"falta «{needed}» en el texto del cuaderno 08"
    assert "nosotros" not in text.lower()
