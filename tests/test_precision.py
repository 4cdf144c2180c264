"""La precisión de cada dispositivo (helpers.precision) y la T4 simulada en la CPU.

La prueba central reproduce el fallo que hubo: el ajuste fino completo en una T4 cargaba los pesos
en fp16 y les aplicaba AdamW sin copia maestra, autocast ni GradScaler; un paso así deja pesos
inf/NaN. Con la decisión de helpers.precision, el mismo entrenamiento en la T4 simulada es finito.
"""

import json
import math

import pytest
import torch

from helpers import compare, precision
from helpers.models import load_model, load_tokenizer
from helpers.precision import default_dtype
from helpers.quantization import nf4_config
from helpers.sweep import fixed_batches
from helpers.training import LOSS_LOG_ENV, check_finite_losses, sft_config


@pytest.fixture
def t4(monkeypatch):
    monkeypatch.setenv(precision.SIMULATE_ENV, "t4")


@pytest.fixture(scope="module")
def batches():
    return fixed_batches(load_tokenizer("tiny"), 3, batch_size=2, max_length=64)


def test_decision_por_dispositivo():
    t4 = precision.decide(capability=(7, 5), cuda=True)
    assert (t4.hardware, t4.compute, t4.storage_dtype, t4.trainable_dtype) == (
        "t4",
        "fp16",
        torch.float16,
        torch.float32,
    )
    assert t4.grad_scaler and t4.autocast_dtype == torch.float16 and t4.gradient_checkpointing
    assert t4.sft_flags == {"fp16": True, "bf16": False}
    assert t4.optimizer_for(quantized=True) == "paged_adamw_8bit" and t4.optimizer_for(quantized=False) == "adamw_torch"
    assert t4.attn_implementation == "sdpa"
    ampere = precision.decide(capability=(8, 0), cuda=True)
    assert (ampere.compute, ampere.storage_dtype, ampere.trainable_dtype) == ("bf16", torch.bfloat16, torch.float32)
    assert not ampere.grad_scaler and ampere.sft_flags == {"fp16": False, "bf16": True}
    cpu = precision.decide(cuda=False)
    assert (cpu.compute, cpu.storage_dtype, cpu.autocast_dtype) == ("fp32", torch.float32, None)
    assert cpu.sft_flags == {"fp16": False, "bf16": False} and not cpu.gradient_checkpointing and not cpu.grad_scaler
    assert cpu.optimizer_for(quantized=True) == "adamw_torch"


def test_t4_simulada_decide_como_una_t4(t4):
    from helpers.precision import training_precision

    decision = precision.decide()
    real = precision.decide(capability=precision.T4_CAPABILITY, cuda=True)
    assert decision.simulated == "t4" and decision.device == ("cuda" if torch.cuda.is_available() else "cpu")
    for attr in (
        "hardware",
        "compute",
        "storage_dtype",
        "trainable_dtype",
        "autocast_dtype",
        "grad_scaler",
        "gradient_checkpointing",
        "attn_implementation",
        "sft_flags",
    ):
        assert getattr(decision, attr) == getattr(real, attr), attr
    assert decision.optimizer_for(True) == real.optimizer_for(True) == "paged_adamw_8bit"
    assert training_precision() == "fp16" and default_dtype() == torch.float16


def test_simulacion_desconocida_en_espanol(monkeypatch):
    monkeypatch.setenv(precision.SIMULATE_ENV, "a100")
    with pytest.raises(ValueError, match="usa 't4'"):
        precision.decide()


def test_fraccion_de_memoria_de_una_t4():
    assert precision.t4_memory_fraction(precision.T4_TOTAL_BYTES) == 1.0
    assert precision.t4_memory_fraction(150_000_000_000) == pytest.approx(15.83e9 / 150e9)
    with pytest.raises(ValueError):
        precision.t4_memory_fraction(0)


def test_sft_config_pasa_fp16_y_bf16_explicitos(tmp_path, monkeypatch):
    """Sin las dos banderas, trl activa bf16 por su cuenta (bf16 = not fp16)."""
    monkeypatch.delenv(precision.SIMULATE_ENV, raising=False)
    cpu = sft_config(str(tmp_path), 1)
    assert (cpu.fp16, cpu.bf16, cpu.activation_checkpointing) == (False, False, False)
    monkeypatch.setenv(precision.SIMULATE_ENV, "t4")
    t4 = sft_config(str(tmp_path), 1)
    assert (t4.fp16, t4.bf16, t4.activation_checkpointing) == (True, False, True)


def _nonfinite_fraction(model) -> float:
    bad = sum(int((~torch.isfinite(p)).sum()) for p in model.parameters())
    return bad / sum(p.numel() for p in model.parameters())


