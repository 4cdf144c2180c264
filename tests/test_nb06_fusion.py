"""Lo que el cuaderno 06 (fusión y combinación de adaptadores) afirma y tiene que seguir siendo cierto
con las versiones instaladas de peft y transformers. Todo en el perfil diminuto y en fp32."""

import copy
import math

import pytest
import torch

import helpers
from helpers.adapters import add_random_adapters, peft_lora_layers, sample_inputs, tiny_llama

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


@pytest.fixture()
def tiny_base():
    """El modelo diminuto del curso (perfil tiny) y un lote con relleno."""
    model = helpers.load_model("tiny", dtype=torch.float32, verbose=False).eval()
    return model, sample_inputs(model.config.vocab_size, batch=3, length=9, seed=1)


def two_adapters(model):
    specs = {
        "geografia": {"r": 4, "lora_alpha": 8, "target_modules": TARGETS},
        "resenas": {"r": 4, "lora_alpha": 16, "target_modules": TARGETS},
    }
    return add_random_adapters(model, specs, seed=3)


# ---------------------------------------------------------------- helpers/adapters.py


def test_tiny_llama_reproducible_y_configurable():
    a, b = tiny_llama(seed=5), tiny_llama(seed=5, attention_bias=True)
    assert not a.training
    assert b.model.layers[0].self_attn.q_proj.bias is not None
    c = tiny_llama(seed=5)
    inputs = sample_inputs(a.config.vocab_size)
    assert torch.equal(logits(a, inputs), logits(c, inputs))


def test_add_random_adapters_activa_y_cambia_la_salida():
    base = tiny_llama(seed=0)
    reference = logits(copy.deepcopy(base), sample_inputs(128))
    model = add_random_adapters(
        base,
        {
            "a": {"r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]},
            "b": {"r": 3, "lora_alpha": 3, "target_modules": ["v_proj"]},
        },
        seed=0,
        active="b",
    )
    assert model.active_adapter == "b"
    assert sorted(model.peft_config) == ["a", "b"]
    assert helpers.count_parameters(model).trainable == 0, "en modo inferencia los adaptadores quedan congelados"
    layers = peft_lora_layers(model)
    assert len(layers) == 2 * 2  # q_proj y v_proj de los dos bloques
    assert all(torch.count_nonzero(layer.lora_B[n].weight) > 0 for layer in layers.values() for n in layer.lora_B)
    assert (logits(model, sample_inputs(128)) - reference).abs().max() > 1e-3
    with pytest.raises(ValueError):
        add_random_adapters(tiny_llama(), {})


def test_sample_inputs():
    inputs = sample_inputs(50, batch=2, length=5, seed=0)
    assert inputs["input_ids"].shape == (2, 5) and int(inputs["input_ids"].max()) < 50
    assert inputs["attention_mask"][-1].tolist() == [1, 1, 1, 0, 0]
    assert torch.equal(inputs["input_ids"], sample_inputs(50, batch=2, length=5, seed=0)["input_ids"])


# ---------------------------------------------------------------- fusión


def test_fusion_mismos_logits_y_mismos_parametros(tiny_base):
    base, inputs = tiny_base
    n_base = helpers.count_parameters(base).total
    model = two_adapters(base)
    model.set_adapter("resenas", inference_mode=True)
    kept = copy.deepcopy(model)
    with_adapter = logits(model, inputs)
    merged = model.merge_and_unload()
    # Lo que explica el cuaderno: devuelve un modelo de transformers normal, que es el mismo objeto
    # que la base envuelta (no una copia); la copia hecha antes sigue intacta.
    assert type(merged).__name__ == "LlamaForCausalLM"
    assert merged is base
    assert not peft_lora_layers(model) and peft_lora_layers(kept)
    assert torch.equal(logits(kept, inputs), with_adapter)
    assert (logits(merged, inputs) - with_adapter).abs().max().item() <= 1e-4
    assert helpers.count_parameters(merged).total == n_base
    assert helpers.count_parameters(kept).total > n_base


def test_guardar_y_cargar_el_fusionado(tiny_base, tmp_path):
    from transformers import AutoModelForCausalLM

    base, inputs = tiny_base
    merged = two_adapters(base).merge_and_unload()
    merged.save_pretrained(tmp_path / "fusionado")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "fusionado", dtype=torch.float32).eval()
    assert torch.equal(logits(reloaded, inputs), logits(merged, inputs))
    assert helpers.count_parameters(reloaded).total == helpers.count_parameters(merged).total


