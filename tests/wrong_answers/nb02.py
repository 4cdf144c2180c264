"""Respuestas erróneas plausibles del cuaderno 02 (las matemáticas de LoRA)."""

WRONG = {
    # Error típico: olvidar la atención de grupos (GQA) y dar a k_proj/v_proj la salida hidden_size.
    "model_lora_params": '''def model_lora_params(config, r, target_modules):
    hidden, intermediate = config.hidden_size, config.intermediate_size
    shapes = {
        "q_proj": (hidden, hidden),
        "k_proj": (hidden, hidden),
        "v_proj": (hidden, hidden),
        "o_proj": (hidden, hidden),
        "gate_proj": (hidden, intermediate),
        "up_proj": (hidden, intermediate),
        "down_proj": (intermediate, hidden),
    }
    return config.num_hidden_layers * sum(lora_params(*shapes[name], r) for name in target_modules)
''',
    # Error típico: escalar por alpha en vez de alpha / r (en el paso 0 no se nota, con B ≠ 0 sí).
    "merge": '''def merge(layer):
    base = layer.base
    merged = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
    with torch.no_grad():
        merged.weight.copy_(base.weight + layer.alpha * layer.B @ layer.A)
        if base.bias is not None:
            merged.bias.copy_(base.bias)
    return merged
''',
}
