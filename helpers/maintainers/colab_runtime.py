"""¿Se instala el curso en el Colab de hoy? La lista de paquetes de Colab y la resolución contra ella.

Colab publica lo que trae su entorno de ejecución con GPU en el repositorio
`googlecolab/backend-info <https://github.com/googlecolab/backend-info>`_ (``pip-freeze.gpu.txt`` y
``os-info-gpu.txt``). Una copia, con su origen, su commit y su fecha, vive en
``helpers/maintainers/data/colab_gpu.json``.

- ``python -m helpers.maintainers.colab_runtime`` resuelve las dependencias que instala la celda de
  preparación (``[project] dependencies``) para el Python de Colab y con su torch fijo (``uv pip
  compile``, con los índices de esta máquina) y dice qué paquetes de Colab cambiaría; termina con
  código 1 si no se pueden instalar.
- ``python -m helpers.maintainers.colab_runtime actualizar [--desde CARPETA]`` vuelve a escribir la
  copia desde GitHub (o desde una copia local del repositorio de Colab).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from .pins import pinned_requirements, uv_arguments

DATA = Path(__file__).resolve().parent / "data" / "colab_gpu.json"
SOURCE = "https://github.com/googlecolab/backend-info"
RAW = "https://raw.githubusercontent.com/googlecolab/backend-info/{ref}/{file}"
COMMITS_API = "https://api.github.com/repos/googlecolab/backend-info/commits/main"
FREEZE_FILE = "pip-freeze.gpu.txt"
OS_FILE = "os-info-gpu.txt"
# Colab corre en Ubuntu 22.04 (glibc 2.35) sobre x86_64.
PLATFORM = "x86_64-manylinux_2_35"
# Lo que la instalación no debe tocar nunca: el torch con CUDA que trae Colab.
HELD = ("torch",)
# La pila de CUDA de ese torch (Colab la trae con su torch +cu128; la rueda de PyPI declara otra):
# ni se prefiere ni se cuenta como cambio, porque pip no la toca si torch ya está instalado.
TORCH_STACK = ("nvidia-", "cuda-", "triton")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def load_runtime(path: Path = DATA) -> dict:
    """La copia guardada del entorno de Colab (origen, commit, fecha, Python y ``pip freeze``)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def runtime_pins(runtime: dict) -> dict[str, str]:
    """``{paquete normalizado: versión}`` de las líneas ``nombre==versión`` del ``pip freeze`` de Colab."""
    pins = {}
    for line in runtime["paquetes"]:
        match = _PIN.match(line.strip())
        if match:
            pins[_normalize(match.group(1))] = match.group(2)
    return pins


def python_version(runtime: dict) -> str:
    """``3.13`` a partir de ``3.13.15``."""
    return ".".join(runtime["python"].split(".")[:2])


def held_constraints(runtime: dict) -> list[str]:
    """Restricciones con las versiones de Colab que no se tocan (torch, sin su sufijo local ``+cu128``)."""
    pins = runtime_pins(runtime)
    return [f"{name}=={pins[name].split('+')[0]}" for name in HELD if name in pins]


@dataclass
class Resolution:
    ok: bool
    output: str
    python: str
    resolved: dict[str, str] = field(default_factory=dict)


def _uv() -> str:
    uv = Path(sys.executable).parent / "uv"
    if not uv.exists():
        raise FileNotFoundError(f"No encuentro uv en {uv.parent}: ejecuta `make install` (instala el uv fijado).")
    return str(uv)


def _machine_uv_args() -> list[str]:
    config = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    return uv_arguments(config)


