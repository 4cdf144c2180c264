"""Cuaderno 03 (SFT con LoRA): lo que el cuaderno debe cumplir, con el modelo diminuto.

Las celdas de la solución (y las de comprobación) se ejecutan por su grade_id en un espacio de
nombres nuevo, con los mismos nombres que define el cuaderno.
"""

import math
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

import helpers

sys.path.insert(0, str(Path(__file__).parent))
from wrong_answers.nb03 import WRONG  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "03_lora_sft" / "03_lora_sft.ipynb"
MAX_LENGTH = 96


def cell_sources():
    nb = nbformat.read(SOLUTION, as_version=4)
    return {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nb.cells if c.metadata.get("nbgrader")}


def base_namespace(tokenizer, **extra):
    namespace = {
        "helpers": helpers,
        "torch": torch,
        "Path": Path,
        "LoraConfig": LoraConfig,
        "PeftModel": PeftModel,
        "get_peft_model": get_peft_model,
        "MAX_LENGTH": MAX_LENGTH,
        "tokenizer": tokenizer,
        "PROFILE": helpers.resolve_profile("tiny"),
    }
    namespace.update(extra)
    return namespace


def run_cells(namespace, *sources):
    for source in sources:
        exec(source, namespace)
    return namespace


@pytest.fixture(scope="module")
def tokenizer():
    return helpers.load_tokenizer("tiny")


@pytest.fixture(scope="module")
def sources():
    return cell_sources()


@pytest.fixture(scope="module")
def tokenize_with_mask(tokenizer, sources):
    return run_cells(base_namespace(tokenizer), sources["tokenize_with_mask"])["tokenize_with_mask"]


def prompt_length(tokenizer, example):
    prompt = helpers.to_prompt_completion(example)["prompt"]
    return len(tokenizer.apply_chat_template(prompt, add_generation_prompt=True)["input_ids"])


def test_etiquetas_enmascaradas_solo_en_el_prompt(tokenizer, tokenize_with_mask):
    """labels = -100 exactamente en las posiciones del prompt; los tokens de la respuesta se conservan."""
    examples = list(helpers.load_instructions("train", limit=4)) + list(helpers.load_instructions("test", limit=2))
    for example in examples:
        out = tokenize_with_mask(example, tokenizer, MAX_LENGTH)
        full = tokenizer.apply_chat_template(helpers.to_messages(example)["messages"])["input_ids"]
        n_prompt = prompt_length(tokenizer, example)
        ids, labels = out["input_ids"], out["labels"]
        assert ids == full[:MAX_LENGTH] and out["attention_mask"] == [1] * len(ids)
        assert 0 < n_prompt < len(ids)
        assert labels[:n_prompt] == [-100] * n_prompt
        assert labels[n_prompt:] == ids[n_prompt:] and -100 not in labels[n_prompt:]
        answer = tokenizer.decode([t for t, label in zip(ids, labels) if label != -100])
        assert answer.startswith(example["response"][:20]), answer  # la pérdida solo ve la respuesta
        assert example["instruction"] not in answer


def test_enmascarado_con_cortes(tokenizer, tokenize_with_mask):
    example = {"instruction": "Dime la capital de Chile.", "response": "🌎 Dato: La capital de Chile es Santiago. " * 5}
    n_prompt = prompt_length(tokenizer, example)
    cut = tokenize_with_mask(example, tokenizer, n_prompt + 3)  # el corte cae dentro de la respuesta
    assert len(cut["input_ids"]) == n_prompt + 3 and cut["labels"][n_prompt:] == cut["input_ids"][n_prompt:]
    short = tokenize_with_mask(example, tokenizer, n_prompt - 2)  # el corte cae dentro del prompt
    assert short["labels"] == [-100] * (n_prompt - 2)


def test_la_comprobacion_de_la_solucion_pasa_y_detecta_la_erronea(tokenizer, sources):
    """Las celdas calificadas de enmascarado aprueban la solución y suspenden WRONG (labels = input_ids)."""
    checks = [sources["test_tokenize_with_mask"], sources["test_tokenize_with_mask_hidden"]]
    extra = dict(example=helpers.load_instructions("train")[0], test_data=helpers.load_instructions("test"))
    right = run_cells(base_namespace(tokenizer, **extra), sources["tokenize_with_mask"])
    run_cells(right, *checks)  # no lanza
    for check in checks:
        wrong = run_cells(base_namespace(tokenizer, **extra), WRONG["tokenize_with_mask"])
        with pytest.raises(AssertionError):
            run_cells(wrong, check)
    example = extra["example"]
    out = wrong["tokenize_with_mask"](example, tokenizer, MAX_LENGTH)
    assert -100 not in out["labels"]  # el error es justo no enmascarar