# ---------------------------------------------------------------- varios adaptadores


def test_cambiar_de_adaptador_y_desactivarlo(tiny_base):
    base, inputs = tiny_base
    reference = copy.deepcopy(base)
    model = two_adapters(base)
    outputs = {}
    for name in ("geografia", "resenas"):
        model.set_adapter(name, inference_mode=True)
        outputs[name] = logits(model, inputs)
    assert (outputs["geografia"] - outputs["resenas"]).abs().max() > 1e-3
    with model.disable_adapter():
        disabled = logits(model, inputs)
    assert torch.equal(disabled, logits(reference, inputs)), "disable_adapter debe dar exactamente la base"
    assert model.active_adapter == "resenas", "al salir del bloque vuelve el adaptador activo"
    assert torch.equal(logits(model, inputs), outputs["resenas"])


def test_guardar_y_cargar_adaptadores_con_nombre(tiny_base, tmp_path):
    from peft import PeftModel

    base, inputs = tiny_base
    model = two_adapters(base)
    expected = {}
    for name in ("geografia", "resenas"):
        model.set_adapter(name, inference_mode=True)
        expected[name] = logits(model, inputs)
    model.save_pretrained(tmp_path)  # un subdirectorio por adaptador que no es "default"
    fresh = helpers.load_model("tiny", dtype=torch.float32, verbose=False).eval()
    loaded = PeftModel.from_pretrained(fresh, tmp_path / "geografia", adapter_name="geografia")
    loaded.load_adapter(tmp_path / "resenas", adapter_name="resenas")
    loaded.eval()
    assert loaded.active_adapter == "geografia"
    assert helpers.count_parameters(loaded).trainable == 0
    for name in ("geografia", "resenas"):
        loaded.set_adapter(name, inference_mode=True)
        assert torch.equal(logits(loaded, inputs), expected[name])


# ---------------------------------------------------------------- combinaciones


def linear_expected(layer, names, weights):
    """La fórmula de combination_type="linear" de peft: signo del peso en A, raíces en A y B."""
    A = sum(
        math.copysign(math.sqrt(abs(w * layer.scaling[n])), w) * layer.lora_A[n].weight for n, w in zip(names, weights)
    )
    B = sum(math.sqrt(abs(w * layer.scaling[n])) * layer.lora_B[n].weight for n, w in zip(names, weights))
    return B @ A


@pytest.mark.parametrize("weights", [[1.0, 1.0], [0.7, -0.4]])
def test_combinaciones_cat_y_linear(tiny_base, weights):
    base, inputs = tiny_base
    model = two_adapters(base)
    names = ["geografia", "resenas"]
    model.add_weighted_adapter(names, weights, "mezcla_cat", combination_type="cat")
    model.add_weighted_adapter(names, weights, "mezcla_lineal", combination_type="linear")
    for layer in peft_lora_layers(model).values():
        exact = sum(w * layer.get_delta_weight(n) for n, w in zip(names, weights))
        assert layer.r["mezcla_cat"] == 8 and layer.r["mezcla_lineal"] == 4
        assert layer.scaling["mezcla_cat"] == layer.scaling["mezcla_lineal"] == 1.0
        assert (layer.get_delta_weight("mezcla_cat") - exact).abs().max() <= 1e-5
        assert (layer.get_delta_weight("mezcla_lineal") - linear_expected(layer, names, weights)).abs().max() <= 1e-5
        # "linear" no es la suma ponderada: tiene términos cruzados B_i A_j.
        assert (layer.get_delta_weight("mezcla_lineal") - exact).norm() > 0.1 * exact.norm()
    outputs = {}
    for name in names + ["mezcla_cat"]:
        model.set_adapter(name, inference_mode=True)
        outputs[name] = logits(model, inputs)
    assert model.active_adapter == "mezcla_cat"
    assert all((outputs["mezcla_cat"] - outputs[n]).abs().max() > 1e-3 for n in names)


