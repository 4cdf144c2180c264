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
    "lora_config": '''torch.manual_seed(0)
lora_config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
peft_model = get_peft_model(model, lora_config)
''',
    # Error típico: guardar el modelo fusionado entero en vez del adaptador.
    "save_and_load": '''def save_adapter(peft_model, folder):
    folder = Path(folder)
    peft_model.merge_and_unload().save_pretrained(folder)
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file())


def load_for_inference(folder, profile=None):
    base = helpers.load_model(profile, verbose=False)
    return PeftModel.from_pretrained(base, folder).eval()
''',
}

# Celdas calificadas que cada respuesta errónea deja a 0 (las demás, nota máxima).
BREAKS = {
    "lora_config": ["test_lora_config", "test_loss_decreases"],  # la prueba oculta entrena con tu lora_config
    "tokenize_with_mask": ["test_tokenize_with_mask", "test_tokenize_with_mask_hidden", "test_loss_decreases"],
    "save_and_load": ["test_adapter"],
}
