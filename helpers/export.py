"""Exportar un modelo fusionado a GGUF (el formato de llama.cpp y Ollama) sin compilar llama.cpp.

``export_gguf(modelo, ruta, quantization="f16" | "q8_0")`` escribe el archivo con el paquete
``gguf`` (el mismo que usa el curso para leer su modelo embebido):

* los metadatos de la arquitectura salen de ``model.config`` (capas, cabezas, dimensiones, RoPE);
* los del tokenizador (vocabulario, fusiones BPE, plantilla de chat, tokens especiales) se copian
  del GGUF embebido, porque toda la familia SmolLM2 comparte tokenizador. Para un modelo con otro
  tokenizador, pasa ``tokenizer_gguf=`` con un GGUF que lo tenga, o usa el conversor de llama.cpp;
* los pesos llevan los nombres y el orden de ``convert_hf_to_gguf.py`` de llama.cpp: en las
  proyecciones Q y K se permutan las filas de cada cabeza (llama.cpp aplica RoPE por pares
  contiguos; transformers, por mitades), y ``transformers`` deshace esa permutación al leerlo.

Se lee de vuelta con ``AutoModelForCausalLM.from_pretrained(carpeta, gguf_file=nombre)``, el mismo
camino que usa el curso para su modelo embebido; :func:`load_gguf_model` lo hace así, pero leyendo
la cabecera del archivo una sola vez (ver :func:`read_gguf`). Solo modelos Llama (SmolLM2 lo es) y
sin adaptador: fusiona antes con ``merge_and_unload()``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from pathlib import Path

import numpy as np

__all__ = ["QUANTIZATIONS", "export_gguf", "gguf_tensor_name", "load_gguf_model", "read_gguf"]

# Tipo de los pesos de las matrices → tipo de archivo de llama.cpp. Las normas van siempre en fp32,
# como hace llama.cpp.
QUANTIZATIONS = ("f16", "q8_0")

_LAYER_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}
# Claves del GGUF de origen que no se copian: las escribe el propio escritor o dependen del modelo.
_TOKENIZER_PREFIX = "tokenizer."


def gguf_tensor_name(hf_name: str) -> str | None:
    """Nombre en GGUF del parámetro ``hf_name`` de un Llama de transformers (None: no se escribe)."""
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    if hf_name == "lm_head.weight":
        return "output.weight"
    parts = hf_name.split(".")
    if len(parts) >= 5 and parts[:2] == ["model", "layers"]:
        layer, module = parts[2], ".".join(parts[3:-1])
        if module in _LAYER_NAMES:
            return f"blk.{layer}.{_LAYER_NAMES[module]}.{parts[-1]}"
    raise ValueError(
        f"No sé cómo se llama {hf_name!r} en GGUF: solo se exportan modelos Llama de transformers "
        "(SmolLM2 lo es) y sin adaptador; fusiona antes con merge_and_unload()."
    )


def _permute_rows(weight: np.ndarray, n_head: int) -> np.ndarray:
    """La permutación de Q/K de ``convert_hf_to_gguf.py`` (``LlamaModel.permute``): por cabeza,
    las filas [mitad 1, mitad 2] pasan a ir intercaladas por pares."""
    return (
        weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _check_model(model) -> None:
    if hasattr(model, "peft_config") or hasattr(model, "disable_adapter"):
        raise TypeError(
            "El modelo todavía tiene el adaptador aparte (es un PeftModel): fusiónalo antes con "
            "model = model.merge_and_unload() y exporta el resultado."
        )
    if getattr(model.config, "model_type", None) != "llama":
        raise ValueError(
            f"Solo se exportan modelos Llama (SmolLM2 lo es); este es "
            f"{getattr(model.config, 'model_type', '?')!r}. Para otros, usa el conversor de llama.cpp."
        )


def _write_architecture(writer, config, file_type) -> None:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    rope = getattr(config, "rope_parameters", None) or {"rope_theta": config.rope_theta}
    if rope.get("rope_type", "default") != "default":
        raise ValueError(f"RoPE de tipo {rope['rope_type']!r}: este exportador solo escribe el RoPE normal de Llama.")
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)


@functools.lru_cache(maxsize=1)
def _fast_reader_class():
    """Un ``gguf.GGUFReader`` que recorre el archivo sobre un ``ndarray`` normal.

    ``GGUFReader`` guarda el archivo como ``np.memmap`` y crea una vista por cada dato de la cabecera;
    cada vista de un ``memmap`` pasa por ``memmap.__array_finalize__``, y la cabecera de SmolLM2 tiene
    ~100 000 cadenas (el vocabulario y las fusiones BPE del tokenizador): leerla costaba ~6 s de CPU.
    Sobre una vista ``ndarray`` del mismo mapa de memoria (sin copiar nada), y recorriendo las listas
    de cadenas con un bucle sencillo, lee lo mismo (las mismas partes, los mismos tipos) mucho más
    deprisa. El resultado se compara con el de ``gguf.GGUFReader`` en ``tests/test_export.py``.
    """
    import gguf
    import numpy

    array, string = gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING

    class FastGGUFReader(gguf.GGUFReader):
        @property
        def data(self):
            return self._plain

        @data.setter
        def data(self, value):
            self._plain = numpy.asarray(value)  # el memmap sigue vivo como base de la vista
            self._bytes = memoryview(self._plain)

        def _get_field_parts(self, orig_offs, raw_type):
            # Las listas largas (el vocabulario, las fusiones BPE y el tipo de cada token: ~150 000
            # elementos) se recorren de golpe y no elemento a elemento, con exactamente las mismas
            # partes, índices y tipos que produce GGUFReader.
            if raw_type != array or self.byte_order != "I":
                return super()._get_field_parts(orig_offs, raw_type)
            raw_itype, alen = self._get(orig_offs, numpy.uint32), self._get(orig_offs + 4, numpy.uint64)
            itype, count = int(raw_itype[0]), int(alen[0])
            scalar = self.gguf_scalar_to_np.get(gguf.GGUFValueType(itype))
            if count == 0 or (itype != string and scalar is None):
                return super()._get_field_parts(orig_offs, raw_type)
            data, parts, offs = self._plain, [raw_itype, alen], orig_offs + 12
            if scalar is not None:
                size = numpy.dtype(scalar).itemsize
                values = data[offs : offs + size * count].view(scalar)
                parts += [values[i : i + 1] for i in range(count)]
                return 12 + size * count, parts, list(range(2, 2 + count)), [array, gguf.GGUFValueType(itype)]
            raw, idxs = self._bytes, []
            for _ in range(count):
                size = int.from_bytes(raw[offs : offs + 8], "little")
                idxs.append(len(parts) + 1)
                parts += [data[offs : offs + 8].view(numpy.uint64), data[offs + 8 : offs + 8 + size]]
                offs += 8 + size
            return offs - orig_offs, parts, idxs, [array, string]

    return FastGGUFReader


def read_gguf(path: str | Path):
    """Lee la cabecera y la tabla de tensores de un GGUF (un ``gguf.GGUFReader``), unas tres veces más
    deprisa que ``gguf.GGUFReader(path)`` y con el mismo resultado. Los datos de los tensores no se
    cargan: se leen del disco al usarlos. Pásalo a :func:`load_gguf_model` para no leerlo dos veces."""
    path = Path(path)
    reader = _fast_reader_class()(path)
    reader.data_path = path
    return reader


# Las listas largas del tokenizador: transformers las convierte a Python una por una (dos veces por
# carga) y el modelo no las usa (el tokenizador se carga aparte, con AutoTokenizer).
_VOCABULARY_FIELDS = (
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.scores",
)


def _without_vocabulary(reader):
    """El mismo lector sin las listas del vocabulario, si el archivo dice el tamaño del vocabulario
    (``<arquitectura>.vocab_size``): es lo único que transformers saca de ellas para el modelo."""
    arch = reader.fields.get("general.architecture")
    if arch is None or f"{arch.contents()}.vocab_size" not in reader.fields:
        return reader
    view = copy.copy(reader)
    view.fields = type(reader.fields)((k, v) for k, v in reader.fields.items() if k not in _VOCABULARY_FIELDS)
    return view


def _dequantize(data, qtype, *, _original=None):
    """``gguf.dequantize`` con q8_0 de golpe sobre el tensor entero (numpy), no por grupos de filas:
    las mismas operaciones (escala fp16 → fp32 por los 32 enteros de 8 bits de cada bloque), el mismo
    resultado bit a bit y unas diez veces más deprisa. Los demás tipos, con ``gguf``."""
    import gguf

    original = _original or gguf.dequantize
    if qtype != gguf.GGMLQuantizationType.Q8_0:
        return original(data, qtype)
    raw = np.ascontiguousarray(data).view(np.uint8)
    blocks = raw.reshape(-1, 34)
    scales = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    values = blocks[:, 2:].copy().view(np.int8).astype(np.float32)
    shape = (*raw.shape[:-1], raw.shape[-1] // 34 * 32)
    return (values * scales).reshape(shape)


@contextlib.contextmanager
def _read_each_gguf_once(preloaded=None):
    """Dentro del bloque, ``transformers`` lee cada GGUF con :func:`read_gguf` y una sola vez.

    ``from_pretrained(..., gguf_file=)`` lee el archivo entero dos veces (una para la configuración y
    otra para los pesos), con ``from gguf import GGUFReader`` dentro de la función: cambiando
    ``gguf.GGUFReader`` durante la carga, las dos lecturas son una y rápida. Además, para traducir
    los nombres de los tensores construye la tabla de nombres de ``gguf`` (``get_tensor_name_map``) una
    vez por cada submódulo del modelo (~400 veces, ~2/3 del tiempo de carga): dentro del bloque se
    construye una sola, no le enseña las listas del vocabulario (:func:`_without_vocabulary`) y
    descuantiza q8_0 de golpe (:func:`_dequantize`). Al salir, todo queda como estaba. Quita también
    la barra de progreso en inglés de la conversión de tensores. ``preloaded`` es un lector de
    :func:`read_gguf` ya hecho: ese archivo no se vuelve a leer.
    """
    import gguf
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    fast = _fast_reader_class()  # antes de cambiar gguf.GGUFReader: es su subclase
    original_reader, original_tqdm, original_names = gguf.GGUFReader, gguf_utils.tqdm, gguf.get_tensor_name_map
    original_dequantize = gguf.dequantize
    readers: dict = {}

    def key_of(path, *args, **kwargs):
        path = Path(path).resolve()
        stat = path.stat()
        return (path, stat.st_size, stat.st_mtime_ns, args, tuple(sorted(kwargs.items())))

    if preloaded is not None:
        readers[key_of(preloaded.data_path)] = _without_vocabulary(preloaded)

    def reader(path, *args, **kwargs):
        key = key_of(path, *args, **kwargs)
        if key not in readers:
            readers[key] = _without_vocabulary(fast(path, *args, **kwargs))
        return readers[key]

    gguf.GGUFReader = reader
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(original_names)
    gguf.dequantize = functools.partial(_dequantize, _original=original_dequantize)
    gguf_utils.tqdm = functools.partial(original_tqdm, disable=True)
    try:
        yield readers
    finally:
        gguf.GGUFReader, gguf_utils.tqdm, gguf.get_tensor_name_map = original_reader, original_tqdm, original_names
        gguf.dequantize = original_dequantize


def load_gguf_model(path: str | Path, dtype=None, *, reader=None):
    """Carga un GGUF con ``transformers`` (``from_pretrained(carpeta, gguf_file=nombre)``, como el modelo
    embebido del curso), en modo evaluación y en ``dtype`` (por defecto fp32: ``transformers``
    descuantiza f16 y q8_0 a pesos normales). Lee la cabecera del archivo una sola vez; si ya la
    leíste con :func:`read_gguf`, pasa ese lector en ``reader`` y no se lee ninguna."""
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No existe {path}: exporta antes el modelo con export_gguf(modelo, ruta).")
    if reader is not None and Path(reader.data_path).resolve() != path.resolve():
        raise ValueError(f"El lector es de {reader.data_path}, no de {path}: pasa el de este archivo o ninguno.")
    with _read_each_gguf_once(reader):
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype or torch.float32)
    return model.eval()


@functools.lru_cache(maxsize=2)
def _tokenizer_fields(source: Path) -> tuple:
    """Los campos ``tokenizer.*`` de un GGUF: (clave, tipo, valor). Leerlos cuesta (son ~100 000
    cadenas), así que se leen una vez por sesión y con :func:`read_gguf`."""
    reader = read_gguf(source)
    return tuple(
        (key, field.types[0], field.contents())
        for key, field in reader.fields.items()
        if key.startswith(_TOKENIZER_PREFIX)
    )


def _copy_tokenizer(writer, source: Path) -> None:
    import gguf

    for key, kind, value in _tokenizer_fields(source.resolve()):
        if kind == gguf.GGUFValueType.ARRAY:
            writer.add_array(key, value)
        elif kind == gguf.GGUFValueType.STRING:
            writer.add_string(key, value)
        else:
            writer.add_key_value(key, value, kind)


def export_gguf(
    model,
    path: str | Path,
    quantization: str = "f16",
    *,
    tokenizer_gguf: str | Path | None = None,
    name: str = "curso-peft",
) -> Path:
    """Escribe ``model`` (un Llama de transformers ya fusionado) como GGUF en ``path``.

    ``quantization``: ``"f16"`` (media precisión, ~2 bytes por parámetro) o ``"q8_0"`` (bloques de 32
    pesos en int8 con una escala fp16 por bloque: 34 bytes por cada 32 pesos). Devuelve la ruta.
    """
    import gguf

    from .models import embedded_gguf_path

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"Cuantización desconocida {quantization!r}: usa una de {', '.join(QUANTIZATIONS)}.")
    _check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = model.config
    file_type = gguf.LlamaFileType.MOSTLY_F16 if quantization == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0
    tmp = path.with_name(path.name + ".parcial")
    writer = gguf.GGUFWriter(tmp, "llama")
    writer.add_name(name)
    _write_architecture(writer, config, file_type)
    _copy_tokenizer(writer, Path(tokenizer_gguf) if tokenizer_gguf else embedded_gguf_path())
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # comparte pesos con token_embd: llama.cpp lo sabe sin «output.weight»
        gguf_name = gguf_tensor_name(hf_name)
        data = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("self_attn.q_proj.weight"):
            data = _permute_rows(data, config.num_attention_heads)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            data = _permute_rows(data, config.num_key_value_heads)
        if data.ndim == 1:
            writer.add_tensor(gguf_name, data.astype(np.float32))
        elif quantization == "f16":
            writer.add_tensor(gguf_name, data.astype(np.float16))
        else:
            packed = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(gguf_name, packed, raw_shape=packed.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(path)  # sin un archivo a medias con el nombre final si algo falla
    return path
