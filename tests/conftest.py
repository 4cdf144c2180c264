"""Configuración común de las pruebas."""
import os
import sys
from pathlib import Path

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
