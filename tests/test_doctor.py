"""``python -m helpers.doctor``: diagnóstico en español; código distinto de 0 si una versión no
coincide con la fijada."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import doctor
from helpers.maintainers import pins
from helpers.models import ENV_VAR

ROOT = pins.PYPROJECT.parent


def run_doctor(**env_extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("NBGRADER_EXECUTION", "COLAB_RELEASE_TAG", ENV_VAR)}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "helpers.doctor"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.parametrize(
    "error",
    [
        'raise ImportError("libtorch_cpu.so: cannot open shared object file: No such file or directory")',
        'raise OSError("[WinError 126] No se encontró el módulo: c10.dll")',
    ],
)
def test_doctor_con_torch_roto(tmp_path, error):
    """El primer paso del README ante cualquier problema funciona aunque ``import torch`` falle: dice
    dónde se ejecuta, las versiones, que torch no se importa y cómo arreglarlo (código 1), sin traza."""
    fake = tmp_path / "torch_roto" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(error + "\n")
    result = run_doctor(PYTHONPATH=str(fake.parent), **{ENV_VAR: "tiny"})
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "Dónde se ejecuta" in out and "entorno : local" in out and "Versiones" in out
    assert "Hardware: ✘ torch no se puede importar" in out
    assert ("cannot open shared object file" if "ImportError" in error else "c10.dll") in out
    assert "Problema: torch está instalado pero no se puede importar" in out
    assert "rm -f .venv/.instalado && make install" in out


def _clean(monkeypatch):
    for var in ("NBGRADER_EXECUTION", "COLAB_RELEASE_TAG", ENV_VAR):
        monkeypatch.delenv(var, raising=False)


def test_doctor_en_este_entorno():
    result = run_doctor(**{ENV_VAR: "tiny"})
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Todo en orden" in out
    for needed in (
        "entorno",
        "local",
        "Versiones",
        "GPU",
        "bf16 real",
        "precisión de entrenamiento",
        "perfil del modelo",
        "diminuto",
        f"la variable {ENV_VAR}",
        "modelo embebido (GGUF)",
        "caché del modelo embebido",
    ):
        assert needed in out, f"falta «{needed}» en la salida:\n{out}"
    # Cada versión fijada aparece con su versión instalada.
    for req in pins.pinned_requirements(extras=("local",)) + pins.no_deps_requirements():
        name, pinned = req.split("==")
        line = next((text for text in out.splitlines() if f" {name} " in text), None)
        assert line and pinned in line and "✔" in line, f"{name}: {line}"


def test_doctor_falla_con_una_version_distinta(monkeypatch, capsys):
    _clean(monkeypatch)
    real = doctor.installed_version
    monkeypatch.setattr(doctor, "installed_version", lambda name: "0.20.0" if name == "peft" else real(name))
    assert doctor.main([]) == 1
    out = capsys.readouterr().out
    assert "✘ peft" in out and "0.20.0       ≠ 0.21.2" in out
    assert (
        "Problema: 1 paquete(s) no coinciden con las versiones fijadas: peft (instalada 0.20.0, fijada 0.21.2)" in out
    )
    assert "make install" in out


def test_doctor_falla_si_falta_un_paquete_imprescindible(monkeypatch, capsys):
    _clean(monkeypatch)
    real = doctor.installed_version
    monkeypatch.setattr(doctor, "installed_version", lambda name: None if name == "trl" else real(name))
    assert doctor.main([]) == 1
    assert "trl (no instalado, fijada 1.16.0)" in capsys.readouterr().out


def test_faltar_las_de_pruebas_solo_avisa(monkeypatch, capsys):
    _clean(monkeypatch)
    real = doctor.installed_version
    monkeypatch.setattr(doctor, "installed_version", lambda name: None if name == "pytest" else real(name))
    assert doctor.main([]) == 0
    assert "solo hace falta para las pruebas" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("installed", "pinned", "ok"),
    [
        ("2.13.0+cpu", "2.13.0", True),
        ("2.13.0+cu126", "2.13.0", True),
        ("2.13.1", "2.13.0", False),
        ("5.23.0rc1", "5.23.0", False),
        ("no-es-una-versión", "1.0", False),
    ],
)
def test_comparacion_de_versiones(installed, pinned, ok):
    assert doctor.PinStatus("x", pinned, installed, "curso", True).matches is ok


def test_en_colab_solo_las_del_curso(monkeypatch, capsys):
    _clean(monkeypatch)
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-prueba")
    monkeypatch.setenv(ENV_VAR, "tiny")  # en Colab el perfil por defecto sería hub
    statuses = doctor.check_pins("colab")
    assert {s.group for s in statuses} == {"curso"}
    assert {s.name for s in statuses} == {r.split("==")[0] for r in pins.pinned_requirements()}
    # Colab trae su torch: que no esté la versión fijada en local no es un problema allí.
    real = doctor.installed_version
    monkeypatch.setattr(doctor, "installed_version", lambda name: "2.9.0+cu126" if name == "torch" else real(name))
    assert doctor.main([]) == 0
    out = capsys.readouterr().out
    assert "entorno : colab" in out and "en Colab solo las del curso" in out


def test_pins_desde_los_metadatos_del_paquete():
    """Instalado desde git (Colab) no hay pyproject.toml al lado: las versiones salen de los metadatos."""
    data = doctor._pins_from_metadata()
    assert set(pins.pinned_requirements(data)) == set(pins.pinned_requirements())


def test_calificador(monkeypatch, capsys):
    _clean(monkeypatch)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert doctor.main([]) == 0
    out = capsys.readouterr().out
    assert "entorno : calificador" in out and "elegido por el calificador" in out


def test_opciones_de_uv_salen_de_la_configuracion_de_pip():
    """make install usa uv con los mismos índices, ruedas locales y restricciones que pip."""
    config = (
        "global.cert='/etc/ssl/certs/ca.crt'\n"
        "global.constraint='/etc/pip/constraints.txt'\n"
        "global.extra-index-url='file:///opt/a/simple file:///opt/b/simple'\n"
        "global.find-links='/opt/wheels'\n"
        ":env:.find-links='/opt/wheels'\n"
        ":env:.default-timeout='180'\n"
        "user.index-url='https://example.org/simple'\n"
    )
    args = pins.uv_arguments(config)
    assert args[:2] == ["--index-strategy", "unsafe-best-match"] and "--native-tls" in args
    pairs = list(zip(args, args[1:]))
    assert pairs.count(("--find-links", "/opt/wheels")) == 1  # repetido en pip config, una vez aquí
    for pair in [
        ("--extra-index-url", "file:///opt/a/simple"),
        ("--extra-index-url", "file:///opt/b/simple"),
        ("--constraint", "/etc/pip/constraints.txt"),
        ("--index-url", "https://example.org/simple"),
    ]:
        assert pair in pairs
    assert "180" not in args
    assert pins.uv_arguments("") == ["--index-strategy", "unsafe-best-match"]
    assert pins.installer_requirement().startswith("uv==")


def test_paquetes_instalados_con_bytecode():
    """make install deja los .pyc de los paquetes (pip lo hace; uv, con --compile-bytecode).

    Sin ellos, y con PYTHONDONTWRITEBYTECODE, cada proceso que importa torch y peft los compila otra
    vez: las pruebas y la calificación tardan el doble.
    """
    import importlib.util

    for name in ("torch", "transformers", "peft", "nbgrader"):
        source = importlib.util.find_spec(name).origin  # sin importarlo: importar torch y peft cuesta segundos
        assert Path(importlib.util.cache_from_source(source)).exists(), (
            f"{name} no tiene bytecode compilado ({source}): reinstala con `rm -f .venv/.instalado && make install`"
        )
