"""Experimentos de referencia: caché por contenido, reanudación tras un corte, procedencia y tablas.

Todo con un micro-experimento del modelo diminuto (pocos pasos): lo que se comprueba es la
infraestructura (qué se ejecuta, qué se reutiliza, qué se guarda), no cuánto tarda.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import reference
from helpers.maintainers import referencia
from helpers.reference import Experiment, choose_lr, lora, plan_next, run_config

ROOT = Path(__file__).resolve().parent.parent

MICRO = Experiment(
    key="micro",
    notebook="00_prueba",
    title="Micro-experimento de prueba",
    question="¿Funciona la infraestructura?",
    options={"r = 1": lora(1, targets=("q_proj", "v_proj")), "r = 2": lora(2, targets=("q_proj", "v_proj"))},
    lr_grids={"r = 1": (1e-3, 1e-2, 1e-1), "r = 2": (1e-3, 1e-2, 1e-1)},
    steps=4,
    seeds=(0, 1),
    batch_size=2,
    max_length=48,
    eval_every=2,
    profile="tiny",
    limit=2,
    new_tokens=4,
)


def test_duracion_se_lee_en_un_solo_sitio(monkeypatch):
    monkeypatch.delenv(reference.DURATION_ENV, raising=False)
    assert reference.duration() == "viva"
    monkeypatch.setenv(reference.DURATION_ENV, "Referencia")
    assert reference.duration() == "referencia"
    monkeypatch.setenv(reference.DURATION_ENV, "larga")
    with pytest.raises(ValueError, match="viva"):
        reference.duration()


def test_el_protocolo_amplia_la_rejilla_hasta_que_el_mejor_queda_dentro():
    """Con la mejor tasa en el borde superior, se añade otra más allá; después, las semillas en la elegida."""
    experiment = replace(MICRO, seeds=(0, 1, 2))
    loss = {1e-3: 3.0, 1e-2: 2.0, 1e-1: 1.5, 1.0: 1.8}  # mejor 1e-1: borde → se prueba 1.0 y queda dentro
    done: dict = {}
    asked = []
    while (config := plan_next(experiment, "r = 1", lambda c: done.get(json.dumps(c, sort_keys=True)))) is not None:
        asked.append((config["learning_rate"], config["seed"]))
        done[json.dumps(config, sort_keys=True)] = {"held_out_loss": loss[round(config["learning_rate"], 12)]}
    rates = [r for r, s in asked if s == 0]
    assert [round(r, 12) for r in rates] == [1e-3, 1e-2, 1e-1, 1.0]
    assert [(round(r, 12), s) for r, s in asked if s != 0] == [(1e-1, 1), (1e-1, 2)]
    assert choose_lr({1e-3: {"held_out_loss": 3.0}, 1e-2: {"held_out_loss": 2.0}}) == (1e-2, "arriba")
    assert choose_lr(
        {1e-3: {"held_out_loss": math.nan}, 1e-2: {"held_out_loss": 2.0}, 1e-1: {"held_out_loss": 2.5}}
    ) == (1e-2, None)


def test_la_clave_cambia_con_la_configuracion_el_codigo_y_las_versiones():
    config = run_config(MICRO, "r = 1", 1e-2, 0)
    key = reference.run_key(config, "código", {"torch": "1"}, "cpu/fp32")
    assert key == reference.run_key(json.loads(json.dumps(config)), "código", {"torch": "1"}, "cpu/fp32")
    assert key != reference.run_key(run_config(MICRO, "r = 1", 1e-2, 1), "código", {"torch": "1"}, "cpu/fp32")
    assert key != reference.run_key(config, "otro código", {"torch": "1"}, "cpu/fp32")
    assert key != reference.run_key(config, "código", {"torch": "2"}, "cpu/fp32")
    assert key != reference.run_key(config, "código", {"torch": "1"}, "t4/fp16")
    assert set(referencia.pinned_versions()) >= {"torch", "transformers", "peft"}


def test_la_metrica_de_la_tarea_sale_del_cuaderno_03():
    metric = referencia.task_metric_function()
    example = {
        "instruction": "¿Cuál es la moneda de Paraguay?",
        "response": "🌎 Dato: La moneda de Paraguay es el guaraní.",
    }
    assert metric(["🌎 Dato: En Paraguay se paga con el guaraní."], [example]) == {"formato": 1.0, "dato": 1.0}
    assert metric(["No lo sé."], [example]) == {"formato": 0.0, "dato": 0.0}


def test_una_ejecucion_cortada_sigue_donde_estaba_y_da_lo_mismo(tmp_path):
    """Cortar tras el primer guardado y reanudar da exactamente el resultado de la ejecución entera."""
    config = run_config(MICRO, "r = 2", 1e-2, 0)
    whole = reference.run_one(config)
    checkpoint = tmp_path / "ckpt.pt"

    class Cut(Exception):
        pass

    def cut(step):
        raise Cut(step)

    with pytest.raises(Cut):
        reference.run_one(config, checkpoint=checkpoint, on_checkpoint=cut)
    assert checkpoint.exists()
    resumed = reference.run_one(config, checkpoint=checkpoint)
    assert resumed["train_losses"] == pytest.approx(whole["train_losses"], abs=1e-6)
    assert [p[0] for p in resumed["curve"]] == [0, 2, 4]
    assert resumed["held_out_loss"] == pytest.approx(whole["held_out_loss"], abs=1e-6)
    assert resumed["test_answers"] == whole["test_answers"]
    for key in ("forgetting", "trainable", "adapter_bytes", "peak_memory_bytes", "seconds_per_step"):
        assert resumed[key] is not None and math.isfinite(resumed[key]), key
    assert resumed["general_loss"] - resumed["general_loss_base"] == pytest.approx(resumed["forgetting"])


SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from test_referencia import MICRO
    from helpers.maintainers import referencia

    seen = []

    def kill_on_second_run(step):
        seen.append(step)
        # La segunda ejecución (tras una entera) se mata a mitad, sin dejarle terminar nada.
        if len(list((Path({cache!r}) / "runs").glob("*.json"))) >= 1 and step == 2:
            os.kill(os.getpid(), signal.SIGKILL)

    cache = referencia.Cache(Path({cache!r}))  # versiones instaladas: las fijadas no cambian nada aquí
    referencia.run_experiments([MICRO], cache, command="prueba", data_file=Path({data!r}), docs=Path({docs!r}),
                               on_checkpoint=kill_on_second_run if {kill!r} else None, log=lambda *a: None)
""")


