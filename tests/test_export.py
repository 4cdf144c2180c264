"""Exportar a GGUF (helpers.export): ida y vuelta con transformers, y la permutación de llama.cpp."""

import numpy as np
import pytest
import torch

import helpers
from helpers import models
from helpers.export import _permute_rows, export_gguf, gguf_tensor_name, load_gguf_model, read_gguf

TEXTS = ["La capital de Francia es París y la de Italia es Roma.", "Hola, ¿qué tal estás? Hoy hace sol."]


@pytest.mark.slow
def test_ida_y_vuelta_f16_y_q8_0(tmp_path):
    """Lo que se exporta se lee con transformers (gguf_file=, como el modelo embebido) y predice lo mismo."""
    from transformers import AutoModelForCausalLM

    model, tok = helpers.load_model_and_tokenizer("tiny", verbose=False)
    ids = tok(TEXTS, return_tensors="pt", padding=True)
    mask = ids["attention_mask"].bool()
    with torch.no_grad():
        reference = model(**ids).logits
    sizes = {}
    for quantization, min_agreement in [("f16", 1.0), ("q8_0", 0.99)]:
        path = export_gguf(model, tmp_path / f"diminuto-{quantization}.gguf", quantization)
        sizes[quantization] = path.stat().st_size
        back = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.float32).eval()
        with torch.no_grad():
            logits = back(**ids).logits
        agreement = (logits.argmax(-1) == reference.argmax(-1))[mask].float().mean().item()
        assert agreement >= min_agreement, (quantization, agreement)
        if quantization == "f16":  # solo el redondeo a media precisión
            assert torch.allclose(logits, reference, atol=5e-3), (logits - reference).abs().max()
    assert not list(tmp_path.glob("*.parcial"))
    # q8_0 guarda 34 bytes por cada 32 pesos; f16, 64: el archivo q8_0 es claramente más pequeño.
    assert sizes["q8_0"] < 0.75 * sizes["f16"], sizes


@pytest.mark.slow
def test_nombres_y_permutacion_como_el_conversor_de_llama_cpp():
    """Oráculo independiente: el GGUF embebido lo escribió convert_hf_to_gguf.py de llama.cpp. Con los
    pesos que transformers lee de él, nuestros nombres y nuestra permutación de Q/K reproducen los suyos."""
    import gguf

    model = helpers.load_model("embedded", verbose=False)
    reader = gguf.GGUFReader(models.embedded_gguf_path())
    original = {t.name: t for t in reader.tensors}
    ours = {gguf_tensor_name(k) for k in model.state_dict() if k != "lm_head.weight"}
    assert ours == set(original)
    cfg = model.config
    layer = model.model.layers[3].self_attn
    for hf, name, heads in [
        (layer.q_proj, "blk.3.attn_q.weight", cfg.num_attention_heads),
        (layer.k_proj, "blk.3.attn_k.weight", cfg.num_key_value_heads),
    ]:
        tensor = original[name]
        theirs = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(hf.weight.shape)
        permuted = _permute_rows(hf.weight.detach().numpy(), heads)
        np.testing.assert_allclose(permuted, theirs, atol=1e-6)
        # Sin permutar no coincide: la prueba vería una permutación olvidada.
        assert not np.allclose(hf.weight.detach().numpy(), theirs, atol=1e-3)


def test_errores_en_espanol(tmp_path):
    from peft import LoraConfig, get_peft_model

    model = helpers.load_model("tiny", verbose=False)
    with pytest.raises(ValueError, match="Cuantización desconocida"):
        export_gguf(model, tmp_path / "x.gguf", "q4_k")
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    with pytest.raises(TypeError, match="merge_and_unload"):
        export_gguf(peft_model, tmp_path / "x.gguf")
    with pytest.raises(ValueError, match="merge_and_unload"):
        gguf_tensor_name("base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight")
    assert not list(tmp_path.iterdir())


def _same_reader(ours, theirs):
    """Dos lectores de GGUF leen lo mismo: campos (partes, índices, tipos) y tensores."""
    assert list(ours.fields) == list(theirs.fields)
    for key, field in ours.fields.items():
        other = theirs.fields[key]
        assert (field.offset, field.types, field.data) == (other.offset, other.types, other.data), key
        assert len(field.parts) == len(other.parts), key
        assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(field.parts, other.parts)), key
        assert field.contents() == other.contents(), key
    assert [(t.name, t.tensor_type, t.n_bytes) for t in ours.tensors] == [
        (t.name, t.tensor_type, t.n_bytes) for t in theirs.tensors
    ]
    assert all(np.array_equal(a.data, b.data) for a, b in zip(ours.tensors, theirs.tensors))


