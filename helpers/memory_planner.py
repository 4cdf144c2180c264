"""Planificador de memoria: «¿cabe en mi GPU?» sin descargar pesos.

A partir de la configuración de un modelo tipo Llama (un ``AutoConfig`` o un diccionario con
sus campos) y del método (``full``, ``lora``, ``qlora``) estima los parámetros entrenables y la
memoria pico del entrenamiento, desglosada en pesos, gradientes, estados del optimizador y
activaciones, y dice si cabe en una GPU con nombre (T4, L4, A100...).

Los recuentos de LoRA los hace ``peft`` (exactos); la memoria es una estimación.
Fórmulas (bytes por parámetro) según ``reference-figures``: fp32 4, fp16/bf16 2, NF4 con doble
cuantización ≈ 0.516 (Dettmers et al. 2023, QLoRA, arXiv 2305.14314, §3); AdamW guarda dos
estados fp32 (8 bytes) por parámetro entrenable, AdamW de 8 bits unos 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

# Memoria de GPUs habituales en GB (10⁹ bytes, la unidad de todo el curso): la que informa
# ``torch.cuda.get_device_properties(0).total_memory``. Una T4 «de 16 GB» da 15.83·10⁹ bytes
# (14.74 GiB); el contexto de CUDA se descuenta aparte (``CUDA_OVERHEAD_BYTES``). Las demás son
# las cifras en GiB que se citaban antes (L4 y A10G 22.0, V100 15.8, A100/H100 39.4 y 79.2)
# pasadas a GB (× 2³⁰ / 10⁹).
GPUS_GB = {
    "T4": 15.83,
    "L4": 23.6,
    "V100-16GB": 17.0,
    "A10G": 23.6,
    "A100-40GB": 42.3,
    "A100-80GB": 85.0,
    "H100-80GB": 85.0,
}
GIB = 2**30
# Fracción de la tarjeta que el plan deja para lo que no cuenta (fragmentación del asignador,
# memoria de trabajo de las bibliotecas): una regla práctica del curso, no una medida. Por debajo,
# el veredicto es «justo» (Plan.verdict).
SAFETY_MARGIN = 0.10
LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
NF4_DQ_BYTES = 0.5 + (8 / 64 + 32 / (64 * 256)) / 8  # ≈ 0.516 bytes/parámetro
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
OPTIMIZER_BYTES = {"adamw": 8, "adamw_8bit": 2, "paged_adamw_8bit": 2, "sgd": 0}
CUDA_OVERHEAD_BYTES = 0.5e9  # contexto de CUDA y kernels, aproximado

# Configuraciones públicas (los campos de su config.json en el Hub de Hugging Face): sirven para
# planificar sin descargar nada. En Colab también puedes pasar ``AutoConfig.from_pretrained(id)``.
PUBLIC_CONFIGS = {
    "SmolLM2-1.7B": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=24,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=49152,
        tie_word_embeddings=True,
    ),
    "Llama-3.2-1B": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        vocab_size=128256,
        tie_word_embeddings=True,
    ),
    "Llama-3.2-3B": dict(
        hidden_size=3072,
        intermediate_size=8192,
        num_hidden_layers=28,
        num_attention_heads=24,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=128256,
        tie_word_embeddings=True,
    ),
    "Llama-2-7B": dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
        tie_word_embeddings=False,
    ),
    "Llama-3.1-8B": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=False,
    ),
}


@dataclass(frozen=True)
class Shape:
    """Lo que importa de la configuración para contar y estimar."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool

    @classmethod
    def from_config(cls, config) -> Shape:
        get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
        hidden, heads = get("hidden_size"), get("num_attention_heads")
        if hidden is None or heads is None:
            raise ValueError(
                "La configuración necesita al menos hidden_size y num_attention_heads (modelo tipo Llama)."
            )
        return cls(
            hidden=hidden,
            intermediate=get("intermediate_size"),
            layers=get("num_hidden_layers"),
            heads=heads,
            kv_heads=get("num_key_value_heads") or heads,
            head_dim=get("head_dim") or hidden // heads,
            vocab=get("vocab_size"),
            tied=bool(get("tie_word_embeddings", False)),
        )

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(d_in, d_out) de cada capa lineal de un bloque; k/v con atención de grupos (GQA)."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    def linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linear_shapes().values())

    def total_params(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        norms = self.layers * 2 * self.hidden + self.hidden
        return embeddings + norms + self.linear_params()


def resolve_targets(target_modules) -> tuple[str, ...]:
    """'all-linear' o una lista de nombres (q_proj, v_proj, ...)."""
    if target_modules in ("all-linear", None):
        return LINEAR_MODULES
    targets = tuple(target_modules)
    unknown = set(targets) - set(LINEAR_MODULES)
    if unknown:
        raise ValueError(
            f"Módulos desconocidos {sorted(unknown)}: usa algunos de {', '.join(LINEAR_MODULES)} o 'all-linear'."
        )
    return targets


def peft_lora_params(config, r: int, target_modules="all-linear") -> int:
    """Parámetros entrenables de LoRA contados por ``peft`` (exacto), sin cargar pesos.

    Construye el esqueleto del modelo en el dispositivo ``meta`` (no reserva memoria), le pone los
    adaptadores con ``peft.get_peft_model`` y pregunta a ``peft`` cuántos parámetros entrena. La
    fórmula que hay detrás la escribes tú en el cuaderno 02.
    """
    shape = config if isinstance(config, Shape) else Shape.from_config(config)
    return _peft_count(shape, int(r), resolve_targets(target_modules))


@lru_cache(maxsize=64)
def _peft_count(shape: Shape, r: int, targets: tuple[str, ...]) -> int:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        head_dim=shape.head_dim,
        vocab_size=shape.vocab,
        tie_word_embeddings=shape.tied,
    )
    with torch.device("meta"):
        skeleton = get_peft_model(
            LlamaForCausalLM(config), LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(targets))
        )
    trainable, _ = skeleton.get_nb_trainable_parameters()
    return int(trainable)


