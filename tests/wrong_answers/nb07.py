"""Respuestas erróneas plausibles del cuaderno 07."""

WRONG = {
    # Confunde el ajuste de prompts con el prefix tuning: cuenta un prompt por capa.
    "prompt_tuning_params": (
        "def prompt_tuning_params(num_virtual_tokens, model_config):\n"
        "    return num_virtual_tokens * model_config.hidden_size * model_config.num_hidden_layers\n"
    ),
    # Supone que el ajuste fino completo es siempre el primer registro.
    "relative_to_full": (
        "def relative_to_full(records):\n"
        "    full = records[0]\n"
        "    return {r.method: {'params': r.trainable / full.trainable,\n"
        "                       'time': r.seconds_per_step / full.seconds_per_step,\n"
        "                       'memory': r.peak_memory_bytes / full.peak_memory_bytes} for r in records}\n"
    ),
    # Error típico: la clase mayoritaria de la evaluación (se mira la respuesta).
    "accuracy_baseline": """def accuracy_of(predictions, labels):
    metric = helpers.load_accuracy()
    result = metric.compute(predictions=[int(p) for p in predictions], references=[int(y) for y in labels])
    return float(result["accuracy"])


def majority_baseline(train_labels, eval_labels):
    eval_labels = [int(y) for y in eval_labels]
    majority = max(set(eval_labels), key=eval_labels.count)
    return sum(int(y == majority) for y in eval_labels) / len(eval_labels)
""",
    # Error típico: sobrescribir las predicciones en cada lote (= en vez de +=).
    "predict_labels": """def predict_labels(model, tokenizer, texts, batch_size=16, max_length=48):
    model.eval()
    device = next(model.parameters()).device
    texts = list(texts)
    predictions = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt").to(device)
            predictions = [int(k) for k in model(**batch).logits.argmax(dim=-1)]
    return predictions
""",
    # Error típico: elegir con la pérdida de entrenamiento (la que ve el optimizador) y sin descartar
    # las ejecuciones que divergen.
    "choose_learning_rates": (
        "def choose_learning_rates(sweep, tolerance=0.01):\n"
        "    chosen = {}\n"
        "    for record in sweep:\n"
        "        best = chosen.get(record.method)\n"
        "        if best is None or record.losses[-1] < best.losses[-1]:\n"
        "            chosen[record.method] = record\n"
        "    return chosen\n"
    ),
    # Error típico: recortar el texto sin repetirlo cuando hay más tokens virtuales que tokens.
    "text_init_token_ids": """def text_init_token_ids(tokenizer, text, num_virtual_tokens):
    return list(tokenizer(text)["input_ids"])[:num_virtual_tokens]
""",
}

# Celdas calificadas que cada respuesta errónea deja a 0 (las demás, nota máxima).
BREAKS = {
    "prompt_tuning_params": ["test_prompt_tuning_params"],
    "accuracy_baseline": ["test_accuracy_baseline"],
    "predict_labels": ["test_predict_labels"],
    "relative_to_full": ["test_relative_to_full"],
    "choose_learning_rates": ["test_choose_learning_rates"],
    "text_init_token_ids": ["test_text_init_token_ids"],
}
