"""Respuestas erróneas plausibles del cuaderno 02 (las matemáticas de LoRA)."""

WRONG = {
    # Error típico: olvidar la atención de grupos (GQA) y dar a k_proj/v_proj la salida hidden_size.
    "model_lora_params": """def model_lora_params(config, r, target_modules):
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
""",
    # Error típico: escalar por alpha en vez de alpha / r (en el paso 0 no se nota, con B ≠ 0 sí).
    "merge": """def merge(layer):
    base = layer.base
    merged = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
    with torch.no_grad():
        merged.weight.copy_(base.weight + layer.alpha * layer.B @ layer.A)
        if base.bias is not None:
            merged.bias.copy_(base.bias)
    return merged
""",
    # Error típico de precedencia: r·d_in + d_out en vez de r·(d_in + d_out).
    "lora_params": """def lora_params(d_in, d_out, r):
    return r * d_in + d_out
""",
    # Error típico: cambiar las inicializaciones (A a ceros, B aleatoria). La salida inicial no
    # cambia, pero entonces el gradiente de A es nulo y el de B también: LoRA no aprende.
    "lora_linear": """class LoRALinear(nn.Module):
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.r, self.alpha = r, alpha
        self.scaling = alpha / r
        weight = base.weight
        self.A = nn.Parameter(torch.zeros(r, base.in_features, dtype=weight.dtype, device=weight.device))
        self.B = nn.Parameter(torch.empty(base.out_features, r, dtype=weight.dtype, device=weight.device))
        nn.init.kaiming_uniform_(self.B, a=math.sqrt(5))

    def forward(self, x):
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scaling
""",
    # Error típico: no congelar el modelo antes de añadir los adaptadores (se entrena todo).
    "add_lora": """def add_lora(model, target_modules, r, alpha):
    found = [name for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in target_modules]
    for name in found:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(getattr(parent, child), r, alpha))
    return found


def copy_to_peft(model, peft_model):
    params = dict(peft_model.named_parameters())
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, LoRALinear):
                params[f"base_model.model.{name}.lora_A.default.weight"].copy_(module.A)
                params[f"base_model.model.{name}.lora_B.default.weight"].copy_(module.B)
""",
    # Error típico: olvidar que el adaptador multiplica por alpha / r (B A reconstruye ΔW solo si alpha = r).
    "lora_from_update": """def lora_from_update(delta, r, alpha):
    if r < 1:
        raise ValueError("r >= 1")
    U, sigma, Vh = torch.linalg.svd(delta.detach(), full_matrices=False)
    k = min(r, sigma.numel())
    A = torch.zeros(r, delta.shape[1], dtype=delta.dtype, device=delta.device)
    B = torch.zeros(delta.shape[0], r, dtype=delta.dtype, device=delta.device)
    A[:k] = sigma[:k].sqrt()[:, None] * Vh[:k]
    B[:, :k] = U[:, :k] * sigma[:k].sqrt()[None, :]
    return A, B
""",
}

# Celdas calificadas que cada respuesta errónea deja a 0 (las demás, nota máxima).
BREAKS = {
    "lora_params": ["test_lora_params", "test_model_lora_params"],  # model_lora_params la usa
    "model_lora_params": ["test_model_lora_params"],
    "lora_linear": ["test_lora_linear"],
    "add_lora": ["test_add_lora"],
    "merge": ["test_merge"],
    "lora_from_update": ["test_lora_from_update"],
}
