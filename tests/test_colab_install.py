"""La instalación de la celda de preparación de Colab, de verdad, en un entorno virtual nuevo.

Se instala el curso como lo hace la celda (``pip install "curso-peft @ git+<repositorio>@<ref>"``,
con la etiqueta o el commit publicado) desde este mismo repositorio por una URL ``file://`` que
hace de GitHub, sin los extras locales (ni nbgrader ni JupyterLab). torch ya viene instalado, como
en Colab: el entorno nuevo ve (con un ``.pth``) el torch 2.13.0 de este ``.venv`` y nada más, así
la prueba no gasta un minuto en descomprimir otra vez su rueda de cientos de MB. Después, con un
módulo ``google.colab`` de mentira importado al arrancar (como en Colab): ``import helpers``
funciona, el perfil por defecto es ``hub`` y el diagnóstico que el README de esa versión manda
ejecutar en Colab (``!python -m helpers.doctor``) termina bien, sin descargar nada
(``HF_HUB_OFFLINE=1``).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.maintainers.release import ROOT, install_requirement, release_ref


def preinstall_torch(venv_python, where):
    """Deja a la vista del entorno nuevo solo el torch instalado aquí (y no sus vecinos de site-packages).

    Como en Colab, torch ya está; sus dependencias (sympy, networkx...) las resuelve pip.
    """
    import importlib.metadata

    dist = importlib.metadata.distribution("torch")
    tops = {str(f).split("/")[0] for f in dist.files} - {".."}
    where.mkdir()
    for top in tops:
        (where / top).symlink_to(dist.locate_file(top))
    purelib = _run([venv_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(purelib) / "torch_como_en_colab.pth").write_text(f"{where}\n", encoding="utf-8")
    return dist.version


def _run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} falló:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_instalacion_como_en_colab(tmp_path):
    ref = release_ref()
    found = subprocess.run(["git", "cat-file", "-e", f"{ref}^{{commit}}"], cwd=ROOT, capture_output=True)
    assert found.returncode == 0, f"La referencia publicada {ref} no está en el repositorio: ejecuta `make release`."
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    requirement = install_requirement(url=f"file://{ROOT}")
    assert requirement.endswith(f"@{ref}") and requirement.startswith("curso-peft @ git+file://")
    # El pip de Colab es reciente; el que trae venv (23.x) rechaza las URL git+file:///.
    _run([python, "-m", "pip", "install", "-q", "--no-compile", "--upgrade", "pip"], cwd=tmp_path)
    torch_version = preinstall_torch(python, tmp_path / "torch-de-colab")
    # --no-compile: sin precompilar miles de .py de transformers y compañía (lo caro de instalar).
    _run([python, "-m", "pip", "install", "-q", "--no-compile", requirement], cwd=tmp_path)
    listed = _run([python, "-m", "pip", "show", "torch"], cwd=tmp_path).stdout
    assert f"Version: {torch_version}" in listed and str(tmp_path / "torch-de-colab") in listed, (
        "pip no debía instalar otro torch: Colab ya lo trae"
    )

    stub = tmp_path / "stub"
    (stub / "google" / "colab").mkdir(parents=True)  # google/ sin __init__: no tapa otros google.*
    (stub / "google" / "colab" / "__init__.py").write_text('"""google.colab de mentira para la prueba."""\n')
    (stub / "sitecustomize.py").write_text("import google.colab  # Colab lo importa al arrancar\n")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CURSO_PEFT_", "NBGRADER", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(PYTHONPATH=str(stub), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    probe = (
        "import sys, helpers; from helpers.models import resolve_profile; "
        "print(helpers.__file__); print(helpers.in_colab(), resolve_profile().name)"
    )
    out = _run([python, "-c", probe], cwd=tmp_path, env=env).stdout.split("\n")
    assert out[0].startswith(str(venv)), f"helpers no viene del entorno nuevo: {out[0]}"
    assert out[1] == "True hub"
    # La orden del diagnóstico para Colab, tal como la dice el README de la versión publicada.
    readme = _run(["git", "show", f"{ref}:README.md"], cwd=ROOT).stdout
    command = re.search(r"^!python -m ([\w.]+)", readme, re.M)
    assert command, "el README publicado no dice cómo ejecutar el diagnóstico en Colab"
    doctor = _run([python, "-m", command.group(1)], cwd=tmp_path, env=env).stdout
    assert "entorno" in doctor and "colab" in doctor and "Todo en orden" in doctor
    assert "perfil del modelo" in doctor and "Hub" in doctor


def test_la_celda_de_preparacion_instala_la_referencia_publicada(tmp_path):
    from helpers.maintainers.pins import PYPROJECT
    from helpers.maintainers.release import setup_cell_source, write_release_ref

    ref = release_ref()
    assert f'"{install_requirement()}"' in setup_cell_source()
    assert install_requirement().endswith(f"@{ref}"), "Colab debe instalar la versión publicada, no la rama"
    copy = tmp_path / "pyproject.toml"
    copy.write_text(PYPROJECT.read_text(encoding="utf-8"), encoding="utf-8")
    assert write_release_ref("v9.9", copy) and not write_release_ref("v9.9", copy)
    import tomllib

    assert tomllib.loads(copy.read_text(encoding="utf-8"))["tool"]["curso-peft"]["ref"] == "v9.9"
    with pytest.raises(ValueError, match="no válida"):
        write_release_ref("v1; rm -rf /", copy)
