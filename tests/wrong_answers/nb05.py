"""Respuestas erróneas del cuaderno 05 (experimentos de rango)."""

# Error típico: devolver el rango con la menor pérdida, sin mirar la tolerancia.
WRONG = {
    "smallest_good_rank": '''def smallest_good_rank(results, tolerance=0.05):
    """Versión errónea: ignora la tolerancia y devuelve el rango de la mejor pérdida."""
    return min(results, key=lambda x: x["final_loss"])["r"]
''',
    # Dos errores típicos juntos: α = r en vez de α = 2r (la escala α/r queda a la mitad) y la
    # pérdida final de un solo paso en vez de la media de los tres últimos.
    "rank_sweep": '''def rank_sweep(ranks, batches, target_modules="all-linear", learning_rate=1e-3, profile=None, seed=0):
    results = []
    for r in ranks:
        model = helpers.load_model(profile, verbose=False)
        torch.manual_seed(seed)
        config = LoraConfig(r=r, lora_alpha=r, lora_dropout=0.0, target_modules=target_modules, task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
        trainable = helpers.count_parameters(model).trainable
        with helpers.Timer() as timer:
            losses = train_adapter(model, batches, learning_rate=learning_rate)
        results.append({"r": r, "alpha": r, "target_modules": target_modules, "trainable": trainable,
                        "losses": losses, "final_loss": losses[-1], "seconds": timer.seconds})
        del model
        helpers.free_memory()
    return results
''',
    # Error típico: el porcentaje sobre la mejor sin restar 1 (la mejor sale con 100 % en vez de 0 %).
    "conclusion_table": '''def conclusion_table(results):
    best = min(x["final_loss"] for x in results)
    rows = []
    for x in results:
        modules = x["target_modules"]
        rows.append({"r": x["r"], "alpha": x["alpha"], "módulos": modules if isinstance(modules, str) else ",".join(modules),
                     "parámetros entrenables": x["trainable"], "pérdida final": x["final_loss"], "segundos": x["seconds"],
                     "% sobre la mejor": 100 * x["final_loss"] / best})
    return pd.DataFrame(rows, columns=COLUMNS)
''',
}

# Celdas calificadas que cada respuesta errónea deja a 0 (las demás, nota máxima).
BREAKS = {
    "rank_sweep": ["test_params_por_rango", "test_historias_por_rango"],
    "conclusion_table": ["test_tabla_conclusiones"],
    "smallest_good_rank": ["test_smallest_good_rank"],
}
