"""Variantes de LoRA (cuaderno 08): las piezas para compararlas con justicia en la misma tarea.

- :func:`nf4_roundtrip`: cuantiza una matriz a NF4 con ``bitsandbytes`` (en la CPU también) y la
  descuantiza: los valores que «ve» una base de 4 bits, guardados en el tipo original;
- :func:`quantize_base`: hace eso mismo con los pesos de las capas que lleva un adaptador LoRA,
  para simular en la CPU la base cuantizada de QLoRA;
- :func:`set_lora_init`: pone en cada capa LoRA la base ``Q`` y los factores ``A``, ``B`` que
  devuelva una función de inicialización (la de LoftQ la escribes tú en el cuaderno);
- :func:`train_with_optimizer`: un paso por lote con el optimizador que le des (LoRA+ necesita
  el suyo); la precisión, como en :func:`helpers.sweep.train_steps`;
- :func:`measure_variant`: una fila de la tabla: parámetros entrenables, segundos por paso,
  memoria pico del entrenamiento y pérdida final (en validación).

La descomposición de DoRA, la escala de rsLoRA y la inicialización de LoftQ las escribes tú: aquí
no hay una función que lo haga por ti.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

import torch

from .evaluation import held_out_loss
from .measure import PeakMemory, count_parameters
from .sweep import prepare_for_training, train_steps
from .training import check_finite_losses

__all__ = ["lora_layers", "measure_variant", "nf4_roundtrip", "quantize_base", "set_lora_init", "train_with_optimizer"]


def nf4_roundtrip(weight: torch.Tensor, blocksize: int = 64) -> torch.Tensor:
    """``weight`` cuantizada a NF4 (bloques de ``blocksize``, sin doble cuantización) y descuantizada.

    Es lo que calcula una capa ``Linear4bit`` de QLoRA con sus pesos: la misma matriz, con el error
    de cuantización dentro. El resultado tiene la forma, el tipo y el dispositivo de ``weight``.
    """
    import bitsandbytes.functional as bnbf

    if weight.ndim != 2:
        raise ValueError(f"nf4_roundtrip espera una matriz (2 dimensiones); recibí la forma {tuple(weight.shape)}.")
    data = weight.detach().float().contiguous()
    packed, state = bnbf.quantize_4bit(data, blocksize=blocksize, quant_type="nf4")
    return bnbf.dequantize_4bit(packed, state).to(dtype=weight.dtype, device=weight.device)


def lora_layers(model) -> list:
    """Las capas de ``model`` que llevan un adaptador LoRA (con ``lora_A``), en orden."""
    layers = [m for m in model.modules() if hasattr(m, "lora_A") and hasattr(m, "get_base_layer") and len(m.lora_A)]
    if not layers:
        raise ValueError("El modelo no tiene capas LoRA: crea antes el adaptador con get_peft_model.")
    return layers


@torch.no_grad()
def quantize_base(model) -> int:
    """Sustituye el peso de cada capa con LoRA por su versión NF4 descuantizada; devuelve cuántas.

    Simula en la CPU la base de 4 bits de QLoRA con los mismos valores (la memoria, en cambio, es la
    del tipo original: para medir memoria de 4 bits de verdad está el cuaderno 04).
    """
    layers = lora_layers(model)
    for layer in layers:
        base = layer.get_base_layer()
        base.weight.data = nf4_roundtrip(base.weight.data)
    return len(layers)


@torch.no_grad()
def set_lora_init(model, init: Callable, adapter: str = "default") -> int:
    """Inicializa cada capa LoRA con ``init(W, r) -> (Q, A, B)``, que debe cumplir ``W ≈ Q + B·A``.

    Pone ``Q`` como peso congelado de la base y ``A``, ``B`` en el adaptador. Como ``peft`` calcula
    ``Q x + s·B A x`` (``s`` = ``scaling``), guarda ``B / s`` para que la suma sea exactamente
    ``Q + B·A``. Devuelve cuántas capas ha inicializado.
    """
    layers = lora_layers(model)
    for layer in layers:
        base = layer.get_base_layer()
        weight = base.weight.data
        q, a, b = init(weight.float(), layer.r[adapter])
        lora_a, lora_b = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
        for name, value, target in (("Q", q, weight), ("A", a, lora_a), ("B", b, lora_b)):
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(
                    f"La inicialización devolvió {name} con forma {tuple(value.shape)}; "
                    f"la capa necesita {tuple(target.shape)}."
                )
        base.weight.data = q.to(weight.dtype)
        lora_a.data = a.to(lora_a.dtype)
        lora_b.data = (b / layer.scaling[adapter]).to(lora_b.dtype)
    return len(layers)


def train_with_optimizer(
    model, batches: Sequence[dict], optimizer: torch.optim.Optimizer
) -> tuple[list[float], list[float]]:
    """Un paso de ``optimizer`` por lote; devuelve ``(pérdidas, segundos de cada paso)``.

    Sirve para optimizadores con grupos de parámetros propios, como el de LoRA+ (tasa mayor para
    ``B``). Crea el optimizador **después** de :meth:`~helpers.precision.Precision.prepare_trainable`
    (lo hace :func:`measure_variant`): en una T4 los entrenables pasan antes a fp32. El bucle es
    :func:`helpers.sweep.train_steps` (precisión de :func:`helpers.precision.decide`, pérdidas
    comprobadas finitas).
    """
    return train_steps(model, batches, optimizer=optimizer)


def measure_variant(
    name: str,
    model,
    batches: Sequence[dict],
    held_out: Sequence[dict],
    *,
    learning_rate: float,
    make_optimizer: Callable | None = None,
) -> dict:
    """Entrena ``model`` (ya con su adaptador) con ``batches`` y mide una fila de la tabla.

    ``make_optimizer(model, lr)`` crea el optimizador (por defecto AdamW sobre los entrenables).
    Los dos primeros pasos van dentro de :class:`helpers.PeakMemory` (``tensors=True`` en la CPU):
    el pico llega en la retropropagación del segundo, cuando ya existen los estados de AdamW del
    primero, y los pasos siguientes repiten las mismas reservas (perfilarlos solo costaría tiempo).
    Los segundos por paso son la mediana de los pasos que ya no perfila (del tercero en adelante;
    con solo 2 lotes, el segundo): el perfilador frena cada operación. Devuelve ``{"variante",
    "entrenables", "s/paso", "memoria pico (bytes)", "pérdida final", "pérdidas", "segundos"}``;
    ``"segundos"`` son los de cada paso medido (para comparar tiempos con
    :func:`helpers.evidence.compare`) y la pérdida final es :func:`helpers.held_out_loss` en
    ``held_out`` (validación).
    """
    if len(batches) < 2:
        raise ValueError("measure_variant necesita al menos 2 lotes (el primer paso no cuenta para el tiempo).")
    params = prepare_for_training(model)
    optimizer = make_optimizer(model, learning_rate) if make_optimizer else torch.optim.AdamW(params, lr=learning_rate)
    with PeakMemory(tensors=True) as peak:
        losses, seconds = train_with_optimizer(model, batches[:2], optimizer)
    if len(batches) > 2:
        more_losses, more_seconds = train_with_optimizer(model, batches[2:], optimizer)
        losses, timed = losses + more_losses, more_seconds
    else:
        timed = seconds[1:]
    losses = check_finite_losses(losses, f"variante {name}")
    return {
        "variante": name,
        "entrenables": count_parameters(model).trainable,
        "s/paso": statistics.median(timed),
        "memoria pico (bytes)": peak.peak_bytes,
        "pérdida final": held_out_loss(model, held_out),
        "pérdidas": losses,
        "segundos": list(timed),
    }