def test_la_erronea_conserva_la_firma(sources):
    import inspect

    def signature(source, name):
        namespace = {"MAX_LENGTH": MAX_LENGTH, "helpers": helpers}
        exec(source, namespace)
        return inspect.signature(namespace[name])

    assert str(signature(WRONG["tokenize_with_mask"], "tokenize_with_mask")) == str(
        signature(sources["tokenize_with_mask"], "tokenize_with_mask")
    )


def test_perdida_finita_y_que_baja(tokenizer, sources, tmp_path):
    """LoRA de la solución en el modelo diminuto, datos de tokenize_with_mask: pérdida finita que baja,
    y trl usa nuestras etiquetas tal cual."""
    torch.manual_seed(0)
    namespace = run_cells(
        base_namespace(tokenizer, model=helpers.load_model("tiny", verbose=False)),
        sources["lora_config"],
        sources["tokenize_with_mask"],
    )
    peft_model, tokenize = namespace["peft_model"], namespace["tokenize_with_mask"]
    assert isinstance(peft_model, PeftModel)
    rows = helpers.load_instructions("train", limit=8)
    data = rows.map(lambda e: tokenize(e, tokenizer, 64), remove_columns=rows.column_names)
    trainer, losses = helpers.run_sft(
        peft_model,
        tokenizer,
        data,
        str(tmp_path),
        8,
        learning_rate=2e-2,
        scheduler="cosine",
        warmup_steps=1,
        max_length=64,
        disable_tqdm=True,
    )
    assert len(losses) == 8 and all(math.isfinite(v) for v in losses)
    helpers.check_loss_decreases(losses, min_steps=8, margin=0.01)
    assert trainer.train_dataset[0]["labels"] == data[0]["labels"]
    assert all("lora_" in n for n, p in peft_model.named_parameters() if p.requires_grad)


def test_adaptador_pequeno_y_recarga_identica(tokenizer, sources, tmp_path):
    namespace = run_cells(base_namespace(tokenizer), sources["save_and_load"])
    save_adapter, load_for_inference = namespace["save_adapter"], namespace["load_for_inference"]
    torch.manual_seed(1)
    base = helpers.load_model("tiny", verbose=False)
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )  # B ≠ 0: el adaptador cambia la salida
    peft_model = get_peft_model(base, config).eval()
    folder = tmp_path / "adaptador"
    size = save_adapter(peft_model, folder)
    files = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(files)
    assert size == sum(files.values())
    trainable = helpers.count_parameters(peft_model).trainable
    assert 4 * trainable <= files["adapter_model.safetensors"] < 4 * trainable + 64 * 2**10  # solo A y B en fp32
    assert size <= 4 * trainable + 100_000  # el límite de la celda calificada: crece con el modelo

    reloaded = load_for_inference(folder, profile="tiny")
    assert isinstance(reloaded, PeftModel) and not reloaded.training
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "¿Cuál es la capital de Perú?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        trained, again = peft_model(**inputs).logits, reloaded(**inputs).logits
        with peft_model.disable_adapter():
            plain = peft_model(**inputs).logits
    assert (trained - plain).abs().max().item() > 1e-3
    assert torch.equal(trained, again)


def test_resultados_comentados_sin_marcador():
    nb = nbformat.read(SOLUTION, as_version=4)
    assert not any("RESULTADOS_PENDIENTES" in c.source for c in nb.cells)
    index = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "metrics_trained =" in c.source)
    comment = nb.cells[index + 1]
    assert comment.cell_type == "markdown" and "🌎 Dato:" in comment.source


