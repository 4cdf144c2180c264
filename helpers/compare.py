"""Comparativa medida de métodos de ajuste fino y clasificación de reseñas con LoRA.

:func:`run_method` entrena unos pocos pasos con uno de los cuatro métodos (``"full"``,
``"lora"``, ``"qlora"``, ``"prompt"``) sobre el mismo modelo base, los mismos lotes, la misma
semilla y la misma longitud de secuencia, y devuelve un :class:`MethodRecord` con lo medido:
parámetros entrenables, porcentaje, segundos por paso, memoria pico, pérdidas de entrenamiento
y, si le das lotes de validación, la pérdida final del curso (:func:`helpers.held_out_loss`).
:func:`sweep_learning_rates` repite :func:`run_method` con varias tasas de aprendizaje (un
barrido: cada método con la suya, elegida en validación). :func:`train_classifier` entrena un
clasificador de secuencias (p. ej. LoRA con ``task_type="SEQ_CLS"``) con un bucle sencillo y
reproducible. :func:`loss_verdict` da el veredicto sobre la pérdida final con
:func:`helpers.evidence.compare` (con una semilla y pocos pasos, *no concluyente*).

Uso típico::

    from helpers.compare import run_method
    registro = run_method("lora", steps=5)
    print(registro.as_row())
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch

from .evidence import Verdict
from .evidence import compare as evidence_verdict
from .measure import PeakMemory, count_parameters, footprint_bytes, free_memory
from .models import checkpoint, load_model, load_tokenizer
from .precision import decide
from .quantization import nf4_config, quant_constants_bytes
from .sweep import SEED, fixed_batches, memory_in_use, train_steps
from .sweep import final_loss as mean_last_losses

METHODS = ("full", "lora", "qlora", "prompt")
METHOD_NAMES = {
    "full": "ajuste fino completo",
    "lora": "LoRA",
    "qlora": "QLoRA",
    "prompt": "ajuste de prompts",
}
# Los mismos nombres como sujeto de una frase.
SUBJECTS = {"full": "el ajuste fino completo", "lora": "LoRA", "qlora": "QLoRA", "prompt": "el ajuste de prompts"}
# Tasas de aprendizaje habituales para cada método (AdamW, pocos pasos).
LEARNING_RATES = {"full": 5e-5, "lora": 1e-3, "qlora": 1e-3, "prompt": 3e-2}
# La rejilla del barrido del cuaderno 07: tres tasas por método, separadas por un factor ~3 (cada
# método vive en una escala distinta). Está puesta donde cae el mínimo de la pérdida en validación
# con el presupuesto de pasos del cuaderno (3): con la rejilla centrada en la tasa habitual, el
# mínimo del completo, LoRA y QLoRA quedaba en el borde superior (medido con el modelo embebido).
# Con tan pocos pasos, la mejor tasa es más alta que la de un entrenamiento largo: el barrido
# elige la tasa que más aprende en 3 pasos, no la de entrenar bien (el cuaderno lo dice).
SWEEP_RATES = {
    "full": (6e-5, 2e-4, 6e-4),
    "lora": (1e-3, 3e-3, 1e-2),
    "qlora": (1e-3, 3e-3, 1e-2),
    "prompt": (1e-2, 3e-2, 1e-1),
}
# Pasos de entrenamiento cuya media da la «pérdida de entrenamiento» de la tabla.
TRAIN_LOSS_LAST = 3
PROMPT_INIT_TEXT = "Responde con un dato breve de geografía:"
NUM_VIRTUAL_TOKENS = 16
LORA_RANK = 8


@dataclass
class MethodRecord:
    """Lo medido al entrenar un método: una fila de la tabla comparativa."""

    method: str
    trainable: int
    total: int
    seconds_per_step: float
    peak_memory_bytes: int
    losses: list[float] = field(default_factory=list)
    accuracy: float | None = None
    learning_rate: float | None = None
    held_out_loss: float | None = None  # la «pérdida final» del curso: validación, al terminar

    @property
    def diverged(self) -> bool:
        """True si alguna pérdida (de entrenamiento o la de validación) no es finita, o no hay pérdidas."""
        values = list(self.losses) + ([self.held_out_loss] if self.held_out_loss is not None else [])
        return not values or not all(math.isfinite(v) for v in values)

    @property
    def train_loss(self) -> float:
        """Media de las ``TRAIN_LOSS_LAST`` últimas pérdidas de entrenamiento (NaN si no hubo pasos)."""
        return mean_last_losses(self.losses, TRAIN_LOSS_LAST)

    @property
    def fraction(self) -> float:
        """Fracción de parámetros entrenables (0–1)."""
        return self.trainable / self.total if self.total else 0.0

    @property
    def percent(self) -> float:
        """Porcentaje de parámetros entrenables (0–100)."""
        return 100 * self.fraction

    @property
    def final_loss(self) -> float:
        """Pérdida de entrenamiento del último paso (NaN si no hubo pasos).

        Ojo: no es la «pérdida final» del curso (esa es :attr:`held_out_loss`, en validación);
        se conserva con este nombre para el banco de pruebas.
        """
        return self.losses[-1] if self.losses else math.nan

    def as_row(self) -> dict:
        """La fila de la tabla con nombres de columna en español."""
        row = {"método": METHOD_NAMES.get(self.method, self.method)}
        if self.learning_rate is not None:
            row["tasa de aprendizaje"] = self.learning_rate
        row.update(
            {
                "parámetros entrenables": self.trainable,
                "parámetros totales": self.total,
                "% entrenable": round(self.percent, 4),
                "s/paso": round(self.seconds_per_step, 3),
                "memoria pico (MB)": round(self.peak_memory_bytes / 1e6, 1),
                f"pérdida de entrenamiento (media de los últimos {TRAIN_LOSS_LAST} pasos)": round(self.train_loss, 4),
            }
        )
        if self.held_out_loss is not None:
            row["pérdida final (validación)"] = round(self.held_out_loss, 4)
        if self.accuracy is not None:
            row["exactitud"] = round(self.accuracy, 4)
        return row


# ----------------------------------------------------------------------------------------------
# Modelos: el mismo modelo base, cuatro maneras de entrenarlo
# ----------------------------------------------------------------------------------------------
def lora_config(task_type: str = "CAUSAL_LM", r: int = LORA_RANK):
    """``LoraConfig`` de la comparativa: rango ``r``, α = 2r, todas las capas lineales, sin *dropout*.

    Las capas son siempre todas las lineales (la configuración del ejercicio 1 del cuaderno 03 la
    escribes tú con ``LoraConfig``).
    """
    from peft import LoraConfig

    return LoraConfig(task_type=task_type, r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules="all-linear")


def prompt_config(num_virtual_tokens: int = NUM_VIRTUAL_TOKENS, init_text: str = PROMPT_INIT_TEXT, profile=None):
    """``PromptTuningConfig`` con los tokens virtuales iniciados desde un texto en español.

    El tokenizador se carga desde la ruta LOCAL del perfil (nunca desde el Hub).
    """
    from peft import PromptTuningConfig, PromptTuningInit

    return PromptTuningConfig(
        task_type="CAUSAL_LM",
        num_virtual_tokens=num_virtual_tokens,
        prompt_tuning_init=PromptTuningInit.TEXT,
        prompt_tuning_init_text=init_text,
        tokenizer_name_or_path=checkpoint(profile),
    )


# ----------------------------------------------------------------------------------------------
# Entrenamiento y medida
# ----------------------------------------------------------------------------------------------
def run_method(
    method: str,
    steps: int = 5,
    *,
    batch_size: int = 4,
    max_length: int = 64,
    seed: int = SEED,
    learning_rate: float | None = None,
    profile=None,
    batches: list[dict] | None = None,
    progress: bool = False,
    eval_batches: list[dict] | None = None,
    memory_bytes: int | None = None,
) -> MethodRecord:
    """Construye el modelo para ``method``, entrena ``steps`` pasos y devuelve lo medido.

    - Mismo modelo base, mismos lotes (:func:`helpers.sweep.fixed_batches` con ``seed``), misma semilla de torch.
    - ``seconds_per_step``: media de los pasos sin contar el primero (que incluye la puesta en
      marcha del optimizador); con un solo paso, ese paso.
    - ``peak_memory_bytes``: pico de memoria de tensores durante el entrenamiento, modelo incluido
      (en GPU, ``torch.cuda.max_memory_allocated`` por encima de lo que había antes de cargarlo; en
      CPU, los pesos más el pico de tensores vivos que cuenta el perfilador de PyTorch). Incluye
      pesos, gradientes, estados de AdamW y activaciones; no los picos pasajeros de la carga.
    - ``held_out_loss``: con ``eval_batches`` (p. ej. ``helpers.held_out_batches(tokenizer)``), la
      pérdida por token en esos lotes al terminar (:func:`helpers.held_out_loss`); si no, ``None``.
    - ``memory_bytes``: si ya mediste la memoria pico de este método con estos mismos lotes (no
      depende de la tasa de aprendizaje: los tensores tienen las mismas formas), pásala y no se
      vuelve a medir (medir con el perfilador cuesta ~1 s por ejecución en la CPU).
    """
    if batches is None:
        batches = fixed_batches(load_tokenizer(profile), steps, batch_size=batch_size, max_length=max_length, seed=seed)
    batches = batches[:steps]
    if method not in METHODS:
        raise ValueError(f"Método desconocido {method!r}: usa uno de {', '.join(METHODS)}.")
    from peft import get_peft_model, prepare_model_for_kbit_training

    baseline = memory_in_use()
    torch.manual_seed(seed)
    # El mismo modelo base preparado de cuatro maneras (construir el de QLoRA es el ejercicio del cuaderno 04).
    if method == "qlora":
        # El gradient checkpointing lo pone train_steps a los cuatro métodos por igual (si la
        # precisión lo pide): así todos hacen exactamente el mismo cálculo.
        model = prepare_model_for_kbit_training(
            load_model(profile, quantization_config=nf4_config(), verbose=False), use_gradient_checkpointing=False
        )
    elif method == "full":
        # Todo se entrena: los pesos son la copia maestra (fp32); en una T4 se calcula en fp16
        # con autocast y GradScaler (helpers.precision). AdamW sobre pesos fp16 daría NaN.
        model = load_model(profile, dtype=decide().trainable_dtype, verbose=False)
    else:
        model = load_model(profile, verbose=False)
    if method == "full":
        model.requires_grad_(True)
    else:
        model = get_peft_model(model, prompt_config(profile=profile) if method == "prompt" else lora_config())
    counts = count_parameters(model)
    learning_rate = learning_rate or LEARNING_RATES[method]
    measure = memory_bytes is None
    if measure and torch.cuda.is_available():
        free_memory()  # lo que la carga usó de forma temporal (p. ej. al cuantizar) no cuenta
    # (En la CPU el perfilador solo cuenta lo que se reserva dentro del bloque: no hace falta limpiar antes.)
    with PeakMemory(tensors=True) if measure else contextlib.nullcontext() as memory:
        losses, seconds = train_steps(model, batches, learning_rate, progress=progress)
    if not measure:
        peak = memory_bytes
    elif memory.cuda:
        peak = memory.peak_bytes - baseline
    else:  # el modelo (pesos y constantes de cuantización) + el pico de lo reservado al entrenar
        peak = footprint_bytes(model) + quant_constants_bytes(model) + memory.peak_bytes
    held_out = None
    if eval_batches is not None:
        from .evaluation import held_out_loss

        held_out = held_out_loss(model, eval_batches)
    del model
    free_memory()
    timed = seconds[1:] if len(seconds) > 1 else seconds
    return MethodRecord(
        method=method,
        trainable=counts.trainable,
        total=counts.total,
        seconds_per_step=sum(timed) / len(timed),
        peak_memory_bytes=max(0, peak),
        losses=losses,
        learning_rate=learning_rate,
        held_out_loss=held_out,
    )


def sweep_learning_rates(
    method: str, rates, steps: int, *, batches: list[dict], eval_batches: list[dict], **kwargs
) -> list[MethodRecord]:
    """Un barrido: :func:`run_method` con cada tasa de ``rates``, los mismos lotes y la misma semilla.

    Cada registro lleva su ``learning_rate`` y su pérdida en ``eval_batches`` (validación). Una
    ejecución que diverge (pérdida no finita) no detiene el barrido: queda como un registro con
    pérdidas NaN (``diverged`` verdadero), que es un resultado más. La memoria pico se mide en la
    primera ejecución que termina y se copia a las demás: con los mismos lotes, el mismo método
    reserva los mismos tensores sea cual sea la tasa.
    """
    if not rates:
        raise ValueError("rates está vacío: el barrido necesita al menos una tasa de aprendizaje.")
    records = []
    memory_bytes = None
    for rate in rates:
        try:
            record = run_method(
                method,
                steps,
                learning_rate=rate,
                batches=batches,
                eval_batches=eval_batches,
                memory_bytes=memory_bytes,
                **kwargs,
            )
            records.append(record)
            memory_bytes = record.peak_memory_bytes
        except FloatingPointError:
            free_memory()
            records.append(
                MethodRecord(method, 0, 0, math.nan, 0, [math.nan], learning_rate=rate, held_out_loss=math.nan)
            )
    return records


def compare_methods(methods=METHODS, steps: int = 5, **kwargs) -> list[MethodRecord]:
    """:func:`run_method` para cada método con los mismos lotes; una lista de registros."""
    profile = kwargs.get("profile")
    if "batches" not in kwargs:
        kwargs["batches"] = fixed_batches(
            load_tokenizer(profile),
            steps,
            batch_size=kwargs.pop("batch_size", 4),
            max_length=kwargs.pop("max_length", 64),
            seed=kwargs.get("seed", SEED),
        )
    records = []
    for method in methods:
        print(f"→ {METHOD_NAMES[method]} ...", flush=True)
        records.append(run_method(method, steps, **kwargs))
    return records


def table(records: list[MethodRecord]):
    """La tabla comparativa: un ``pandas.DataFrame`` si pandas está instalado; si no, texto Markdown."""
    rows = [r.as_row() for r in records]
    try:
        import pandas as pd
    except ImportError:
        columns = list(rows[0])
        lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
        return "\n".join(lines)
    return pd.DataFrame(rows).set_index("método")


# ----------------------------------------------------------------------------------------------
# Clasificación de secuencias
# ----------------------------------------------------------------------------------------------
def classification_batch(tokenizer, texts: list[str], labels: list[int] | None = None, max_length: int = 48) -> dict:
    """Textos → lote rellenado al más largo (máx. ``max_length`` tokens), con ``labels`` si se dan."""
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    if labels is not None:
        batch["labels"] = torch.tensor(list(labels))
    return dict(batch)


def train_classifier(
    model,
    tokenizer,
    texts: list[str],
    labels: list[int],
    steps: int,
    *,
    learning_rate: float = 1e-3,
    batch_size: int = 8,
    max_length: int = 48,
    seed: int = SEED,
    progress: bool = False,
) -> list[float]:
    """Entrena ``model`` (p. ej. LoRA con ``task_type="SEQ_CLS"``) ``steps`` pasos de AdamW.

    Recorre los ejemplos barajados con ``seed`` (vuelve a barajar al acabar cada época) y
    devuelve la pérdida de cada paso. El modelo debe tener ``config.pad_token_id`` igual al
    relleno del tokenizador: así la clasificación usa el último token que no es relleno.
    """
    if model.config.pad_token_id != tokenizer.pad_token_id:
        raise ValueError("model.config.pad_token_id debe ser tokenizer.pad_token_id.")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    batches = []
    for _ in range(steps):
        if len(order) < batch_size:
            order += torch.randperm(len(texts), generator=generator).tolist()
        chosen, order = order[:batch_size], order[batch_size:]
        batches.append(
            classification_batch(tokenizer, [texts[i] for i in chosen], [labels[i] for i in chosen], max_length)
        )
    losses, _ = train_steps(model, batches, learning_rate, progress=progress)
    model.eval()
    return losses


# ----------------------------------------------------------------------------------------------
# Conclusiones calculadas a partir de lo medido
# ----------------------------------------------------------------------------------------------
def conclusions(records: list[MethodRecord], sweep: list[MethodRecord] | None = None) -> list[str]:
    """Frases comparativas que salen de los números medidos (siguen siendo ciertas si cambian).

    Con pérdidas en validación, la última frase es el veredicto de :func:`loss_verdict` (con el
    barrido ``sweep``, si lo das): quién gana solo si los datos lo sostienen.
    """
    by = {r.method: r for r in records}
    name = lambda m: SUBJECTS.get(m, m)  # noqa: E731
    lines = []
    if {"full", "lora", "prompt"} <= set(by):
        full, lora, prompt = by["full"], by["lora"], by["prompt"]
        lines.append(
            f"Parámetros entrenables: el ajuste fino completo entrena {full.trainable / lora.trainable:.0f} veces "
            f"más que LoRA y {full.trainable / prompt.trainable:.0f} veces más que el ajuste de prompts "
            f"(LoRA, el {lora.percent:.2f} % del total; el ajuste de prompts, el {prompt.percent:.4f} %)."
        )
    fastest, slowest = extremes(records, lambda r: r.seconds_per_step)
    lines.append(
        f"Tiempo por paso: el más rápido fue {name(fastest.method)} ({fastest.seconds_per_step:.2f} s) y el más "
        f"lento, {name(slowest.method)} ({slowest.seconds_per_step:.2f} s, "
        f"{slowest.seconds_per_step / fastest.seconds_per_step:.1f} veces más)."
    )
    if {"lora", "qlora"} <= set(by):
        lora, qlora = by["lora"], by["qlora"]
        if qlora.seconds_per_step > lora.seconds_per_step:
            speed = "más lento: en cada paso tiene que descuantizar los pesos de 4 bits"
        else:
            speed = "más rápido en esta máquina, a pesar de descuantizar los pesos de 4 bits en cada paso"
        lines.append(
            f"QLoRA frente a LoRA: {qlora.seconds_per_step:.2f} s/paso frente a {lora.seconds_per_step:.2f} "
            f"({speed}); memoria pico {format_mb(qlora.peak_memory_bytes)} frente a "
            f"{format_mb(lora.peak_memory_bytes)}."
        )
    least, most = extremes(records, lambda r: r.peak_memory_bytes)
    lines.append(
        f"Memoria pico: la menor la necesitó {name(least.method)} ({format_mb(least.peak_memory_bytes)}) y la "
        f"mayor, {name(most.method)} ({format_mb(most.peak_memory_bytes)})."
    )
    steps = len(records[0].losses)
    if all(r.held_out_loss is not None for r in records):
        ranked = sorted(records, key=lambda r: r.held_out_loss)
        best, second, worst = ranked[0], ranked[1 % len(ranked)], ranked[-1]
        rates = all(r.learning_rate is not None for r in records)
        lines.append(
            f"Pérdida final (validación) tras {steps} pasos"
            f"{', cada método con su tasa de aprendizaje' if rates else ''}: la más baja fue la de "
            f"{name(best.method)} ({best.held_out_loss:.3f}), seguida de la de {name(second.method)} "
            f"({second.held_out_loss:.3f}, {second.held_out_loss - best.held_out_loss:.3f} más); la más alta, "
            f"la de {name(worst.method)} ({worst.held_out_loss:.3f})."
        )
        lines.append(f"¿Qué método gana en pérdida final? {loss_verdict(records, sweep)}")
    else:
        best, worst = extremes(records, lambda r: r.final_loss)
        lines.append(
            f"Pérdida de entrenamiento en el paso {steps} (el mismo último lote para todos): la más baja fue "
            f"la de {name(best.method)} ({best.final_loss:.3f}) y la más alta, la de {name(worst.method)} "
            f"({worst.final_loss:.3f})."
        )
    return [line.replace("la de el ", "la del ") for line in lines]


def loss_verdict(records: list[MethodRecord], sweep: list[MethodRecord] | None = None) -> Verdict:
    """El veredicto sobre la pérdida final de la comparativa (:func:`helpers.evidence.compare`).

    Cada método aporta sus pérdidas en validación (una por semilla: en el cuaderno, una sola) y su
    curva de pérdida de entrenamiento. Con ``sweep`` (el barrido de tasas), se comprueba además que
    la tasa con la **menor pérdida en validación** de cada método no esté en el borde de la rejilla
    que barrió (la que dice si el barrido encierra el mínimo; la tasa elegida por
    ``choose_learning_rates`` puede ser otra, la menor de las empatadas).
    """
    results, curves = {}, {}
    for r in records:
        if r.held_out_loss is None:
            raise ValueError(
                f"{METHOD_NAMES.get(r.method, r.method)} no tiene pérdida en validación: pasa "
                "eval_batches a run_method."
            )
        name = METHOD_NAMES.get(r.method, r.method)
        results.setdefault(name, []).append(r.held_out_loss)
        curves[f"{name} ({len(results[name])}.ª ejecución)" if len(results[name]) > 1 else name] = r.losses
    grids = best_rates = None
    if sweep:
        grids, best_rates = {}, {}
        for method in dict.fromkeys(r.method for r in records):
            runs = [r for r in sweep if r.method == method and not r.diverged]
            if not runs:
                continue
            name = METHOD_NAMES.get(method, method)
            grids[name] = sorted({r.learning_rate for r in sweep if r.method == method})
            best_rates[name] = min(runs, key=lambda r: r.held_out_loss).learning_rate
    return evidence_verdict(
        results, curves=curves, lr_grid=grids, chosen_lr=best_rates, metric="pérdida final (validación)"
    )


def extremes(records: list[MethodRecord], key) -> tuple[MethodRecord, MethodRecord]:
    """El registro con el menor y el mayor valor de ``key``."""
    return min(records, key=key), max(records, key=key)


def format_mb(n_bytes: float) -> str:
    """Bytes → 'N MB' (1 MB = 10⁶ bytes, como en todo el curso)."""
    return f"{n_bytes / 1e6:.0f} MB"
