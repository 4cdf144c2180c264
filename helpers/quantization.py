"""Cuantización de 4 bits (QLoRA) con bitsandbytes: la configuración del curso y sus medidas.

- :func:`nf4_config`: el ``BitsAndBytesConfig`` de QLoRA (NF4 + doble cuantización), con el cálculo
  en la precisión de :func:`helpers.precision.default_dtype` (fp16 en una T4, bf16 en Ampere o
  superior, fp32 en CPU).
- :func:`quant_constants_bytes`: bytes de las constantes de cuantización (``absmax``...), que
  ``get_memory_footprint()`` no cuenta porque no son parámetros ni búferes del modelo.
- :func:`nf4_levels`: los 16 valores del código NF4.
- :func:`run_qlora_sft`: como :func:`helpers.run_sft`, para un modelo LoRA sobre una base de
  4 bits, con los adaptadores en fp32 donde no hay bf16 por hardware.

La fórmula de bytes por parámetro la escribes tú en el cuaderno 04; aquí solo está la constante
del caso típico, ``NF4_DQ_BYTES`` (Dettmers et al. 2023, QLoRA, arXiv 2305.14314, §3).
"""

from __future__ import annotations

import torch

from .memory_planner import NF4_DQ_BYTES
from .precision import decide, default_dtype

__all__ = [
    "NF4_DQ_BYTES",
    "check_no_cpu_inference_layout",
    "keep_4bit_trainable",
    "nf4_config",
    "nf4_levels",
    "quant_constants_bytes",
    "run_qlora_sft",
]


def nf4_config(compute: torch.dtype | None = None, *, double_quant: bool = True, quant_type: str = "nf4", **extra):
    """``BitsAndBytesConfig`` de QLoRA: pesos NF4, doble cuantización y cálculo en ``compute``.

    ``compute`` por defecto es :func:`helpers.precision.default_dtype` (los pesos se guardan en 4 bits,
    pero cada multiplicación los descuantiza a esta precisión). ``extra`` va tal cual al
    ``BitsAndBytesConfig`` (p. ej. ``llm_int8_skip_modules=["lm_head"]``).
    """
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_type,
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=compute or default_dtype(),
        **extra,
    )


def quant_constants_bytes(model: torch.nn.Module) -> int:
    """Bytes de las constantes de cuantización de todas las capas de 4 bits.

    Suma, sin repetir tensores, ``absmax`` (uint8 con doble cuantización, fp32 sin ella), el
    ``absmax`` de segundo nivel, su desplazamiento y las tablas ``code``.
    """
    import bitsandbytes as bnb

    seen, total = set(), 0

    def add(tensor):
        nonlocal total
        if isinstance(tensor, torch.Tensor) and tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()

    for module in model.modules():
        if not isinstance(module, bnb.nn.Linear4bit):
            continue
        state = module.weight.quant_state
        for part in (state.absmax, state.code, getattr(state, "offset", None)):
            add(part)
        nested = getattr(state, "state2", None)
        if nested is not None:
            add(nested.absmax)
            add(nested.code)
    return total


def nf4_levels() -> list[float]:
    """Los 16 niveles del código NF4 (cuantiles de una normal, normalizados a [-1, 1])."""
    from bitsandbytes.functional import get_4bit_type

    return [float(v) for v in get_4bit_type("nf4", device="cpu")]


# Lo que el arreglo para CPU usa de bitsandbytes (0.50): un atributo de ``Linear4bit`` y una función
# privada de ``bitsandbytes.functional``. Si una versión nueva los cambia, se avisa en vez de fallar en silencio.
CPU_PACKING_FLAG = "support_avx512bf16_for_cpu"
CPU_PACKING_INVERSE = "_convert_weight_packed_for_cpu_inverse"


def _bnb_api_moved(what: str) -> RuntimeError:
    import bitsandbytes

    return RuntimeError(
        f"bitsandbytes {bitsandbytes.__version__} ya no tiene {what}, que el curso usa para poder entrenar "
        "QLoRA en CPU (evita el formato de pesos de 4 bits que solo sirve para inferir). Instala la versión "
        "fijada del curso (`make install`, o `pip install bitsandbytes==0.50.2`) y vuelve a cargar el modelo; "
        "si actualizaste bitsandbytes a propósito, adapta helpers/quantization.py a su nueva API."
    )