def test_limite_del_adaptador_crece_con_el_modelo():
    """SmolLM2-360M (el modelo sugerido para una T4), r = 8 en q, k, v, o: su adaptador correcto
    ocupa ≈ 6.6 MB y el límite fijo de antes (5 MiB) lo suspendía."""
    from helpers.memory_planner import peft_lora_params as lora_params

    smollm2_360m = dict(
        hidden_size=960,
        intermediate_size=2560,
        num_hidden_layers=32,
        num_attention_heads=15,
        num_key_value_heads=5,
        vocab_size=49152,
        tie_word_embeddings=True,
    )  # su config.json
    n_lora = lora_params(smollm2_360m, 8, ["q_proj", "k_proj", "v_proj", "o_proj"])
    cell = next(
        c.source
        for c in nbformat.read(SOLUTION, as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == "test_adapter"
    )
    start = cell.index("assert adapter_bytes <=")
    check = cell[start : cell.index("\n", cell.index("\n", start) + 1)]  # la aserción (dos líneas)
    namespace = {"helpers": helpers, "expected_lora": n_lora}
    exec(check, dict(namespace, adapter_bytes=4 * n_lora + 6_000))  # pesos fp32 + config y README
    assert 4 * n_lora + 6_000 > 5 * 2**20
    with pytest.raises(AssertionError):
        exec(check, dict(namespace, adapter_bytes=2 * 4 * n_lora))  # el doble: algo más que A y B


# --- métrica de la tarea, acumulación de gradientes y entrenamiento con validación ------------


def notebook_namespace(tokenizer, *grade_ids):
    """Espacio de nombres con las celdas auxiliares del cuaderno (words, key_words...) y las celdas pedidas."""
    nb = nbformat.read(SOLUTION, as_version=4)
    namespace = base_namespace(tokenizer)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.lstrip().startswith("import re") and "COMMON" in cell.source:
            exec(cell.source.split("\nfor example in")[0], namespace)
    return run_cells(namespace, *(cell_sources()[g] for g in grade_ids))


def test_metrica_en_toda_la_particion_de_prueba(tokenizer):
    ns = notebook_namespace(tokenizer, "task_metrics")
    test = list(helpers.load_instructions("test"))
    assert len(test) == 42
    assert all(ns["key_words"](e) for e in test), "cada referencia de prueba tiene palabras clave"
    assert ns["task_metrics"]([e["response"] for e in test], test) == {"formato": 1.0, "dato": 1.0}
    other = [test[(i + 7) % len(test)]["response"] for i in range(len(test))]
    assert ns["task_metrics"](other, test)["dato"] < 0.2  # el dato de otro ejemplo casi nunca vale
    wrong = notebook_namespace(tokenizer)
    exec(WRONG["task_metrics"], wrong)
    assert (
        wrong["task_metrics"](["x 🌎 Dato: y"], test[:1])["formato"] == 1.0
    )  # el error: el prefijo en cualquier sitio


@pytest.fixture(scope="module")
def tiny_lora():
    torch.manual_seed(0)
    model = get_peft_model(
        helpers.load_model("tiny", verbose=False),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    return model.train()


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_acumulacion_igual_al_lote_entero_y_la_media_de_medias_no(tokenizer, tiny_lora):
    from helpers.sweep import encode_batches

    ns = notebook_namespace(tokenizer, "accumulate_gradients")
    wrong = run_cells(base_namespace(tokenizer), WRONG["accumulate_gradients"])
    rows = sorted(helpers.load_instructions("train", limit=12), key=lambda e: len(e["response"]))
    four = [rows[0], rows[1], rows[-2], rows[-1]]
    tiny_lora.zero_grad(set_to_none=True)
    full = tiny_lora(**encode_batches(tokenizer, four, batch_size=4, max_length=64)[0]).loss
    full.backward()
    want = _grads(tiny_lora)
    scale = max(g.abs().max().item() for g in want.values())
    micro = encode_batches(tokenizer, four, batch_size=2, max_length=64)
    gaps = {}
    for name, accumulate in (("bien", ns["accumulate_gradients"]), ("media de medias", wrong["accumulate_gradients"])):
        tiny_lora.zero_grad(set_to_none=True)
        loss = accumulate(tiny_lora, micro)
        gaps[name] = max((want[n] - g).abs().max().item() for n, g in _grads(tiny_lora).items()) / scale
        if name == "bien":
            assert abs(loss - full.item()) <= 1e-5 * abs(full.item())
    tiny_lora.zero_grad(set_to_none=True)
    assert gaps["bien"] <= 1e-5, gaps
    assert gaps["media de medias"] > 1e-2, gaps  # con tokens desiguales, el error se ve


def test_generacion_por_lotes_igual_que_una_a_una(tokenizer, tiny_lora):
    questions = list(helpers.load_instructions("test", limit=3)["instruction"]) + ["hola"]
    batch = helpers.generate_batch(tiny_lora, tokenizer, questions, max_new_tokens=6, batch_size=4)
    assert batch == [helpers.generate(tiny_lora, tokenizer, q, max_new_tokens=6) for q in questions]
    assert tokenizer.padding_side == "right" and tiny_lora.training  # deja todo como estaba
    with pytest.raises(TypeError):
        helpers.generate_batch(tiny_lora, tokenizer, [{"instruction": "x"}])


def test_sft_config_calentamiento_programacion_y_validacion(tmp_path):
    config = helpers.sft_config(str(tmp_path), 10, scheduler="cosine", warmup_steps=2, eval_every=3, grad_accum=2)
    assert config.lr_scheduler_type == "cosine" and config.warmup_steps == 2
    assert config.eval_strategy == "steps" and config.eval_steps == 3 and config.gradient_accumulation_steps == 2
    with pytest.raises(ValueError):
        helpers.sft_config(str(tmp_path), 10, eval_every=0)
    with pytest.raises(ValueError):
        helpers.run_sft(None, None, None, str(tmp_path), 2, eval_every=1)  # sin eval_dataset


@pytest.mark.parametrize(
    "change, passes",
    [
        ("", True),
        ("lora_dropout=0.0", False),  # → lora_dropout=0.1: el enunciado pide sin dropout
        ('task_type="CAUSAL_LM"', False),  # sin tipo de tarea: el enunciado pide un modelo de lenguaje causal
    ],
)
def test_configuracion_de_lora_comprueba_dropout_y_tipo_de_tarea(tokenizer, sources, change, passes):
    solution = sources["lora_config"]
    if change:
        assert change in solution
        solution = solution.replace(change, "lora_dropout=0.1" if "dropout" in change else "task_type=None")
    namespace = base_namespace(tokenizer, model=helpers.load_model("tiny", verbose=False))
    run_cells(namespace, solution)
    if passes:
        run_cells(namespace, sources["test_lora_config"])
    else:
        with pytest.raises(AssertionError):
            run_cells(namespace, sources["test_lora_config"])


# --- duplicados y contaminación (ejercicio 2) ---------------------------------------------------


def contamination_namespace(tokenizer, source):
    from helpers.data_prep import normalize_text

    extra = dict(
        normalize_text=normalize_text,
        train_data=helpers.load_instructions("train"),
        test_data=helpers.load_instructions("test"),
    )
    return run_cells(base_namespace(tokenizer, **extra), source)


def naive_split(seed=0):
    """Las tres particiones juntas, barajadas, partidas por pregunta (como la celda del cuaderno)."""
    import random

    rows = list(helpers.load_instructions(None))
    random.Random(seed).shuffle(rows)
    return rows[42:], rows[:42]


def test_contaminacion_por_hecho_y_por_pregunta(tokenizer, sources):
    """La partición del curso está limpia; la partición por pregunta, contaminada casi entera, y la
    respuesta errónea (solo las preguntas, sin normalizar) no lo ve."""
    find = contamination_namespace(tokenizer, sources["find_contamination"])["find_contamination"]
    wrong = contamination_namespace(tokenizer, WRONG["find_contamination"])["find_contamination"]
    train, validation, test = (helpers.load_instructions(s) for s in ("train", "validation", "test"))
    assert find(train, test) == [] and find(train, validation) == [] and find(validation, test) == []
    naive_train, naive_test = naive_split()
    found = find(naive_train, naive_test)
    assert len(found) >= 35 and found == sorted(found)  # cada hecho tiene 3 preguntas: casi todas se cuelan
    assert wrong(naive_train, naive_test) == []  # mirando solo la pregunta, parece limpia
    # Por la respuesta: cada índice encontrado tiene su respuesta en el entrenamiento.
    from helpers.data_prep import normalize_text

    answers = {normalize_text(r["response"]) for r in naive_train}
    assert all(normalize_text(naive_test[i]["response"]) in answers for i in found)


WRONG_CONTAMINATION = {
    "solo la pregunta normalizada": """def find_contamination(train_rows, test_rows) -> list[int]:
    seen = {normalize_text(row["instruction"]) for row in train_rows}
    return [i for i, row in enumerate(test_rows) if normalize_text(row["instruction"]) in seen]
""",
    "la respuesta sin normalizar": """def find_contamination(train_rows, test_rows) -> list[int]:
    seen = {row["response"] for row in train_rows} | {row["instruction"] for row in train_rows}
    return [i for i, row in enumerate(test_rows) if row["response"] in seen or row["instruction"] in seen]
""",
    "sin repetir índices de la prueba": """def find_contamination(train_rows, test_rows) -> list[int]:
    seen = {normalize_text(r["instruction"]) for r in train_rows} | {normalize_text(r["response"]) for r in train_rows}
    found, said = [], set()
    for i, row in enumerate(test_rows):
        key = normalize_text(row["response"])
        if (normalize_text(row["instruction"]) in seen or key in seen) and key not in said:
            found.append(i)
            said.add(key)
    return found
""",
}


@pytest.mark.parametrize("what", ["solución", "erronea", *WRONG_CONTAMINATION])
def test_la_celda_de_contaminacion_aprueba_solo_la_solucion(tokenizer, sources, what):
    source = {"solución": sources["find_contamination"], "erronea": WRONG["find_contamination"]}.get(
        what, WRONG_CONTAMINATION.get(what)
    )
    namespace = contamination_namespace(tokenizer, source)
    if what == "solución":
        run_cells(namespace, sources["test_find_contamination"])
    else:
        with pytest.raises(AssertionError):
            run_cells(namespace, sources["test_find_contamination"])


def test_la_erronea_de_contaminacion_conserva_la_firma(sources):
    import inspect

    def signature(source):
        namespace = {}
        exec(source, namespace)
        return inspect.signature(namespace["find_contamination"])

    assert str(signature(WRONG["find_contamination"])) == str(signature(sources["find_contamination"]))


def test_eos_cuenta_con_trl_y_no_con_el_colector_que_enmascara_el_relleno(tokenizer, tokenize_with_mask):
    """Lo que enseña la sección del EOS: relleno = EOS en este tokenizador; el colector de trl conserva
    la etiqueta del EOS de cada respuesta y el de transformers (mlm=False) las borra todas."""
    from transformers import DataCollatorForLanguageModeling
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling as TrlCollator

    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    rows = [tokenize_with_mask(e, tokenizer, MAX_LENGTH) for e in helpers.load_instructions("train", limit=4)]
    trl_batch = TrlCollator(pad_token_id=tokenizer.pad_token_id)(
        [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
    )
    hf_batch = DataCollatorForLanguageModeling(tokenizer, mlm=False)([{"input_ids": r["input_ids"]} for r in rows])
    assert int((trl_batch["labels"] == tokenizer.eos_token_id).sum()) == 4
    assert int((hf_batch["labels"] == tokenizer.eos_token_id).sum()) == 0


def test_empaquetado_quita_el_relleno_y_separa_los_ejemplos(tokenizer, tokenize_with_mask, tiny_lora):
    """Lo que mide la celda del empaquetado: sin relleno, los mismos tokens útiles, menos lotes con filas
    largas; y con position_ids (use_cache=False) el segundo ejemplo no ve el primero."""
    from datasets import Dataset
    from trl import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling as TrlCollator

    from helpers.data_prep import batch_stats

    rows = [tokenize_with_mask(e, tokenizer, MAX_LENGTH) for e in helpers.load_instructions("train", limit=32)]
    chunk = Dataset.from_list([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows])

    def totals(data, collator):
        stats = [
            batch_stats(collator([data[j] for j in range(i, min(i + 4, len(data)))])) for i in range(0, len(data), 4)
        ]
        return len(stats), {k: sum(s[k] for s in stats) for k in stats[0]}

    n_plain, plain = totals(chunk, TrlCollator(pad_token_id=tokenizer.pad_token_id))
    n_packed, packed = totals(pack_dataset(chunk, 256, "bfd"), TrlCollator(pad_token_id=0, padding_free=True))
    assert plain["relleno"] > 0 and packed["relleno"] == 0
    assert n_packed < n_plain and packed["secuencias"] == plain["secuencias"] == 32
    # trl pone -100 en el primer token de cada secuencia empaquetada (no se predice desde la anterior),
    # que en la respuesta nunca está: los mismos tokens útiles.
    assert packed["utiles"] == plain["utiles"]
    first, second = (r["input_ids"] for r in rows[:2])
    glued = torch.tensor([first + second])
    positions = torch.tensor([list(range(len(first))) + list(range(len(second)))])
    with torch.no_grad():
        alone = tiny_lora(input_ids=torch.tensor([second])).logits[0]
        together = tiny_lora(input_ids=glued, position_ids=positions, use_cache=False).logits[0, len(first) :]
        leaked = tiny_lora(input_ids=glued, use_cache=False).logits[0, len(first) :]
    assert (together - alone).abs().max().item() < 1e-4
    assert (leaked - alone).abs().max().item() > 1e-2
