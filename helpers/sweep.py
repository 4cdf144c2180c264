"""Barridos de hiperparámetros de LoRA (cuaderno 05): las piezas que se repiten en cada ejecución.

Para comparar rangos con justicia, cada ejecución debe partir del mismo modelo base, ver los
mismos lotes en el mismo orden y usar la misma semilla. Aquí están:

- :func:`fixed_batches`: los lotes fijos (todas las secuencias de la misma longitud, con la
  pregunta enmascarada), construidos una sola vez y reutilizados en todas las ejecuciones;
- :func:`train_steps` / :func:`train_adapter`: un bucle de entrenamiento mínimo (AdamW, un paso por
  lote, con la precisión de :func:`helpers.precision.decide`), con el tiempo de cada paso;
- :func:`encode_batches`: ejemplos → lotes de chat con la pregunta enmascarada (lo usan también
  los lotes de validación de :mod:`helpers.evaluation`);
- :func:`final_loss`: la media de las últimas pérdidas de entrenamiento;
- :func:`memory_in_use`: la memoria que usa ahora el proceso, para comprobar que liberar el
  modelo entre ejecuciones funciona.

El bucle del barrido lo escribes tú en el cuaderno 05 (y el enmascarado de un ejemplo, en el 03:
aquí no hay una función que lo haga por ti).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence

import torch

from .datasets import load_instructions
from .measure import free_memory
from .precision import decide
from .quantization import check_no_cpu_inference_layout
from .training import SEED, check_finite_losses

__all__ = [
    "SEED",
    "encode_batches",
    "final_loss",
    "fixed_batches",
    "prepare_for_training",
    "memory_in_use",
    "train_adapter",
    "train_steps",
]


def fixed_batches(
    tokenizer, steps: int, *, batch_size: int = 4, max_length: int = 64, seed: int = SEED, split: str = "train"
) -> list[dict]:
    """``steps`` lotes de instrucciones de geografía, todos de ``batch_size × max_length`` tokens.

    Se rellenan (y se recortan) a ``max_length`` para que cada paso cueste lo mismo. El relleno
    no cuenta en la pérdida. El orden de los ejemplos depende solo de ``seed``: dos llamadas
    iguales dan los mismos lotes. Si hacen falta más ejemplos de los que hay, se repiten (épocas).
    """
    data = load_instructions(split)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed)).tolist()
    needed = steps * batch_size
    order = (order * math.ceil(needed / len(order)))[:needed]
    return encode_batches(tokenizer, [data[i] for i in order], batch_size=batch_size, max_length=max_length)


def encode_batches(tokenizer, examples: Sequence[dict], *, batch_size: int = 4, max_length: int = 64) -> list[dict]:
    """Ejemplos ``{"instruction", "response"}`` → lotes de chat con la pregunta enmascarada.

    Cada lote es ``{"input_ids", "attention_mask", "labels"}`` de ``len × max_length`` tokens; el
    último puede tener menos filas. La pérdida se calcula sobre la respuesta del asistente (y el
    fin de turno): la pregunta y el relleno llevan -100.
    """

    def chat(example):
        return [
            {"role": "user", "content": example["instruction"]},
            {"role": "assistant", "content": example["response"]},
        ]

    pad = tokenizer.pad_token_id
    batches = []
    for start in range(0, len(examples), batch_size):
        ids, labels, mask = [], [], []
        for example in examples[start : start + batch_size]:
            conversation = chat(example)
            full = list(tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"])
            asked = len(
                tokenizer.apply_chat_template(
                    conversation[:1], add_generation_prompt=True, tokenize=True, return_dict=True
                )["input_ids"]
            )
            x = full[:max_length]
            y = [-100] * min(asked, len(x)) + x[asked:]
            fill = max_length - len(x)
            ids.append(x + [pad] * fill)
            labels.append(y + [-100] * fill)
            mask.append([1] * len(x) + [0] * fill)
        batches.append(
            {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}
        )
    return batches


def prepare_for_training(model) -> list[torch.nn.Parameter]:
    """Deja ``model`` listo para entrenar con la precisión de :func:`helpers.precision.decide`
    (entrenables en su tipo, *checkpointing* si toca) y devuelve sus parámetros entrenables.

    Crea el optimizador **después** de llamarla: en una T4 los entrenables pasan antes a fp32.
    """
    decision = decide()
    decision.prepare_trainable(model)
    decision.apply_checkpointing(model)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("El modelo no tiene parámetros entrenables: ¿has creado el adaptador con get_peft_model?")
    return params


def train_steps(
    model,
    batches: Sequence[dict],
    learning_rate: float | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    progress: bool = False,
) -> tuple[list[float], list[float]]:
    """Un paso de AdamW por lote sobre los parámetros entrenables; devuelve ``(pérdidas, segundos de cada paso)``.

    Con ``optimizer`` usa ese optimizador en vez de AdamW (por ejemplo, el de LoRA+, con una tasa
    de aprendizaje para A y otra para B); entonces no se da ``learning_rate``.

    La precisión es la de :func:`helpers.precision.decide`: con cálculo fp16 (T4) los pesos
    entrenables pasan a fp32 y cada paso usa ``torch.autocast`` y ``GradScaler`` (precisión
    mixta); en fp32 todo eso no hace nada. Las pérdidas se comprueban finitas.
    """
    decision = decide()
    params = prepare_for_training(model)
    if (optimizer is None) == (learning_rate is None):
        raise ValueError("Da learning_rate (y se usa AdamW) o bien optimizer, uno de los dos.")
    optimizer = optimizer or torch.optim.AdamW(params, lr=learning_rate)
    device = next(model.parameters()).device
    scaler = decision.scaler(device.type)
    iterator = list(batches)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="entrenando", leave=False)
    model.train()
    losses, seconds = [], []
    for batch in iterator:
        batch = {k: v.to(device) for k, v in batch.items()}
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with decision.autocast(device.type):
            loss = model(**batch).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        losses.append(float(loss.detach()))
    check_no_cpu_inference_layout(model)
    return check_finite_losses(losses, "train_steps"), seconds


def train_adapter(model, batches: Sequence[dict], *, learning_rate: float = 1e-3, progress: bool = True) -> list[float]:
    """Entrena con :func:`train_steps`, deja el modelo en modo evaluación y devuelve la pérdida de cada paso."""
    losses, _ = train_steps(model, batches, learning_rate, progress=progress)
    model.eval()
    return losses


def final_loss(losses: Sequence[float], last: int = 3) -> float:
    """Media de las ``last`` últimas pérdidas **de entrenamiento** (una sola es demasiado ruidosa).

    Sirve para ver si una curva de entrenamiento se ha estabilizado; para comparar ejecuciones,
    el curso usa la pérdida en validación, :func:`helpers.evaluation.held_out_loss`. NaN si no hay.
    """
    values = [float(v) for v in losses][-last:]
    return sum(values) / len(values) if values else math.nan


def memory_in_use() -> int:
    """Bytes en uso ahora: memoria de CUDA ocupada por tensores o, en CPU, la residente (RSS).

    En CPU, llama antes a :func:`helpers.free_memory`, que devuelve al sistema la memoria libre
    del asignador de C, para que lo liberado con ``del`` se note en la cifra.
    """
    if torch.cuda.is_available():
        return torch.cuda.memory_allocated()
    free_memory()
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss
