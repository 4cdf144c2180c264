"""Respuestas erróneas del cuaderno 08 (variantes de LoRA)."""

WRONG = {
    # Error típico: la raíz en el sitio equivocado (rsLoRA con α/r y LoRA con α/√r).
    "lora_scale": """def lora_scale(alpha, r, use_rslora=False):
    return alpha / r if use_rslora else alpha / math.sqrt(r)
""",
    # Error típico: olvidar el vector de magnitud (cuenta solo A y B, como LoRA).
    "dora_trainable": """def dora_trainable(model, r, target_modules):
    total = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.split(".")[-1] in target_modules:
            total += r * (module.in_features + module.out_features)
    return total
""",
    # Error típico: la norma de las columnas del peso de PyTorch (dim=0) en vez de una por neurona de salida.
    "dora_weight": """def dora_weight(weight, lora_A, lora_B, magnitude, scaling):
    adapted = weight.float() + scaling * (lora_B.float() @ lora_A.float())
    norm = torch.linalg.norm(adapted, dim=0, keepdim=True)
    return magnitude.float().view(-1, 1) * adapted / norm
""",
    # Error típico: no alternar (cuantiza siempre W, así que más iteraciones no cambian nada).
    "loftq_factors": """def loftq_factors(weight, r, num_iter=1, quantize=nf4_roundtrip):
    weight = weight.float()
    for _ in range(num_iter):
        q = quantize(weight)
        u, s, vh = torch.linalg.svd(weight - q, full_matrices=False)
        lora_B = u[:, :r] * s[:r].sqrt()
        lora_A = s[:r].sqrt()[:, None] * vh[:r]
    return q, lora_A, lora_B
""",
    # Error típico: el signo de la diferencia al revés (LoRA menos la variante).
    "variants_table": """def variants_table(runs, noise):
    reference = next(row["pérdida final"] for row in runs if row["variante"] == "LoRA")
    rows = []
    for row in runs:
        delta = reference - row["pérdida final"]
        rows.append({"variante": row["variante"], "entrenables": row["entrenables"], "s/paso": row["s/paso"],
                     "memoria pico (MB)": row["memoria pico (bytes)"] / 1e6, "pérdida final": row["pérdida final"],
                     "Δ frente a LoRA": delta, "¿supera el ruido?": abs(delta) > noise})
    return pd.DataFrame(rows, columns=COLUMNS)
""",
}

# Celdas calificadas que cada respuesta errónea deja a 0 (las demás, nota máxima).
BREAKS = {
    "lora_scale": ["test_lora_scale"],
    "dora_trainable": ["test_dora_trainable"],
    "dora_weight": ["test_dora_weight"],
    "loftq_factors": ["test_loftq_factors"],
    "variants_table": ["test_variants_table"],
}
