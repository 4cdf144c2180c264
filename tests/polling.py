"""Esperar a que algo ocurra preguntando con un plazo, en vez de dormir un tiempo fijo.

Un ``time.sleep(3)`` antes de comprobar que no quedan procesos falla en una máquina lenta (aún se
están cerrando) y hace esperar de más a una rápida; preguntar cada poco hasta un plazo no.
"""

import time


def wait_until_empty(probe, timeout: float = 60.0, interval: float = 0.2) -> list:
    """Llama a ``probe()`` hasta que devuelva una lista vacía o pase ``timeout``; devuelve la última."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(interval)
