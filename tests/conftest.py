"""Configuración común de las pruebas."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Con pytest-xdist cada trabajador (y los núcleos de Jupyter que lance) usa un hilo: dos
# trabajadores con dos hilos cada uno en 2 núcleos se estorban y todo va varias veces más lento.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
sys.path.insert(0, str(ROOT))
# Nada de descargas durante las pruebas: todo viene del paquete o de la caché local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """``--dist loadgroup`` de verdad con pytest 9: pytest-xdist 3.8 marca el grupo cambiando
    ``item._nodeid``, que pytest 9 ya no lee (el identificador vive en ``item._id``), así que cada
    trabajador repetía las fixtures caras de un grupo (el lote de la clase, el de los ataques).
    Aquí se añade el sufijo ``@grupo`` que espera el planificador de xdist."""
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import coerce_node_id

    for item in items:
        names = sorted(
            {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
        )
        if names and "@" not in item.nodeid:
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(names)}")
