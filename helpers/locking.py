"""Cerrojo de archivo entre procesos: dos procesos no hacen a la vez lo mismo (una caché, un libro de notas)."""
from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path):
    """Bloquea ``path`` (lo crea si no existe) mientras dura el bloque ``with``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
