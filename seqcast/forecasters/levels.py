"""Central-interval levels on a fixed grid, shared by every calibration of intervals.

A calibration keeps one value per level of :data:`GRID` (a half-width, or an adjustment of a
network's own bounds) at each horizon step and target, and reads any other level linearly
between them, from 0 at level 0.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GRID", "conformal_levels", "on_grid"]

#: The interval levels a calibration keeps; others are interpolated between them.
GRID = np.concatenate([np.arange(1, 100) / 100.0, [0.995, 0.999]])


def conformal_levels(count: int) -> np.ndarray:
    """The finite-sample conformal quantile levels ⌈(n + 1)·L⌉ / n of :data:`GRID` for n =
    ``count`` scores (capped at 1): (G,)."""
    return np.minimum(1.0, np.ceil((count + 1) * GRID) / count)  # type: ignore[no-any-return]


def on_grid(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``values`` (G, T, Ft) kept at the :data:`GRID` levels, read at ``levels``
    (B, T', Ft, Q) in [0, 1], T' ≤ T (one level per element; the last grid level beyond it):
    (B, T', Ft, Q)."""
    grid = np.concatenate([[0.0], GRID])
    padded = np.concatenate([np.zeros_like(values[:1]), values])  # (G + 1, T, Ft)
    level = np.clip(levels, 0.0, float(GRID[-1]))
    upper = np.clip(np.searchsorted(grid, level), 1, len(grid) - 1)  # (B, T', Ft, Q)
    share = (level - grid[upper - 1]) / (grid[upper] - grid[upper - 1])
    steps = np.arange(levels.shape[1])[None, :, None, None]
    targets = np.arange(levels.shape[2])[None, None, :, None]
    low, high = padded[upper - 1, steps, targets], padded[upper, steps, targets]
    return low + share * (high - low)  # type: ignore[no-any-return]
