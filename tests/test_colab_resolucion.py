"""¿Se instala el curso en el Colab de hoy? Resolución real (``uv pip compile``) de lo que instala la
celda de preparación para el Python de Colab y con su torch fijo, con la lista de paquetes de Colab
guardada en ``helpers/maintainers/data/colab_gpu.json``.

Las cuatro resoluciones se lanzan a la vez (casi todo su tiempo es esperar a la red):

- el curso en Colab se resuelve y deja el torch de Colab;
- un pin que no cabe en Colab (el torch 2.13 de la máquina local) hace fallar la resolución;
- ``requires-python`` dice la verdad: se resuelve con su versión mínima y no con la anterior.
"""

import re
import tempfile
from pathlib import Path

import pytest

from helpers.maintainers import colab_runtime as cr
from helpers.maintainers.pins import pinned_requirements, read_pyproject

RUNTIME = cr.load_runtime()


def _floor() -> tuple[int, int]:
    spec = read_pyproject()["project"]["requires-python"]
    match = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec.strip())
    assert match, f"requires-python debe ser «>=X.Y»: {spec}"
    return int(match.group(1)), int(match.group(2))


@pytest.fixture(scope="module")
def resolutions():
    major, minor = _floor()
    course = pinned_requirements()
    local_torch = next(r for r in pinned_requirements(extras=("local",)) if r.startswith("torch=="))
    cases = {
        "colab": (course, cr.held_constraints(RUNTIME), cr.python_version(RUNTIME), cr.preferred(RUNTIME)),
        "imposible": (course + [local_torch], cr.held_constraints(RUNTIME), cr.python_version(RUNTIME), None),
        "minimo": (course, [], f"{major}.{minor}", None),
        "anterior": (course, [], f"{major}.{minor - 1}", None),
    }
    with tempfile.TemporaryDirectory() as tmp:
        started = {}
        for name, (reqs, constraints, python, preferred) in cases.items():
            folder = Path(tmp) / name
            folder.mkdir()
            started[name] = (cr.start(reqs, constraints, python, folder, preferred), python)
        yield {name: cr.finish(process, python) for name, (process, python) in started.items()}


def test_la_copia_de_colab_dice_de_donde_sale():
    assert RUNTIME["fuente"] == "https://github.com/googlecolab/backend-info"
    assert re.fullmatch(r"[0-9a-f]{40}", RUNTIME["commit"]) and RUNTIME["fecha"][:4].isdigit()
    assert re.fullmatch(r"3\.\d+\.\d+", RUNTIME["python"])
    assert "torch" in cr.runtime_pins(RUNTIME) and len(RUNTIME["paquetes"]) > 100


def test_el_curso_se_instala_en_el_colab_de_hoy(resolutions):
    result = resolutions["colab"]
    assert result.ok, f"El curso no se puede instalar en Colab (Python {result.python}):\n{result.output}"
    colab_torch = cr.runtime_pins(RUNTIME)["torch"].split("+")[0]
    assert result.resolved.get("torch") == colab_torch, "la instalación no debe cambiar el torch de Colab"
    for requirement in pinned_requirements():
        name, version = requirement.split("==")
        assert result.resolved.get(cr._normalize(name)) == version, f"{requirement} no se instalaría tal cual"


def test_un_pin_que_no_cabe_en_colab_hace_fallar_la_resolucion(resolutions):
    result = resolutions["imposible"]
    assert not result.ok, "pedir otro torch que el de Colab debía fallar"
    assert "torch" in result.output and "No solution found" in result.output


def test_requires_python_dice_la_verdad(resolutions):
    assert resolutions["minimo"].ok, resolutions["minimo"].output
    previous = resolutions["anterior"]
    assert not previous.ok, f"requires-python podría bajar a Python {previous.python}: ajústalo"
    assert "Python" in previous.output


def test_cambios_de_colab_cuenta_solo_lo_que_cambia():
    runtime = {"paquetes": ["numpy==2.1.3", "torch==2.11.0+cu128", "nvidia-nccl-cu12==2.0", "pandas==2.2.3"]}
    result = cr.Resolution(
        True,
        "",
        "3.13",
        {"numpy": "2.5.5", "torch": "2.11.0", "nvidia-nccl-cu12": "3.0", "pandas": "2.2.3", "peft": "0.21.2"},
    )
    assert cr.changes(result, runtime) == [("numpy", "2.1.3", "2.5.5")]
    assert cr.held_constraints(runtime) == ["torch==2.11.0"]


def test_actualizar_desde_una_copia_de_backend_info(tmp_path, monkeypatch):
    """La orden de mantenimiento lee el ``pip freeze`` y la versión de Python de una copia de
    googlecolab/backend-info y escribe la copia del curso con su commit y su fecha."""
    import subprocess

    repo = tmp_path / "backend-info"
    repo.mkdir()
    (repo / cr.FREEZE_FILE).write_text("# generado\nnumpy==2.1.3\ntorch==2.11.0+cu128\n", encoding="utf-8")
    (repo / cr.OS_FILE).write_text("# generado\nUbuntu 22.04.5 LTS\nPython 3.13.15\n", encoding="utf-8")
    git = ["git", "-c", "user.name=x", "-c", "user.email=x@x", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "colab"], check=True)
    out = tmp_path / "colab.json"
    monkeypatch.setattr(cr, "DATA", out)
    assert cr.main(["actualizar", "--desde", str(repo)]) == 0
    data = cr.load_runtime(out)
    assert data["python"] == "3.13.15" and data["paquetes"] == ["numpy==2.1.3", "torch==2.11.0+cu128"]
    assert re.fullmatch(r"[0-9a-f]{40}", data["commit"]) and cr.held_constraints(data) == ["torch==2.11.0"]
    (repo / cr.OS_FILE).write_text("sin versión\n", encoding="utf-8")
    subprocess.run([*git, "commit", "-qam", "rota"], check=True)
    with pytest.raises(ValueError, match="versión de Python"):
        cr.snapshot(repo)