@dataclass
class Plan:
    method: str
    total_params: int
    trainable_params: int
    breakdown: dict[str, float] = field(default_factory=dict)  # bytes

    @property
    def total_bytes(self) -> float:
        """Pico estimado: pesos + estados del optimizador + contexto CUDA + el mayor de
        (gradientes) y (activaciones + *logits*). Gradientes y activaciones no coinciden enteros:
        la retropropagación libera las activaciones de cada bloque a medida que crea sus gradientes."""
        b = self.breakdown
        overlap = max(b.get("gradientes", 0.0), b.get("activaciones", 0.0) + b.get("logits", 0.0))
        rest = sum(v for k, v in b.items() if k not in ("gradientes", "activaciones", "logits"))
        return rest + overlap

    def fits(self, gpu: str = "T4") -> bool:
        """True si el pico estimado cabe en la memoria de ``gpu`` (ambos en bytes)."""
        if gpu not in GPUS_GB:
            raise ValueError(f"GPU desconocida {gpu!r}: elige una de {', '.join(GPUS_GB)}.")
        return self.total_bytes <= GPUS_GB[gpu] * 1e9

    def headroom(self, gpu: str = "T4") -> float:
        """Fracción de la memoria de ``gpu`` que queda libre según el plan (negativa si no cabe)."""
        if gpu not in GPUS_GB:
            raise ValueError(f"GPU desconocida {gpu!r}: elige una de {', '.join(GPUS_GB)}.")
        return 1 - self.total_bytes / (GPUS_GB[gpu] * 1e9)

    def verdict(self, gpu: str = "T4") -> str:
        """``"sí"``, ``"justo"`` o ``"no"``: ¿cabe en ``gpu`` con el margen de seguridad?

        ``"justo"``: el pico estimado cabe en la tarjeta, pero deja menos de ``SAFETY_MARGIN`` de
        su memoria libre. El plan no cuenta la fragmentación del asignador de CUDA ni la memoria de
        trabajo de las bibliotecas (cuBLAS, bitsandbytes), ni la caché KV de la inferencia: con
        menos margen, en la práctica no cuentes con que quepa.
        """
        left = self.headroom(gpu)
        return "sí" if left >= SAFETY_MARGIN else "justo" if left >= 0 else "no"

    def report(self, gpu: str = "T4") -> str:
        """Resumen en español, con el desglose y el veredicto para ``gpu``."""
        trainable = f"{self.trainable_params:,} de {self.total_params:,}".replace(",", " ")
        lines = [f"Método: {self.method} · parámetros entrenables: {trainable}"]
        for part, value in self.breakdown.items():
            lines.append(f"  {part:<22} {value / 1e9:8.2f} GB")
        lines.append(
            f"  {'pico estimado':<22} {self.total_bytes / 1e9:8.2f} GB  "
            "(cuenta el mayor de gradientes y activaciones + logits)"
        )
        verdict = {
            "sí": "sí cabe",
            "no": "no cabe",
            "justo": f"justo: cabe, pero deja solo un {100 * self.headroom(gpu):.0f} % libre (menos del "
            f"margen de seguridad del {100 * SAFETY_MARGIN:.0f} %)",
        }[self.verdict(gpu)]
        lines.append(f"¿Cabe en una {gpu} ({GPUS_GB[gpu]} GB = {GPUS_GB[gpu] * 1e9 / GIB:.2f} GiB)? {verdict}.")
        return "\n".join(lines)


