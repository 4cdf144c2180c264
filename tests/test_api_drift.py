"""Guardia de deriva de la API: cada argumento con nombre que los cuadernos (solutions/) y helpers
pasan a trl, peft, transformers y bitsandbytes existe en las versiones instaladas."""

from helpers.maintainers import api_drift as ad

# La rotura clásica: la API antigua de trl (antes de processing_class y SFTConfig.max_length).
CLASSIC_BREAK = """
from trl import SFTTrainer
trainer = SFTTrainer(
    model=model,
    tokenizer=tokenizer,
    train_dataset=dataset,
    max_seq_length=512,
)
"""


def errors_of(source: str) -> set[tuple[str, str]]:
    return {(f.use.target, f.use.keyword) for f in ad.check_source(source).errors}


def test_detecta_la_rotura_clasica_de_sfttrainer():
    report = ad.check_source(CLASSIC_BREAK, "ejemplo")
    assert {(f.use.target, f.use.keyword) for f in report.errors} == {
        ("trl.SFTTrainer", "tokenizer"),
        ("trl.SFTTrainer", "max_seq_length"),
    }
    # model y train_dataset sí existen: se revisaron y no se marcan.
    assert {u.keyword for u in report.uses} == {"model", "tokenizer", "train_dataset", "max_seq_length"}
    assert all("no admite" in f.message and "ejemplo" in str(f) for f in report.errors)


def test_la_version_corregida_pasa():
    fixed = CLASSIC_BREAK.replace("tokenizer=tokenizer", "processing_class=tokenizer").replace(
        "    max_seq_length=512,\n", ""
    )
    assert errors_of(fixed) == set()


def test_resuelve_alias_instancias_y_diccionarios():
    source = """
import trl as t
import transformers
from transformers import BitsAndBytesConfig as BNB, AutoModelForCausalLM
from peft import LoraConfig
import helpers
%matplotlib inline
config = t.SFTConfig(output_dir="x", max_seq_length=64, max_length=64)
trainer = t.SFTTrainer(model=m, args=config)
trainer.train(resume_from_checkpoint=None, reanudar=True)
args = transformers.TrainingArguments(output_dir="x", evaluation_strategy="steps", eval_strategy="steps")
q = BNB(load_in_4bit=True, bnb_4bit_quant_tpye="nf4", bnb_4bit_quant_type="nf4")
m = AutoModelForCausalLM.from_pretrained("x", dtype="auto", load_in_4bit=True, num_labels=2, device_map="auto")
opciones = dict(r=8, lora_alpha=16, lora_dropuot=0.1)
LoraConfig(**opciones)
helpers.sft_config("salidas", 3, max_seq_length=64, learning_rate=1e-3)
helpers.load_model("tiny", quantization_config=q, load_in_8bit=True)
"""
    assert errors_of(source) == {
        ("trl.SFTConfig", "max_seq_length"),
        ("trl.SFTTrainer().train", "reanudar"),
        ("transformers.TrainingArguments", "evaluation_strategy"),
        ("transformers.BitsAndBytesConfig", "bnb_4bit_quant_tpye"),  # se ignoraría en silencio
        ("transformers.AutoModelForCausalLM.from_pretrained", "load_in_4bit"),
        ("peft.LoraConfig", "lora_dropuot"),
        ("helpers.sft_config", "max_seq_length"),  # helpers.sft_config(**extra) → trl.SFTConfig
        ("helpers.load_model", "load_in_8bit"),  # helpers.load_model(**kwargs) → from_pretrained
    }


def test_nombre_que_ya_no_existe():
    report = ad.check_source("import peft\npeft.LoraConfg(r=8)\n")
    assert [f.message for f in report.errors] == ["`peft.LoraConfg` no existe en la versión instalada."]


def test_magias_de_ipython_y_codigo_roto():
    source = "%%bash\necho hola\n"
    assert ad.check_source(source).uses == []
    source = "%%time\nfrom peft import LoraConfig\n!ls\nLoraConfig(rr=8)\n"
    assert errors_of(source) == {("peft.LoraConfig", "rr")}
    report = ad.check_source("def roto(:\n    pass\n", "ejemplo")
    assert len(report.errors) == 1 and "no se puede analizar" in report.errors[0].message


def test_importaciones_relativas_de_helpers():
    uses = ad.collect_module(ad.ROOT / "helpers" / "training.py")
    targets = {(u.target, u.keyword) for u in uses}
    # SFTConfig(**options) con options = trainer_options(..., max_length=...), una función del módulo que
    # devuelve un dict(...), y options.update(...): se leen las claves de las tres partes.
    assert ("trl.SFTConfig", "max_length") in targets and ("trl.SFTConfig", "per_device_train_batch_size") in targets
    assert ("trl.SFTConfig", "eval_steps") in targets
    assert ("trl.SFTConfig", "batch_size") not in targets  # parámetro de trainer_options, no de SFTConfig
    assert ("trl.SFTTrainer", "processing_class") in targets
    dpo = {(u.target, u.keyword) for u in ad.collect_module(ad.ROOT / "helpers" / "preferences.py")}
    assert ("trl.DPOConfig", "per_device_train_batch_size") in dpo


def test_cuadernos_y_helpers_usan_la_api_instalada(monkeypatch, capsys):
    """Por la orden de quien mantiene el curso (``python -m helpers.maintainers.api_drift``), entera."""
    notebooks, modules = ad.course_files()
    assert notebooks and modules
    reports = []
    check_course = ad.check_course
    monkeypatch.setattr(ad, "check_course", lambda: reports.append(check_course()) or reports[-1])
    status = ad.main([])
    assert "Argumentos con nombre revisados" in capsys.readouterr().out
    (report,) = reports
    assert status == (1 if report.errors else 0)
    targets = {u.target.split(".")[0] for u in report.uses}
    assert {"trl", "peft", "transformers"} <= targets, f"la recolección no encontró llamadas: {targets}"
    assert len(report.uses) >= 30
    assert not report.errors, "Argumentos que la versión instalada no admite:\n" + "\n".join(map(str, report.errors))
