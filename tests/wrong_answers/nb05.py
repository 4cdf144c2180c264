"""Respuestas erróneas del cuaderno 05 (experimentos de rango)."""

WRONG = {
    # Error típico: sumar los valores singulares en vez de sus cuadrados. Con valores singulares
    # iguales (la tarea visible) da lo mismo; con otros, no.
    "rank_floor": """def rank_floor(delta, r):
    s = torch.linalg.svdvals(delta.float())
    return float(s[r:].sum() / s.sum())
""",
    # Error típico: guardar la pérdida sin dividirla por la de la capa congelada e ignorar
    # use_rslora (la escala siempre α/r).
    "fit_lora_to_update": """def fit_lora_to_update(W, delta, r, *, steps=200, learning_rate=1e-2, alpha=None, use_rslora=False, seed=0):
    d_out, d_in = W.shape
    layer = nn.Linear(d_in, d_out, bias=False)
    with torch.no_grad():
        layer.weight.copy_(W)
    torch.manual_seed(seed)
    config = LoraConfig(r=r, lora_alpha=2 * r if alpha is None else alpha, lora_dropout=0.0, target_modules=["0"])
    model = get_peft_model(nn.Sequential(layer), config)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    inputs = torch.eye(d_in)
    target = inputs @ (W + delta).T
    history = []
    for _ in range(steps):
        loss = ((model(inputs) - target) ** 2).mean()
        history.append(float(loss.detach()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return history
""",
    # Dos errores típicos juntos: α = 2r aunque pidan un α fijo, y la «pérdida final» tomada de la
    # pérdida de entrenamiento en vez de medirla en validación.
    "rank_sweep": """def rank_sweep(ranks, batches, eval_batches, *, alpha=None, target_modules="all-linear", learning_rate=1e-3,
               profile=None, seed=0):
    results = []
    for r in ranks:
        model = helpers.load_model(profile, verbose=False)
        torch.manual_seed(seed)
        config = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=target_modules, task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
        trainable = helpers.count_parameters(model).trainable
        with helpers.PeakMemory() as peak:
            losses, seconds = train_steps(model, batches, learning_rate)
        results.append({"r": r, "alpha": 2 * r, "target_modules": target_modules, "trainable": trainable,
                        "train_losses": losses, "train_loss": final_loss(losses), "held_out_loss": final_loss(losses),
                        "seconds_per_step": statistics.median(seconds), "memory_bytes": peak.delta_bytes})
        del model
        helpers.free_memory()
    return results
""",
    # Error típico: el porcentaje sobre la mejor sin restar 1 (la mejor sale con 100 % en vez de 0 %).
    "conclusion_table": """def conclusion_table(results):
    best = min(x["held_out_loss"] for x in results)
    rows = [{"r": x["r"], "alpha": x["alpha"], "parámetros entrenables": x["trainable"],
             "pérdida final (validación)": x["held_out_loss"],
             "pérdida de entrenamiento (media de los últimos 3 pasos)": x["train_loss"],
             "s/paso": x["seconds_per_step"], "memoria (MB)": x["memory_bytes"] / 1e6,
             "% sobre la mejor": 100 * x["held_out_loss"] / best} for x in results]
    return pd.DataFrame(rows, columns=COLUMNS)
""",
    # Error típico: devolver el rango con la menor pérdida, sin mirar la tolerancia.
    "smallest_good_rank": '''def smallest_good_rank(results, tolerance=0.05):
    """Versión errónea: ignora la tolerancia y devuelve el rango de la mejor pérdida."""
    return min(results, key=lambda x: x["held_out_loss"])["r"]
''',
}

# Celdas calificadas que cada respuesta errónea deja a 0 (las demás, nota máxima).
BREAKS = {
    "rank_floor": ["test_rank_floor"],
    "fit_lora_to_update": ["test_ajuste_rango_conocido"],
    "rank_sweep": ["test_params_por_rango", "test_perdida_validacion"],
    "conclusion_table": ["test_tabla_conclusiones"],
    "smallest_good_rank": ["test_smallest_good_rank"],
}