def run_script(tmp_path, kill: bool, experiment_module_patch: str = "") -> subprocess.CompletedProcess:
    script = tmp_path / "ejecutar.py"
    script.write_text(
        experiment_module_patch
        + SCRIPT.format(
            tests=str(ROOT / "tests"),
            cache=str(tmp_path / "cache"),
            data=str(tmp_path / "referencia.json"),
            docs=str(tmp_path / "rendimiento.md"),
            kill=kill,
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "CURSO_PEFT_PROFILE": "tiny"}
    return subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def runs(tmp_path) -> dict[str, float]:
    return {p.stem: p.stat().st_mtime_ns for p in (tmp_path / "cache" / "runs").glob("*.json")}


@pytest.mark.slow
def test_make_referencia_se_reanuda_tras_matarlo_y_publica_con_procedencia(tmp_path):
    killed = run_script(tmp_path, kill=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first = runs(tmp_path)
    assert len(first) == 1, "solo la primera ejecución había terminado"
    checkpoints = list((tmp_path / "cache" / "ckpt").glob("*.pt"))
    assert len(checkpoints) == 1, "la ejecución interrumpida dejó su punto de guardado"

    finished = run_script(tmp_path, kill=False)
    assert finished.returncode == 0, finished.stderr[-2000:]
    second = runs(tmp_path)
    # Rejilla de 3 tasas con la semilla 0 + la semilla 1 en la elegida, por cada una de las 2 opciones
    # (más las tasas que añada una ampliación de la rejilla).
    assert len(second) >= 8
    assert all(second[k] == first[k] for k in first), "una ejecución terminada no se repite"
    resumed = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "runs").glob("*.json")]
    assert sum(r["procedencia"]["reanudada"] for r in resumed) == 1, (
        "la interrumpida se reanudó desde su punto de guardado"
    )
    assert not list((tmp_path / "cache" / "ckpt").glob("*.pt")), "los puntos de guardado se borran al terminar"

    data = json.loads((tmp_path / "referencia.json").read_text())
    summary = data["experimentos"]["micro"]
    assert data["versiones_fijadas"]["torch"]
    for label, option in summary["opciones"].items():
        assert option["completa"], label
        assert option["tasa_elegida"] in option["rejilla"] and not option["borde"] or len(option["rejilla"]) == 5
        assert [s["semilla"] for s in option["semillas"]] == [0, 1]
        for seed in option["semillas"]:
            prov = seed["procedencia"]
            assert prov["maquina"]["cpu"] and prov["gflops"] > 0 and prov["versiones"]["torch"]
            assert prov["fecha"] and prov["orden"] == "prueba" and prov["semilla"] == seed["semilla"]
            assert 0 <= seed["formato"] <= 1 and 0 <= seed["dato"] <= 1
            assert math.isfinite(seed["forgetting"]) and seed["trainable"] > 0
    inputs = reference.verdict_inputs("micro", path=tmp_path / "referencia.json")
    assert set(inputs["results"]) == {"r = 1", "r = 2"} and all(len(v) == 2 for v in inputs["results"].values())
    assert inputs["chosen_lr"]["r = 1"] in inputs["lr_grid"]["r = 1"]
    docs = (tmp_path / "rendimiento.md").read_text()
    assert referencia.BEGIN in docs and "### micro." in docs and "r = 2" in docs and "Estado: completo" in docs

    # Cambiar una opción vuelve a ejecutar solo las suyas.
    patch = (
        "import test_referencia, dataclasses\n"
        "test_referencia.MICRO = dataclasses.replace(test_referencia.MICRO, options={**test_referencia.MICRO.options, "
        "'r = 2': test_referencia.lora(3, targets=('q_proj', 'v_proj'))})\n"
    )
    changed = run_script(
        tmp_path,
        kill=False,
        experiment_module_patch=patch.replace(
            "import test_referencia", f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); import test_referencia"
        ),
    )
    assert changed.returncode == 0, changed.stderr[-2000:]
    third = runs(tmp_path)
    assert all(third[k] == second[k] for k in second), "las ejecuciones que no cambian no se repiten"
    new = [json.loads((tmp_path / "cache" / "runs" / f"{k}.json").read_text()) for k in set(third) - set(second)]
    assert new and all(r["config"]["spec"]["r"] == 3 for r in new)


def test_la_tabla_y_el_veredicto_salen_del_archivo(tmp_path):
    seed = {
        "held_out_loss": 2.0,
        "curve": [[0, 3.0], [4, 2.0]],
        "forgetting": 0.1,
        "trainable": 100,
        "seconds_per_step": 0.5,
        "peak_memory_bytes": 2e6,
        "adapter_bytes": 1e5,
        "formato": 1.0,
        "dato": 0.5,
    }
    option = {
        "rejilla": [1e-3, 1e-2, 1e-1],
        "tasa_elegida": 1e-2,
        "borde": None,
        "completa": True,
        "por_tasa": {"0.001": 2.5, "0.01": 2.0, "0.1": 2.2},
        "semillas": [{**seed, "semilla": 0}, {**seed, "semilla": 1, "held_out_loss": 2.2}],
    }
    data = {
        "procedencia": {},
        "experimentos": {"x": {"titulo": "t", "opciones": {"A": option, "B": {**option, "completa": False}}}},
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    rows = reference.table_rows(reference.load("x", path))
    assert rows[0]["pérdida final (validación)"] == "2.1000 ± 0.1414"
    assert rows[0]["formato (prueba)"] == "100 ± 0 %"
    inputs = reference.verdict_inputs("x", path=path)
    assert inputs["results"] == {"A": [2.0, 2.2]} and inputs["chosen_lr"] == {"A": 1e-2}
    assert inputs["curves"] == {"A, semilla 0": [3.0, 2.0], "A, semilla 1": [3.0, 2.0]}
    assert inputs["lr_grid"] == {"A": [1e-3, 1e-2, 1e-1]} and inputs["metric"] == "pérdida de validación"
    assert reference.verdict_inputs("x", "dato", path=path)["lower_is_better"] is False
    with pytest.raises(LookupError, match="make referencia"):
        reference.load("otro", path)


def test_show_y_veredicto_dicen_lo_que_falta(tmp_path, monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.delenv(reference.DURATION_ENV, raising=False)
    seed = {
        "held_out_loss": 2.0,
        "curve": [[0, 3.0], [4, 2.0]],
        "forgetting": 0.1,
        "trainable": 100,
        "seconds_per_step": 0.5,
        "peak_memory_bytes": 2e6,
        "adapter_bytes": 1e5,
        "procedencia": {"maquina": {"cpu": "CPU de prueba"}, "fecha": "2026-12-07T21:00:00+00:00"},
    }
    option = {
        "rejilla": [1e-3, 1e-2, 1e-1],
        "tasa_elegida": 1e-2,
        "borde": None,
        "completa": True,
        "por_tasa": {"0.01": 2.0},
        "semillas": [{**seed, "semilla": s} for s in (0, 1, 2)],
    }
    data = {
        "experimentos": {
            "x": {
                "titulo": "t",
                "pasos": 4,
                "semillas": [0, 1, 2],
                "opciones": {"A": option, "B": {**option, "completa": False}},
            }
        }
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    calls = []
    text = reference.verdict("x", lambda **kw: calls.append(kw), path=path)
    assert text.startswith("no concluyente") and "B" in text and not calls
    data["experimentos"]["x"]["opciones"]["B"]["completa"] = True
    path.write_text(json.dumps(data))
    assert reference.verdict("x", lambda **kw: "veredicto", path=path) == "veredicto"
    summary = reference.show("x", lambda **kw: "veredicto", path=path)
    out = capsys.readouterr().out
    assert summary is not None and "2 de 2 opciones completas" in out and "CPU de prueba" in out and "veredicto" in out
    assert reference.show("otro", path=path) is None
    assert "make referencia" in capsys.readouterr().out


def test_el_resumen_no_da_por_buena_una_rejilla_a_medias():
    """Con tasas de la rejilla sin hacer, la tasa elegida es provisional y no hay veredicto de borde."""
    done = {}

    def get(config):
        return done.get(json.dumps(config, sort_keys=True))

    def finish(rate, seed, loss):
        config = run_config(MICRO, "r = 1", rate, seed)
        done[json.dumps(config, sort_keys=True)] = {
            "config": config,
            "held_out_loss": loss,
            "curve": [[0, 3.0], [4, loss]],
            "forgetting": 0.0,
            "trainable": 1,
            "seconds_per_step": 1.0,
            "peak_memory_bytes": 1,
            "adapter_bytes": 1,
        }

    finish(1e-3, 0, 2.0)
    option = reference.summarize(MICRO, get)["opciones"]["r = 1"]
    assert option["provisional"] and option["borde"] is None and option["rejilla_pendiente"] == [1e-2, 1e-1]
    assert (
        not option["completa"]
        and reference.table_rows({"opciones": {"r = 1": option}})[0]["rejilla"] == "1e-03 (faltan 2)"
    )
    finish(1e-2, 0, 1.5)
    finish(1e-1, 0, 1.8)
    finish(1e-2, 1, 1.6)
    option = reference.summarize(MICRO, get)["opciones"]["r = 1"]
    assert not option["provisional"] and option["borde"] is None and option["completa"]
    assert option["tasa_elegida"] == 1e-2 and [s["held_out_loss"] for s in option["semillas"]] == [1.5, 1.6]
