"""Métricas locales para ``evaluate`` (sin descargas del Hub)."""

from __future__ import annotations

from pathlib import Path

ACCURACY_SCRIPT = Path(__file__).resolve().parent / "accuracy.py"


def load_accuracy():
    """La métrica de exactitud de ``evaluate``, cargada desde este paquete."""
    import evaluate

    return evaluate.load(str(ACCURACY_SCRIPT))
