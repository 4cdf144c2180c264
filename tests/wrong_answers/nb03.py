"""Respuestas erróneas del cuaderno 03 (SFT con LoRA)."""

# Error típico: copiar input_ids en labels sin enmascarar el prompt, así que la pérdida también
# cuenta el mensaje de sistema y la pregunta (el modelo aprende a escribir preguntas).
WRONG = {
    "tokenize_with_mask": '''def tokenize_with_mask(example, tokenizer, max_length=MAX_LENGTH):
    """Versión errónea: labels = input_ids (no enmascara el prompt)."""
    conversation = helpers.to_messages(example)["messages"]
    input_ids = list(tokenizer.apply_chat_template(conversation)["input_ids"][:max_length])
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": list(input_ids)}
''',
}
