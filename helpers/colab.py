"""Lo que hace la celda de preparación en Colab después de instalar el curso.

Colab arranca con paquetes ya importados (IPython, numpy, matplotlib, psutil...). Si ``pip``
instala otra versión de uno de ellos, el núcleo sigue usando la vieja hasta que se reinicia la
sesión: el cuaderno mezclaría versiones. :func:`restart_notice` compara lo instalado antes y
después de ``pip`` y, **solo si cambió un paquete que ya estaba importado**, lo dice en español y
cómo reiniciar. Solo usa la biblioteca estándar (la celda lo importa antes que torch).
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

__all__ = ["changed_imported", "installed_versions", "restart_notice"]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions() -> dict[str, str]:
    """``{distribución: versión}`` de lo instalado ahora (nombres normalizados, PEP 503)."""
    return {_normalize(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def changed_imported(
    before: dict[str, str],
    after: dict[str, str] | None = None,
    modules=None,
    top_levels: dict[str, list[str]] | None = None,
) -> list[tuple[str, str, str]]:
    """Distribuciones que cambiaron de versión y que la sesión ya había importado.

    Devuelve ``[(distribución, versión antes, versión ahora), ...]`` ordenadas por nombre. ``after``,
    ``modules`` (por defecto ``sys.modules``) y ``top_levels`` (módulo de primer nivel →
    distribuciones, por defecto ``importlib.metadata.packages_distributions()``) se pueden dar
    para probarla.
    """
    before = {_normalize(k): v for k, v in before.items()}
    after = installed_versions() if after is None else {_normalize(k): v for k, v in after.items()}
    modules = sys.modules if modules is None else modules
    top_levels = metadata.packages_distributions() if top_levels is None else top_levels
    imported = {_normalize(dist) for name in list(modules) for dist in top_levels.get(name.partition(".")[0], [])}
    return sorted(
        (dist, before[dist], after[dist])
        for dist in imported
        if dist in before and dist in after and before[dist] != after[dist]
    )


def restart_notice(before: dict[str, str], **kwargs) -> bool:
    """Si la instalación cambió paquetes ya importados, lo dice y devuelve True (hay que reiniciar)."""
    changed = changed_imported(before, **kwargs)
    if not changed:
        return False
    listed = ", ".join(f"{dist} {old} → {new}" for dist, old, new in changed)
    print(
        "\n⚠️  REINICIA LA SESIÓN antes de seguir.\n"
        f"La instalación cambió paquetes que esta sesión ya tenía cargados ({listed}), y hasta que la "
        "reinicies seguirá usando las versiones viejas.\n"
        "Elige «Entorno de ejecución → Reiniciar sesión» y vuelve a ejecutar esta celda: la segunda "
        "vez no instala nada nuevo y no volverá a pedírtelo."
    )
    return True
