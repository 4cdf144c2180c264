"""Propiedades del cuaderno 01 que no son celdas calificadas.

Las soluciones de los ejercicios (sacadas del cuaderno del profesorado) tienen que ser coherentes
entre sí y con ``helpers``, y el cuaderno publicado no debe filtrar nada de ellas.
"""

import re
from pathlib import Path

import nbformat
import pytest
import torch
from torch import nn

import helpers

ROOT = Path(__file__).resolve().parent.parent
NAME = "01_introduccion_peft"
SOLUTION = ROOT / "solutions" / NAME / f"{NAME}.ipynb"
RELEASED = ROOT / "notebooks" / NAME / f"{NAME}.ipynb"
FUNCTIONS = ("count_params", "full_ft_memory_bytes", "freeze_all_but", "training_memory_bytes")


@pytest.fixture(scope="module")
def solved():
    """Las cuatro funciones de la solución, ejecutadas en un espacio de nombres propio."""
    nb = nbformat.read(SOLUTION, as_version=4)
    namespace = {"torch": torch, "nn": nn}
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") in FUNCTIONS:
            exec(cell.source, namespace)  # noqa: S102 (código nuestro, del cuaderno de soluciones)
    return namespace


@pytest.fixture(scope="module")
def tiny():
    return helpers.load_model("tiny", verbose=False)


def test_count_params_igual_que_helpers(solved, tiny):
    tiny.requires_grad_(True)
    tiny.model.embed_tokens.requires_grad_(False)
    try:
        reference = helpers.count_parameters(tiny)
        assert solved["count_params"](tiny) == (reference.total, reference.trainable)
    finally:
        tiny.requires_grad_(True)


def test_memoria_coherente_entre_ejercicios(solved, tiny):
    """Todo entrenable y en fp32: la cuenta por tensores (🦁) coincide con la fórmula (🐕)."""
    tiny.requires_grad_(True)
    total, _ = solved["count_params"](tiny)
    assert next(tiny.parameters()).dtype == torch.float32
    for optimizer in ("adamw", "sgd"):
        assert solved["training_memory_bytes"](tiny, optimizer) == solved["full_ft_memory_bytes"](total, 4, optimizer)


def test_congelar_y_contar(solved, tiny):
    names = ["model.norm.weight", f"model.layers.{tiny.config.num_hidden_layers - 1}.self_attn.q_proj.weight"]
    try:
        solved["freeze_all_but"](tiny, names)
        params = dict(tiny.named_parameters())
        _, trainable = solved["count_params"](tiny)
        assert trainable == sum(params[n].numel() for n in names)
        weights = sum(p.numel() * p.element_size() for p in tiny.parameters())
        extra = sum(params[n].numel() * params[n].element_size() for n in names)
        assert solved["training_memory_bytes"](tiny) == weights + 3 * extra
    finally:
        tiny.requires_grad_(True)


def test_publicado_sin_soluciones():
    text = RELEASED.read_text(encoding="utf-8")
    for leak in (
        "BEGIN SOLUTION",
        "BEGIN HIDDEN TESTS",
        "states_per_weight",
        "states_per_param",
        "MixedNet",
        "TiedNet",
    ):
        assert leak not in text, f"el cuaderno publicado contiene «{leak}»"
    assert text.count("raise NotImplementedError()") == len(FUNCTIONS)


def test_cifra_publicada_citada():
    """Los 18 bytes/parámetro de la precisión mixta se citan con su fuente y su enlace."""
    nb = nbformat.read(SOLUTION, as_version=4)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert re.search(r"según la documentación de `transformers`[^\n]*18 bytes", prose)
    assert "https://huggingface.co/docs/transformers/model_memory_anatomy" in prose
