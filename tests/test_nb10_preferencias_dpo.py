"""Cuaderno 10 (preferencias y DPO con LoRA): helpers.preferences y las soluciones de los ejercicios,
comprobadas contra trl (la versión fijada) y contra el modelo base."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model

import helpers
from helpers.datasets import load_preferences
from helpers.preferences import (
    TRL_LORA_LEARNING_RATES,
    dpo_config,
    preference_batches,
    run_dpo,
    to_preference_messages,
)
from helpers.training import LOSS_LOG_ENV

sys.path.insert(0, str(Path(__file__).parent))
from solution_code import solution_namespace, trains  # noqa: E402


def answers():
    return solution_namespace(
        "10", "completion_logps", "dpo_loss", "reward_stats", "reference_logps", torch=torch, F=F, math=math
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Un DPO de 3 pasos en el modelo diminuto, con un adaptador que no empieza en cero (así la
    política ya difiere de la referencia) y las pérdidas anotadas en un archivo."""
    log = tmp_path_factory.mktemp("dpo") / "perdidas.jsonl"
    model, tok = helpers.load_model_and_tokenizer("tiny", verbose=False)
    data = load_preferences("train", limit=6)
    data = data.map(to_preference_messages, remove_columns=data.column_names)
    # Una configuración suelta, antes del entrenamiento: crear un DPOConfig después rehace el estado de
    # accelerate y el trainer ya creado deja de poder evaluar.
    loose = dpo_config(str(log.parent / "suelta"), 4, beta=0.3)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(LOSS_LOG_ENV, str(log))
        trainer, losses = run_dpo(
            model, tok, data, str(log.parent / "salida"), 3, peft_config=config, learning_rate=1e-3, batch_size=2
        )
    batch = preference_batches(tok, load_preferences("test", limit=3), batch_size=3)[0]
    return {"trainer": trainer, "losses": losses, "log": log, "tokenizer": tok, "batch": batch, "config": loose}


def fused_logps(model, batch):
    """Log-probs de las respuestas según trl (su cabeza fusionada), sumadas por fila."""
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels, fused_lm_head=True)
    return out.log_probs.sum(dim=1)


def test_el_cuaderno_entrena_con_las_funciones_del_curso():
    assert trains("10"), "run_dpo debe contar como función de entrenamiento (anota las pérdidas)"


def test_run_dpo_usa_la_base_como_referencia_y_anota_las_perdidas(trained):
    trainer = trained["trainer"]
    assert trainer.ref_model is None, "con peft_config, DPOTrainer no debe cargar un segundo modelo"
    assert len(trained["losses"]) == 3 and all(math.isfinite(v) for v in trained["losses"])
    records = [json.loads(line) for line in trained["log"].read_text(encoding="utf-8").splitlines()]
    assert [r["perdidas"] for r in records] == [trained["losses"]]
    assert records[0]["origen"] == "DPOTrainer"
    with pytest.raises(ValueError, match="peft_config"):
        run_dpo(None, trained["tokenizer"], None, "/tmp/x", 1, peft_config=None)


def test_dpo_config(trained):
    cfg = trained["config"]
    assert cfg.beta == 0.3 and cfg.loss_type == ["sigmoid"] and cfg.max_steps == 4 and cfg.logging_steps == 1
    assert cfg.learning_rate == TRL_LORA_LEARNING_RATES["DPO"]["LoRA"] == 5e-6
    if not torch.cuda.is_available():
        assert not cfg.fp16 and not cfg.bf16 and cfg.use_cpu
    with pytest.raises(ValueError, match="beta"):
        dpo_config("/tmp/x", 4, beta=0)


