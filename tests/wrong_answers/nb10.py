"""Respuestas erróneas del cuaderno 10 (preferencias y DPO con LoRA)."""

WRONG = {
    # Error típico: olvidar el desplazamiento de un token (los logits de la posición t puntúan el
    # token t + 1). Con logits uniformes da lo mismo; con los de un modelo, no.
    "completion_logps": """def completion_logps(logits, input_ids, completion_mask):
    logps = torch.log_softmax(logits.float(), dim=-1)
    token_logps = logps.gather(-1, input_ids.unsqueeze(-1)).squeeze(-1)
    return (token_logps * completion_mask).sum(dim=1)
""",
    # Error típico: la β en las recompensas pero no dentro de la sigmoide de la pérdida.
    "dpo_loss": """def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta=0.1):
    chosen_rewards = beta * (policy_chosen_logps - ref_chosen_logps)
    rejected_rewards = beta * (policy_rejected_logps - ref_rejected_logps)
    losses = -F.logsigmoid((policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps))
    return losses, chosen_rewards, rejected_rewards
""",
    # Error típico: contar los empates como aciertos (antes de entrenar, todo serían aciertos).
    "reward_stats": """def reward_stats(chosen_rewards, rejected_rewards):
    diff = chosen_rewards - rejected_rewards
    return {"accuracy": float((diff >= 0).float().mean()), "margin": float(diff.mean())}
""",
    # Error típico: tomar get_base_model() por la referencia; sigue llevando las capas LoRA activas.
    "reference_logps": """def reference_logps(model, batch):
    with torch.no_grad():
        logits = model.get_base_model()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return completion_logps(logits, batch["input_ids"], batch["completion_mask"]).chunk(2)
""",
}

# Celdas calificadas que cada respuesta errónea deja a 0 (las demás, nota máxima).
BREAKS = {
    "completion_logps": ["test_completion_logps"],
    "dpo_loss": ["test_dpo_loss", "test_dpo_como_trl"],
    "reward_stats": ["test_reward_stats"],
    "reference_logps": ["test_referencia_es_la_base"],
}
