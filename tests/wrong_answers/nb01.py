"""Respuestas erróneas plausibles del cuaderno 01 (introducción a PEFT)."""

WRONG = {
    # Error típico: contar también los tensores repetidos (la lm_head atada sale dos veces).
    "count_params": '''def count_params(model):
    total = trainable = 0
    for _, param in model.named_parameters(remove_duplicate=False):
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return total, trainable
''',
    # Error típico: congelar lo que no está en la lista, pero olvidar descongelar lo que sí está
    # (y no validar los nombres). Con un modelo recién cargado parece funcionar.
    "freeze_all_but": '''def freeze_all_but(model, names):
    for name, param in model.named_parameters():
        if name not in names:
            param.requires_grad_(False)
''',
}
