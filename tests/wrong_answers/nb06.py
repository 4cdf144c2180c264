"""Respuestas erróneas plausibles del cuaderno 06 (fusión y combinación de adaptadores)."""

WRONG = {
    # Error típico: creer que merge_and_unload trabaja sobre una copia. Devuelve un modelo fusionado
    # correcto, pero deja el PeftModel original sin capas LoRA.
    "merged_copy": '''def merged_copy(peft_model):
    return peft_model.merge_and_unload()
''',
    # Error típico: suponer que "linear" también da la suma ponderada exacta (olvida los términos
    # cruzados B_i A_j). Acierta con "cat" y falla con "linear".
    "expected_delta": '''def expected_delta(layer, adapter_names, weights, combination_type):
    if combination_type not in ("cat", "linear"):
        raise ValueError("combination_type debe ser 'cat' o 'linear'.")
    with torch.no_grad():
        return sum(w * layer.scaling[n] * layer.lora_B[n].weight @ layer.lora_A[n].weight
                   for n, w in zip(adapter_names, weights))
''',
}
