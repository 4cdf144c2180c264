"""Respuestas erróneas plausibles del cuaderno 09 (del adaptador a producción)."""

WRONG = {
    # Error típico: contar también las posiciones de relleno (olvidar la máscara de atención).
    "top1_agreement": """def top1_agreement(logits_a, logits_b, attention_mask):
    return (logits_a.argmax(dim=-1) == logits_b.argmax(dim=-1)).float().mean().item()
""",
    # Error típico: creer que q8_0 ocupa 1 byte por peso (olvidar la escala fp16 de cada bloque de 32).
    "gguf_tensor_bytes": """def gguf_tensor_bytes(model, quantization):
    if quantization not in ("f16", "q8_0"):
        raise ValueError("quantization debe ser 'f16' o 'q8_0'.")
    total = 0
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and model.config.tie_word_embeddings:
            continue
        n = tensor.numel()
        if tensor.dim() == 1:
            total += 4 * n
        else:
            total += (2 if quantization == "f16" else 1) * n
    return total
""",
    # Error típico: generar en lote con el relleno por defecto del tokenizador (a la derecha): las
    # filas cortas continúan después de los tokens de relleno.
    "serve_mixed": """def serve_mixed(peft_model, tokenizer, requests, max_new_tokens=16):
    names = ["__base__" if name is None else name for name, _ in requests]
    unknown = sorted({n for n in names if n != "__base__" and n not in peft_model.peft_config})
    if unknown:
        raise ValueError(f"Adaptadores no cargados: {unknown}.")
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
             for _, q in requests]
    inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(peft_model.device)
    peft_model.eval()
    with torch.no_grad():
        output = peft_model.generate(**inputs, adapter_names=names, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id)
    return [t.strip() for t in tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)]
""",
    # Error típico: el rendimiento como la media de la velocidad de cada petición, no como tokens
    # totales entre el tiempo total.
    "latency_table": """def latency_table(timings):
    rows = {}
    for strategy, requests in timings.items():
        if not requests:
            raise ValueError("sin peticiones")
        ends = [end for end, _ in requests]
        rows[strategy] = {
            "peticiones": len(requests),
            "tokens/s": sum(tokens / end for end, tokens in requests) / len(requests),
            "latencia media (s)": sum(ends) / len(ends),
            "latencia máxima (s)": max(ends),
        }
    return pd.DataFrame.from_dict(rows, orient="index")
""",
    # Error típico: olvidar las épocas (cuenta una sola pasada por el conjunto de datos).
    "training_cost": """def training_cost(dataset_tokens, epochs, tokens_per_second, price_per_hour):
    if tokens_per_second <= 0 or epochs <= 0:
        raise ValueError("tokens_per_second y epochs deben ser positivos.")
    hours = dataset_tokens / tokens_per_second / 3600
    return hours, hours * price_per_hour
""",
}

# Celdas calificadas que cada respuesta errónea deja a 0 (las demás, nota máxima).
BREAKS = {
    "top1_agreement": ["test_top1_agreement"],
    "gguf_tensor_bytes": ["test_gguf_tensor_bytes"],
    "serve_mixed": ["test_serve_mixed"],
    "latency_table": ["test_latency_table"],
    "training_cost": ["test_training_cost"],
}
