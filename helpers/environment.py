"""Dónde se ejecuta el cuaderno (Colab, local, calificador) y qué hardware tiene."""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

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


@dataclass(frozen=True)
class GpuInfo:
    name: str
    capability: tuple[int, int]
    memory_gb: float


def gpu_info() -> GpuInfo | None:
    """La primera GPU CUDA visible, o None si no hay."""
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return GpuInfo(props.name, (props.major, props.minor), props.total_memory / 1e9)


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


def training_precision(capability: tuple[int, int] | None = None, cuda: bool | None = None) -> str:
    """Precisión recomendada para entrenar: 'bf16', 'fp16' o 'fp32'.

    GPU con capacidad >= 8.0 → bf16; GPU más antigua (T4) → fp16; CPU con bf16 por
    hardware → bf16; cualquier otra CPU → fp32 (emular bf16 en CPU es muchísimo más lento). Con
    ``CURSO_PEFT_SIMULAR=t4`` (y sin argumentos), fp16 como en una T4. Qué tipo usa cada tensor al
    entrenar lo decide :func:`helpers.precision.decide`.
    """
    if capability is None and cuda is None and os.environ.get(SIMULATE_ENV, "").strip().lower() == "t4":
        return "fp16"
    if cuda is None:
        cuda = torch.cuda.is_available()
    if cuda:
        if capability is None:
            capability = torch.cuda.get_device_capability(0)
        return "bf16" if gpu_has_real_bf16(capability) else "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"


def describe() -> dict[str, str]:
    """Resumen del entorno en un diccionario de textos."""
    gpu = gpu_info()
    info = {
        "entorno": where(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "dispositivo": "cuda" if gpu else "cpu",
        "gpu": f"{gpu.name} (capacidad {gpu.capability[0]}.{gpu.capability[1]}, {gpu.memory_gb:.1f} GB)"
        if gpu
        else "ninguna",
        "bf16 real": "sí" if (gpu_has_real_bf16(gpu.capability) if gpu else cpu_has_bf16()) else "no",
        "precisión de entrenamiento": training_precision(),
        "núcleos de CPU": str(os.cpu_count()),
    }
    return info
