"""Diagnóstico del entorno del curso: ``python -m helpers.doctor``.

Imprime, en español, las versiones instaladas frente a las fijadas en ``pyproject.toml``, dónde
se ejecuta (Colab, local o calificador), la GPU y si tiene bf16 de verdad, el perfil del modelo y
si el modelo embebido y su caché están presentes. Termina con código 1 (y un mensaje claro) si
alguna versión no coincide con la fijada o falta un paquete imprescindible.

Si abres una incidencia, pega su salida completa.

Está en la caja de herramientas (y en el paquete que instala Colab) porque lo ejecuta el alumnado:
es el primer paso del README ante cualquier problema. Lee las versiones fijadas de ``pyproject.toml``
(en una copia del repositorio) o de los metadatos del paquete instalado (en Colab), sin torch: lo
que necesita torch va al final y, si torch no se importa, lo dice.
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

from .cli import ArgumentParser

OK, BAD, INFO = "✔", "✘", "·"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"  # solo en una copia del repositorio


@dataclass(frozen=True)
class PinStatus:
    """Estado de un paquete fijado."""

    name: str
    pinned: str  # versión fijada
    installed: str | None  # versión instalada (None si no está)
    group: str  # "curso", "local", "pruebas" o "sin dependencias"
    required: bool  # si falta, ¿es un error?

    @property
    def matches(self) -> bool:
        if self.installed is None:
            return False
        try:
            return Requirement(f"{self.name}=={self.pinned}").specifier.contains(
                Version(self.installed), prereleases=True
            )
        except InvalidVersion:
            return False

    @property
    def problem(self) -> bool:
        """Versión distinta de la fijada, o paquete imprescindible sin instalar."""
        return (self.installed is not None and not self.matches) or (self.installed is None and self.required)


def installed_version(name: str) -> str | None:
    """Versión instalada de un paquete, o None si no está instalado."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _split(requirement: str) -> tuple[str, str]:
    req = Requirement(requirement)
    pinned = next((s.version for s in req.specifier if s.operator == "=="), str(req.specifier))
    return req.name, pinned


def pin_groups(place: str) -> list[tuple[str, list[str], bool]]:
    """Grupos de versiones fijadas que se comprueban en cada sitio: (nombre, requisitos, imprescindible).

    En Colab solo se instalan las dependencias del curso (Colab trae su propio torch); en local y
    en el calificador, también las del extra ``local`` y el modelo embebido. Las de pruebas
    (extra ``dev``) solo se avisan si faltan.
    """
    try:
        data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    except FileNotFoundError:  # instalado como paquete (Colab): sin pyproject.toml al lado
        data = _pins_from_metadata()
    groups = [("curso", list(data["project"]["dependencies"]), True)]
    if place != "colab":
        extras = data["project"]["optional-dependencies"]
        groups.append(("local", extras.get("local", []), True))
        groups.append(("sin dependencias", list(data["tool"]["curso-peft"]["no-deps"]), True))
        groups.append(("pruebas", extras.get("dev", []), False))
    return groups


def _pins_from_metadata() -> dict:
    """Las mismas versiones fijadas, leídas de los metadatos del paquete instalado ``curso-peft``."""
    core, extras = [], {}
    for line in metadata.requires("curso-peft") or []:
        req = Requirement(line)
        extra = next((e for e in ("local", "colab", "dev") if req.marker and req.marker.evaluate({"extra": e})), None)
        text = f"{req.name}{req.specifier}"
        if req.marker is None:
            core.append(text)
        elif extra:
            extras.setdefault(extra, []).append(text)
    return {"project": {"dependencies": core, "optional-dependencies": extras}, "tool": {"curso-peft": {"no-deps": []}}}


def check_pins(place: str, version_of=None) -> list[PinStatus]:
    """Compara cada versión fijada con la instalada (``version_of(nombre)``; por defecto, la real)."""
    version_of = version_of or installed_version
    statuses = []
    for group, requirements, required in pin_groups(place):
        for requirement in requirements:
            name, pinned = _split(requirement)
            statuses.append(PinStatus(name, pinned, version_of(name), group, required))
    return statuses


def _model_lines(profile) -> list[tuple[str, str]]:
    """Perfil del modelo y presencia del modelo embebido y de las cachés (sin crear nada)."""
    from . import models

    lines = [("perfil del modelo", f"{profile.label}, elegido por {_profile_source()}")]
    try:
        gguf = models.embedded_gguf_path()
        lines.append(("modelo embebido (GGUF)", f"sí, {gguf}"))
    except FileNotFoundError as exc:
        needed = " (hace falta para el perfil embebido)" if profile.name == "embedded" else ""
        lines.append(("modelo embebido (GGUF)", f"no{needed}: {exc}"))
    root = os.environ.get(models.CACHE_ENV_VAR) or os.path.join(os.path.expanduser("~"), ".cache", "curso-peft")
    for label, folder, note in (
        ("caché del modelo embebido", "smollm2-135m-instruct-fp32", "se crea sola la primera vez (unos 30 s)"),
        ("caché del modelo diminuto", "tiny-llama-seed0", "se crea sola la primera vez (unos segundos)"),
    ):
        path = os.path.join(root, folder)
        present = os.path.exists(os.path.join(path, "config.json"))
        lines.append((label, f"sí, {path}" if present else f"todavía no ({note}): {path}"))
    if profile.name == "hub":
        lines.append(("modelo del Hub", f"{profile.hub_id} (se descarga del Hub; necesita internet)"))
    return lines


