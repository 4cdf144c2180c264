"""Entrenamiento con ``trl``: una configuración razonable para CPU, T4 o GPU moderna, y la
lectura del historial de pérdida."""

from __future__ import annotations

import contextlib
import json
import math
import os

import torch

from .precision import decide

SEED = 0
LOSS_LOG_ENV = "CURSO_PEFT_REGISTRO_PERDIDAS"


def sft_config(
    output_dir: str,
    max_steps: int,
    *,
    learning_rate: float = 2e-4,
    batch_size: int = 4,
    grad_accum: int = 1,
    max_length: int = 128,
    seed: int = SEED,
    scheduler: str = "constant",
    warmup_steps: int = 0,
    eval_every: int | None = None,
    eval_batch_size: int = 16,
    **overrides,
):
    """``trl.SFTConfig`` para un ajuste fino corto y reproducible.

    La precisión y el *gradient checkpointing* salen de :func:`helpers.precision.decide` (fp16 en
    una T4, bf16 en GPU Ampere o superior, fp32 en CPU) con ``fp16=`` y ``bf16=`` siempre
    explícitos: ``trl`` activa bf16 si no se le dice nada. Registra la pérdida en cada paso, no
    guarda puntos de control y no envía nada a servicios externos. ``overrides`` sustituye
    cualquier opción.

    - ``grad_accum``: pasos de **acumulación de gradientes**; cada actualización ve
      ``batch_size · grad_accum`` ejemplos (``transformers`` normaliza por los tokens de todo el
      grupo, no por micro-lote).
    - ``scheduler`` y ``warmup_steps``: la **programación de la tasa de aprendizaje**
      (``"constant"``, ``"linear"``, ``"cosine"``... de ``transformers.get_scheduler``) y los pasos
      de **calentamiento** en los que la tasa sube desde 0.
    - ``eval_every``: si no es ``None``, evalúa el ``eval_dataset`` del *trainer* cada ese número
      de pasos (y al final), en lotes de hasta ``eval_batch_size`` ejemplos.
    """
    if grad_accum < 1 or warmup_steps < 0 or (eval_every is not None and eval_every < 1):
        raise ValueError("sft_config: grad_accum y eval_every deben ser ≥ 1 y warmup_steps ≥ 0.")
    from trl import SFTConfig

    options = trainer_options(
        output_dir,
        max_steps,
        learning_rate=learning_rate,
        batch_size=batch_size,
        seed=seed,
        gradient_accumulation_steps=grad_accum,
        max_length=max_length,
        lr_scheduler_type=scheduler,
        warmup_steps=warmup_steps,
    )
    if eval_every is not None:
        options.update(eval_strategy="steps", eval_steps=eval_every, per_device_eval_batch_size=eval_batch_size)
    options.update(overrides)
    return SFTConfig(**options)


def trainer_options(
    output_dir: str, max_steps: int, *, learning_rate: float, batch_size: int, seed: int, **more
) -> dict:
    """Las opciones comunes de las configuraciones de ``trl`` del curso (``SFTConfig``, ``DPOConfig``).

    La precisión y el *gradient checkpointing* salen de :func:`helpers.precision.decide`, con
    ``fp16=`` y ``bf16=`` siempre explícitos; registra la pérdida en cada paso, no guarda puntos de
    control ni envía nada a servicios externos. ``more`` añade o sustituye opciones.
    """
    decision = decide()
    options = dict(
        output_dir=output_dir,
        max_steps=max_steps,
        learning_rate=learning_rate,
        per_device_train_batch_size=batch_size,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        fp16=decision.sft_flags["fp16"],  # las dos, siempre explícitas
        bf16=decision.sft_flags["bf16"],
        activation_checkpointing=decision.gradient_checkpointing,
        use_cpu=decision.device == "cpu",
        dataloader_num_workers=0,
    )
    options.update(more)
    return options


def loss_history(trainer) -> list[float]:
    """Pérdidas de entrenamiento registradas, en orden de paso (comprobadas con :func:`check_finite_losses`)."""
    return check_finite_losses(
        [float(e["loss"]) for e in trainer.state.log_history if "loss" in e], type(trainer).__name__
    )


