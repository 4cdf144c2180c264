"""Lee las versiones fijadas de pyproject.toml (la fuente única) para el Makefile y conda.

Uso: ``python -m helpers.maintainers.pins no-deps`` imprime los paquetes que se instalan con ``--no-deps``.
"""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def read_pyproject(path: Path = PYPROJECT) -> dict:
    """Devuelve el contenido de pyproject.toml como diccionario."""
    if not path.exists():
        raise FileNotFoundError(
            f"No encuentro {path}. Ejecuta esto desde una copia del repositorio del curso."
        )
    return tomllib.loads(path.read_text(encoding="utf-8"))


def no_deps_requirements(data: dict | None = None) -> list[str]:
    """Paquetes fijados que se instalan sin sus dependencias declaradas."""
    data = data or read_pyproject()
    return list(data["tool"]["curso-peft"]["no-deps"])


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


def main(argv: list[str]) -> int:
    if argv[:1] == ["no-deps"]:
        print(" ".join(no_deps_requirements()))
        return 0
    if argv[:1] == ["all"]:
        print("\n".join(pinned_requirements(extras=("local", "dev")) + no_deps_requirements()))
        return 0
    print("Uso: python -m helpers.maintainers.pins [no-deps|all]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
