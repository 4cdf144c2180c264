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
    # Error típico: dejar las capas por defecto de muchos ejemplos (solo q_proj y v_proj).
    "lora_config": """torch.manual_seed(0)
lora_config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
peft_model = get_peft_model(model, lora_config)
""",
    # Error típico: guardar el modelo fusionado entero en vez del adaptador.
    "save_and_load": """def save_adapter(peft_model, folder):
    folder = Path(folder)
    peft_model.merge_and_unload().save_pretrained(folder)
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file())


def load_for_inference(folder, profile=None):
    base = helpers.load_model(profile, verbose=False)
    return PeftModel.from_pretrained(base, folder).eval()
""",
    # Error típico: buscar «🌎 Dato:» en cualquier sitio y dar por bueno el dato con una sola palabra clave.
    "task_metrics": """def task_metrics(answers, examples):
    answers, examples = list(answers), list(examples)
    if not answers or len(answers) != len(examples):
        raise ValueError("Hacen falta tantas respuestas como ejemplos.")
    formatted = sum("🌎 Dato:" in answer for answer in answers)
    right = sum(any(key in words(answer) for key in key_words(example)) for answer, example in zip(answers, examples))
    return {"formato": formatted / len(answers), "dato": right / len(answers)}
""",
    # Error típico (el de transformers antes de la 4.46): la media de las medias de los micro-lotes,
    # sin pesar por el número de tokens de cada uno.
    "accumulate_gradients": """def accumulate_gradients(model, micro_batches):
    micro_batches = list(micro_batches)
    device = next(model.parameters()).device
    total = 0.0
    for micro_batch in micro_batches:
        micro_batch = {k: v.to(device) for k, v in micro_batch.items()}
        loss = model(**micro_batch).loss / len(micro_batches)
        loss.backward()
        total += float(loss.detach())
    return total
""",
    # Error típico: buscar la contaminación solo en las preguntas, y tal cual (sin normalizar). En una
    # partición por pregunta, la misma respuesta llega a la prueba con otra pregunta y no se ve.
    "find_contamination": """def find_contamination(train_rows, test_rows) -> list[int]:
    seen = {row["instruction"] for row in train_rows}
    return [index for index, row in enumerate(test_rows) if row["instruction"] in seen]
""",
}

# Celdas calificadas que cada respuesta errónea deja a 0 (las demás, nota máxima).
BREAKS = {
    "lora_config": ["test_lora_config"],
    "tokenize_with_mask": ["test_tokenize_with_mask", "test_tokenize_with_mask_hidden"],
    "task_metrics": ["test_task_metrics"],
    "accumulate_gradients": ["test_accumulate_gradients"],
    "save_and_load": ["test_adapter"],
    "find_contamination": ["test_find_contamination"],
}