def test_linear_exige_el_mismo_rango():
    model = add_random_adapters(
        tiny_llama(), {"a": {"r": 2, "target_modules": ["q_proj"]}, "b": {"r": 4, "target_modules": ["q_proj"]}}
    )
    with pytest.raises(ValueError):
        model.add_weighted_adapter(["a", "b"], [1.0, 1.0], "x", combination_type="linear")
    model.add_weighted_adapter(["a", "b"], [1.0, 1.0], "y", combination_type="cat")
    assert all(layer.r["y"] == 6 for layer in peft_lora_layers(model).values())


# ---------------------------------------------------------------- 4 bits


def test_fusionar_en_4_bits_pierde_informacion():
    """Recuantizar W₄ + ΔW en NF4 (lo que hace peft al fusionar en una capa de 4 bits) no conserva ΔW."""
    import bitsandbytes.functional as bnbf

    torch.manual_seed(0)
    W = 0.05 * torch.randn(96, 64)
    delta = 1e-3 * torch.randn(96, 4) @ torch.randn(4, 64)
    q, state = bnbf.quantize_4bit(W, blocksize=64, quant_type="nf4")
    W4 = bnbf.dequantize_4bit(q, state)
    q2, state2 = bnbf.quantize_4bit(W4 + delta, blocksize=64, quant_type="nf4")
    merged = bnbf.dequantize_4bit(q2, state2)
    error = ((merged - (W4 + delta)).norm() / delta.norm()).item()
    assert error > 0.5, error


# ---------------------------------------------------------------- lo que añade el issue 13


def test_lote_con_varios_adaptadores_igual_que_uno_por_uno(tiny_base):
    """adapter_names=[...] da, fila a fila, los logits de ese adaptador activo en todo el modelo."""
    base, inputs = tiny_base
    model = two_adapters(base)
    rows = ["geografia", "resenas", "__base__"]
    with torch.no_grad():
        mixed = model(**inputs, adapter_names=rows).logits
        with model.disable_adapter():
            plain = model(**inputs).logits
    for i, name in enumerate(rows):
        if name == "__base__":
            expected = plain
        else:
            model.set_adapter(name, inference_mode=True)
            expected = logits(model, inputs)
        assert (mixed[i] - expected[i]).abs().max().item() <= 1e-5, name


def _copy_adapter_weights(layer, source, target, part):
    getattr(layer, part)[target].weight.data.copy_(getattr(layer, part)[source].weight.data)


def test_linear_con_la_misma_A_da_el_doble_de_la_suma():
    """Lo que explica el cuaderno: si las dos A son iguales (misma semilla), 'linear' = 2·(ΔW₁ + ΔW₂)."""
    model = add_random_adapters(
        tiny_llama(),
        {n: {"r": 2, "lora_alpha": 4, "target_modules": ["q_proj", "up_proj"]} for n in ("a", "b")},
        seed=7,
    )
    for layer in peft_lora_layers(model).values():
        _copy_adapter_weights(layer, "a", "b", "lora_A")
    model.add_weighted_adapter(["a", "b"], [1.0, 1.0], "lin", combination_type="linear")
    for layer in peft_lora_layers(model).values():
        exact = layer.get_delta_weight("a") + layer.get_delta_weight("b")
        assert (layer.get_delta_weight("lin") - 2 * exact).abs().max() <= 1e-5 * exact.abs().max()


