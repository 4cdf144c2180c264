"""Cuaderno 04 (QLoRA): el módulo helpers.quantization y lo que el cuaderno debe cumplir."""

import math
import re
import sys
from pathlib import Path

import nbformat
import pytest
import torch

import helpers
from helpers.memory_planner import NF4_DQ_BYTES, Shape
from helpers.precision import default_dtype
from helpers.quantization import nf4_config, nf4_levels, quant_constants_bytes, run_qlora_sft

sys.path.insert(0, str(Path(__file__).parent))
from wrong_answers.nb04 import WRONG  # noqa: E402

bnb = pytest.importorskip("bitsandbytes")
ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "04_qlora" / "04_qlora.ipynb"


def solution_cell(grade_id):
    nb = nbformat.read(SOLUTION, as_version=4)
    return next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def run_function(source, name):
    namespace = {"bnb": bnb, "helpers": helpers}
    exec(source, namespace)
    return namespace[name]


@pytest.fixture(scope="module")
def tiny_4bit():
    return helpers.load_model("tiny", quantization_config=nf4_config(), verbose=False)


def test_nf4_config_campos():
    config = nf4_config()
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == default_dtype()
    otra = nf4_config(torch.float16, double_quant=False, quant_type="fp4", llm_int8_skip_modules=["lm_head"])
    assert otra.bnb_4bit_compute_dtype == torch.float16 and not otra.bnb_4bit_use_double_quant
    assert otra.bnb_4bit_quant_type == "fp4" and otra.llm_int8_skip_modules == ["lm_head"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="solo en CPU")
def test_calculo_en_fp32_en_cpu():
    assert default_dtype() == torch.float32


def test_niveles_nf4():
    levels = nf4_levels()
    assert len(levels) == 16 and levels == sorted(levels)
    assert levels[0] == -1.0 and levels[-1] == 1.0 and 0.0 in levels


def test_solo_se_cuantizan_las_lineales(tiny_4bit):
    layers = [m for m in tiny_4bit.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 7 * tiny_4bit.config.num_hidden_layers
    assert not isinstance(tiny_4bit.lm_head, bnb.nn.Linear4bit)
    assert tiny_4bit.model.embed_tokens.weight.dtype == torch.float32


def test_huella_y_constantes(tiny_4bit):
    """get_memory_footprint() = pesos empaquetados (½ byte) + resto en fp32 + búferes; las
    constantes absmax van aparte y son ~1 byte por bloque de 64 con doble cuantización."""
    n_lin = Shape.from_config(tiny_4bit.config).linear_params()
    n_rest = helpers.count_parameters(tiny_4bit).total - n_lin
    buffers = sum(b.numel() * b.element_size() for b in tiny_4bit.buffers())
    assert tiny_4bit.get_memory_footprint() == n_lin // 2 + n_rest * 4 + buffers
    constants = quant_constants_bytes(tiny_4bit)
    n_layers = 7 * tiny_4bit.config.num_hidden_layers
    assert n_lin / 64 < constants < n_lin / 64 + n_layers * 2048
    assert quant_constants_bytes(helpers.load_model("tiny", verbose=False)) == 0


def test_formula_de_la_solucion_y_la_erronea():
    right = run_function(solution_cell("nf4_bytes_per_param"), "nf4_bytes_per_param")
    assert math.isclose(right(), NF4_DQ_BYTES) and math.isclose(right(64, False), 0.5625)
    assert math.isclose(8 * right() - 4, 0.127, abs_tol=1e-3)  # QLoRA §3: ≈ 0.127 bits de constantes
    wrong = run_function(WRONG["nf4_bytes_per_param"], "nf4_bytes_per_param")
    assert not math.isclose(wrong(), right(), rel_tol=1e-6)


def test_huella_prevista_de_la_solucion(tiny_4bit):
    predict = run_function(solution_cell("predict_footprint"), "predict_footprint")
    measured = tiny_4bit.get_memory_footprint() + quant_constants_bytes(tiny_4bit)
    assert 0.99 < measured / predict(tiny_4bit, NF4_DQ_BYTES) < 1.01


def test_run_qlora_sft_adaptadores_en_fp32_y_pierde(tmp_path):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    model = helpers.load_model("tiny", quantization_config=nf4_config(), verbose=False)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    data = helpers.load_instructions("train", limit=8).map(
        helpers.to_prompt_completion, remove_columns=["id", "instruction", "response", "split"]
    )
    _, losses = run_qlora_sft(
        model,
        helpers.load_tokenizer("tiny"),
        data,
        str(tmp_path),
        2,
        learning_rate=1e-2,
        batch_size=2,
        max_length=48,
        activation_checkpointing=False,
        disable_tqdm=True,
    )
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    if not torch.cuda.is_available():  # en CPU se entrena sin autocast: adaptadores en fp32
        assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}


