"""Evaluación con datos que el modelo no ha visto (*held-out*): la «pérdida final» del curso.

En todo el curso, **pérdida final** significa una sola cosa: la pérdida media por token de la
respuesta sobre ejemplos de la partición de validación (``split="validation"``), medida al
terminar de entrenar con :func:`held_out_loss`. Para caber en su tiempo, los cuadernos la miden en
los N primeros ejemplos de la partición (``limit=N``), no en todos, y siempre imprimen cuántos:
es la pérdida en esos N ejemplos, no la de la partición entera. La de entrenamiento no sirve para
comparar ejecuciones: baja
también cuando el modelo memoriza (sobreajuste, *overfitting*). La partición de prueba
(``"test"``) se guarda para la comprobación final de una tarea, no para elegir hiperparámetros.

- :func:`held_out_batches`: todos los ejemplos de una partición, una vez cada uno y en orden fijo;
- :func:`held_out_loss`: la pérdida media por token sobre esos lotes, sin gradientes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .datasets import load_instructions
from .precision import decide
from .sweep import encode_batches

__all__ = ["held_out_batches", "held_out_loss"]


def held_out_batches(
    tokenizer, split: str = "validation", *, batch_size: int = 8, max_length: int = 64, limit: int | None = None
) -> list[dict]:
    """Los ejemplos de geografía de ``split`` (por defecto, validación) como lotes enmascarados.

    Cada ejemplo aparece una sola vez, en el orden del archivo: dos llamadas dan los mismos lotes.
    """
    if split == "train":
        raise ValueError("held_out_batches evalúa con datos no vistos: usa split='validation' o 'test', no 'train'.")
    return encode_batches(
        tokenizer, list(load_instructions(split, limit=limit)), batch_size=batch_size, max_length=max_length
    )


@torch.no_grad()
def held_out_loss(model, batches: Sequence[dict]) -> float:
    """Pérdida media por token de la respuesta sobre ``batches`` (la «pérdida final» del curso).

    Cada token cuenta lo mismo, esté en el lote que esté (una media de medias por lote daría más
    peso a los lotes con respuestas cortas). Deja el modelo como estaba (entrenamiento o evaluación).
    """
    if not batches:
        raise ValueError("No hay lotes que evaluar: ¿la partición está vacía?")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    decision = decide()
    total, tokens = 0.0, 0
    try:
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            counted = int((batch["labels"][:, 1:] != -100).sum())
            if counted == 0:
                continue
            with decision.autocast(device.type):
                loss = model(**batch).loss
            total += float(loss.float()) * counted
            tokens += counted
    finally:
        model.train(was_training)
    if tokens == 0:
        raise ValueError("Ningún token de respuesta que evaluar: revisa max_length (¿recorta las respuestas?).")
    return total / tokens
