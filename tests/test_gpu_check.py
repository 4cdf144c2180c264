"""``make gpu`` (helpers.maintainers.gpu_check): sin CUDA se niega con un mensaje claro; el banco separa el modo T4."""

import pytest
import torch

from helpers.maintainers import bench, gpu_check
from helpers.precision import SIMULATE_ENV


@pytest.mark.skipif(torch.cuda.is_available(), reason="con CUDA, make gpu mediría de verdad")
def test_sin_cuda_termina_con_mensaje_en_espanol(capsys, monkeypatch):
    monkeypatch.delenv(SIMULATE_ENV, raising=False)
    assert gpu_check.main([]) == 2
    err = capsys.readouterr().err
    assert "No hay ninguna GPU CUDA" in err and "make test" in err
    assert SIMULATE_ENV not in __import__("os").environ  # no tocó el entorno antes de rendirse


def test_el_modo_t4_es_otra_seccion_del_informe(monkeypatch):
    monkeypatch.delenv(SIMULATE_ENV, raising=False)
    plain = bench.device_key()
    assert bench.machine()["modo"] is None
    monkeypatch.setenv(SIMULATE_ENV, "t4")
    assert bench.device_key() == plain + "-modo-t4"
    m = bench.machine()
    assert "T4" in m["modo"]
    entry = {"partes": {"b": {"maquina": m}}}
    assert "modo T4" in bench.device_title(entry)
    assert bench.rerun_command("b", bench.Options()) == "make gpu"
