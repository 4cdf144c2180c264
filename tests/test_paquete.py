"""El paquete que instala Colab (la rueda de ``curso-peft``) lleva solo la caja de herramientas del
alumnado; la instalación editable de ``make install`` sigue viéndolo todo."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import helpers

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "helpers"
ROOMS_NOT_SHIPPED = ("classroom", "maintainers")  # el calificador y las herramientas de mantenimiento


def _toolbox_files() -> set[str]:
    """Lo que debe llevar la rueda, leído de la carpeta: todo helpers/ menos las dos habitaciones."""
    files = set()
    for path in PACKAGE.rglob("*"):
        rel = path.relative_to(ROOT)
        if (
            path.is_file()
            and "__pycache__" not in rel.parts
            and rel.parts[1] not in ROOMS_NOT_SHIPPED
            and (path.suffix == ".py" or path.match("data/*.jsonl") or path.match("data/*.json"))
        ):
            files.add(rel.as_posix())
    return files


def test_la_rueda_lleva_solo_la_caja_de_herramientas(tmp_path):
    # Una copia con lo que decide la rueda (así la construcción no deja build/ ni *.egg-info en el repositorio).
    source = tmp_path / "fuente"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "ruedas"),
            f"./{source.name}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (tmp_path / "ruedas").glob("curso_peft-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n for n in names if not n.startswith("curso_peft-")}
    print(f"\n{wheel.name} lleva {len(shipped)} archivos:\n  " + "\n  ".join(sorted(shipped)))
    assert not [n for n in shipped if n.split("/")[1] in ROOMS_NOT_SHIPPED], (
        "la rueda lleva el calificador o el mantenimiento"
    )
    assert shipped == _toolbox_files()
    # Ni las soluciones ni lo que decide una nota (examen.py del examinador) van en la rueda.
    assert not [n for n in names if "examen" in n.rsplit("/", 1)[-1] or n.startswith("solutions/")], names
    # Lo que el alumnado ejecuta en Colab va dentro: el diagnóstico del README y los datos.
    assert {
        "helpers/doctor.py",
        "helpers/validar.py",
        "helpers/data/resenas.jsonl",
        "helpers/data/geografia_instrucciones.jsonl",
        "helpers/data/cuadernos_publicados.json",  # helpers.validar en Colab
        "helpers/data/referencia.json",  # helpers.reference en Colab
    } <= shipped


def test_la_instalacion_editable_lo_ve_todo(tmp_path):
    """``make install`` (``pip install -e``) apunta a la carpeta helpers/ entera: el calificador y las
    herramientas de mantenimiento se importan desde el repositorio, también fuera de él."""
    code = (
        "from importlib.util import find_spec; "
        "print(find_spec('helpers.classroom.grading').origin); print(find_spec('helpers.maintainers.release').origin)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert [Path(line).resolve() for line in out.stdout.split()] == [
        PACKAGE / "classroom" / "grading.py",
        PACKAGE / "maintainers" / "release.py",
    ]
    assert Path(helpers.__file__).resolve().parent == PACKAGE
