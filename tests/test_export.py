"""Exportar a GGUF (helpers.export): ida y vuelta con transformers, y la permutación de llama.cpp."""

import numpy as np
import pytest
import torch

import helpers
from helpers import models
from helpers.export import _permute_rows, export_gguf, gguf_tensor_name

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