def _inverse_packing():
    import bitsandbytes.functional as bnb_functional

    inverse = getattr(bnb_functional, CPU_PACKING_INVERSE, None)
    if inverse is None:
        raise _bnb_api_moved(f"la función bitsandbytes.functional.{CPU_PACKING_INVERSE}")
    return inverse


def _is_cpu_inference_layout(weight) -> bool:
    return bool(getattr(getattr(weight, "quant_state", None), "packing_format_for_cpu", False))


def keep_4bit_trainable(model: torch.nn.Module) -> int:
    """Impide el formato de inferencia de bitsandbytes en CPU; devuelve cuántas capas de 4 bits tocó.

    En una CPU con AVX-512-BF16, bitsandbytes reordena los pesos de 4 bits la primera vez que una
    capa calcula en modo evaluación (al generar texto, por ejemplo). Ese formato solo sirve para
    inferir: si luego entrenas, los gradientes que cruzan las capas de 4 bits salen mal y la
    pérdida sube. Aquí se desactiva ese atajo en cada capa y, si ya se había aplicado, se deshace.
    :func:`helpers.load_model` lo llama con todo modelo cuantizado. Si bitsandbytes cambió los
    nombres que esto usa, lanza ``RuntimeError`` con qué hacer (nunca lo ignora en silencio).
    """
    import bitsandbytes as bnb

    touched = 0
    for module in model.modules():
        if not isinstance(module, bnb.nn.Linear4bit):
            continue
        if not hasattr(module, CPU_PACKING_FLAG):
            raise _bnb_api_moved(f"el atributo Linear4bit.{CPU_PACKING_FLAG}")
        setattr(module, CPU_PACKING_FLAG, False)
        weight = module.weight
        if _is_cpu_inference_layout(weight):
            weight.data, weight.quant_state = _inverse_packing()(weight.data, weight.quant_state)
        touched += 1
    return touched


def check_no_cpu_inference_layout(model: torch.nn.Module) -> None:
    """Lanza ``RuntimeError`` si algún peso de 4 bits quedó en el formato de inferencia de CPU.

    Se comprueba después de entrenar: con ese formato los gradientes salen mal y el
    entrenamiento que acaba de terminar no vale.
    """
    packed = [name for name, param in model.named_parameters() if _is_cpu_inference_layout(param)]
    if packed:
        raise RuntimeError(
            f"{len(packed)} pesos de 4 bits acabaron en el formato de inferencia de bitsandbytes para CPU "
            f"(el primero: {packed[0]}), así que los gradientes de este entrenamiento no son válidos. Carga el "
            "modelo con helpers.load_model (que lo impide) o llama a helpers.quantization.keep_4bit_trainable(model) "
            "antes de entrenar, y vuelve a entrenar."
        )


def run_qlora_sft(model, tokenizer, train_dataset, output_dir: str, max_steps: int, **config):
    """Entrena con ``trl.SFTTrainer`` un modelo LoRA sobre una base de 4 bits; devuelve
    ``(trainer, historial_de_pérdida)``. ``config`` va a :func:`helpers.sft_config`.

    Con una base cuantizada, ``trl`` pasa los adaptadores a bf16 (como recomienda el artículo de
    QLoRA). Con fp16 (T4) el ``GradScaler`` falla con ellos y en CPU aprenden mal (AdamW sobre bf16
    pierde las actualizaciones pequeñas): :func:`helpers.training.train_with_precision` los
    devuelve a fp32 antes de entrenar (lo hace :func:`helpers.run_sft`). Si no pasas ``optim``, usa el de
    :func:`helpers.precision.decide` (``paged_adamw_8bit`` en GPU).
    """
    from .training import run_sft

    config.setdefault("optim", decide().optimizer_for(quantized=True))
    trainer, losses = run_sft(model, tokenizer, train_dataset, output_dir, max_steps, **config)
    check_no_cpu_inference_layout(trainer.model)
    return trainer, losses
