"""Más allá de una GPU: helpers/ddp_sft.py entrena con DDP bajo ``accelerate launch``.

Aquí, sin GPU, se lanzan 2 procesos en la CPU (backend gloo) con el modelo diminuto y pocos
pasos. Se comprueba que:

- de verdad hubo 2 procesos en un grupo gloo, y cada uno entrenó con lotes distintos;
- los dos procesos terminan con el mismo adaptador, tensor a tensor y bit a bit (DDP promedió
  los gradientes; sin sincronizar, lotes distintos darían adaptadores distintos);
- ese adaptador es distinto del inicial (que también es idéntico en los dos procesos);
- el adaptador guardado por el proceso principal es justo ese.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 2
STEPS = 4
TIMEOUT = 300  # s; en una máquina tranquila tarda unos 30 s


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(out: Path) -> list[str]:
    """La misma orden que docs/multi_gpu.md, con 2 procesos en la CPU y el perfil diminuto."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(PROCESSES),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(free_port()),
        "-m",
        "helpers.ddp_sft",
        "--perfil",
        "tiny",
        "--pasos",
        str(STEPS),
        "--ejemplos",
        "64",
        "--salida",
        str(out),
    ]


def run_ddp(out: Path) -> str:
    """Lanza el entrenamiento y devuelve su salida (falla con el registro si algo va mal)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("CURSO_PEFT_PROFILE", None)
    proc = subprocess.Popen(
        launch_command(out),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        log, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # el lanzador y sus procesos, que están en su sesión
        log, _ = proc.communicate(timeout=30)
        pytest.fail(f"accelerate launch no terminó en {TIMEOUT} s:\n{log[-3000:]}")
    assert proc.returncode == 0, f"accelerate launch falló (código {proc.returncode}):\n{log[-4000:]}"
    return log


def rank_files(out: Path, rank: int):
    folder = out / f"rango_{rank}"
    summary = json.loads((folder / "resumen.json").read_text(encoding="utf-8"))
    return (
        summary,
        load_file(folder / "adaptador_inicial.safetensors"),
        load_file(folder / "adaptador_final.safetensors"),
    )


def assert_same(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), f"{what}: nombres de tensores distintos"
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{what}: {len(different)} tensores distintos, p. ej. {different[:3]}"


def check_processes_and_data(out: Path, log: str) -> None:
    """2 procesos en un grupo gloo, cada uno con lotes distintos."""
    summaries = [rank_files(out, r)[0] for r in range(PROCESSES)]
    assert [s["rango"] for s in summaries] == list(range(PROCESSES))
    for s in summaries:
        assert (s["procesos"], s["backend"], s["perfil"], s["pasos"]) == (PROCESSES, "gloo", "tiny", STEPS), s
        assert s["lote_global"] == PROCESSES * s["lote_por_proceso"]
        assert len(s["lotes"]) == STEPS and len(s["perdidas"]) == STEPS
    batches = [set(s["lotes"]) for s in summaries]
    assert not batches[0] & batches[1], "los dos procesos vieron los mismos lotes: no se repartieron los datos"
    assert f"lote global {PROCESSES * summaries[0]['lote_por_proceso']}" in log


def check_same_adapter(out: Path) -> None:
    """El mismo adaptador en los dos procesos, bit a bit, y distinto del inicial."""
    (s0, init0, final0), (s1, init1, final1) = (rank_files(out, r) for r in range(PROCESSES))
    assert final0 and all(".lora_A." in k or ".lora_B." in k for k in final0), sorted(final0)[:4]
    assert_same(init0, init1, "adaptador inicial")
    assert_same(final0, final1, "adaptador final")
    assert s0["huella_final"] == s1["huella_final"] and s0["huella_inicial"] == s1["huella_inicial"]
    changed = [k for k in final0 if not torch.equal(final0[k], init0[k])]
    assert len(changed) == len(final0), f"solo cambiaron {len(changed)} de {len(final0)} tensores al entrenar"
    assert s0["huella_final"] != s0["huella_inicial"]


def check_saved_adapter(out: Path) -> None:
    """El adaptador que guarda el proceso principal es el entrenado."""
    _, _, final0 = rank_files(out, 0)
    saved = load_file(out / "adaptador" / "adapter_model.safetensors")
    assert_same(saved, final0, "adaptador guardado frente al del proceso 0")
    config = json.loads((out / "adaptador" / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["peft_type"] == "LORA"


def test_ddp_dos_procesos_mismo_adaptador(tmp_path):
    """Una sola ejecución (unos 30 s en una máquina tranquila) y todas las comprobaciones."""
    out = tmp_path / "salida"
    log = run_ddp(out)
    check_processes_and_data(out, log)
    check_same_adapter(out)
    check_saved_adapter(out)