def test_adamw_sobre_fp16_puro_da_nan(batches):
    """El camino antiguo del ajuste fino completo en una T4: pesos fp16 y AdamW sin más."""
    torch.manual_seed(0)
    model = load_model("tiny", dtype=torch.float16, verbose=False)
    model.requires_grad_(True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=compare.LEARNING_RATES["full"])
    model(**batches[0]).loss.backward()
    optimizer.step()
    assert _nonfinite_fraction(model) > 0.5  # eps = 1e-8 no existe en fp16: √v + eps = 0 → inf/NaN


def _method_model(method: str):
    """El modelo de cada método preparado como en ``compare.run_method`` (el de QLoRA es la
    respuesta del cuaderno 04: no está en el paquete, así que la prueba lo construye aquí)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    if method == "qlora":
        model = load_model("tiny", quantization_config=nf4_config(), verbose=False)
        return get_peft_model(
            prepare_model_for_kbit_training(model, use_gradient_checkpointing=False), compare.lora_config()
        )
    if method == "full":
        return load_model("tiny", dtype=precision.decide().trainable_dtype, verbose=False).requires_grad_(True)
    model = load_model("tiny", verbose=False)
    return get_peft_model(model, compare.lora_config() if method == "lora" else compare.prompt_config(profile="tiny"))


def test_comparativa_completa_en_la_t4_simulada_es_finita(t4, batches):
    """El camino de verdad (``compare.run_method``): el ajuste completo en la T4 simulada no da NaN."""
    record = compare.run_method("full", 3, profile="tiny", batches=batches)
    assert len(record.losses) == 3 and all(math.isfinite(v) for v in record.losses)


def test_ajuste_completo_en_la_t4_simulada_es_finito(t4, batches):
    model = _method_model("full")
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # copia maestra fp32
    losses, _ = compare.train_steps(model, batches, compare.LEARNING_RATES["full"])
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    assert _nonfinite_fraction(model) == 0.0
    assert model.is_activation_checkpointing


@pytest.mark.parametrize("method", ["lora", "prompt", "qlora"])
def test_congelados_fp16_entrenables_fp32(t4, batches, method):
    model = _method_model(method)
    losses, _ = compare.train_steps(model, batches, compare.LEARNING_RATES[method])
    trainable = {p.dtype for p in model.parameters() if p.requires_grad}
    frozen = {p.dtype for p in model.parameters() if not p.requires_grad and p.is_floating_point()}
    assert trainable == {torch.float32}
    if method != "qlora":  # prepare_model_for_kbit_training pasa a fp32 lo que no es de 4 bits
        assert frozen == {torch.float16}
    assert all(math.isfinite(v) for v in losses)


def test_clasificador_seq_cls_con_cabeza_en_modules_to_save(t4):
    from peft import get_peft_model

    from helpers.datasets import load_reviews

    tokenizer = load_tokenizer("tiny")
    model = get_peft_model(
        load_model("tiny", task="seq-cls", verbose=False), compare.lora_config("SEQ_CLS")
    )  # peft añade «score» a modules_to_save
    assert any(
        name.endswith("score.modules_to_save.default.weight") for name, p in model.named_parameters() if p.requires_grad
    )
    data = load_reviews("train")
    losses = compare.train_classifier(model, tokenizer, data["text"], data["label"], 3, learning_rate=5e-3)
    assert all(math.isfinite(v) for v in losses)
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    with torch.no_grad():  # fuera de autocast, como en el cuaderno al predecir
        logits = model(**compare.classification_batch(tokenizer, data["text"][:2])).logits
    assert torch.isfinite(logits).all()


def test_qlora_sft_adaptadores_fp32_y_optimizador_paginado(t4, tmp_path):
    """trl pasa los adaptadores de QLoRA a bf16; con fp16 (T4) deben volver a fp32 (trl#4901)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    from helpers.datasets import load_instructions, to_prompt_completion
    from helpers.quantization import nf4_config, run_qlora_sft

    model = load_model("tiny", quantization_config=nf4_config(), verbose=False)
    assert nf4_config().bnb_4bit_compute_dtype == torch.float16
    model = get_peft_model(
        prepare_model_for_kbit_training(model, use_gradient_checkpointing=True), compare.lora_config()
    )
    data = load_instructions("train", limit=8).map(
        to_prompt_completion, remove_columns=["id", "instruction", "response", "split"]
    )
    trainer, losses = run_qlora_sft(
        model, load_tokenizer("tiny"), data, str(tmp_path), 2, batch_size=2, max_length=64, disable_tqdm=True
    )
    assert getattr(trainer.args.optim, "value", trainer.args.optim) == "paged_adamw_8bit"
    assert (trainer.args.fp16, trainer.args.bf16) == (True, False)
    assert {p.dtype for p in trainer.model.parameters() if p.requires_grad} == {torch.float32}
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)


