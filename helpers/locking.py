"""Cerrojo de archivo entre procesos: dos procesos no hacen a la vez lo mismo (una caché, un libro de notas).

Usa ``filelock``, que funciona igual en Linux, macOS y Windows (no depende de ``fcntl``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from filelock import FileLock


@contextlib.contextmanager
def file_lock(path: Path):
    """Bloquea ``path`` (lo crea si no existe) mientras dura el bloque ``with``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path)):
        yield
