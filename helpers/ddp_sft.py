"""Ajuste fino LoRA (SFT) con varios procesos: paralelismo de datos (DDP) con ``accelerate launch``.

Cada proceso carga el mismo modelo y el mismo adaptador inicial (semilla fija) y recibe una parte
distinta de cada lote global; tras cada paso, DDP promedia los gradientes entre procesos, así que
todos terminan con exactamente el mismo adaptador. Usa los mismos helpers y datos que los
cuadernos (:func:`helpers.load_model`, :func:`helpers.load_instructions`, :func:`helpers.sft_config`).

Uso (dos procesos en CPU; con GPU quita ``--cpu`` y pon tantos procesos como GPU)::

    accelerate launch --num_processes 2 --cpu -m helpers.ddp_sft --perfil tiny --pasos 4 --salida salidas/ddp

Escribe en ``--salida``:

- ``adaptador/``: el adaptador entrenado (lo guarda el proceso principal); se carga con
  ``PeftModel.from_pretrained(modelo_base, "salidas/ddp/adaptador")``;
- ``rango_<r>/adaptador_inicial.safetensors`` y ``rango_<r>/adaptador_final.safetensors``: el
  estado del adaptador en cada proceso, antes y después de entrenar;
- ``rango_<r>/resumen.json``: número de procesos, *backend*, pérdidas y una huella de cada lote
  que vio ese proceso (así se comprueba que cada uno entrenó con datos distintos).

Lee ``docs/multi_gpu.md`` para usarlo con varias GPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import torch

SEED = 0
DEFAULT_OUT = "salidas/ddp"


def adapter_state(model) -> dict[str, torch.Tensor]:
    """Copia en CPU de los pesos del adaptador LoRA (sin los pesos congelados del modelo base)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().to("cpu").contiguous().clone() for k, v in get_peft_model_state_dict(model).items()}


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """Huella SHA-256 de un diccionario de tensores (nombres, formas, tipos y bytes exactos)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].contiguous()
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Ajuste fino LoRA en varios procesos (DDP). Lánzalo con `accelerate launch`."
    )
    parser.add_argument(
        "--perfil", default=None, help="perfil del modelo: embedded, tiny, hub o hub:<id> (por defecto, el del entorno)"
    )
    parser.add_argument("--pasos", type=int, default=30, help="pasos de entrenamiento (por defecto 30)")
    parser.add_argument(
        "--salida", type=Path, default=Path(DEFAULT_OUT), help=f"carpeta de resultados (por defecto {DEFAULT_OUT})"
    )
    parser.add_argument("--rango", type=int, default=8, help="rango r de LoRA (por defecto 8)")
    parser.add_argument("--lote", type=int, default=4, help="ejemplos por proceso y paso (por defecto 4)")
    parser.add_argument("--max-longitud", type=int, default=64, help="longitud máxima en tokens (por defecto 64)")
    parser.add_argument("--tasa", type=float, default=1e-3, help="tasa de aprendizaje (por defecto 1e-3)")
    parser.add_argument("--ejemplos", type=int, default=None, help="usa solo los primeros N ejemplos de entrenamiento")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    from accelerate import PartialState
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import save_file
    from trl import SFTTrainer

    from .datasets import load_instructions, to_prompt_completion
    from .models import load_model, load_tokenizer, resolve_profile
    from .training import loss_history, sft_config, train_with_precision

    # Inicia el grupo de procesos (gloo en CPU, nccl en GPU) y, con GPU, fija la de este proceso:
    # así load_model() pone el modelo en la GPU que le toca a cada proceso.
    cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")
    state = PartialState(cpu=cpu)
    rank, world = state.process_index, state.num_processes
    main_process = state.is_main_process
    profile = resolve_profile(args.perfil)
    if main_process:
        print(f"DDP: {world} proceso(s), backend {state.backend}, dispositivo {state.device}, perfil {profile.label}")

    tokenizer = load_tokenizer(profile)
    model = load_model(profile, verbose=main_process)
    torch.manual_seed(SEED)  # el mismo adaptador inicial en todos los procesos
    lora = LoraConfig(
        r=args.rango, lora_alpha=2 * args.rango, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, lora)
    initial = adapter_state(model)

    dataset = load_instructions("train", limit=args.ejemplos)
    dataset = dataset.map(to_prompt_completion, remove_columns=dataset.column_names)

    batches: list[str] = []

    class FingerprintSFTTrainer(SFTTrainer):
        """SFTTrainer que anota una huella de cada lote que procesa este proceso."""

        def training_step(self, model, inputs, num_items_in_batch=None):
            ids = inputs["input_ids"].detach().to("cpu").contiguous()
            batches.append(hashlib.sha256(ids.numpy().tobytes()).hexdigest()[:16])
            return super().training_step(model, inputs, num_items_in_batch)

    config = sft_config(
        str(args.salida / "entrenamiento"),
        args.pasos,
        learning_rate=args.tasa,
        batch_size=args.lote,
        max_length=args.max_longitud,
        # Todos los parámetros LoRA reciben gradiente: DDP no tiene que buscar parámetros sin usar.
        ddp_find_unused_parameters=False,
        disable_tqdm=not main_process,
    )
    trainer = FingerprintSFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    train_with_precision(trainer)  # entrenables en fp32 y la precisión de helpers.precision

    final = adapter_state(trainer.model)
    rank_dir = args.salida / f"rango_{rank}"
    rank_dir.mkdir(parents=True, exist_ok=True)
    save_file(initial, str(rank_dir / "adaptador_inicial.safetensors"))
    save_file(final, str(rank_dir / "adaptador_final.safetensors"))
    summary = {
        "rango": rank,
        "procesos": world,
        "backend": str(state.backend),
        "dispositivo": str(state.device),
        "perfil": profile.name,
        "pasos": trainer.state.global_step,
        "lote_por_proceso": args.lote,
        "lote_global": args.lote * world * config.gradient_accumulation_steps,
        "perdidas": loss_history(trainer),
        "lotes": batches,
        "huella_inicial": state_digest(initial),
        "huella_final": state_digest(final),
    }
    (rank_dir / "resumen.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")

    trainer.save_model(str(args.salida / "adaptador"))  # solo escribe el proceso principal
    state.wait_for_everyone()
    if main_process:
        losses = summary["perdidas"]
        print(
            f"Entrenados {summary['pasos']} pasos con lote global {summary['lote_global']} "
            f"({args.lote} por proceso × {world} procesos); pérdida {losses[0]:.3f} → {losses[-1]:.3f}."
        )
        print(f"Adaptador guardado en {args.salida / 'adaptador'}; huella {summary['huella_final'][:16]}.")
    state.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
