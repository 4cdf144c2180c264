"""LoRA escrito a mano: la versión de referencia del curso (cuaderno 02) para reutilizarla.

La idea en una línea: una capa lineal congelada ``W`` más un adaptador de bajo rango,

    y = W x + b + (α/r) · B A x,   A ∈ R^{r×d_in} (aleatoria),   B ∈ R^{d_out×r} (ceros al inicio).

- :class:`LoRALinear` envuelve un ``nn.Linear`` congelado e inicializa A y B como ``peft``
  (A con ``kaiming_uniform_(a=√5)``, B a cero: al principio la salida no cambia).
- :func:`inject_lora` cambia por :class:`LoRALinear` las capas lineales con los nombres dados
  (``q_proj``, ``v_proj``...) de todos los bloques y congela todo lo demás.
- :func:`copy_lora_to_peft` copia A y B en un modelo de ``peft`` con la misma estructura.
- :func:`merge_lora` fusiona el adaptador: un ``nn.Linear`` nuevo con ``W + (α/r)·B A``.
- :func:`lora_param_count` y :func:`model_lora_param_count` cuentan los parámetros entrenables
  (con las formas de k/v de la atención de grupos, GQA, sacadas de la configuración).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .memory_planner import LINEAR_MODULES, Shape
from .memory_planner import lora_params as _planner_lora_params

__all__ = [
    "LINEAR_MODULES",
    "LoRALinear",
    "copy_lora_to_peft",
    "inject_lora",
    "linear_shapes",
    "lora_layers",
    "lora_param_count",
    "merge_lora",
    "model_lora_param_count",
]


def lora_param_count(d_in: int, d_out: int, r: int) -> int:
    """Parámetros entrenables de LoRA en una capa ``d_out × d_in``: ``r·(d_in + d_out)``."""
    return r * (d_in + d_out)


def linear_shapes(config) -> dict[str, tuple[int, int]]:
    """``(d_in, d_out)`` de las 7 capas lineales de un bloque tipo Llama, según su configuración.

    q_proj: d_out = n_heads·head_dim; k_proj y v_proj: d_out = n_kv_heads·head_dim (GQA);
    o_proj: d_in = n_heads·head_dim; gate/up: hidden → intermediate; down: intermediate → hidden.
    """
    return Shape.from_config(config).linear_shapes()


def model_lora_param_count(config, r: int, target_modules="all-linear") -> int:
    """Parámetros entrenables de LoRA en todo el modelo (el mismo número que cuenta ``peft``)."""
    return _planner_lora_params(config, r, target_modules)


class LoRALinear(nn.Module):
    """Capa lineal congelada con un adaptador LoRA: ``y = W x + b + (α/r)·B A x``.

    Atributos: ``base`` (el ``nn.Linear`` original, congelado), ``A`` (r × d_in), ``B`` (d_out × r),
    ``r``, ``alpha`` y ``scaling = alpha / r``. Solo ``A`` y ``B`` son entrenables.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        if r < 1:
            raise ValueError(f"El rango r debe ser al menos 1 (recibí {r}).")
        self.base = base
        self.base.requires_grad_(False)
        self.r, self.alpha = r, alpha
        self.scaling = alpha / r
        w = base.weight
        self.A = nn.Parameter(torch.empty(r, base.in_features, dtype=w.dtype, device=w.device))
        self.B = nn.Parameter(torch.zeros(base.out_features, r, dtype=w.dtype, device=w.device))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # como nn.Linear y como peft

    def delta_weight(self) -> torch.Tensor:
        """La actualización ``ΔW = (α/r)·B A`` (d_out × d_in), de rango como mucho r."""
        return (self.B @ self.A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # El mismo orden de operaciones que peft: base(x) + B(A(x))·escala.
        return self.base(x) + F.linear(F.linear(x, self.A), self.B) * self.scaling

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}"


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """Las capas :class:`LoRALinear` del modelo, por su nombre completo."""
    return {name: module for name, module in model.named_modules() if isinstance(module, LoRALinear)}


def inject_lora(model: nn.Module, target_modules=("q_proj", "v_proj"), r: int = 8, alpha: float = 16) -> list[str]:
    """Congela el modelo y cambia por :class:`LoRALinear` cada ``nn.Linear`` cuyo último nombre
    esté en ``target_modules`` (o todas las de los bloques con ``"all-linear"``).

    Modifica el modelo en su sitio y devuelve los nombres completos de las capas cambiadas.
    """
    targets = set(LINEAR_MODULES if target_modules == "all-linear" else target_modules)
    model.requires_grad_(False)
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets
    ]
    if not found:
        raise ValueError(f"No hay capas nn.Linear con esos nombres en el modelo: {sorted(targets)}.")
    for name, module in found:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(module, r, alpha))
    return [name for name, _ in found]


@torch.no_grad()
def copy_lora_to_peft(model: nn.Module, peft_model: nn.Module, adapter: str = "default") -> int:
    """Copia A y B de cada :class:`LoRALinear` de ``model`` en ``lora_A/lora_B`` del modelo de peft.

    En peft, la capa ``model.layers.0.self_attn.q_proj`` vive en
    ``base_model.model.model.layers.0.self_attn.q_proj`` y sus pesos son
    ``lora_A.<adapter>.weight`` (= A) y ``lora_B.<adapter>.weight`` (= B). Devuelve cuántas capas copió.
    """
    params = dict(peft_model.named_parameters())
    layers = lora_layers(model)
    for name, layer in layers.items():
        prefix = f"base_model.model.{name}"
        for ours, theirs in ((layer.A, "lora_A"), (layer.B, "lora_B")):
            key = f"{prefix}.{theirs}.{adapter}.weight"
            if key not in params:
                raise KeyError(f"El modelo de peft no tiene {key}: ¿usa los mismos target_modules?")
            params[key].copy_(ours)
    return len(layers)


@torch.no_grad()
def merge_lora(layer: LoRALinear) -> nn.Linear:
    """Un ``nn.Linear`` nuevo con ``W + (α/r)·B A`` y el mismo sesgo (no cambia ``layer``)."""
    base = layer.base
    merged = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                       dtype=base.weight.dtype, device=base.weight.device)
    merged.weight.copy_(base.weight + layer.delta_weight())
    if base.bias is not None:
        merged.bias.copy_(base.bias)
    return merged
