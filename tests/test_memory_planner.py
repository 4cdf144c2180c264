"""El planificador de memoria: el esqueleto que cuenta con peft es el modelo de verdad, y cifras publicadas."""

import pytest
from peft import LoraConfig, get_peft_model

import helpers
from helpers.memory_planner import GPUS_GB, NF4_DQ_BYTES, Shape, peft_lora_params, plan

# Cifras publicadas copiadas de shared/reference-figures.md (con su fuente):
# - SmolLM2-135M, r=16, las 7 lineales: 4 884 480; Llama-3.2-1B: 11 272 192 (calculadas de su config).
# - Llama-2-7B: r=8 en q,v → 4 194 304; r=16 en q,k,v,o → 16 777 216; el modelo base 6 738 415 616
#   (el fragmento famoso imprime 6 742 609 920 = base + 4 194 304).
# - NF4 con doble cuantización ≈ 0.516 bytes/parámetro (Dettmers et al. 2023, QLoRA, §3).
LLAMA32_1B = dict(
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=64,
    vocab_size=128256,
    tie_word_embeddings=True,
)
LLAMA2_7B = dict(
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    vocab_size=32000,
    tie_word_embeddings=False,
)


@pytest.mark.parametrize(
    "r,targets",
    [
        (1, "all-linear"),
        (8, ["q_proj", "v_proj"]),
        (16, ["k_proj", "down_proj"]),
        (4, ["o_proj", "gate_proj", "up_proj"]),
    ],
)
def test_esqueleto_meta_igual_que_el_modelo_cargado(r, targets):
    """El recuento sobre el esqueleto meta (reconstruido desde Shape) es el de peft sobre el modelo con pesos."""
    model = helpers.load_model("tiny", verbose=False)
    base_total = helpers.count_parameters(model).total
    assert Shape.from_config(model.config).total_params() == base_total
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets))
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert peft_lora_params(model.config, r, targets) == trainable


def test_modelo_real_y_cifras_publicadas():
    model = helpers.load_model("embedded", verbose=False)
    assert Shape.from_config(model.config).total_params() == helpers.count_parameters(model).total
    assert peft_lora_params(model.config, 16) == 4_884_480
    assert peft_lora_params(LLAMA32_1B, 16) == 11_272_192
    assert peft_lora_params(LLAMA2_7B, 8, ["q_proj", "v_proj"]) == 4_194_304
    assert peft_lora_params(LLAMA2_7B, 16, ["q_proj", "k_proj", "v_proj", "o_proj"]) == 16_777_216
    assert Shape.from_config(LLAMA2_7B).total_params() + 4_194_304 == 6_742_609_920
    assert NF4_DQ_BYTES == pytest.approx(0.516, abs=1e-3)


def test_veredictos_t4():
    # Ajuste fino completo de un 7B: ~16–18 bytes/parámetro, imposible en una T4.
    full = plan(LLAMA2_7B, "full", precision="fp16")
    assert not full.fits("T4") and full.breakdown["estados del optimizador"] == 8 * full.trainable_params
    assert 16 * 6.7e9 < full.total_bytes
    # QLoRA de un 7B con batch 1 cabe en una T4 (las ejecuciones publicadas usan < 8 GB).
    qlora = plan(LLAMA2_7B, "qlora", r=16, batch=1, seq_len=512, gradient_checkpointing=True)
    assert qlora.fits("T4") and qlora.total_bytes < 8e9
    assert "¿Cabe en una T4" in qlora.report("T4")


def test_checkpointing_reduce_activaciones():
    a = plan(LLAMA32_1B, "lora", batch=4, seq_len=1024)
    b = plan(LLAMA32_1B, "lora", batch=4, seq_len=1024, gradient_checkpointing=True)
    assert b.breakdown["activaciones"] < a.breakdown["activaciones"] / 3


def test_errores_en_espanol():
    with pytest.raises(ValueError, match="Método desconocido"):
        plan(LLAMA32_1B, "adapters")
    with pytest.raises(ValueError, match="Módulos desconocidos"):
        peft_lora_params(LLAMA32_1B, 8, ["qkv"])
    with pytest.raises(ValueError, match="GPU desconocida"):
        plan(LLAMA32_1B).fits("RTX9090")
    assert "T4" in GPUS_GB


def test_estimacion_dentro_del_20_por_ciento_de_lo_medido():
    """El pico estimado frente al medido (pesos + tensores vivos al entrenar) con el mismo lote."""
    from helpers.compare import compare_methods

    model = helpers.load_model("tiny", verbose=False)
    for record in compare_methods(
        methods=("full", "lora", "qlora"), steps=2, batch_size=4, max_length=64, profile="tiny"
    ):
        estimate = plan(model.config, record.method, r=8, batch=4, seq_len=64, precision="fp32", cuda_overhead=False)
        error = (estimate.total_bytes - record.peak_memory_bytes) / record.peak_memory_bytes
        assert abs(error) < 0.20, (
            f"{record.method}: estimado {estimate.total_bytes:.3g} B, medido {record.peak_memory_bytes:.3g} B"
        )


