"""La caja de herramientas del curso PEFT: modelo, datos, medidas, gráficas y comprobaciones.

Cada cuaderno la importa en vez de repetir código::

    import helpers
    model, tokenizer = helpers.load_model_and_tokenizer()

Importar ``helpers`` no carga nada pesado (ni torch ni matplotlib): cada función se importa la
primera vez que la usas (PEP 562, ``__getattr__`` de módulo). Lo que hay aquí es lo que usan los
cuadernos; el calificador de la clase está en ``helpers.classroom`` y las herramientas de quien
mantiene el curso, en ``helpers.maintainers`` (lee ``docs/arquitectura.md``).
"""

from __future__ import annotations

import importlib
import logging

__version__ = "0.1.0"

# Nombre público → submódulo que lo define.
_EXPORTS = {
    "datasets": ("load_instructions", "load_reviews", "to_messages", "to_prompt_completion"),
    "evaluation": ("held_out_batches", "held_out_loss"),
    "environment": ("in_autograder", "in_colab", "where"),
    "grading": ("check_close", "check_equal", "check_loss_decreases", "check_type"),
    "measure": (
        "PeakMemory",
        "Timer",
        "count_parameters",
        "footprint_bytes",
        "format_bytes",
        "format_count",
        "free_memory",
    ),
    "metrics": ("load_accuracy",),
    "models": (
        "load_model",
        "load_model_and_tokenizer",
        "load_tokenizer",
        "resolve_profile",
        "show_environment",
        "steps_for",
    ),
    "plots": ("plot_bars", "plot_losses", "plot_xy"),
    "precision": ("training_precision",),
    "sweep": ("fixed_batches",),
    "training": ("eval_history", "generate", "generate_batch", "loss_history", "run_sft", "sft_config"),
    "validar": ("validar",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def _drop_cpu_kernel_notice(record: logging.LogRecord) -> bool:
    """Quita el aviso en inglés de bitsandbytes «Failed to load CPU gemm_4bit_forward…».

    Sale al importar bitsandbytes (lo importa ``peft``) en CPU con AVX-512 BF16 cuando no está el
    paquete opcional ``kernels``: bitsandbytes usa entonces su propio código de CPU, más lento, y
    todo funciona igual. No hay nada que hacer con él, así que no se enseña en los cuadernos. Va
    aquí porque la celda de preparación importa ``helpers`` antes que ``peft``.
    """
    return not record.getMessage().startswith("Failed to load CPU gemm_4bit_forward")


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_drop_cpu_kernel_notice)
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'helpers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # la próxima vez ya no pasa por aquí
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