def activation_bytes(
    shape: Shape,
    batch: int,
    seq_len: int,
    bytes_per_value: int,
    gradient_checkpointing: bool,
    lora_r: int = 0,
    n_lora: int = 0,
) -> float:
    """Activaciones de los bloques que se guardan para la retropropagación.

    Por token y bloque: entradas y salidas de las dos normas y el residuo (6·h), la consulta y
    la salida de la atención (2·q), las claves y valores (2·kv, más pequeñas con GQA), cuatro
    tensores del MLP SwiGLU (4·intermedia) y la entrada intermedia de cada adaptador LoRA (r).
    Es la cuenta que coincide con lo que PyTorch guarda de verdad en un Llama (lo mide
    el banco de pruebas). Con
    *gradient checkpointing* solo se guarda la entrada de cada bloque más un bloque completo.
    """
    q, kv = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    per_token_layer = 6 * shape.hidden + 2 * q + 2 * kv + 4 * shape.intermediate + n_lora * lora_r
    tokens = batch * seq_len
    if gradient_checkpointing:
        return tokens * (shape.layers * shape.hidden + per_token_layer) * bytes_per_value
    return tokens * shape.layers * per_token_layer * bytes_per_value


def logits_bytes(shape: Shape, batch: int, seq_len: int) -> float:
    """*Logits* en fp32 en el momento de más memoria de la pérdida: al retropropagar la entropía
    cruzada conviven el ``log_softmax`` que guardó, el gradiente que le llega y el gradiente de los
    *logits* (3 copias; el pico de tensores vivos medido lo confirma). Con vocabularios grandes
    (49 152 en SmolLM2, 128 256 en Llama 3) pesan mucho.
    """
    return 3 * batch * seq_len * shape.vocab * 4


def plan(
    config,
    method: str = "lora",
    *,
    r: int = 16,
    target_modules="all-linear",
    batch: int = 1,
    seq_len: int = 512,
    precision: str = "fp16",
    storage: str | None = None,
    optimizer: str = "adamw",
    gradient_checkpointing: bool = False,
    cuda_overhead: bool = True,
) -> Plan:
    """Estima la memoria pico de entrenamiento.

    ``method``: 'full' (ajuste fino completo), 'lora' o 'qlora'. ``precision`` es la precisión del
    **cálculo** ('fp32', 'fp16' o 'bf16'): la de las activaciones (en 'full' con fp16/bf16 se
    supone precisión mixta: copia maestra fp32 + copia de 16 bits, los 18 bytes/parámetro de la
    documentación de transformers). ``storage`` es la de los pesos **congelados** que no son de 4
    bits: por defecto la de ``precision`` en 'lora' y fp32 en 'qlora', porque
    ``prepare_model_for_kbit_training`` pasa a fp32 todo lo que no está cuantizado (embeddings,
    ``lm_head``, normas).
    """
    if method not in ("full", "lora", "qlora"):
        raise ValueError(f"Método desconocido {method!r}: usa 'full', 'lora' o 'qlora'.")
    storage = storage or ("fp32" if method == "qlora" else precision)
    for value in (precision, storage):
        if value not in DTYPE_BYTES:
            raise ValueError(f"Precisión desconocida {value!r}: usa 'fp32', 'fp16' o 'bf16'.")
    if optimizer not in OPTIMIZER_BYTES:
        raise ValueError(f"Optimizador desconocido {optimizer!r}: usa {', '.join(OPTIMIZER_BYTES)}.")
    shape = Shape.from_config(config)
    total = shape.total_params()
    e = DTYPE_BYTES[precision]
    targets = resolve_targets(target_modules)
    if method == "full":
        trainable = total
        weights = total * (4 + (e if e != 4 else 0))  # maestra fp32 (+ copia de 16 bits)
        n_lora = 0
    else:
        trainable = peft_lora_params(shape, r, targets)
        linear = shape.linear_params()
        kept = DTYPE_BYTES[storage]
        base_bytes = linear * NF4_DQ_BYTES + (total - linear) * kept if method == "qlora" else total * kept
        weights = base_bytes + trainable * 4  # los adaptadores se entrenan en fp32
        n_lora = len(targets)
        total += trainable
    breakdown = {
        "pesos": weights,
        "gradientes": trainable * 4,
        "estados del optimizador": trainable * OPTIMIZER_BYTES[optimizer],
        "activaciones": activation_bytes(
            shape, batch, seq_len, e, gradient_checkpointing, r if method != "full" else 0, n_lora
        ),
        "logits": logits_bytes(shape, batch, seq_len),
    }
    if cuda_overhead:
        breakdown["contexto CUDA"] = CUDA_OVERHEAD_BYTES
    return Plan(method, total, trainable, breakdown)
