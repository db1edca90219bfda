"""Cutting series into model inputs without copying them.

Every window is a strided view of the series (``numpy.lib.stride_tricks``), so memory grows
with the series, not with series × window. Copies are made one mini-batch at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "Windows",
    "contexts_before",
    "iterate_batches",
    "known_after",
    "make_windows",
    "n_windows",
    "sliding_windows",
]


@dataclass(frozen=True)
class Windows:
    """Inputs and targets cut from one series.

    Attributes:
        inputs: (B, L, F) view: ``inputs[b] = values[b*S : b*S + L]``.
        targets: (B, T, F_target) view, the T steps after each input window; or, for
            sequence-to-sequence training, (B, L, T, F_target) with
            ``targets[b, i] = values[b*S + i + 1 : b*S + i + 1 + T, :F_target]``.
    """

    inputs: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


def sliding_windows(values: np.ndarray, length: int, stride: int = 1) -> np.ndarray:
    """All windows of ``length`` consecutive rows, as a view.

    Args:
        values: (N, F) or (N,) array.
        length: window length L.
        stride: step between window starts S.

    Returns:
        (B, L, F) view (or (B, L) for 1-D input), B = (N − L) // S + 1 (0 if N < L).
    """
    if length < 1 or stride < 1:
        raise ValueError(f"length and stride must be positive, got {length} and {stride}")
    if values.shape[0] < length:
        return np.empty((0, length, *values.shape[1:]), dtype=values.dtype)
    view = sliding_window_view(values, length, axis=0)  # (N-L+1, F, L)
    if values.ndim == 2:
        view = view.transpose(0, 2, 1)  # (N-L+1, F, L) -> (N-L+1, L, F)
    return view[::stride]


def known_after(
    values: np.ndarray, origins: np.ndarray, horizon: int, n_future: int
) -> np.ndarray | None:
    """The values known ahead (the last ``n_future`` channels) at the ``horizon`` steps from
    each origin: (B, T, F_k) from (N, F) values, or None without such channels. Every
    origin must leave ``horizon`` rows after it."""
    if n_future == 0:
        return None
    known = values[:, values.shape[1] - n_future :]
    return np.stack([known[o : o + horizon] for o in origins]) if len(origins) else (
        np.empty((0, horizon, n_future)))  # fmt: skip


def contexts_before(values: np.ndarray, origins: np.ndarray, length: int) -> np.ndarray:
    """The ``length`` rows before each origin: (B, length, F) from (N, F) values and B
    origins. An origin nearer the start than ``length`` gets NaN in front of its first row
    (the padding a model that pads reads as unobserved)."""
    if len(origins) and int(origins.min()) < length:
        padding = length - int(origins.min())
        values = np.concatenate([np.full((padding, values.shape[1]), np.nan), values])
        origins = origins + padding
    return sliding_windows(values, length)[origins - length]  # type: ignore[no-any-return]


def n_windows(n_steps: int, window: int, horizon: int, stride: int = 1) -> int:
    """How many (input, target) windows a series of ``n_steps`` yields."""
    usable = n_steps - window - horizon
    return 0 if usable < 0 else usable // stride + 1


def make_windows(
    values: np.ndarray,
    window: int,
    horizon: int,
    *,
    n_targets: int | None = None,
    stride: int = 1,
    seq2seq: bool = False,
) -> Windows:
    """Input windows and the targets that follow them.

    Args:
        values: (N, F) series, the target channels first.
        window: input length L.
        horizon: steps to forecast T.
        n_targets: number of leading channels that are targets (default: all F).
        stride: step between window starts S.
        seq2seq: targets at every input step (B, L, T, F_target) instead of (B, T, F_target).

    Returns:
        Views into ``values``; nothing is copied.

    Example:
        >>> w = make_windows(np.arange(10.0)[:, None], window=3, horizon=2)
        >>> w.inputs[0, :, 0].tolist(), w.targets[0, :, 0].tolist()
        ([0.0, 1.0, 2.0], [3.0, 4.0])
    """
    if values.ndim != 2:
        raise ValueError(f"values must have shape (N, F), got {values.shape}")
    if window < 1 or horizon < 1 or stride < 1:
        raise ValueError(
            f"window, horizon and stride must be positive, got {window}, {horizon}, {stride}"
        )
    n_targets = values.shape[1] if n_targets is None else n_targets
    if not 1 <= n_targets <= values.shape[1]:
        raise ValueError(f"n_targets must lie in 1..{values.shape[1]}, got {n_targets}")
    count = n_windows(values.shape[0], window, horizon, stride)
    inputs = sliding_windows(values[: values.shape[0] - horizon], window, stride)[:count]
    target_values = values[:, :n_targets]
    if not seq2seq:
        targets = sliding_windows(target_values[window:], horizon, stride)[:count]
        return Windows(inputs=inputs, targets=targets)
    if count == 0:
        empty = np.empty((0, window, horizon, n_targets), dtype=values.dtype)
        return Windows(inputs=inputs, targets=empty)
    # (N-1, Ft) -> (N-T, T, Ft): the T values after each step, then L of those per window.
    ahead = sliding_windows(target_values[1:], horizon)
    targets = sliding_window_view(ahead, window, axis=0)  # (., T, Ft, L)
    targets = targets.transpose(0, 3, 1, 2)[::stride][:count]  # -> (B, L, T, Ft)
    return Windows(inputs=inputs, targets=targets)


def iterate_batches(
    n_items: int, batch_size: int, *, shuffle: bool = True, seed: int = 0, drop_last: bool = False
) -> Iterator[np.ndarray]:
    """Index arrays of mini-batches, shuffled reproducibly by ``seed``.

    Example:
        >>> [b.tolist() for b in iterate_batches(5, 2, shuffle=False)]
        [[0, 1], [2, 3], [4]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    # 32-bit indices where they suffice: the order of 10 million windows then takes 40 MB.
    order = np.arange(n_items, dtype=np.int32 if n_items < 2**31 else np.int64)
    if shuffle:
        np.random.default_rng(seed).shuffle(order)
    stop = n_items - n_items % batch_size if drop_last else n_items
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]