def _profile_source() -> str:
    from .environment import in_autograder, in_colab
    from .models import ENV_VAR

    if os.environ.get(ENV_VAR, "").strip():
        return f"la variable {ENV_VAR}"
    if in_autograder():
        return "el calificador"
    if in_colab():
        return "Colab"
    return "ser el valor por defecto en local"


def _hardware_lines() -> list[tuple[str, str]]:
    """Las mismas líneas que el banner de los cuadernos (``helpers.show_environment()``)."""
    from .precision import hardware_lines

    return hardware_lines()


def torch_problem() -> str | None:
    """None si torch se importa; si no, el error en una línea (torch roto, a medias o sin instalar)."""
    try:
        import torch  # noqa: F401
    except Exception as exc:  # ImportError, OSError de una biblioteca que falta, un AttributeError a medias...
        return f"{type(exc).__name__}: {exc}"
    return None


def _print_block(title: str, lines: list[tuple[str, str]]) -> None:
    print(title)
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"  {key:<{width}} : {value}")
    print()


def _print_versions(statuses: list[PinStatus], place: str) -> None:
    print(
        f"Versiones (instalada / fijada en pyproject.toml{'; en Colab solo las del curso' if place == 'colab' else ''})"
    )
    width = max(len(s.name) for s in statuses)
    for s in statuses:
        if s.installed is None:
            mark = BAD if s.required else INFO
            note = "no instalado" + ("" if s.required else " (solo hace falta para las pruebas)")
            print(f"  {mark} {s.name:<{width}}  {note:<20} fijada {s.pinned}")
        else:
            mark = OK if s.matches else BAD
            sign = "=" if s.matches else "≠"
            print(f"  {mark} {s.name:<{width}}  {s.installed:<12} {sign} {s.pinned:<12} [{s.group}]")
    print()


def _fix_hint(place: str) -> None:
    if place == "colab":
        print("  En Colab: vuelve a ejecutar la celda de preparación y después reinicia la sesión")
        print("  (Entorno de ejecución → Reiniciar sesión) para que se carguen las versiones nuevas.")
    else:
        print("  En tu máquina: ejecuta `rm -f .venv/.instalado && make install` y vuelve a probar.")


def main(argv: list[str] | None = None) -> int:
    """Imprime el diagnóstico; 0 si todo está en orden, 1 si hay un problema (dice cómo arreglarlo)."""
    import platform

    from .environment import where

    ArgumentParser(prog="python -m helpers.doctor", description=__doc__.splitlines()[0]).parse_args(argv)
    place = where()
    print("Diagnóstico del curso PEFT (python -m helpers.doctor)")
    print()
    # 1. Lo que no necesita torch: dónde se ejecuta y las versiones instaladas (metadatos).
    _print_block(
        "Dónde se ejecuta",
        [
            ("entorno", place),
            ("python", f"{platform.python_version()} ({sys.executable})"),
            ("sistema", f"{platform.system()} {platform.machine()}"),
        ],
    )
    statuses = check_pins(place)
    _print_versions(statuses, place)

    # 2. Lo que necesita torch: el hardware, la precisión y el modelo. Si torch no se importa, se dice.
    broken_torch = torch_problem()
    if broken_torch:
        print(f"Hardware: {BAD} torch no se puede importar ({broken_torch})\n")
        print(f"Modelo: {BAD} sin torch no se puede cargar ningún modelo\n")
    else:
        from .models import resolve_profile

        try:
            _print_block("Hardware", _hardware_lines())
        except Exception as exc:  # una GPU que no responde: el diagnóstico sigue
            print(f"Hardware: no se pudo consultar ({type(exc).__name__}: {exc})\n")
        try:
            _print_block("Modelo", _model_lines(resolve_profile()))
        except ValueError as exc:  # perfil mal escrito en CURSO_PEFT_PROFILE
            print(f"Modelo: {BAD} {exc}\n")
            return 1

    problems = [s for s in statuses if s.problem]
    if problems:
        detail = "; ".join(
            f"{s.name} (instalada {s.installed}, fijada {s.pinned})"
            if s.installed
            else f"{s.name} (no instalado, fijada {s.pinned})"
            for s in problems
        )
        print(f"{BAD} Problema: {len(problems)} paquete(s) no coinciden con las versiones fijadas: {detail}.")
        print("  El curso solo está probado con las versiones fijadas de pyproject.toml.")
        _fix_hint(place)
        return 1
    if broken_torch:
        print(f"{BAD} Problema: torch está instalado pero no se puede importar ({broken_torch}).")
        print("  Suele ser una instalación a medias o un torch de otra versión de Python o de CUDA.")
        _fix_hint(place)
        return 1
    print(f"{OK} Todo en orden: las versiones instaladas son las fijadas.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
