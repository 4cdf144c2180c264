"""Entrenamiento con ``trl``: una configuración razonable para CPU, T4 o GPU moderna, y la
lectura del historial de pérdida."""
from __future__ import annotations

import torch

from .environment import training_precision

SEED = 0


def sft_config(output_dir: str, max_steps: int, *, learning_rate: float = 2e-4, batch_size: int = 4, grad_accum: int = 1, max_length: int = 128, seed: int = SEED, **overrides):
    """``trl.SFTConfig`` para un ajuste fino corto y reproducible.

    Elige la precisión según el hardware (fp16 en una T4, bf16 en GPU Ampere o superior, fp32 en
    una CPU sin bf16), registra la pérdida en cada paso, no guarda puntos de control y no envía
    nada a servicios externos. ``overrides`` sustituye cualquier opción.
    """
    from trl import SFTConfig

    precision = training_precision()
    options = dict(
        output_dir=output_dir,
        max_steps=max_steps,
        learning_rate=learning_rate,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum,
        max_length=max_length,
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        fp16=precision == "fp16",
        bf16=precision == "bf16" and torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )
    options.update(overrides)
    return SFTConfig(**options)


def loss_history(trainer) -> list[float]:
    """Pérdidas de entrenamiento registradas, en orden de paso."""
    return [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]


def run_sft(model, tokenizer, train_dataset, output_dir: str, max_steps: int, *, peft_config=None, **config):
    """Entrena con ``trl.SFTTrainer`` y devuelve ``(trainer, historial_de_pérdida)``.

    ``train_dataset`` en formato conversacional o *prompt-completion* (ver
    :func:`helpers.to_prompt_completion`); ``config`` va a :func:`sft_config`.
    """
    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=model,
        args=sft_config(output_dir, max_steps, **config),
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.train()
    return trainer, loss_history(trainer)


@torch.no_grad()
def generate(model, tokenizer, question: str, max_new_tokens: int = 40) -> str:
    """Respuesta del modelo (decodificación voraz, reproducible) a una pregunta de usuario."""
    messages = [{"role": "user", "content": question}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    inputs = {k: v.to(model.device) for k, v in inputs.items()}
    was_training = model.training
    model.eval()
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    if was_training:
        model.train()
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
