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

Se lee de vuelta con ``AutoModelForCausalLM.from_pretrained(carpeta, gguf_file=nombre)``.
Solo modelos Llama (SmolLM2 lo es) y sin adaptador: fusiona antes con ``merge_and_unload()``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

__all__ = ["QUANTIZATIONS", "export_gguf", "gguf_tensor_name"]

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


@functools.lru_cache(maxsize=2)
def _tokenizer_fields(source: Path) -> tuple:
    """Los campos ``tokenizer.*`` de un GGUF: (clave, tipo, valor). Leerlos cuesta segundos (son ~100 000
    cadenas), así que se leen una vez por sesión."""
    import gguf

    reader = gguf.GGUFReader(source)
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
