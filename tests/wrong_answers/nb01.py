"""Respuestas erróneas plausibles del cuaderno 01 (introducción a PEFT)."""

WRONG = {
    # Error típico: contar también los tensores repetidos (la lm_head atada sale dos veces).
    "count_params": """def count_params(model):
    total = trainable = 0
    for _, param in model.named_parameters(remove_duplicate=False):
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return total, trainable
""",
    # Error típico: congelar lo que no está en la lista, pero olvidar descongelar lo que sí está
    # (y no validar los nombres). Con un modelo recién cargado parece funcionar.
    "freeze_all_but": """def freeze_all_but(model, names):
    for name, param in model.named_parameters():
        if name not in names:
            param.requires_grad_(False)
""",
    # Error típico: olvidar los gradientes (solo pesos + estados del optimizador).
    "full_ft_memory_bytes": """def full_ft_memory_bytes(n_params, bytes_per_weight=4, optimizer="adamw"):
    states = {"adamw": 2, "sgd": 0}
    if optimizer not in states:
        raise ValueError(f"Optimizador desconocido {optimizer!r}")
    return int(n_params) * int(bytes_per_weight) * (1 + states[optimizer])
""",
    # Error típico: sumar gradientes y estados de todos los parámetros, también de los congelados.
    "training_memory_bytes": """def training_memory_bytes(model, optimizer="adamw"):
    states = {"adamw": 2, "sgd": 0}
    if optimizer not in states:
        raise ValueError(f"Optimizador desconocido {optimizer!r}")
    return int(sum(p.numel() * p.element_size() * (2 + states[optimizer]) for p in model.parameters()))
""",
}

# Celdas calificadas que cada respuesta errónea deja a 0 (las demás, nota máxima).
BREAKS = {
    "count_params": ["test_count_params"],
    "full_ft_memory_bytes": ["test_full_ft_memory_bytes"],
    "freeze_all_but": ["test_freeze_all_but"],
    "training_memory_bytes": ["test_training_memory_bytes"],
}