def test_gradientes_y_activaciones_no_se_suman():
    full = plan(LLAMA32_1B, "full", batch=8, seq_len=2048, precision="fp32")
    b = full.breakdown
    assert full.total_bytes == pytest.approx(
        b["pesos"]
        + b["estados del optimizador"]
        + b["contexto CUDA"]
        + max(b["gradientes"], b["activaciones"] + b["logits"])
    )
    assert full.total_bytes < sum(b.values())


# Llama-3.1-8B (su config.json público, PUBLIC_CONFIGS), QLoRA r=16 en las 7 lineales, lote 2 × 512,
# cálculo fp16, gradient checkpointing y paged_adamw_8bit: ≈ 10.1 GB según el issue 12, que contaba
# 2 copias de los logits en fp32; el pico de tensores vivos medido (test_estimacion_dentro_del_20...)
# muestra 3 al retropropagar la pérdida: +0.5 GB → 10.6 GB. Con los embeddings y la lm_head contados
# a 2 bytes en vez de a 4 (los pasa a fp32 prepare_model_for_kbit_training) salían 7.96 GB.
LLAMA31_8B_QLORA_GB = 10.6


def test_qlora_cuenta_lo_no_cuantizado_en_fp32():
    from helpers.memory_planner import PUBLIC_CONFIGS

    config = PUBLIC_CONFIGS["Llama-3.1-8B"]
    p = plan(
        config,
        "qlora",
        r=16,
        batch=2,
        seq_len=512,
        precision="fp16",
        gradient_checkpointing=True,
        optimizer="paged_adamw_8bit",
    )
    assert p.total_bytes / 1e9 == pytest.approx(LLAMA31_8B_QLORA_GB, abs=0.1)
    shape = Shape.from_config(config)
    kept = shape.total_params() - shape.linear_params()  # embeddings, lm_head y normas
    fp16_kept = plan(
        config,
        "qlora",
        r=16,
        batch=2,
        seq_len=512,
        precision="fp16",
        storage="fp16",
        gradient_checkpointing=True,
        optimizer="paged_adamw_8bit",
    )
    assert p.breakdown["pesos"] - fp16_kept.breakdown["pesos"] == pytest.approx(2 * kept)
    # El cálculo (activaciones) no depende de cómo se guardan los pesos congelados.
    assert p.breakdown["activaciones"] == fp16_kept.breakdown["activaciones"]
    fp32_compute = plan(
        config,
        "qlora",
        r=16,
        batch=2,
        seq_len=512,
        precision="fp32",
        gradient_checkpointing=True,
        optimizer="paged_adamw_8bit",
    )
    assert fp32_compute.breakdown["pesos"] == p.breakdown["pesos"]
    assert fp32_compute.breakdown["activaciones"] == 2 * p.breakdown["activaciones"]


def test_unidades_gb_del_sistema_internacional():
    # Una T4 de Colab: total_memory ≈ 15.83·10⁹ bytes = 14.74 GiB (reference-figures, «Colab T4»).
    assert GPUS_GB["T4"] * 1e9 == pytest.approx(15.83e9, rel=0.003)
    assert GPUS_GB["T4"] * 1e9 / 2**30 == pytest.approx(14.74, abs=0.01)
    plan_15gb = plan(LLAMA32_1B, "lora", batch=1, seq_len=128)
    plan_15gb.breakdown = {"pesos": 15.5e9}
    assert plan_15gb.fits("T4")  # 15.5 GB caben en 15.83 GB (con 14.7 «GB» que eran GiB, no cabían)
    plan_15gb.breakdown = {"pesos": 15.9e9}
    assert not plan_15gb.fits("T4")
    assert "15.83 GB = 14.74 GiB" in plan_15gb.report("T4")
    assert helpers.format_bytes(1_500_000) == "1.5 MB"
    assert helpers.format_bytes(2**30) == "1.1 GB"  # 1 GiB = 1.07·10⁹ bytes
    assert helpers.format_bytes(999) == "999 B" and helpers.format_bytes(4_500) == "4.5 kB"


def test_veredicto_con_margen_de_seguridad():
    """«justo» si cabe con menos del margen de seguridad libre: el 7B con LoRA en fp16 no se da por bueno."""
    from helpers.memory_planner import SAFETY_MARGIN

    p = plan(LLAMA32_1B, "lora", batch=1, seq_len=128)
    card = GPUS_GB["T4"] * 1e9
    for used, expected in (
        (0.5, "sí"),
        (1 - SAFETY_MARGIN - 0.001, "sí"),
        (0.97, "justo"),
        (1.0, "justo"),
        (1.01, "no"),
    ):
        p.breakdown = {"pesos": used * card}
        assert p.verdict("T4") == expected, (used, p.verdict("T4"))
        assert p.fits("T4") == (used <= 1.0)
    p.breakdown = {"pesos": 0.97 * card}
    assert p.headroom("T4") == pytest.approx(0.03)
    assert "justo: cabe, pero deja solo un 3 % libre" in p.report("T4")
    with pytest.raises(ValueError, match="GPU desconocida"):
        p.verdict("RTX9090")
