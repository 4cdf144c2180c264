"""Precisión del entrenamiento, decidida en un solo sitio para cada dispositivo.

:func:`decide` mira el hardware y devuelve un :class:`Precision` con todo lo que depende de él:

============================  =====================  ==========================  =====================
                              CPU (con o sin bf16)   GPU sin bf16 real (T4, <8.0)  GPU Ampere o superior
============================  =====================  ==========================  =====================
cálculo                       fp32                   fp16 (autocast)              bf16 (autocast)
pesos congelados              fp32                   fp16                         bf16
pesos entrenables             fp32                   fp32 (copia maestra)         fp32
``GradScaler``                no                     sí                           no
optimizador de QLoRA          ``adamw_torch``        ``paged_adamw_8bit``         ``paged_adamw_8bit``
*gradient checkpointing*      no                     sí                           sí
atención                      ``sdpa``               ``sdpa`` (sin FlashAttention-2)  ``sdpa``
``SFTConfig``                 fp16=False, bf16=False  fp16=True, bf16=False       fp16=False, bf16=True
============================  =====================  ==========================  =====================

En CPU el curso entrena en fp32 aunque la CPU tenga bf16 por hardware: así dos máquinas dan las
mismas pérdidas (el banco, ``make bench``, mide aparte lo que ganaría bf16).

Este módulo es el único que decide: lo que el hardware sabe hacer (:attr:`Precision.bf16_by_hardware`)
y lo que el curso hace con él (:attr:`Precision.compute`). El banner de los cuadernos
(``helpers.show_environment()``) y el diagnóstico (``python -m helpers.doctor``) imprimen
las mismas líneas, las de :func:`hardware_lines`, y :func:`training_precision` es
``decide().compute``: no hay otra decisión que pueda contradecir a esta.

Los pesos entrenables nunca se guardan en fp16: AdamW sobre fp16 puro desborda (su ``eps`` de
1e-8 no existe en fp16) y deja los pesos en inf/NaN. Con cálculo fp16 se entrena como manda la
precisión mixta: copia maestra fp32, ``torch.autocast`` y ``GradScaler``.

**Simular una T4** (``CURSO_PEFT_SIMULAR=t4``): la decisión es exactamente la de una T4 (capacidad
7.5, sin bf16) aunque el cálculo corra en la CPU; ``torch.autocast`` en fp16 y ``GradScaler``
funcionan en CPU. Lo único que cambia en CPU es que bitsandbytes no puede paginar: su
``paged_adamw_8bit`` avisa y se comporta como ``adamw_8bit`` (el mismo optimizador de 8 bits, sin
paginar), lo más parecido que se puede ejecutar. En una GPU de verdad la simulación además limita
la memoria de CUDA a la de una T4 (:data:`T4_TOTAL_BYTES`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from .environment import SIMULATE_ENV, cpu_has_bf16, gpu_has_real_bf16

SIMULATIONS = ("t4",)
T4_CAPABILITY = (7, 5)
# ``torch.cuda.get_device_properties(0).total_memory`` en una T4 de Colab: 15,83·10⁹ bytes (14,74 GiB).
T4_TOTAL_BYTES = 15_830_000_000
QLORA_GPU_OPTIMIZER = "paged_adamw_8bit"
DEFAULT_OPTIMIZER = "adamw_torch"

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_memory_capped = False


@dataclass(frozen=True)
class Precision:
    """Lo que el hardware decide sobre la precisión del entrenamiento (ver el módulo)."""

    hardware: str  # 'cpu', 'cpu-bf16', 't4' (GPU < 8.0) o 'ampere' (GPU >= 8.0)
    device: str  # dónde viven los tensores: 'cpu' o 'cuda'
    compute: str  # 'fp32', 'fp16' o 'bf16'
    simulated: str | None = None  # 't4' si la decisión simula una T4

    @property
    def bf16_by_hardware(self) -> bool:
        """Lo que el hardware sabe hacer: True si calcula bf16 por hardware (CPU con AVX-512-BF16 o
        AMX, GPU Ampere o superior). En CPU el curso entrena en fp32 igualmente (ver :attr:`compute`)."""
        return self.hardware in ("cpu-bf16", "ampere")

    @property
    def storage_dtype(self) -> torch.dtype:
        """Tipo de los pesos congelados (los que no entrena nadie)."""
        return _DTYPES[self.compute]

    @property
    def trainable_dtype(self) -> torch.dtype:
        """Tipo de los pesos entrenables: siempre fp32 (copia maestra en precisión mixta)."""
        return torch.float32

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """Tipo de ``torch.autocast`` al calcular, o None si se calcula en fp32."""
        return None if self.compute == "fp32" else _DTYPES[self.compute]

    @property
    def grad_scaler(self) -> bool:
        """True si hace falta ``GradScaler``: solo en fp16, cuyo rango se queda corto para los gradientes."""
        return self.compute == "fp16"

    @property
    def gradient_checkpointing(self) -> bool:
        """*Gradient checkpointing* en GPU (la memoria manda); en CPU no (la RAM sobra y el tiempo no)."""
        return self.hardware in ("t4", "ampere")

    @property
    def attn_implementation(self) -> str:
        """``sdpa``: FlashAttention-2 no existe en una T4 ni está fijada en el curso."""
        return "sdpa"

    @property
    def sft_flags(self) -> dict[str, bool]:
        """Los dos indicadores de ``SFTConfig``, siempre explícitos (trl activa bf16 si no se pasan)."""
        return {"fp16": self.compute == "fp16", "bf16": self.compute == "bf16"}

    def optimizer_for(self, quantized: bool) -> str:
        """Nombre del optimizador de ``transformers``: ``paged_adamw_8bit`` para QLoRA en GPU (o T4 simulada)."""
        return QLORA_GPU_OPTIMIZER if quantized and self.hardware in ("t4", "ampere") else DEFAULT_OPTIMIZER

    def autocast(self, device_type: str | None = None, *, cache: bool = True):
        """``torch.autocast`` con el tipo de cálculo (un contexto que no hace nada en fp32).

        Con ``cache=False`` no guarda las copias de 16 bits de los pesos: hace falta si el contexto
        abarca varios pasos de optimizador (las copias guardadas serían las de antes del paso).
        """
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type or self.device, dtype=self.autocast_dtype, cache_enabled=cache)

    def scaler(self, device_type: str | None = None) -> torch.amp.GradScaler:
        """``torch.amp.GradScaler`` activo solo con cálculo fp16 (desactivado, no cambia nada)."""
        return torch.amp.GradScaler(device_type or self.device, enabled=self.grad_scaler)

    def prepare_trainable(self, model: torch.nn.Module) -> int:
        """Pasa a :attr:`trainable_dtype` los parámetros entrenables de coma flotante que no lo estén.

        Deshace, por ejemplo, el paso a bf16 que ``trl`` hace con los adaptadores de QLoRA o la
        cabeza ``score`` de ``modules_to_save`` copiada de una base en fp16. Devuelve cuántos cambió.
        """
        changed = 0
        for param in model.parameters():
            if param.requires_grad and param.is_floating_point() and param.dtype != self.trainable_dtype:
                param.data = param.data.to(self.trainable_dtype)
                changed += 1
        return changed

    def apply_checkpointing(self, model: torch.nn.Module) -> bool:
        """Activa el *gradient checkpointing* si la decisión lo pide y el modelo lo admite; True si está activo."""
        enable = getattr(model, "activation_checkpointing_enable", None)
        active = bool(getattr(model, "is_activation_checkpointing", False))
        if not self.gradient_checkpointing or enable is None:
            return active
        if not active:
            enable()  # transformers usa use_reentrant=False por defecto: no hace falta gradiente en la entrada
        return True

    def describe(self) -> str:
        """Resumen en una línea, en español."""
        sim = (
            " (T4 simulada en la CPU)"
            if self.simulated and self.device == "cpu"
            else (" (GPU en modo T4)" if self.simulated else "")
        )
        return (
            f"{self.hardware}{sim}: cálculo {self.compute}, pesos congelados "
            f"{str(self.storage_dtype).replace('torch.', '')}, entrenables fp32, "
            f"GradScaler {'sí' if self.grad_scaler else 'no'}, optimizador de QLoRA {self.optimizer_for(True)}, "
            f"gradient checkpointing {'sí' if self.gradient_checkpointing else 'no'}, "
            f"atención {self.attn_implementation}"
        )


def simulation() -> str | None:
    """La simulación pedida en ``CURSO_PEFT_SIMULAR`` ('t4') o None."""
    value = os.environ.get(SIMULATE_ENV, "").strip().lower()
    if not value:
        return None
    if value not in SIMULATIONS:
        raise ValueError(f"{SIMULATE_ENV}={value!r} no es válido: usa 't4' (simula una T4 de Colab) o déjala vacía.")
    return value


def decide(capability: tuple[int, int] | None = None, cuda: bool | None = None) -> Precision:
    """La precisión para este hardware (o para ``capability``/``cuda`` si se dan); ver el módulo."""
    simulated = simulation() if capability is None and cuda is None else None
    real_cuda = torch.cuda.is_available()
    if simulated == "t4":
        if real_cuda:
            cap_cuda_memory_like_t4()
        return Precision("t4", "cuda" if real_cuda else "cpu", "fp16", simulated)
    if cuda is None:
        cuda = real_cuda
    if cuda:
        if capability is None:
            capability = torch.cuda.get_device_capability(0)
        if gpu_has_real_bf16(capability):
            return Precision("ampere", "cuda", "bf16")
        return Precision("t4", "cuda", "fp16")
    return Precision("cpu-bf16" if cpu_has_bf16() else "cpu", "cpu", "fp32")


def training_precision(capability: tuple[int, int] | None = None, cuda: bool | None = None) -> str:
    """La precisión con la que entrena el curso: 'fp32', 'fp16' o 'bf16' (``decide(...).compute``)."""
    return decide(capability, cuda).compute


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


# Lo que dice cada decisión, en español: qué sabe hacer el hardware y con qué entrena el curso.
_BF16_TEXT = {
    "cpu": "no (la CPU no tiene AVX-512-BF16 ni AMX; emularlo sería muchísimo más lento)",
    "cpu-bf16": "sí (la CPU tiene AVX-512-BF16 o AMX)",
    "t4": "no: esta GPU lo emula (torch.cuda.is_bf16_supported() puede decir True)",
    "ampere": "sí (capacidad 8.0 o más)",
}
_COMPUTE_TEXT = {
    "cpu": "fp32",
    "cpu-bf16": "fp32 (en CPU el curso entrena en fp32 aunque haya bf16 por hardware: así todas las máquinas "
    "dan las mismas pérdidas)",
    "t4": "fp16 (autocast con GradScaler; los pesos entrenables, en fp32)",
    "ampere": "bf16 (autocast; los pesos entrenables, en fp32)",
}


def hardware_lines(decision: Precision | None = None) -> list[tuple[str, str]]:
    """Las líneas (clave, valor) del hardware y la precisión que imprimen el banner de los cuadernos
    y el diagnóstico: salen todas de :func:`decide`, así que los dos dicen siempre lo mismo."""
    decision = decision or decide()
    gpu = gpu_info()
    lines = [("torch", f"{torch.__version__} (CUDA {torch.version.cuda or 'no'})"), ("dispositivo", decision.device)]
    if gpu:
        count = torch.cuda.device_count()
        lines.append(
            (
                "GPU",
                f"{gpu.name}, capacidad {gpu.capability[0]}.{gpu.capability[1]}, {gpu.memory_gb:.1f} GB"
                + (f" (y {count - 1} más; mira docs/multi_gpu.md)" if count > 1 else ""),
            )
        )
    else:
        lines.append(("GPU", "ninguna (se entrena en la CPU)"))
    bf16 = f"no (simulas una T4 con {SIMULATE_ENV}=t4)" if decision.simulated else _BF16_TEXT[decision.hardware]
    lines.append(("bf16 real", bf16))
    lines.append(("precisión de entrenamiento", _COMPUTE_TEXT[decision.hardware]))
    if decision.simulated:
        lines.append(("simulación", decision.describe()))
    lines.append(("núcleos de CPU", str(os.cpu_count())))
    return lines


def t4_memory_fraction(total_bytes: int) -> float:
    """Fracción de una GPU de ``total_bytes`` que deja usar lo mismo que una T4 (como mucho 1)."""
    if total_bytes <= 0:
        raise ValueError("La memoria total de la GPU debe ser positiva.")
    return min(1.0, T4_TOTAL_BYTES / total_bytes)


def cap_cuda_memory_like_t4() -> float:
    """Limita la memoria de CUDA de este proceso a la de una T4 (una vez); devuelve la fracción."""
    global _memory_capped
    fraction = t4_memory_fraction(torch.cuda.get_device_properties(0).total_memory)
    if not _memory_capped:
        torch.cuda.set_per_process_memory_fraction(fraction, 0)
        _memory_capped = True
    return fraction


def default_dtype() -> torch.dtype:
    """Tipo de los pesos congelados según :func:`decide`: fp32 en CPU, fp16 en una T4 (también
    simulada), bf16 en Ampere o superior."""
    return decide().storage_dtype
