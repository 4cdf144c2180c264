"""Respuestas erróneas plausibles del cuaderno 06 (fusión y combinación de adaptadores)."""

WRONG = {
    # Error típico: creer que merge_and_unload trabaja sobre una copia. Devuelve un modelo fusionado
    # correcto, pero deja el PeftModel original sin capas LoRA.
    "merged_copy": """def merged_copy(peft_model):
    return peft_model.merge_and_unload()
""",
    # Error típico: suponer que "linear" también da la suma ponderada exacta (olvida los términos
    # cruzados B_i A_j) y que "ties" también lo es. Acierta con "cat" y falla con "linear" y "ties".
    "expected_delta": """def expected_delta(layer, adapter_names, weights, combination_type, density=None):
    if combination_type not in ("cat", "linear", "ties"):
        raise ValueError("combination_type debe ser 'cat', 'linear' o 'ties'.")
    with torch.no_grad():
        return sum(w * layer.scaling[n] * layer.lora_B[n].weight @ layer.lora_A[n].weight
                   for n, w in zip(adapter_names, weights))
""",
    # Error típico: olvidar el valor absoluto (una diferencia negativa grande no cuenta).
    "max_abs_logit_diff": """def max_abs_logit_diff(model_a, model_b, inputs):
    model_a.eval()
    model_b.eval()
    with torch.no_grad():
        return (model_a(**inputs).logits - model_b(**inputs).logits).max().item()
""",
    # Error típico: no devolver el modelo al adaptador que tenía activo al empezar.
    "logits_by_adapter": """def logits_by_adapter(peft_model, inputs, adapter_names):
    peft_model.eval()
    result = {}
    with torch.no_grad():
        for name in adapter_names:
            peft_model.set_adapter(name, inference_mode=True)
            result[name] = peft_model(**inputs).logits
        with peft_model.disable_adapter():
            result["base"] = peft_model(**inputs).logits
    return result
""",
    # Error típico: crear el adaptador combinado (con su densidad) pero no activarlo ni validar nada.
    "combine_adapters": """def combine_adapters(peft_model, adapter_names, weights, new_name, combination_type="cat", density=None):
    options = {} if density is None else {"density": density}
    peft_model.add_weighted_adapter(list(adapter_names), list(weights), new_name, combination_type=combination_type, **options)
""",
}

# Celdas calificadas que cada respuesta errónea deja a 0 (las demás, nota máxima).
BREAKS = {
    "max_abs_logit_diff": ["test_max_abs_logit_diff"],
    "merged_copy": ["test_merged_copy"],
    "logits_by_adapter": ["test_logits_by_adapter"],
    "combine_adapters": ["test_combine_adapters"],
    "expected_delta": ["test_expected_delta"],
}