def compile_command(
    requirements: list[str], constraints: list[str], python: str, folder: Path, preferred: dict[str, str] | None = None
) -> list[str]:
    """La orden ``uv pip compile`` que resuelve ``requirements`` para ``python`` en la plataforma de Colab.

    ``preferred`` (lo que Colab ya trae) va como resolución previa en el archivo de salida: uv se
    queda con esas versiones mientras valgan, como ``pip install`` (que no actualiza lo que ya
    cumple); así la lista de cambios es la que verá el alumnado.
    """
    folder = Path(folder)
    (folder / "requisitos.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    (folder / "restricciones.txt").write_text("\n".join(constraints) + "\n", encoding="utf-8")
    (folder / "resuelto.txt").write_text(
        "".join(f"{name}=={version.split('+')[0]}\n" for name, version in (preferred or {}).items()), encoding="utf-8"
    )
    return [
        _uv(),
        "pip",
        "compile",
        "--quiet",
        "--no-header",
        "--no-annotate",
        "--python-version",
        python,
        "--python-platform",
        PLATFORM,
        *_machine_uv_args(),
        "--constraint",
        str(folder / "restricciones.txt"),
        "--output-file",
        str(folder / "resuelto.txt"),
        str(folder / "requisitos.txt"),
    ]


def start(
    requirements: list[str], constraints: list[str], python: str, folder: Path, preferred: dict[str, str] | None = None
) -> subprocess.Popen:
    """Lanza la resolución sin esperarla (varias a la vez esperan a la red a la vez)."""
    process = subprocess.Popen(
        compile_command(requirements, constraints, python, folder, preferred),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.output_file = Path(folder) / "resuelto.txt"
    return process


def finish(process: subprocess.Popen, python: str, timeout: float = 600) -> Resolution:
    """Espera la resolución lanzada con :func:`start` y lee lo que resolvió."""
    out, err = process.communicate(timeout=timeout)
    resolved = {}
    text = process.output_file.read_text(encoding="utf-8") if process.returncode == 0 else ""
    for line in text.splitlines():
        match = _PIN.match(line.strip())
        if match:
            resolved[_normalize(match.group(1))] = match.group(2)
    return Resolution(process.returncode == 0, (out + err).strip(), python, resolved)


def resolve(
    requirements: list[str] | None = None,
    runtime: dict | None = None,
    extra_constraints: list[str] = (),
    python: str | None = None,
) -> Resolution:
    """Resuelve ``requirements`` (por defecto, lo que instala la celda de preparación) para Colab."""
    runtime = runtime or load_runtime()
    python = python or python_version(runtime)
    with tempfile.TemporaryDirectory(prefix="colab-") as folder:
        process = start(
            requirements or pinned_requirements(),
            held_constraints(runtime) + list(extra_constraints),
            python,
            Path(folder),
            preferred=preferred(runtime),
        )
        return finish(process, python)


def preferred(runtime: dict) -> dict[str, str]:
    """Las versiones de Colab que la resolución conserva mientras valgan (sin la pila de CUDA de torch)."""
    return {name: version for name, version in runtime_pins(runtime).items() if not name.startswith(TORCH_STACK)}


def changes(resolution: Resolution, runtime: dict) -> list[tuple[str, str, str]]:
    """Paquetes que Colab ya trae y que la instalación cambiaría: ``(paquete, en Colab, instalado)``."""
    pins = preferred(runtime)
    return sorted(
        (name, pins[name], version)
        for name, version in resolution.resolved.items()
        if name in pins and pins[name].split("+")[0] != version
    )


# --- actualizar la copia -----------------------------------------------------------------------
def _read_remote(file: str, ref: str) -> str:
    with urllib.request.urlopen(RAW.format(ref=ref, file=file), timeout=60) as response:
        return response.read().decode("utf-8")


def snapshot(source: Path | None = None) -> dict:
    """Lee el entorno de Colab de GitHub o de una copia local (``git clone``) de ``backend-info``."""
    if source is not None:

        def git(*args):
            return subprocess.run(["git", *args], cwd=source, capture_output=True, text=True, check=True).stdout

        commit, when = git("log", "-1", "--format=%H %cI", "HEAD").split()
        freeze, os_info = git("show", f"HEAD:{FREEZE_FILE}"), git("show", f"HEAD:{OS_FILE}")
    else:
        with urllib.request.urlopen(COMMITS_API, timeout=60) as response:
            info = json.load(response)
        commit, when = info["sha"], info["commit"]["committer"]["date"]
        freeze, os_info = _read_remote(FREEZE_FILE, commit), _read_remote(OS_FILE, commit)
    python = re.search(r"^Python (\d+\.\d+\.\d+)", os_info, re.M)
    if python is None:
        raise ValueError(f"{OS_FILE} no dice la versión de Python:\n{os_info[:500]}")
    return {
        "fuente": SOURCE,
        "archivos": [FREEZE_FILE, OS_FILE],
        "commit": commit,
        "fecha": when,
        "copiado": date.today().isoformat(),
        "python": python.group(1),
        "paquetes": [line for line in freeze.splitlines() if line.strip() and not line.startswith("#")],
    }


def write_snapshot(data: dict, path: Path = DATA) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Comprueba que el curso se instala en el Colab de hoy.")
    parser.add_argument("orden", nargs="?", default="comprobar", choices=["comprobar", "actualizar"])
    parser.add_argument("--desde", type=Path, help="copia local de googlecolab/backend-info (por defecto, GitHub)")
    args = parser.parse_args(argv)
    if args.orden == "actualizar":
        data = snapshot(args.desde)
        write_snapshot(data, DATA)
        print(
            f"{DATA}: Colab con Python {data['python']}, {len(data['paquetes'])} paquetes "
            f"(commit {data['commit'][:12]} del {data['fecha']})."
        )
        return 0
    runtime = load_runtime()
    result = resolve(runtime=runtime)
    print(
        f"Colab de {runtime['fecha'][:10]} ({runtime['fuente']}, commit {runtime['commit'][:12]}): "
        f"Python {runtime['python']}, {', '.join(held_constraints(runtime))}"
    )
    if not result.ok:
        print(f"NO se puede instalar el curso en ese Colab:\n{result.output}", file=sys.stderr)
        return 1
    print(f"Se instala: {len(result.resolved)} paquetes resueltos.")
    for name, old, new in changes(result, runtime):
        print(f"  cambia {name}: {old} → {new}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