def test_ties_promedia_y_dare_con_densidad_1_es_linear():
    model = add_random_adapters(
        tiny_llama(), {n: {"r": 2, "lora_alpha": 4, "target_modules": ["v_proj"]} for n in ("a", "b")}, seed=9
    )
    for layer in peft_lora_layers(model).values():
        _copy_adapter_weights(layer, "a", "b", "lora_A")
        _copy_adapter_weights(layer, "a", "b", "lora_B")
    model.add_weighted_adapter(["a", "b"], [1.0, 1.0], "ties", combination_type="ties", density=1.0)
    model.add_weighted_adapter(["a", "b"], [1.0, 1.0], "cat", combination_type="cat")
    model.add_weighted_adapter(["a", "b"], [0.7, 0.4], "dare", combination_type="dare_linear", density=1.0)
    model.add_weighted_adapter(["a", "b"], [0.7, 0.4], "lin", combination_type="linear")
    for layer in peft_lora_layers(model).values():
        delta = layer.get_delta_weight("a")
        assert (layer.get_delta_weight("ties") - delta).abs().max() <= 1e-6  # media de dos iguales: ΔW
        assert (layer.get_delta_weight("cat") - 2 * delta).abs().max() <= 1e-6  # suma: 2·ΔW
        assert torch.equal(layer.get_delta_weight("dare"), layer.get_delta_weight("lin"))


def test_dare_es_aleatorio_y_se_repite_con_la_semilla():
    model = add_random_adapters(
        tiny_llama(), {n: {"r": 4, "lora_alpha": 4, "target_modules": ["q_proj"]} for n in ("a", "b")}, seed=11
    )
    for name, seed in (("d1", 0), ("d2", 0), ("d3", 1)):
        torch.manual_seed(seed)
        model.add_weighted_adapter(["a", "b"], [1.0, 1.0], name, combination_type="dare_linear", density=0.5)
    layer = next(iter(peft_lora_layers(model).values()))
    assert torch.equal(layer.get_delta_weight("d1"), layer.get_delta_weight("d2"))
    assert not torch.equal(layer.get_delta_weight("d1"), layer.get_delta_weight("d3"))


def test_fusion_qlora_en_los_pesos_descuantizados():
    """Fusionar un adaptador de una base NF4 en Ŵ reproduce el modelo de 4 bits; en W o recuantizando, no."""
    import bitsandbytes as bnb
    import bitsandbytes.functional as bnbf
    from peft import LoraConfig, get_peft_model

    from helpers.quantization import nf4_config

    inputs = sample_inputs(helpers.load_model("tiny", verbose=False).config.vocab_size, batch=2, length=9, seed=2)
    quantized = helpers.load_model("tiny", quantization_config=nf4_config(torch.float32), verbose=False)
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0, init_lora_weights=False)
    qlora = get_peft_model(quantized, config).eval()
    reference = logits(qlora, inputs)
    adapter_state = {k: v.clone() for k, v in qlora.state_dict().items() if "lora_" in k}

    def merged_on(weights_from_4bit: bool):
        model = helpers.load_model("tiny", dtype=torch.float32, verbose=False)
        if weights_from_4bit:
            with torch.no_grad():
                for name, module in qlora.base_model.model.named_modules():
                    if isinstance(module, bnb.nn.Linear4bit):
                        w = bnbf.dequantize_4bit(module.weight.data, module.weight.quant_state).float()
                        model.get_submodule(name.removesuffix(".base_layer")).weight.copy_(w)
        peft_model = get_peft_model(model, config)
        peft_model.load_state_dict(adapter_state, strict=False)
        return peft_model.merge_and_unload().eval()

    on_dequantized = (logits(merged_on(True), inputs) - reference).abs().max().item()
    on_original = (logits(merged_on(False), inputs) - reference).abs().max().item()
    on_4bit = (logits(qlora.merge_and_unload(), inputs) - reference).abs().max().item()
    assert on_dequantized <= 1e-4, on_dequantized
    assert on_original > 100 * on_dequantized and on_4bit > 100 * on_dequantized, (on_original, on_4bit)