def test_preference_batches_como_dpo_trainer(trained):
    """Los lotes del curso son exactamente los que tokeniza y agrupa DPOTrainer."""
    trainer, tok = trained["trainer"], trained["tokenizer"]
    pairs = load_preferences("test", limit=3)
    data = pairs.map(to_preference_messages, remove_columns=pairs.column_names)
    prepared = trainer._prepare_dataset(data, tok, trainer.args, "eval")
    theirs = trainer.data_collator([prepared[i] for i in range(3)])
    ours = preference_batches(tok, pairs, batch_size=3)[0]
    assert set(ours) == {"input_ids", "attention_mask", "completion_mask"}
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    # Las primeras filas son las elegidas; las últimas, las rechazadas, del mismo par.
    for i in range(3):
        chosen = tok.decode(ours["input_ids"][i][ours["completion_mask"][i] == 1])
        rejected = tok.decode(ours["input_ids"][3 + i][ours["completion_mask"][3 + i] == 1])
        assert chosen.startswith(pairs[i]["chosen"]) and rejected.startswith(pairs[i]["rejected"])
    with pytest.raises(ValueError, match="no hay pares"):
        preference_batches(tok, [])


def test_completion_logps_como_trl(trained):
    ns = answers()
    model, batch = trained["trainer"].model, trained["batch"]
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        ours = ns["completion_logps"](logits, batch["input_ids"], batch["completion_mask"])
        theirs = fused_logps(model, batch)
    assert torch.allclose(ours, theirs, atol=1e-4), (ours, theirs)


@pytest.mark.parametrize("beta", [0.1, 0.7])
def test_dpo_loss_como_trl(trained, beta):
    """La pérdida DPO de la solución, con las log-probs de trl, es la de DPOTrainer.compute_loss."""
    ns = answers()
    trainer, batch = trained["trainer"], trained["batch"]
    model = trainer.model
    model.eval()
    with torch.no_grad():
        policy = fused_logps(model, batch)
        with model.disable_adapter():
            ref = fused_logps(model, batch)
        trainer.beta = beta
        try:
            expected = float(trainer.compute_loss(model, batch))
        finally:
            trainer.beta = trainer.args.beta
    losses, chosen, rejected = ns["dpo_loss"](*policy.chunk(2), *ref.chunk(2), beta=beta)
    assert abs(float(losses.mean()) - expected) < 1e-5
    assert abs(expected - math.log(2)) > 1e-3, "la política debe diferir ya de la referencia"
    stats = ns["reward_stats"](chosen, rejected)
    assert 0.0 <= stats["accuracy"] <= 1.0 and math.isclose(stats["margin"], float((chosen - rejected).mean()))


def test_reward_stats_no_cuenta_empates():
    ns = answers()
    zero = torch.zeros(4)
    assert ns["reward_stats"](zero, zero) == {"accuracy": 0.0, "margin": 0.0}


def test_referencia_es_la_base_con_el_adaptador_desactivado(trained):
    """Las log-probs bajo disable_adapter() son las del modelo base cargado aparte (y el error típico,
    get_base_model(), no lo es: lleva las capas LoRA activas)."""
    ns = answers()
    model, batch = trained["trainer"].model, trained["batch"]
    base = helpers.load_model("tiny", verbose=False)
    with torch.no_grad():
        expected = ns["completion_logps"](
            base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
            batch["input_ids"],
            batch["completion_mask"],
        )
        inner = ns["completion_logps"](
            model.get_base_model()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
            batch["input_ids"],
            batch["completion_mask"],
        )
    chosen, rejected = ns["reference_logps"](model, batch)
    assert torch.allclose(torch.cat([chosen, rejected]), expected, atol=1e-5)
    assert (inner - expected).abs().max() > 1e-3


def test_un_adaptador_nuevo_no_cambia_nada():
    """Al empezar (B = 0) la política es la referencia: la pérdida DPO vale log 2 y las recompensas, 0."""
    ns = answers()
    tok = helpers.load_tokenizer("tiny")
    batch = preference_batches(tok, load_preferences("test", limit=2), batch_size=2)[0]
    model = get_peft_model(
        helpers.load_model("tiny", verbose=False), LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    policy = ns["completion_logps"](logits, batch["input_ids"], batch["completion_mask"])
    ref_c, ref_r = ns["reference_logps"](model, batch)
    losses, chosen, rejected = ns["dpo_loss"](*policy.chunk(2), ref_c, ref_r, beta=0.1)
    assert torch.allclose(losses, torch.full_like(losses, math.log(2)), atol=1e-6)
    assert ns["reward_stats"](chosen, rejected)["accuracy"] == 0.0