def test_perdidas_no_finitas_dan_error_en_espanol(tmp_path, monkeypatch):
    log = tmp_path / "perdidas.jsonl"
    monkeypatch.setenv(LOSS_LOG_ENV, str(log))
    assert check_finite_losses([2.0, 1.5], "prueba") == [2.0, 1.5]
    with pytest.raises(FloatingPointError, match="paso 2 es nan"):
        check_finite_losses([2.0, float("nan")], "prueba")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["perdidas"][0] for r in records] == [2.0, 2.0] and records[1]["origen"] == "prueba"


def test_autocast_de_varios_pasos_no_guarda_copias_de_los_pesos():
    """Un autocast que abarca varios pasos (la T4 simulada alrededor de trainer.train()) debe ir sin
    caché: con ella, la copia fp16 del peso es la de antes del paso y el modelo no aprende nada."""
    decision = precision.decide(capability=precision.T4_CAPABILITY, cuda=True)
    layer, x = torch.nn.Linear(4, 4), torch.ones(1, 4)
    with decision.autocast("cpu", cache=False):
        before = layer(x)
        layer.weight.data += 1
        assert not torch.equal(before, layer(x))
    with decision.autocast("cpu"):  # con caché: la trampa
        before = layer(x)
        layer.weight.data += 1
        assert torch.equal(before, layer(x))


# --- una sola decisión: el banner y el diagnóstico dicen lo mismo que decide() ------------------
_HARDWARE = {
    "cpu sin bf16": dict(cuda=None, flags={"avx2"}),
    "cpu con AVX-512-BF16": dict(cuda=None, flags={"avx2", "avx512_bf16"}),
    "T4": dict(cuda=("Tesla T4", (7, 5)), flags={"avx2"}),
    "A100": dict(cuda=("NVIDIA A100-SXM4-40GB", (8, 0)), flags={"avx2"}),
    "T4 simulada en una CPU con bf16": dict(cuda=None, flags={"avx512_bf16"}, simulate="t4"),
}


def _simulate(monkeypatch, cuda=None, flags=frozenset(), simulate=None):
    from types import SimpleNamespace

    from helpers import environment

    monkeypatch.setattr(environment, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda is not None)
    if cuda is not None:
        name, (major, minor) = cuda
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, minor))
        monkeypatch.setattr(
            torch.cuda,
            "get_device_properties",
            lambda device=None: SimpleNamespace(name=name, major=major, minor=minor, total_memory=16_000_000_000),
        )
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    if simulate:
        monkeypatch.setenv(precision.SIMULATE_ENV, simulate)
    else:
        monkeypatch.delenv(precision.SIMULATE_ENV, raising=False)


def _lines(text: str) -> dict[str, str]:
    return {
        key.strip(): value.strip() for key, _, value in (line.partition(" : ") for line in text.splitlines()) if value
    }


@pytest.mark.parametrize("case", list(_HARDWARE))
def test_banner_y_diagnostico_dicen_la_decision_con_la_que_se_entrena(case, monkeypatch, capsys):
    """Una sola decisión de precisión: lo que imprimen ``helpers.show_environment()`` y el diagnóstico
    sale de ``precision.decide()``, la misma con la que entrenan los cuadernos (antes, en una CPU con
    AVX-512-BF16 el banner decía bf16 y se entrenaba en fp32)."""
    from helpers import doctor
    from helpers.models import show_environment

    _simulate(monkeypatch, **_HARDWARE[case])
    decision = precision.decide()
    show_environment()
    banner = _lines(capsys.readouterr().out)
    doctor._print_block("Hardware", doctor._hardware_lines())
    report = _lines(capsys.readouterr().out)
    for lines in (banner, report):
        assert lines["precisión de entrenamiento"].split()[0] == decision.compute, (case, lines)
        assert lines["bf16 real"].startswith("sí") == decision.bf16_by_hardware, (case, lines)
        assert lines["dispositivo"] == decision.device
    assert {k: banner[k] for k in report} == report  # las mismas líneas, palabra por palabra
    assert precision.training_precision() == decision.compute
    assert default_dtype() == decision.storage_dtype


def test_los_casos_simulados_cubren_cada_decision(monkeypatch):
    """La prueba de arriba pasa por las cuatro decisiones del hardware y por la T4 simulada."""
    seen = set()
    for case in _HARDWARE.values():
        _simulate(monkeypatch, **case)
        decision = precision.decide()
        seen.add((decision.hardware, decision.simulated))
    assert seen == {("cpu", None), ("cpu-bf16", None), ("t4", None), ("ampere", None), ("t4", "t4")}
