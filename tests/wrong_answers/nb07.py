"""Respuestas erróneas plausibles del cuaderno 07."""
WRONG = {
    # Confunde el ajuste de prompts con el prefix tuning: cuenta un prompt por capa.
    "prompt_tuning_params": (
        "def prompt_tuning_params(num_virtual_tokens, model_config):\n"
        "    return num_virtual_tokens * model_config.hidden_size * model_config.num_hidden_layers\n"
    ),
    # Supone que el ajuste fino completo es siempre el primer registro.
    "relative_to_full": (
        "def relative_to_full(records):\n"
        "    full = records[0]\n"
        "    return {r.method: {'params': r.trainable / full.trainable,\n"
        "                       'time': r.seconds_per_step / full.seconds_per_step,\n"
        "                       'memory': r.peak_memory_bytes / full.peak_memory_bytes} for r in records}\n"
    ),
}
