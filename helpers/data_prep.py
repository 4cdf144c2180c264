"""Preparar datos para SFT: normalizar textos (duplicados y contaminación), marcar en una plantilla
ChatML los tokens del asistente y medir un lote (relleno frente a empaquetado).

Lo usa el cuaderno 03. Nada de aquí es la respuesta de un ejercicio: el cuaderno decide qué
comparar y cómo.
"""

from __future__ import annotations

import re
import unicodedata

# El bloque de cada mensaje en la plantilla ChatML de SmolLM2 (la del modelo embebido del curso).
CHATML_MESSAGE = "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
# El mismo bloque con la respuesta del asistente (y su <|im_end|>) entre marcas {% generation %}.
CHATML_MESSAGE_MARKED = (
    "{% if message['role'] == 'assistant' %}"
    "{{'<|im_start|>assistant\n'}}{% generation %}{{message['content'] + '<|im_end|>'}}{% endgeneration %}{{'\n'}}"
    "{% else %}" + CHATML_MESSAGE + "{% endif %}"
)


def normalize_text(text: str) -> str:
    """Texto comparable: minúsculas, sin tildes, sin signos de puntuación ni emojis y con espacios simples.

    Dos preguntas que solo se diferencian en mayúsculas, tildes, signos («¿», «?») o espacios
    quedan iguales: es lo mínimo para buscar duplicados y contaminación entre particiones.
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize_text espera un texto (str), no {type(text).__name__}.")
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    without_accents = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.findall(r"\w+", without_accents))


def with_generation_markers(chat_template: str) -> str:
    """La plantilla ChatML de SmolLM2 con la respuesta del asistente entre ``{% generation %}`` y
    ``{% endgeneration %}``: así ``apply_chat_template(..., return_assistant_tokens_mask=True)``
    marca sus tokens (lo que usa ``trl`` con ``assistant_only_loss=True``).

    El ``<|im_end|>`` del asistente queda dentro de las marcas (el modelo aprende a parar); el salto
    de línea que lo sigue, fuera. El texto que produce la plantilla no cambia.
    """
    if "{% generation %}" in chat_template:
        return chat_template
    if chat_template.count(CHATML_MESSAGE) != 1:
        raise ValueError(
            "with_generation_markers solo sabe marcar la plantilla ChatML de SmolLM2 (la del modelo del curso). "
            "Para otra plantilla, escribe tú las marcas {% generation %}…{% endgeneration %} alrededor de la "
            "respuesta del asistente y de su token de fin (o mira trl.chat_template_utils.get_training_chat_template)."
        )
    return chat_template.replace(CHATML_MESSAGE, CHATML_MESSAGE_MARKED)


def batch_stats(batch) -> dict[str, int]:
    """Lo que calcula el modelo con un lote ya juntado (el de un *data collator*).

    Devuelve ``filas`` (filas del tensor), ``secuencias`` (ejemplos dentro), ``posiciones`` (filas ×
    longitud: lo que se calcula), ``relleno`` (posiciones de relleno) y ``utiles`` (posiciones cuya
    etiqueta no es ``-100``: las que cuentan en la pérdida). Un lote empaquetado sin relleno
    (*padding-free*) no trae ``attention_mask``: sus secuencias se cuentan por las ``position_ids``
    que vuelven a 0.
    """
    input_ids, labels = batch["input_ids"], batch["labels"]
    rows, width = (int(n) for n in input_ids.shape)
    if "attention_mask" in batch:
        padding = int((batch["attention_mask"] == 0).sum())
        sequences = rows
    elif "position_ids" in batch:
        padding = 0
        sequences = int((batch["position_ids"] == 0).sum())
    else:
        raise ValueError("batch_stats necesita un lote con attention_mask o position_ids (el de un data collator).")
    return {
        "filas": rows,
        "secuencias": sequences,
        "posiciones": rows * width,
        "relleno": padding,
        "utiles": int((labels != -100).sum()),
    }
