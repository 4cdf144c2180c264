"""Lee las versiones fijadas de pyproject.toml (la fuente única) para el Makefile y conda.

Uso: ``python -m helpers.maintainers.pins no-deps`` imprime los paquetes que se instalan con ``--no-deps``;
``installer`` imprime el instalador rápido fijado (uv) y ``uv-args``, las opciones de ``uv pip install``
que reproducen la configuración de pip de esta máquina (``pip config list``: índices, carpetas de
ruedas, restricciones).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

from ..cli import ArgumentParser

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def read_pyproject(path: Path = PYPROJECT) -> dict:
    """Devuelve el contenido de pyproject.toml como diccionario."""
    if not path.exists():
        raise FileNotFoundError(f"No encuentro {path}. Ejecuta esto desde una copia del repositorio del curso.")
    return tomllib.loads(path.read_text(encoding="utf-8"))


def no_deps_requirements(data: dict | None = None) -> list[str]:
    """Paquetes fijados que se instalan sin sus dependencias declaradas."""
    data = data or read_pyproject()
    return list(data["tool"]["curso-peft"]["no-deps"])


def removed_packages(data: dict | None = None) -> list[str]:
    """Paquetes que ``make install`` desinstala después de instalar (ver ``without`` en pyproject.toml)."""
    data = data or read_pyproject()
    return list(data["tool"]["curso-peft"].get("without", []))


def installer_requirement(data: dict | None = None) -> str:
    """El instalador rápido fijado (``uv==…``) con el que ``make install`` instala las versiones fijadas."""
    data = data or read_pyproject()
    return data["tool"]["curso-peft"]["installer"]


# Opciones de pip que cambian de dónde salen los paquetes → su equivalente en ``uv pip install``.
_PIP_TO_UV = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
}


def uv_arguments(pip_config: str) -> list[str]:
    """Traduce la salida de ``pip config list`` a opciones de ``uv pip install``.

    uv no lee la configuración de pip: sin esto no vería los índices ni las ruedas locales de la
    máquina (p. ej. la rueda de torch de ``find-links``). ``--index-strategy unsafe-best-match``
    hace lo que hace pip: elegir la mejor versión entre todos los índices, no solo el primero que
    tenga el paquete. Con un certificado propio (``cert``), uv usa el almacén del sistema.
    """
    values: dict[str, list[str]] = {}
    native_tls = False
    for line in pip_config.splitlines():
        key, sep, raw = line.partition("=")
        if not sep:
            continue
        name = key.strip().rsplit(".", 1)[-1]
        value = raw.strip().strip("'\"")
        if name == "cert" and value:
            native_tls = True
        elif name in _PIP_TO_UV:
            for item in value.split():
                if item not in values.setdefault(name, []):
                    values[name].append(item)
    if "index-url" in values:
        values["index-url"] = values["index-url"][-1:]  # un solo índice principal: el último que manda
    args = ["--index-strategy", "unsafe-best-match"] + (["--native-tls"] if native_tls else [])
    for name, option in _PIP_TO_UV.items():
        for item in values.get(name, []):
            args += [option, item]
    return args


def pinned_requirements(data: dict | None = None, extras: tuple[str, ...] = ()) -> list[str]:
    """Dependencias fijadas del curso y, si se piden, las de sus extras."""
    data = data or read_pyproject()
    reqs = list(data["project"]["dependencies"])
    for extra in extras:
        reqs += data["project"]["optional-dependencies"][extra]
    return reqs


def repository_url(data: dict | None = None) -> str:
    """URL del repositorio del curso (la de las insignias y la instalación en Colab)."""
    data = data or read_pyproject()
    return data["project"]["urls"]["Repository"]


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m helpers.maintainers.pins",
        description="Imprime las versiones fijadas de pyproject.toml (las usa el Makefile).",
    )
    parser.add_argument(
        "que",
        metavar="QUÉ",
        choices=["no-deps", "installer", "uv-args", "without", "all"],
        help="no-deps (los paquetes sin dependencias), installer (el instalador), uv-args (las "
        "opciones de uv sacadas de la configuración de pip), without (lo que se desinstala después) "
        "o all (todas las versiones fijadas)",
    )
    what = parser.parse_args(argv).que
    if what == "no-deps":
        print(" ".join(no_deps_requirements()))
    elif what == "without":
        print(" ".join(removed_packages()))
    elif what == "installer":
        print(installer_requirement())
    elif what == "uv-args":
        config = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
        print(shlex.join(uv_arguments(config)))
    else:
        print("\n".join(pinned_requirements(extras=("local", "dev")) + no_deps_requirements()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