def test_cuaderno_deja_sitio_al_planificador_y_habla_de_la_t4():
    nb = nbformat.read(SOLUTION, as_version=4)
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    text = "\n".join(markdown)
    assert any(re.search(r"^## (\d+\. )?¿Cabe en una T4\?", s, re.M) for s in markdown), (
        "falta la sección «¿Cabe en una T4?»"
    )
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "plan(" in code and "PUBLIC_CONFIGS" in code and ".verdict(" in code, (
        "la sección de la T4 debe usar el planificador"
    )
    for needed in (
        "paged_adamw_8bit",
        "sdpa",
        "is_bf16_supported",
        "prepare_model_for_kbit_training",
        "según",
        "2305.14314",
        "Unsloth",
        "20–30 %",
    ):
        assert needed in text, f"falta «{needed}» en el texto del cuaderno 04"


def _packed_layers(model):
    """Pesos de 4 bits distintos con el formato de inferencia de CPU (la capa LoRA y su base comparten peso)."""
    weights = {id(w): w for w in (getattr(m, "weight", None) for m in model.modules()) if w is not None}
    return sum(
        bool(getattr(getattr(w, "quant_state", None), "packing_format_for_cpu", False)) for w in weights.values()
    )


def test_generar_y_despues_entrenar(monkeypatch):
    """En una CPU con AVX-512-BF16, bitsandbytes reordena los pesos de 4 bits al calcular en modo
    evaluación (formato solo de inferencia, sin retropropagación). helpers.load_model lo impide:
    después de generar se puede entrenar y el gradiente que cruza una capa de 4 bits es el de sus
    pesos descuantizados. keep_4bit_trainable también deshace el formato si ya se aplicó.

    La rama de AVX-512-BF16 se fuerza en cualquier CPU: se pide a la capa que use el atajo y se
    aplica la misma conversión que haría bitsandbytes (es Python puro), así que la prueba nunca
    depende de la máquina."""
    from bitsandbytes.functional import _convert_weight_packed_for_cpu, dequantize_4bit
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from helpers.quantization import check_no_cpu_inference_layout, keep_4bit_trainable

    tokenizer = helpers.load_tokenizer("tiny")
    model = prepare_model_for_kbit_training(
        helpers.load_model("tiny", quantization_config=nf4_config(), verbose=False), use_gradient_checkpointing=False
    )
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    layer = model.base_model.model.model.layers[0].mlp.down_proj.base_layer
    assert layer.support_avx512bf16_for_cpu is False  # load_model ya lo desactivó en todas las capas
    helpers.generate(model, tokenizer, "¿Cuál es la capital de Chile?", max_new_tokens=3)
    assert _packed_layers(model) == 0
    original = layer.weight.data.clone()

    # La rama de AVX-512-BF16, forzada: la capa vuelve a pedir el atajo y sus pesos quedan en el formato de inferencia.
    layer.support_avx512bf16_for_cpu = True
    layer.weight.data, layer.weight.quant_state = _convert_weight_packed_for_cpu(
        layer.weight.data, layer.weight.quant_state
    )
    assert _packed_layers(model) == 1
    with pytest.raises(RuntimeError, match="formato de inferencia"):
        check_no_cpu_inference_layout(model)  # lo que comprueban run_qlora_sft y train_steps al acabar
    assert keep_4bit_trainable(model) == 7 * model.config.num_hidden_layers and _packed_layers(model) == 0
    assert not layer.support_avx512bf16_for_cpu and torch.equal(layer.weight.data, original)
    check_no_cpu_inference_layout(model)

    x = torch.randn(2, 3, layer.in_features, requires_grad=True)
    layer(x).float().sum().backward()
    weight = dequantize_4bit(layer.weight.data, layer.weight.quant_state).float()
    assert torch.allclose(x.grad, torch.ones(2, 3, layer.out_features) @ weight, atol=1e-4)


