"""Headless matplotlib figures for reports; each function writes one PNG and returns its path.

matplotlib is an optional dependency (``pip install 'seqcast[plot]'``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seqcast.atomic import write_bytes
from seqcast.errors import SeqcastError

if TYPE_CHECKING:
    from seqcast.training.lr_finder import LRFinderResult

__all__ = ["plot_lr_finder", "pyplot"]


def pyplot() -> Any:
    """matplotlib's pyplot on the headless Agg backend, or a clear install hint."""
    try:
        import matplotlib
    except ImportError as exc:
        raise SeqcastError("plots need matplotlib: pip install 'seqcast[plot]'") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | os.PathLike[str]) -> Path:
    """Writes a figure as PNG atomically and closes it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(figure)
    write_bytes(path, buffer.getvalue())
    return Path(path)


def plot_lr_finder(result: LRFinderResult, path: str | os.PathLike[str], title: str = "") -> Path:
    """Loss against learning rate (log scale), with the suggested rate marked."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.plot(result.lrs, result.losses, color="0.75", linewidth=0.8, label="mini-batch loss")
    axes.plot(result.lrs, result.smoothed, color="C0", linewidth=1.8, label="smoothed loss")
    axes.axvline(
        result.suggestion, color="C3", linestyle="--", label=f"suggested lr {result.suggestion:.2g}"
    )
    axes.set_xscale("log")
    low, high = np.percentile(result.smoothed, [0, 90])
    axes.set_ylim(low - 0.1 * (high - low), high + 0.5 * (high - low))
    axes.set_xlabel("learning rate (log scale)")
    axes.set_ylabel("training loss (scaled units)")
    axes.set_title(title or "learning-rate range finder")
    axes.legend(loc="upper left")
    axes.grid(True, which="both", alpha=0.3)
    return save_figure(figure, path)