@pytest.mark.slow
def test_read_gguf_lee_lo_mismo_que_gguf(tmp_path):
    """El lector rápido (listas de cadenas y de números de golpe, sin memmap por dato) da exactamente lo
    mismo que gguf.GGUFReader, en un GGUF nuestro (q8_0) y en el embebido (escrito por llama.cpp)."""
    import gguf

    model = helpers.load_model("tiny", verbose=False)
    for path in (export_gguf(model, tmp_path / "d.gguf", "q8_0"), models.embedded_gguf_path()):
        _same_reader(read_gguf(path), gguf.GGUFReader(path))


@pytest.mark.slow
def test_load_gguf_model_igual_que_transformers_y_sin_dejar_nada_cambiado(tmp_path):
    """load_gguf_model (una lectura, sin las listas del vocabulario) carga el mismo modelo que
    from_pretrained(gguf_file=) a secas, y deja gguf y transformers como estaban."""
    import gguf
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers import AutoModelForCausalLM

    originals = (gguf.GGUFReader, gguf.get_tensor_name_map, gguf_utils.tqdm)
    path = export_gguf(helpers.load_model("tiny", verbose=False), tmp_path / "d.gguf", "f16")
    ours = load_gguf_model(path, reader=read_gguf(path))
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.float32)
    assert ours.config.to_dict() == theirs.config.to_dict()
    mine, other = ours.state_dict(), theirs.state_dict()
    assert mine.keys() == other.keys() and all(torch.equal(mine[k], other[k]) for k in mine)
    assert (gguf.GGUFReader, gguf.get_tensor_name_map, gguf_utils.tqdm) == originals
    with pytest.raises(ValueError, match="lector"):
        load_gguf_model(path, reader=read_gguf(models.embedded_gguf_path()))
    with pytest.raises(FileNotFoundError, match="export_gguf"):
        load_gguf_model(tmp_path / "no_existe.gguf")
    assert (gguf.GGUFReader, gguf.get_tensor_name_map, gguf_utils.tqdm) == originals


def test_sin_vocab_size_no_se_ocultan_las_listas_del_vocabulario():
    """Sin <arquitectura>.vocab_size, transformers saca el tamaño del vocabulario de la lista de tokens:
    entonces no se le oculta (el GGUF embebido, escrito por llama.cpp, es de ese tipo o no según versión)."""
    from collections import OrderedDict
    from types import SimpleNamespace

    from helpers.export import _without_vocabulary

    field = SimpleNamespace(contents=lambda: "llama")
    fields = OrderedDict([("general.architecture", field), ("tokenizer.ggml.tokens", object())])
    reader = SimpleNamespace(fields=fields)
    assert _without_vocabulary(reader) is reader
    fields["llama.vocab_size"] = object()
    hidden = _without_vocabulary(reader)
    assert "tokenizer.ggml.tokens" not in hidden.fields and "tokenizer.ggml.tokens" in reader.fields


def test_descuantizar_q8_0_de_golpe_da_lo_mismo_que_gguf(tmp_path):
    """La descuantización q8_0 de load_gguf_model (el tensor entero de una vez) es bit a bit la de gguf."""
    import gguf

    from helpers.export import _dequantize

    model = tiny_llama_for_export()
    reader = read_gguf(export_gguf(model, tmp_path / "q.gguf", "q8_0"))
    q8 = [t for t in reader.tensors if t.tensor_type == gguf.GGMLQuantizationType.Q8_0]
    assert q8
    for tensor in q8:
        ours, theirs = _dequantize(tensor.data, tensor.tensor_type), gguf.dequantize(tensor.data, tensor.tensor_type)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape and np.array_equal(ours, theirs), tensor.name
    f32 = next(t for t in reader.tensors if t.tensor_type == gguf.GGMLQuantizationType.F32)
    assert np.array_equal(_dequantize(f32.data, f32.tensor_type), gguf.dequantize(f32.data, f32.tensor_type))


def tiny_llama_for_export():
    from helpers.adapters import tiny_llama

    return tiny_llama(seed=2, intermediate_size=64)