def eval_history(trainer) -> list[tuple[int, float]]:
    """``(paso, pérdida de evaluación)`` de cada evaluación del *trainer*, en orden (comprobadas finitas)."""
    points = [(int(e["step"]), float(e["eval_loss"])) for e in trainer.state.log_history if "eval_loss" in e]
    check_finite_losses([loss for _, loss in points], "SFTTrainer (evaluación)")
    return points


def check_finite_losses(losses: list[float], where: str = "entrenamiento") -> list[float]:
    """Devuelve ``losses`` si todas son finitas; si no, un error en español que dice qué revisar.

    Todo historial de pérdida del curso pasa por aquí. Con ``CURSO_PEFT_REGISTRO_PERDIDAS=<archivo>``
    además añade el historial a ese archivo (una línea JSON por historial): así las pruebas
    comprueban las pérdidas de un cuaderno entero.
    """
    values = [float(v) for v in losses]
    record = os.environ.get(LOSS_LOG_ENV)
    if record:
        with open(record, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"origen": where, "perdidas": values, "precision": decide().describe()}) + "\n")
    bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    if bad is not None:
        raise FloatingPointError(
            f"{where}: la pérdida del paso {bad + 1} es {values[bad]} (no finita). Suele ser la precisión: con "
            f"fp16 los pesos entrenables deben ser fp32 (helpers.precision.decide lo hace por ti) o la tasa "
            f"de aprendizaje es demasiado alta."
        )
    return values


def run_sft(
    model, tokenizer, train_dataset, output_dir: str, max_steps: int, *, peft_config=None, eval_dataset=None, **config
):
    """Entrena con ``trl.SFTTrainer`` y devuelve ``(trainer, historial_de_pérdida)``.

    ``train_dataset`` (y ``eval_dataset``, si lo pasas) en formato conversacional o
    *prompt-completion* (ver :func:`helpers.to_prompt_completion`); ``config`` va a
    :func:`sft_config`. Con ``eval_dataset`` y ``eval_every=k``, las pérdidas de evaluación quedan
    en :func:`eval_history`.
    """
    from trl import SFTTrainer

    if config.get("eval_every") is not None and eval_dataset is None:
        raise ValueError("run_sft: eval_every necesita eval_dataset (p. ej. la partición de validación).")
    trainer = SFTTrainer(
        model=model,
        args=sft_config(output_dir, max_steps, **config),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    return train_with_precision(trainer)


def train_with_precision(trainer):
    """``trainer.train()`` con los pesos entrenables en fp32; devuelve ``(trainer, historial_de_pérdida)``.

    ``trl`` pasa a bf16 los adaptadores de un modelo cuantizado; con fp16 (T4) el ``GradScaler``
    falla con ellos (trl#4901) y en CPU aprenden mal: aquí vuelven a fp32. En la CPU con la T4
    simulada, ``accelerate`` no hace autocast en fp16; lo pone este contexto, como en la GPU.
    """
    decision = decide()
    decision.prepare_trainable(trainer.model)
    simulated_cpu = decision.simulated and decision.device == "cpu"
    with decision.autocast("cpu", cache=False) if simulated_cpu else contextlib.nullcontext():
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
    output = model.generate(
        **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    if was_training:
        model.train()
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


@torch.no_grad()
def generate_batch(model, tokenizer, questions, max_new_tokens: int = 40, batch_size: int = 16) -> list[str]:
    """Respuestas voraces (reproducibles) a varias preguntas, por lotes: mucho más barato que una a una.

    Rellena por la izquierda (el modelo continúa todas las filas desde su último token real) y
    deja el tokenizador y el modelo como estaban.
    """
    questions = list(questions)
    if isinstance(questions and questions[0], dict) or any(not isinstance(q, str) for q in questions):
        raise TypeError("generate_batch espera una lista de preguntas (str), no ejemplos completos.")
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    answers = []
    try:
        for start in range(0, len(questions), batch_size):
            texts = [
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False
                )
                for q in questions[start : start + batch_size]
            ]
            inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            output = model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
            answers += [
                text.strip()
                for text in tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            ]
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers
