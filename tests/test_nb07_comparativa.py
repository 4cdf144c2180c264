"""Propiedades que el cuaderno 07 necesita de ``helpers.compare`` (perfil diminuto, rápidas)."""

import math

import pytest
import torch

import helpers
from helpers import compare
from helpers.sweep import fixed_batches

PROFILE = "tiny"


@pytest.fixture(scope="module")
def tokenizer():
    return helpers.load_tokenizer(PROFILE)


@pytest.fixture(scope="module")
def records():
    return compare.compare_methods(steps=2, profile=PROFILE)


def test_lotes_iguales_y_enmascarados(tokenizer):
    a = fixed_batches(tokenizer, 2, batch_size=4, max_length=64, seed=0)
    b = fixed_batches(tokenizer, 2, batch_size=4, max_length=64, seed=0)
    assert len(a) == 2
    for x, y in zip(a, b):
        assert x["input_ids"].shape == (4, 64)
        assert torch.equal(x["input_ids"], y["input_ids"]) and torch.equal(x["labels"], y["labels"])
        # la pregunta y el relleno no cuentan en la pérdida, la respuesta sí
        assert (x["labels"][:, 0] == -100).all()
        assert ((x["labels"] != -100).sum(dim=1) > 0).all()
        assert (x["labels"][x["attention_mask"] == 0] == -100).all()


@pytest.mark.parametrize("num_virtual_tokens", [compare.NUM_VIRTUAL_TOKENS, 5])
def test_prompt_tuning_entrenables_m_por_d(num_virtual_tokens):
    from peft import get_peft_model

    model = helpers.load_model(PROFILE, verbose=False)
    hidden = model.config.hidden_size
    peft_model = get_peft_model(model, compare.prompt_config(num_virtual_tokens, profile=PROFILE))
    assert helpers.count_parameters(peft_model).trainable == num_virtual_tokens * hidden
    # el inicio desde texto copia embeddings del vocabulario (primera fila = primer token del texto)
    first = helpers.load_tokenizer(PROFILE)(compare.PROMPT_INIT_TEXT)["input_ids"][0]
    prompt = peft_model.prompt_encoder["default"].embedding.weight
    assert torch.equal(prompt[0], peft_model.get_input_embeddings().weight[first])


def test_prompt_config_usa_ruta_local():
    from pathlib import Path

    path = compare.prompt_config(profile=PROFILE).tokenizer_name_or_path
    assert Path(path).is_dir(), "el tokenizador del prompt suave debe cargarse de una ruta local, nunca del Hub"


def test_registros_coherentes(records):
    by = {r.method: r for r in records}
    assert list(by) == list(compare.METHODS)
    for r in records:
        assert 0 < r.trainable <= r.total
        assert math.isclose(r.percent, 100 * r.trainable / r.total)
        assert r.seconds_per_step > 0
        assert r.peak_memory_bytes > 0
        assert len(r.losses) == 2 and all(math.isfinite(v) for v in r.losses)
    assert by["full"].trainable == by["full"].total
    # Memoria: el ajuste completo guarda, como mínimo, pesos + gradientes + dos estados de AdamW en
    # fp32 (16 bytes por parámetro); LoRA y el ajuste de prompts, al menos los pesos fp32 del modelo.
    assert by["full"].peak_memory_bytes >= 16 * by["full"].total
    assert min(by["lora"].peak_memory_bytes, by["prompt"].peak_memory_bytes) >= 4 * by["full"].total
    assert by["qlora"].peak_memory_bytes < by["lora"].peak_memory_bytes  # la base en 4 bits ocupa menos
    assert by["prompt"].trainable < by["lora"].trainable < by["full"].trainable
    assert by["lora"].trainable == by["qlora"].trainable  # mismo LoRA sobre la base cuantizada
    assert (
        by["prompt"].trainable
        == compare.NUM_VIRTUAL_TOKENS * helpers.load_model(PROFILE, verbose=False).config.hidden_size
    )
    # LoRA empieza con B = 0: en el primer paso (mismo lote) da la misma pérdida que el modelo completo
    assert math.isclose(by["lora"].losses[0], by["full"].losses[0], rel_tol=1e-5)


def test_tabla_y_conclusiones(records):
    table = compare.table(records)
    rows = [r.as_row() for r in records]
    assert len(rows) == 4 and rows[0]["% entrenable"] == 100.0
    assert len(table) == 4
    lines = compare.conclusions(records)
    assert len(lines) == 5 and all(isinstance(s, str) and s for s in lines)


def test_conclusiones_siguen_a_los_numeros():
    mb = 10**6
    fake = [
        compare.MethodRecord("full", 1000, 1000, 4.0, 900 * mb, [3.0, 1.0]),
        compare.MethodRecord("lora", 20, 1020, 1.0, 500 * mb, [3.0, 2.0]),
        compare.MethodRecord("qlora", 20, 1020, 3.0, 400 * mb, [3.0, 2.1]),
        compare.MethodRecord("prompt", 2, 1002, 1.5, 450 * mb, [3.0, 2.9]),
    ]
    text = "\n".join(compare.conclusions(fake))
    assert "el más rápido fue LoRA" in text and "el más lento, el ajuste fino completo" in text
    assert "QLoRA frente a LoRA: 3.00 s/paso frente a 1.00 (más lento" in text
    assert "la menor la necesitó QLoRA" in text
    assert "la más baja fue la del ajuste fino completo" in text and "la más alta, la del ajuste de prompts" in text
    fake[2] = compare.MethodRecord("qlora", 20, 1020, 0.5, 400 * mb, [3.0, 2.1])
    assert "más rápido en esta máquina" in "\n".join(compare.conclusions(fake))


def test_clasificador_lora_supera_linea_base_en_prueba(tokenizer):
    """LoRA SEQ_CLS (cabeza `score` entrenable) supera a la clase mayoritaria en reseñas no vistas."""
    from peft import get_peft_model

    train, test = helpers.load_reviews("train"), helpers.load_reviews("test")
    model = helpers.load_model(PROFILE, task="seq-cls", num_labels=2, verbose=False)
    model.config.pad_token_id = tokenizer.pad_token_id
    model = get_peft_model(model, compare.lora_config(task_type="SEQ_CLS"))
    assert "score" in model.peft_config["default"].modules_to_save
    head = sum(p.numel() for n, p in model.named_parameters() if "score" in n and p.requires_grad)
    assert head == 2 * model.config.hidden_size
    losses = compare.train_classifier(
        model, tokenizer, train["text"], train["label"], 60, learning_rate=3e-3, batch_size=16, seed=0
    )
    assert len(losses) == 60 and all(math.isfinite(v) for v in losses)
    predictions = []
    with torch.no_grad():
        for start in range(0, len(test), 32):
            batch = compare.classification_batch(tokenizer, test["text"][start : start + 32])
            predictions += model(**batch).logits.argmax(-1).tolist()
    accuracy = helpers.load_accuracy().compute(predictions=predictions, references=test["label"])["accuracy"]
    majority = max(set(train["label"]), key=train["label"].count)
    baseline = sum(int(y == majority) for y in test["label"]) / len(test)
    assert accuracy > baseline + 0.15, (accuracy, baseline)


def test_train_classifier_exige_pad_token_id(tokenizer):
    model = helpers.load_model(PROFILE, task="seq-cls", num_labels=2, verbose=False)
    model.config.pad_token_id = tokenizer.pad_token_id + 1
    with pytest.raises(ValueError):
        compare.train_classifier(model, tokenizer, ["hola"], [1], 1)


def test_la_semilla_de_run_method_cuenta(tokenizer):
    """load_model ya no reinicia el generador aleatorio: la semilla de run_method decide el adaptador inicial."""
    batches = fixed_batches(tokenizer, 2, batch_size=2, max_length=64, seed=0)
    runs = [compare.run_method("lora", steps=2, seed=s, profile=PROFILE, batches=batches).losses for s in (0, 0, 1)]
    assert all(math.isfinite(v) for v in runs[0]) and runs[0] == runs[1]
    assert runs[0][1] != runs[2][1]  # otra A inicial: otra pérdida después del primer paso


def test_barrido_de_tasas_valida_y_registra_la_divergencia(tokenizer):
    """sweep_learning_rates: mismos lotes, pérdida en validación por tasa; una tasa absurda diverge sin
    parar el barrido."""
    batches = fixed_batches(tokenizer, 2, batch_size=2, max_length=64, seed=0)
    val = helpers.held_out_batches(tokenizer, limit=4)
    sweep = compare.sweep_learning_rates(
        "lora", (1e-3, 3e-3, 1e9), 2, batches=batches, eval_batches=val, profile=PROFILE
    )
    assert [r.learning_rate for r in sweep] == [1e-3, 3e-3, 1e9]
    good, other, absurd = sweep
    assert not good.diverged and math.isfinite(good.held_out_loss)
    assert good.held_out_loss != other.held_out_loss  # la tasa cambia el resultado en validación
    assert absurd.diverged
    # La misma ejecución fuera del barrido da la misma pérdida en validación (misma semilla, mismos lotes).
    again = compare.run_method("lora", 2, learning_rate=1e-3, batches=batches, eval_batches=val, profile=PROFILE)
    assert again.held_out_loss == good.held_out_loss
    # El barrido mide la memoria una vez y la copia: medirla con otra tasa da lo mismo (mismas formas).
    assert again.peak_memory_bytes == good.peak_memory_bytes == other.peak_memory_bytes > 0
    other_rate = compare.run_method("lora", 2, learning_rate=3e-3, batches=batches, profile=PROFILE)
    assert other_rate.peak_memory_bytes == good.peak_memory_bytes
    with pytest.raises(ValueError):
        compare.sweep_learning_rates("lora", (), 2, batches=batches, eval_batches=val, profile=PROFILE)


