"""Comprobación en GPU, en una sola orden: ``make gpu`` (``python -m helpers.maintainers.gpu_check``).

En cualquier GPU CUDA, en **modo T4** (``CURSO_PEFT_SIMULAR=t4``: fp16 sin bf16, pesos entrenables
fp32, ``paged_adamw_8bit`` en QLoRA, *gradient checkpointing*, ``sdpa`` y la memoria de CUDA de
cada proceso limitada a la de una T4 con ``torch.cuda.set_per_process_memory_fraction``):

1. ejecuta todos los cuadernos con el modelo real (perfil ``embedded`` por defecto; ``--perfil
   hub:<id>`` si hay internet) — la parte a del banco;
2. mide las partes b y d del banco (cuatro métodos con el mismo lote; planificador frente a la
   memoria pico de CUDA medida en ajuste completo, LoRA y QLoRA);
3. mide la parte c (fp32 frente a bf16) **sin** el modo T4, con la precisión real de la GPU: en
   modo T4 el autocast fp16 de cada paso taparía al de bf16 que se quiere medir;
4. escribe la sección de la GPU en ``docs/rendimiento.md`` (aparte de la de la CPU): el modo T4
   queda como su propia máquina, ``cuda-<gpu>-modo-t4``.

Sin CUDA termina enseguida con un mensaje en español y código 2: en la CPU, la T4 simulada ya la
prueba ``make test``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..precision import SIMULATE_ENV

NO_GPU_MESSAGE = (
    "No hay ninguna GPU CUDA en esta máquina: `make gpu` ejecuta los cuadernos y el banco en una GPU "
    "(una T4 de Colab o cualquier NVIDIA) y aquí no tiene nada que medir. En la CPU, la T4 simulada "
    "(CURSO_PEFT_SIMULAR=t4) ya se prueba con `make test`."
)
T4_PARTS = ("a", "b", "d")
REAL_PARTS = ("c",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.maintainers.gpu_check", description="Cuadernos y banco en una GPU, en modo T4."
    )
    parser.add_argument("--perfil", default="embedded", help="perfil del modelo (por defecto embedded, sin internet)")
    parser.add_argument("--pasos", type=int, default=None, help="pasos de entrenamiento de las partes b y d")
    parser.add_argument("--salida", type=Path, default=None, help="carpeta del informe (por defecto docs/)")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print(NO_GPU_MESSAGE, file=sys.stderr)
        return 2

    from ..precision import cap_cuda_memory_like_t4, decide
    from . import bench

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")
    out = args.salida or bench.DEFAULT_OUT
    opts = bench.Options(profile=args.perfil)
    opts.steps = args.pasos or opts.steps

    os.environ[SIMULATE_ENV] = "t4"  # también lo heredan los núcleos de los cuadernos
    fraction = cap_cuda_memory_like_t4()
    print(
        f"Modo T4 en {torch.cuda.get_device_name(0)}: {decide().describe()}; memoria de CUDA limitada al "
        f"{100 * fraction:.1f} % de la de esta GPU.",
        flush=True,
    )
    t4_results = bench.run_parts(list(T4_PARTS), opts)
    print(f"Datos (modo T4): {bench.save_results(t4_results, out)}", flush=True)

    os.environ.pop(SIMULATE_ENV)
    real_results = bench.run_parts(list(REAL_PARTS), opts)
    print(f"Datos (precisión real): {bench.save_results(real_results, out)}", flush=True)
    print(f"Informe: {bench.render(out)}")
    failed = [r for r in t4_results["a"]["cuadernos"] if r["estado"] != "correcto"]
    if failed:
        print(f"{len(failed)} cuaderno(s) fallaron en modo T4: mira build/curso/.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