def test_si_bitsandbytes_cambia_su_api_privada_lo_dice(monkeypatch):
    """Sin la función privada o sin el atributo, un error en español que dice qué hacer (no se ignora)."""
    import bitsandbytes.functional as bnb_functional
    from bitsandbytes.functional import _convert_weight_packed_for_cpu

    from helpers import quantization

    model = helpers.load_model("tiny", quantization_config=nf4_config(), verbose=False)
    layer = model.model.layers[0].mlp.down_proj
    layer.weight.data, layer.weight.quant_state = _convert_weight_packed_for_cpu(
        layer.weight.data, layer.weight.quant_state
    )
    monkeypatch.delattr(bnb_functional, quantization.CPU_PACKING_INVERSE)
    with pytest.raises(RuntimeError, match="bitsandbytes==0.50.2"):
        quantization.keep_4bit_trainable(model)
    monkeypatch.undo()
    for module in model.modules():
        if hasattr(module, quantization.CPU_PACKING_FLAG):
            delattr(module, quantization.CPU_PACKING_FLAG)
    with pytest.raises(RuntimeError, match="ya no tiene el atributo"):
        quantization.keep_4bit_trainable(model)


def test_cifras_de_unsloth_en_gib_y_en_gb():
    """Unsloth publica GiB con la etiqueta «GB»; el cuaderno las da como GiB y en GB (10⁹ bytes)."""
    nb = nbformat.read(SOLUTION, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    rows = [
        line for line in text.splitlines() if line.startswith("|") and "Unsloth" in line and "con sus núcleos" in line
    ]
    assert len(rows) == 3
    for row in rows:
        found = re.search(r"([\d,]+) GiB = ([\d,]+) GB", row).groups()  # coma decimal en la prosa
        gib, gb = (float(x.replace(",", ".")) for x in found)
        assert gb == pytest.approx(gib * 2**30 / 1e9, abs=0.006)
    assert "menos de la mitad" not in text  # 7.92 GiB = 8.50 GB es el 54 % de los 15.83 GB de una T4
    assert "54 %" in text and "PUBLISHED_T4_GIB" in text


def test_cuantizacion_por_bloques_de_la_solucion_igual_que_bitsandbytes():
    """El NF4 a mano de la solución coincide con el de bitsandbytes (bloques de 64, con un bloque de ceros)."""
    from bitsandbytes.functional import dequantize_4bit, quantize_4bit

    def function(source):
        namespace = {"torch": torch}
        exec(source, namespace)
        return namespace["blockwise_quantize"]

    quantize = function(solution_cell("blockwise_quantize"))
    W = torch.randn(32, 128, generator=torch.Generator().manual_seed(2)) * 0.05
    W[3, :64] = 0.0
    packed, state = quantize_4bit(W, blocksize=64, quant_type="nf4")
    assert torch.equal(quantize(W, nf4_levels()), dequantize_4bit(packed, state))
    wrong = function(WRONG["blockwise_quantize"])
    assert not torch.equal(wrong(W, nf4_levels()), dequantize_4bit(packed, state))


def test_cuaderno_explica_el_lote_2x4_y_la_calidad_de_qlora():
    nb = nbformat.read(SOLUTION, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for needed in (
        "acumulación de\ngradientes",
        "lote\nefectivo de 8",
        "LoftQ",
        "PiSSA",
        "2310.08659",
        "2404.02948",
        "08_variantes_lora",
        "rango alto",
    ):
        assert needed in text, f"falta «{needed}» en el texto del cuaderno 04"
    assert "grad_accum=4" in text and "helpers.held_out_loss" in code
    # «tú», nunca el «nosotros» de autor.
    for authorial in ("Cargamos", "Medimos", "Miremos", "Comparémoslo", "podemos", "escribimos", "usamos"):
        assert authorial not in text, f"«{authorial}» en el texto del cuaderno 04: escribe con «tú»"