def test_fila_de_la_tabla_distingue_entrenamiento_y_validacion():
    record = compare.MethodRecord(
        "lora", 10, 100, 1.0, 10**6, [3.0, 2.0, 1.0, 0.5], learning_rate=1e-3, held_out_loss=2.5
    )
    row = record.as_row()
    assert row["tasa de aprendizaje"] == 1e-3
    assert row["pérdida final (validación)"] == 2.5
    assert row[f"pérdida de entrenamiento (media de los últimos {compare.TRAIN_LOSS_LAST} pasos)"] == round(
        sum(record.losses[-compare.TRAIN_LOSS_LAST :]) / compare.TRAIN_LOSS_LAST, 4
    )
    assert "pérdida final" not in compare.MethodRecord("full", 1, 1, 1.0, 1, [1.0]).as_row()
    assert not record.diverged
    assert compare.MethodRecord("lora", 1, 1, 1.0, 1, [1.0], held_out_loss=math.inf).diverged
    assert compare.MethodRecord("lora", 1, 1, 1.0, 1, [math.nan]).diverged


def test_conclusiones_con_la_perdida_en_validacion():
    mb = 10**6
    fake = [
        compare.MethodRecord("full", 1000, 1000, 4.0, 900 * mb, [3.0, 1.0], learning_rate=6e-5, held_out_loss=2.30),
        compare.MethodRecord("lora", 20, 1020, 1.0, 500 * mb, [3.0, 2.0], learning_rate=1e-3, held_out_loss=2.10),
        compare.MethodRecord("qlora", 20, 1020, 3.0, 400 * mb, [3.0, 2.1], learning_rate=1e-3, held_out_loss=2.15),
        compare.MethodRecord("prompt", 2, 1002, 1.5, 450 * mb, [3.0, 2.9], learning_rate=3e-2, held_out_loss=2.90),
    ]
    text = "\n".join(compare.conclusions(fake))
    assert "Pérdida final (validación) tras 2 pasos, cada método con su tasa de aprendizaje" in text
    assert "la más baja fue la de LoRA (2.100), seguida de la de QLoRA (2.150, 0.050 más)" in text
    assert "la más alta, la del ajuste de prompts (2.900)" in text


def test_veredicto_de_la_perdida_y_borde_de_la_rejilla():
    """El veredicto sale de helpers.evidence: una semilla y 3 pasos nunca dan un ganador, y el aviso del
    borde mira la tasa de menor pérdida en validación, no la que elige el desempate (la menor de las empatadas)."""
    mb = 10**6
    flat = [3.0, 2.0, 1.8] + [1.7] * 9  # convergida

    def rec(method, lr, val, losses=flat):
        return compare.MethodRecord(method, 10, 100, 1.0, mb, list(losses), learning_rate=lr, held_out_loss=val)

    # Completo: mínimo en 2e-4 (interior); 6e-5 queda a menos de 0.01 (la elegiría el desempate, y está en el borde).
    sweep = [
        rec("full", 6e-5, 2.305),
        rec("full", 2e-4, 2.300),
        rec("full", 6e-4, 2.50),
        rec("lora", 1e-3, 2.40),
        rec("lora", 3e-3, 2.20),
        rec("lora", 1e-2, 2.10),
    ]
    chosen = [sweep[0], sweep[5]]
    v = compare.loss_verdict(chosen, sweep)
    assert not v.conclusive and "borde_rejilla" in v.failed
    assert "LoRA (0.01, la mayor" in v.text and "ajuste fino completo (" not in v.text.split("borde")[1]
    assert "pocas_semillas" in v.failed and "sin_converger" not in v.failed
    # Tres pasos que aún bajan: sin converger.
    short = [rec("full", 2e-4, 2.3, [3.0, 2.5, 2.1]), rec("lora", 3e-3, 2.2, [3.0, 2.4, 2.0])]
    assert "sin_converger" in compare.loss_verdict(short).failed
    # La frase de las conclusiones es la del veredicto.
    assert any(
        line.startswith("¿Qué método gana en pérdida final? no concluyente: ")
        for line in compare.conclusions(chosen, sweep)
    )
