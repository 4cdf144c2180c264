"""Servir un modelo y calcular cuánto cuesta entrenarlo: medidas y cifras publicadas (cuaderno 09).

- :func:`completion_times`: ejecuta peticiones una detrás de otra y anota cuándo termina cada una,
  contando desde que llegaron todas (así se mide la latencia de un servidor que las atiende en cola).
- :func:`matmul_flops`: la velocidad de un producto de matrices grande en este dispositivo (FLOP/s),
  la referencia de «lo máximo que da esta máquina» con la que se compara el entrenamiento.
- :func:`training_flops_per_token` y :func:`estimated_tokens_per_second`: la cuenta de FLOPs de
  entrenar con LoRA y, con ella, cuántos *tokens* por segundo cabe esperar de una GPU.
- :data:`GPUS`: potencia de pico y precio por hora de T4, L4 y A100, con su fuente y su fecha.

Nada de esto responde un ejercicio: el cuaderno calcula con ello las tablas de latencia y de coste.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "GPUS",
    "GpuFacts",
    "completion_times",
    "estimated_tokens_per_second",
    "matmul_flops",
    "training_flops_per_token",
]


@dataclass(frozen=True)
class GpuFacts:
    """Lo que el cuaderno 09 necesita de una GPU para estimar tiempo y coste, con sus fuentes.

    ``peak_tflops``: billones de operaciones de coma flotante por segundo de sus núcleos tensoriales
    en fp16 (T4) o bf16 (L4, A100), **sin** dispersión (*sparsity*): la cifra que cuenta al entrenar.
    ``price_per_hour`` está en ``currency`` por GPU y hora, bajo demanda. ``price_checked`` dice si
    la cifra se comprobó en la fuente al escribir el curso (``False``: orientativa, compruébala).
    """

    planner_name: str  # el nombre de la GPU en helpers.memory_planner.GPUS_GB
    peak_tflops: float
    tflops_source: str
    price_per_hour: float
    currency: str
    price_source: str
    price_date: str
    price_checked: bool


_SPECS = "https://hmc-tech.com/gpu/nvidia-l4-vs-nvidia-t4"
GPUS = {
    "T4": GpuFacts(
        planner_name="T4",
        peak_tflops=65.13,
        tflops_source=f"{_SPECS} (fp16 en núcleos tensoriales; la hoja de datos de NVIDIA la redondea a 65)",
        price_per_hour=0.35,
        currency="USD",
        price_source="https://cloud.google.com/compute/gpus-pricing (NVIDIA T4, solo la GPU, bajo demanda)",
        price_date="sin fecha comprobada",
        price_checked=False,
    ),
    "L4": GpuFacts(
        planner_name="L4",
        peak_tflops=125.34,
        tflops_source=f"{_SPECS} (bf16/fp16 en núcleos tensoriales, sin dispersión)",
        price_per_hour=0.56,
        currency="USD",
        price_source="https://cloud.google.com/compute/gpus-pricing (NVIDIA L4, solo la GPU, bajo demanda)",
        price_date="sin fecha comprobada",
        price_checked=False,
    ),
    "A100": GpuFacts(
        planner_name="A100-40GB",
        peak_tflops=311.87,
        tflops_source=(
            "https://hmc-tech.com/gpu/nvidia-l4-vs-nvidia-a100-40gb (bf16 en núcleos tensoriales, sin dispersión)"
        ),
        price_per_hour=2.7447,
        currency="USD",
        price_source=(
            "AWS p4d.24xlarge (8 × A100 SXM 40 GB, us-east-1): 21,957642 USD/h ÷ 8, recogido en "
            "https://github.com/datareceipts/data-receipts (109-gpu-pricing/hyperscalers.json)"
        ),
        price_date="2026-11-09",
        price_checked=True,
    ),
}


def completion_times(calls: Sequence[Callable[[], object]]) -> list[float]:
    """Ejecuta ``calls`` en orden y devuelve, para cada una, los segundos desde el principio hasta que
    terminó. Si todas las peticiones llegaron a la vez al empezar, es la latencia de cada una en un
    servidor que las atiende de una en una. En GPU espera a que terminen de verdad (``synchronize``).
    """
    import torch

    def wait():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    wait()
    start = time.perf_counter()
    times = []
    for call in calls:
        call()
        wait()
        times.append(time.perf_counter() - start)
    return times


def matmul_flops(size: int = 1024, repeats: int = 3, dtype=None) -> float:
    """FLOP/s de un producto de matrices ``size × size`` en el dispositivo y la precisión de cálculo
    del curso (en CPU, fp32), mediana de ``repeats`` medidas. Es lo más deprisa que calcula esta máquina en la
    práctica: un entrenamiento no pasa de ahí."""
    import torch

    from .precision import decide

    decision = decide()
    device = decision.device
    if dtype is None:  # en CPU, fp32 (la T4 simulada calcula en fp16, pero la CPU no tiene productos fp16 rápidos)
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(decision.compute, torch.float32)
        dtype = torch.float32 if device == "cpu" else dtype
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device, dtype)
    b = torch.randn(size, size, generator=generator).to(device, dtype)
    a @ b  # calentamiento
    measures = []
    for _ in range(repeats):
        times = completion_times([lambda: a @ b] * 10)
        measures.append(10 * 2 * size**3 / times[-1])
    return statistics.median(measures)


def training_flops_per_token(n_params: int, *, gradient_checkpointing: bool = False) -> float:
    """FLOPs de entrenar un *token* con LoRA en un modelo de ``n_params`` parámetros.

    La cuenta habitual (Kaplan et al. 2020, §2.1) es 2N por *token* hacia delante y 4N hacia atrás
    (2N para el gradiente de las activaciones y 2N para el de los pesos). Con LoRA los pesos de la base
    están congelados: no hay gradiente de sus pesos, así que quedan 2N + 2N = 4N (los adaptadores
    son una fracción muy pequeña). El *gradient checkpointing* repite el paso hacia delante: 6N.
    """
    if n_params <= 0:
        raise ValueError(f"n_params debe ser positivo (recibí {n_params}).")
    return (6 if gradient_checkpointing else 4) * n_params


def estimated_tokens_per_second(
    n_params: int, peak_flops: float, utilization: float, *, gradient_checkpointing: bool = False
) -> float:
    """*Tokens* por segundo de entrenamiento con LoRA si se aprovecha una fracción ``utilization`` de
    ``peak_flops`` (FLOP/s de pico): ``utilization · peak_flops / training_flops_per_token``.
    Es una estimación: la fracción real depende del lote, de la longitud y de las bibliotecas."""
    if not 0 < utilization <= 1:
        raise ValueError(f"utilization es una fracción entre 0 y 1 (recibí {utilization}).")
    return utilization * peak_flops / training_flops_per_token(n_params, gradient_checkpointing=gradient_checkpointing)
