"""Gráficas con etiquetas en español (matplotlib)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt


def plot_losses(
    histories: Mapping[str, Sequence[float]] | Sequence[float], title: str = "Pérdida de entrenamiento", ax=None
):
    """Curvas de pérdida por paso. ``histories``: una lista o ``{nombre: lista}``."""
    if not isinstance(histories, Mapping):
        histories = {"pérdida": list(histories)}
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for name, values in histories.items():
        ax.plot(range(1, len(values) + 1), list(values), marker="o", markersize=3, label=name)
    ax.set_xlabel("Paso de entrenamiento")
    ax.set_ylabel("Pérdida (entropía cruzada)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(histories) > 1:
        ax.legend()
    ax.figure.tight_layout()
    return ax.figure


def plot_bars(values: Mapping[str, float], ylabel: str, title: str, *, log: bool = False, ax=None, fmt: str = "{:.3g}"):
    """Barras comparativas con el valor escrito encima de cada barra."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    names, heights = list(values), [float(v) for v in values.values()]
    bars = ax.bar(names, heights, color="#3a7ca5")
    for bar, h in zip(bars, heights):
        ax.annotate(fmt.format(h), (bar.get_x() + bar.get_width() / 2, h), ha="center", va="bottom", fontsize=9)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
    ax.figure.tight_layout()
    return ax.figure


def plot_xy(
    x: Sequence[float],
    ys: Mapping[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    title: str,
    *,
    logx: bool = False,
    ax=None,
):
    """Una o varias series ``y`` frente a ``x`` (p. ej. parámetros frente al rango)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for name, y in ys.items():
        ax.plot(list(x), list(y), marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if logx:
        ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    if len(ys) > 1:
        ax.legend()
    ax.figure.tight_layout()
    return ax.figure
