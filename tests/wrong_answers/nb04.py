"""Respuestas erróneas del cuaderno 04 (QLoRA)."""

WRONG = {
    # Error típico: una sola constante absmax para todo el tensor, no una por bloque.
    "blockwise_quantize": """def blockwise_quantize(W, levels, blocksize=64):
    levels = torch.as_tensor(levels, dtype=torch.float32)
    flat = W.float().reshape(-1, 1)
    absmax = flat.abs().max()
    nearest = (flat / absmax).sub(levels).abs().argmin(dim=-1)
    return (levels[nearest] * absmax).reshape(W.shape)
""",
    # Error típico: con doble cuantización, olvidar la constante fp32 de segundo nivel (32 / (B·B2)).
    "nf4_bytes_per_param": '''def nf4_bytes_per_param(blocksize=64, double_quant=True, absmax_bits=32, dq_blocksize=256, dq_bits=8):
    """Bytes por parámetro (versión errónea: falta la constante de segundo nivel)."""
    bits = 4.0
    if double_quant:
        bits += dq_bits / blocksize
    else:
        bits += absmax_bits / blocksize
    return bits / 8
''',
    # Error típico: contar todas las nn.Linear (Linear4bit hereda de ella), también lm_head.
    "count_4bit_layers": """def count_4bit_layers(model):
    return sum(isinstance(module, torch.nn.Linear) for module in model.modules())
""",
    # Error típico: tomar numel() de los pesos empaquetados (dos valores de 4 bits por byte).
    "predict_footprint": """def predict_footprint(model, bytes_per_param, other_bytes=4):
    n_quantized = sum(p.numel() for m in model.modules() if isinstance(m, bnb.nn.Linear4bit) for p in m.parameters(recurse=False))
    n_rest = sum(p.numel() for p in model.parameters()) - n_quantized
    return n_quantized * bytes_per_param + n_rest * other_bytes
""",
    # Error típico: no pasar target_modules a LoraConfig (siempre q_proj y v_proj).
    "build_qlora_model": """def build_qlora_model(r=8, target_modules="all-linear", profile=None, gradient_checkpointing=False):
    model = helpers.load_model(profile, quantization_config=nf4_config(), verbose=False)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    config = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    return get_peft_model(model, config)
""",
}

# Celdas calificadas que cada respuesta errónea deja a 0 (las demás, nota máxima).
BREAKS = {
    "blockwise_quantize": ["test_blockwise_quantize"],
    "nf4_bytes_per_param": ["test_nf4_bytes_per_param"],
    "count_4bit_layers": ["test_count_4bit_layers"],
    "predict_footprint": ["test_predict_footprint"],
    "build_qlora_model": ["test_build_qlora_trainable", "test_build_qlora_loss"],  # la pérdida se mide con tu modelo
}
