"""Conjuntos de datos (*datasets*) del curso, escritos por el equipo y incluidos en el paquete.

- ``geografia_instrucciones.jsonl``: preguntas y respuestas sobre los países hispanohablantes,
  todas con el mismo estilo de respuesta ("🌎 Dato: ...") para que el efecto de un ajuste fino
  corto se vea a simple vista.
- ``resenas.jsonl``: reseñas breves etiquetadas (1 = positiva, 0 = negativa), equilibradas.
- ``texto_general.jsonl``: preguntas de cultura general con respuestas naturales (sin «🌎 Dato:»);
  ningún adaptador del curso se entrena con ellas: sirven para medir el olvido.
- ``preferencias.jsonl``: pares de preferencias (pregunta, respuesta elegida y rechazada) sobre
  los hechos de geografía, para DPO; la partición es por hecho, como la de las instrucciones.

Se regeneran con ``python -m helpers.maintainers.build_datasets``.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
INSTRUCTIONS_FILE = DATA_DIR / "geografia_instrucciones.jsonl"
REVIEWS_FILE = DATA_DIR / "resenas.jsonl"
GENERAL_FILE = DATA_DIR / "texto_general.jsonl"
PREFERENCES_FILE = DATA_DIR / "preferencias.jsonl"
SPLITS = ("train", "validation", "test")


def read_jsonl(path: Path) -> list[dict]:
    """Lee un archivo JSONL; un error dice el archivo y la línea que fallan."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path.name}, línea {number}: JSON inválido ({exc.msg}).") from None
    return rows


def _dataset(path: Path, split: str | None, limit: int | None):
    from datasets import Dataset

    if split is not None and split not in SPLITS:
        raise ValueError(f"Partición desconocida {split!r}: usa 'train', 'validation', 'test' o None (todas).")
    rows = [r for r in read_jsonl(path) if split is None or r["split"] == split]
    if limit is not None:
        rows = rows[:limit]
    return Dataset.from_list(rows)


def load_instructions(split: str | None = "train", limit: int | None = None):
    """Instrucciones de geografía como ``datasets.Dataset`` (columnas instruction, response, ...)."""
    return _dataset(INSTRUCTIONS_FILE, split, limit)


def load_reviews(split: str | None = "train", limit: int | None = None):
    """Reseñas etiquetadas como ``datasets.Dataset`` (columnas text, label, ...)."""
    return _dataset(REVIEWS_FILE, split, limit)


def load_general(limit: int | None = None):
    """Preguntas de cultura general (columnas instruction, response): el texto del olvido."""
    return _dataset(GENERAL_FILE, None, limit)


def load_preferences(split: str | None = "train", limit: int | None = None):
    """Pares de preferencias como ``datasets.Dataset`` (columnas prompt, chosen, rejected, kind, fact...).

    ``prompt`` es la pregunta; ``chosen``, la respuesta elegida (la correcta); ``rejected``, la
    rechazada (evasiva, descortés o con un dato de otro país, según ``kind``).
    """
    return _dataset(PREFERENCES_FILE, split, limit)


def to_messages(example: dict) -> dict:
    """Ejemplo → conversación ``{"messages": [usuario, asistente]}`` (formato de chat)."""
    return {
        "messages": [
            {"role": "user", "content": example["instruction"]},
            {"role": "assistant", "content": example["response"]},
        ]
    }


def to_prompt_completion(example: dict) -> dict:
    """Ejemplo → ``{"prompt": [...], "completion": [...]}``: el formato con el que ``trl``
    calcula la pérdida solo sobre la respuesta."""
    return {
        "prompt": [{"role": "user", "content": example["instruction"]}],
        "completion": [{"role": "assistant", "content": example["response"]}],
    }
