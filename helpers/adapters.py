"""Modelos pequeños con adaptadores LoRA aleatorios, para probar fusiones y combinaciones.

Las pruebas del cuaderno 06 (las ocultas incluidas) y ``tests/test_nb06_fusion.py`` no confían en
los adaptadores que entrena el cuaderno: crean los suyos, con una semilla fija y pesos LoRA
aleatorios (``init_lora_weights=False``: también ``B`` es distinta de cero, así que cada adaptador
cambia de verdad la salida).

- :func:`tiny_llama`: un Llama diminuto aleatorio (semilla fija), en modo evaluación.
- :func:`add_random_adapters`: lo envuelve en un ``PeftModel`` con varios adaptadores aleatorios.
- :func:`peft_lora_layers`: las capas LoRA de ``peft`` de un modelo, por nombre.
- :func:`sample_inputs`: un lote fijo de identificadores de *tokens* con su máscara de atención.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .models import TINY_ARCHITECTURE

__all__ = ["add_random_adapters", "peft_lora_layers", "sample_inputs", "tiny_llama"]

# La arquitectura del Llama diminuto del curso, aún más pequeña y con su propio vocabulario.
TINY_DEFAULTS = {
    **TINY_ARCHITECTURE,
    "vocab_size": 128,
    "hidden_size": 32,
    "intermediate_size": 48,
    "max_position_embeddings": 64,
    "tie_word_embeddings": False,
}


def tiny_llama(seed: int = 0, **overrides):
    """Un ``LlamaForCausalLM`` aleatorio muy pequeño (fp32, modo evaluación).

    ``overrides`` cambia cualquier campo de ``LlamaConfig`` (p. ej. ``attention_bias=True``).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**{**TINY_DEFAULTS, **overrides})
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def add_random_adapters(model, specs: Mapping[str, Mapping], *, seed: int = 0, active: str | None = None):
    """Envuelve ``model`` en un ``PeftModel`` con un adaptador LoRA aleatorio por entrada de ``specs``.

    ``specs`` = ``{nombre: {"r": ..., "lora_alpha": ..., "target_modules": [...]}}`` (cualquier
    opción de ``LoraConfig``). Cada adaptador usa ``init_lora_weights=False`` y la semilla
    ``seed + i``. ``active`` elige el adaptador activo (por defecto, el primero). Ojo: como
    todo ``PeftModel``, modifica ``model`` en su sitio.
    """
    from peft import LoraConfig, get_peft_model

    peft_model = None
    for i, (name, options) in enumerate(specs.items()):
        config = LoraConfig(**{"lora_dropout": 0.0, "init_lora_weights": False, **options})
        torch.manual_seed(seed + i)
        if peft_model is None:
            peft_model = get_peft_model(model, config, adapter_name=name)
        else:
            peft_model.add_adapter(name, config)
    if peft_model is None:
        raise ValueError("specs no puede estar vacío: hace falta al menos un adaptador.")
    peft_model.set_adapter(active or next(iter(specs)), inference_mode=True)
    return peft_model.eval()


def peft_lora_layers(model) -> dict:
    """``{nombre: capa}`` con las capas LoRA de ``peft`` (``LoraLayer``) de ``model``."""
    from peft.tuners.lora import LoraLayer

    return {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}


def sample_inputs(vocab_size: int, *, batch: int = 2, length: int = 7, seed: int = 0, device=None) -> dict:
    """Un lote fijo ``{"input_ids", "attention_mask"}``; el último ejemplo lleva dos posiciones de relleno."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, vocab_size, (batch, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    if batch > 1 and length > 2:
        attention_mask[-1, -2:] = 0
    if device is not None:
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    return {"input_ids": input_ids, "attention_mask": attention_mask}
