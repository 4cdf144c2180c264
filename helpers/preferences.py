"""Preferencias y DPO con LoRA (cuaderno 10): los pares en el formato de ``trl`` y el entrenamiento.

- :func:`to_preference_messages`: un par de ``helpers.datasets.load_preferences`` → el formato
  conversacional de preferencias de ``trl`` (``prompt``, ``chosen``, ``rejected``);
- :func:`preference_batches`: pares → lotes tokenizados **como los tokeniza y agrupa**
  ``trl.DPOTrainer`` (las respuestas elegidas en la primera mitad de las filas, las rechazadas en la
  segunda, y ``completion_mask`` que marca los tokens de cada respuesta);
- :func:`dpo_config` / :func:`run_dpo`: ``trl.DPOConfig`` con la precisión de
  :func:`helpers.precision.decide` y el entrenamiento con ``DPOTrainer(peft_config=...)``, que anota
  su historial de pérdida como el resto del curso;
- :data:`TRL_LORA_LEARNING_RATES`: la tabla de tasas de aprendizaje que recomienda la
  documentación de ``trl`` para LoRA (con su fuente en :data:`TRL_LEARNING_RATES_SOURCE`).

Las log-probabilidades de una respuesta, la pérdida DPO, la precisión de recompensa y las log-probs
de la referencia las escribes tú en el cuaderno 10: aquí no hay una función que lo haga por ti.
"""

from __future__ import annotations

from collections.abc import Sequence

from .training import SEED, train_with_precision, trainer_options

__all__ = [
    "SYSTEM_PROMPT",
    "TRL_LEARNING_RATES_SOURCE",
    "TRL_LORA_LEARNING_RATES",
    "dpo_config",
    "encode_pair",
    "preference_batches",
    "run_dpo",
    "to_preference_messages",
]

# Un mensaje de sistema corto: sin él, la plantilla de SmolLM2 añade el suyo (unos 20 tokens más por
# secuencia), y en una CPU cada token cuenta tres veces en DPO (política, referencia y gradiente).
SYSTEM_PROMPT = "Responde en español."

# «Learning Rate Considerations» de la guía «PEFT Integration» de trl: con LoRA, unas 10 veces la
# tasa del ajuste fino completo.
TRL_LORA_LEARNING_RATES = {
    "SFT": {"completo": 2.0e-5, "LoRA": 2.0e-4},
    "DPO": {"completo": 5.0e-7, "LoRA": 5.0e-6},
    "GRPO": {"completo": 1.0e-6, "LoRA": 1.0e-5},
}
TRL_LEARNING_RATES_SOURCE = (
    "documentación de trl, guía «PEFT Integration», sección «Learning Rate Considerations» "
    "(https://huggingface.co/docs/trl/peft_integration)"
)


def to_preference_messages(example: dict) -> dict:
    """Par ``{"prompt", "chosen", "rejected"}`` (textos) → formato conversacional de preferencias de ``trl``.

    El ``prompt`` lleva el mensaje de sistema corto del curso (:data:`SYSTEM_PROMPT`) y la pregunta;
    ``chosen`` y ``rejected``, un mensaje del asistente cada uno.
    """
    return {
        "prompt": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": example["prompt"]}],
        "chosen": [{"role": "assistant", "content": example["chosen"]}],
        "rejected": [{"role": "assistant", "content": example["rejected"]}],
    }


def encode_pair(tokenizer, example: dict) -> dict:
    """Un par → ``{"prompt_ids", "chosen_ids", "rejected_ids"}``, como lo tokeniza ``DPOTrainer``.

    La plantilla de chat con la pregunta sola (y el turno del asistente abierto) da el prompt; cada
    respuesta son los tokens que la conversación completa añade detrás (incluido el fin de turno).
    """
    messages = example if isinstance(example.get("prompt"), list) else to_preference_messages(example)

    def ids(conversation, **kwargs):
        return list(tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True, **kwargs)["input_ids"])

    prompt = ids(messages["prompt"], add_generation_prompt=True)
    chosen = ids(messages["prompt"] + messages["chosen"])
    rejected = ids(messages["prompt"] + messages["rejected"])
    shared = min(_common_prefix(prompt, chosen), _common_prefix(prompt, rejected))
    return {"prompt_ids": prompt[:shared], "chosen_ids": chosen[shared:], "rejected_ids": rejected[shared:]}


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def preference_batches(tokenizer, examples, *, batch_size: int = 4, max_length: int | None = 128) -> list[dict]:
    """Pares → lotes de ``DataCollatorForPreference`` de ``trl`` (el mismo agrupador que usa ``DPOTrainer``).

    Cada lote tiene ``input_ids``, ``attention_mask`` y ``completion_mask`` de ``2·n`` filas: las
    ``n`` primeras, pregunta + respuesta elegida; las ``n`` últimas, pregunta + respuesta rechazada,
    en el mismo orden. ``completion_mask`` vale 1 en los tokens de la respuesta y 0 en la pregunta y
    el relleno (a la derecha). El último lote puede tener menos pares.
    """
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    examples = list(examples)
    if not examples:
        raise ValueError("preference_batches: no hay pares que agrupar.")
    collator = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id, max_length=max_length)
    encoded = [encode_pair(tokenizer, example) for example in examples]
    return [collator(encoded[start : start + batch_size]) for start in range(0, len(encoded), batch_size)]


def dpo_config(
    output_dir: str,
    max_steps: int,
    *,
    beta: float = 0.1,
    learning_rate: float = TRL_LORA_LEARNING_RATES["DPO"]["LoRA"],
    batch_size: int = 2,
    max_length: int = 128,
    seed: int = SEED,
    **overrides,
):
    """``trl.DPOConfig`` para un DPO corto y reproducible (pérdida ``sigmoid``, la del artículo de DPO).

    La precisión sale de :func:`helpers.precision.decide`, como en :func:`helpers.sft_config`.
    ``beta`` es la β de DPO; la tasa por defecto es la de la tabla de ``trl`` para DPO con LoRA
    (:data:`TRL_LORA_LEARNING_RATES`). ``overrides`` sustituye cualquier opción.
    """
    if not beta > 0:
        raise ValueError(f"dpo_config: beta debe ser positiva (recibí {beta}).")
    from trl import DPOConfig

    options = trainer_options(
        output_dir,
        max_steps,
        learning_rate=learning_rate,
        batch_size=batch_size,
        seed=seed,
        beta=beta,
        loss_type=["sigmoid"],
        max_length=max_length,
        lr_scheduler_type="constant",
    )
    options.update(overrides)
    return DPOConfig(**options)


def run_dpo(model, tokenizer, train_dataset, output_dir: str, max_steps: int, *, peft_config, **config):
    """Entrena un adaptador con ``trl.DPOTrainer(peft_config=...)``; devuelve ``(trainer, historial_de_pérdida)``.

    ``model`` es el modelo base (sin adaptador): ``DPOTrainer`` le añade el de ``peft_config`` y,
    como no recibe ``ref_model``, usa como referencia **la base con el adaptador desactivado**.
    ``train_dataset``: pares en el formato de :func:`to_preference_messages`. ``config`` va a
    :func:`dpo_config`. Las pérdidas se comprueban finitas (y se anotan, como en todo el curso).
    """
    from trl import DPOTrainer

    if peft_config is None:
        raise ValueError("run_dpo entrena un adaptador: pasa peft_config (p. ej. un LoraConfig).")
    trainer = DPOTrainer(
        model=model,
        args=dpo_config(output_dir, max_steps, **config),
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    return train_with_precision(trainer)
