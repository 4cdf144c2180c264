"""Dónde se ejecuta el cuaderno (Colab, local, calificador) y qué sabe la CPU hacer.

Solo biblioteca estándar, sin torch: lo usa el diagnóstico (``python -m helpers.doctor``)
antes de tocar torch, así que sigue funcionando aunque torch esté roto o no esté instalado. Lo que
necesita torch (la GPU, la precisión con la que entrena el curso) está en :mod:`helpers.precision`.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

# Simular otro hardware (hoy solo 't4'): lo interpreta helpers.precision.decide.
SIMULATE_ENV = "CURSO_PEFT_SIMULAR"


def in_colab() -> bool:
    """True si el cuaderno corre en Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def in_autograder() -> bool:
    """True si nbgrader está ejecutando el cuaderno (calificación o validación)."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def where() -> str:
    """'calificador', 'colab' o 'local'."""
    if in_autograder():
        return "calificador"
    if in_colab():
        return "colab"
    return "local"


def gpu_has_real_bf16(capability: tuple[int, int]) -> bool:
    """bf16 de verdad solo desde Ampere (capacidad 8.0).

    Ojo: en una T4 (7.5) ``torch.cuda.is_bf16_supported()`` devuelve True porque lo emula.
    """
    return tuple(capability) >= (8, 0)


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """Extensiones de la CPU (Linux); vacío si no se pueden leer."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_bf16() -> bool:
    """True si la CPU calcula en bf16 por hardware (AVX-512-BF16 o AMX)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
