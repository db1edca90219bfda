"""Per-channel scalers, fitted on the training part only and inverted on output."""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = [
    "SCALERS",
    "TRANSFORMS",
    "Scaler",
    "ScalerKind",
    "choose_power",
    "scale_span",
    "transform_power",
]

ScalerKind = Literal["standard", "minmax", "none"]
SCALERS: tuple[str, ...] = ("standard", "minmax", "none")
#: Variance-stabilising transforms: the Box-Cox exponent λ of each (``log`` is log(1 + x)).
TRANSFORMS: dict[str, float] = {"none": 1.0, "sqrt": 0.5, "log": 0.0}


def _segment_slope(values: np.ndarray) -> float | None:
    """How the spread of one-step changes grows with the level: the slope b of
    log(spread) on log(level) over consecutive segments (Guerrero's idea), or None when the
    series is too short or flat to tell."""
    length = max(12, len(values) // 50)
    count = len(values) // length
    levels, spreads = [], []
    for i in range(count):
        segment = values[i * length : (i + 1) * length]
        level, spread = segment.mean(), np.diff(segment).std()
        if level > 0 and spread > 0:
            levels.append(level)
            spreads.append(spread)
    if len(levels) < 8 or np.ptp(np.log(levels)) < 0.5:
        return None  # too few segments, or too narrow a range of levels to fit a slope
    return float(np.polyfit(np.log(levels), np.log(spreads), 1)[0])


def choose_power(values: list[np.ndarray]) -> np.ndarray:
    """The transform exponent λ for each channel of (N, F) training series, from the data.

    A channel whose changes grow with its level, like counts (sunspots, sales), is better
    modelled after a square root or a logarithm, which make the noise about the same size
    everywhere. With b the slope of log(spread of one-step changes) on log(level) over
    segments of the training part, the stabilising Box-Cox exponent is λ = 1 − b; it is
    rounded to 1 (none), 0.5 (square root) or 0 (log(1 + x)). Channels with negative values,
    or too short or too flat to tell, keep λ = 1.
    """
    channels = values[0].shape[1]
    power = np.ones(channels)
    for c in range(channels):
        parts = [np.asarray(v[:, c], dtype=np.float64) for v in values]
        if min(float(p.min()) for p in parts) < 0:
            continue
        slopes = [b for b in (_segment_slope(p) for p in parts) if b is not None]
        if not slopes:
            continue
        stable = 1.0 - float(np.median(slopes))
        power[c] = min((1.0, 0.5, 0.0), key=lambda candidate: abs(candidate - stable))
    return power


def scale_span(series: list[np.ndarray]) -> float:
    """How far apart the sizes of several series lie: the ratio of the 99th to the 1st
    percentile of their step sizes (each series' mean absolute one-step change, per channel; the
    widest channel counts). Series that do not change count for nothing; 1 for a single series.

    Example:
        >>> scale_span([np.array([[0.0], [1.0]]), np.array([[0.0], [1000.0]])]) > 900
        True
    """
    steps = np.array(
        [np.abs(np.diff(s, axis=0)).mean(axis=0) for s in series if len(s) > 1]
    )  # (S, F)
    if len(steps) < 2:
        return 1.0
    span = 1.0
    for column in steps.T:
        moving = column[column > 0]
        if len(moving) > 1:
            # Observed values, not interpolated: two series span their own ratio.
            low = np.quantile(moving, 0.01, method="lower")
            high = np.quantile(moving, 0.99, method="higher")
            span = max(span, float(high / low))
    return span


def transform_power(values: np.ndarray, power: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Applies (or undoes) each channel's exponent to (..., F) values: λ = 1 is the identity,
    0.5 the square root, 0 log(1 + x). Negative inputs to a root or logarithm count as 0."""
    if np.all(power == 1.0):
        return values
    out = np.array(values, dtype=np.float64, copy=True)
    for c, lam in enumerate(power):
        if lam == 1.0:
            continue
        column = out[..., c]
        if inverse:
            out[..., c] = np.square(np.maximum(column, 0.0)) if lam == 0.5 else np.expm1(column)
        else:
            floor = np.maximum(column, 0.0)
            out[..., c] = np.sqrt(floor) if lam == 0.5 else np.log1p(floor)
    return out


class Scaler:
    """Per-channel scaling ``(g(x) − shift) / scale``, with ``g`` an optional power transform.

    ``standard`` uses mean and standard deviation, ``minmax`` maps the training range to
    [0, 1], ``none`` is the identity. Constant channels get scale 1. ``power`` gives each
    channel's exponent for :func:`transform_power` (default: none); ``power_`` is the one in
    use after :meth:`fit` or :meth:`from_state`.

    Example:
        >>> s = Scaler("standard").fit(np.array([[1.0], [3.0]]))
        >>> s.transform(np.array([[3.0]])).tolist()
        [[1.0]]
    """

    def __init__(self, kind: ScalerKind = "standard", power: np.ndarray | None = None) -> None:
        if kind not in SCALERS:
            raise ValueError(f"unknown scaler '{kind}'; expected one of {', '.join(SCALERS)}")
        self.kind = kind
        self.power = None if power is None else np.asarray(power, dtype=np.float64)

    def fit(self, values: np.ndarray | list[np.ndarray]) -> Scaler:
        """Learns shift and scale from (N, F) training values (or a list of such arrays)."""
        parts = values if isinstance(values, list) else [values]
        stacked = np.concatenate([p.reshape(-1, p.shape[-1]) for p in parts]).astype(np.float64)
        self.power_ = np.ones(stacked.shape[1]) if self.power is None else self.power
        stacked = transform_power(stacked, self.power_)
        if self.kind == "standard":
            shift, scale = stacked.mean(axis=0), stacked.std(axis=0)
        elif self.kind == "minmax":
            shift, scale = stacked.min(axis=0), stacked.max(axis=0) - stacked.min(axis=0)
        else:
            shift, scale = np.zeros(stacked.shape[1]), np.ones(stacked.shape[1])
        self.shift_ = shift
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        return self

    def transform(self, values: np.ndarray, channels: slice = slice(None)) -> np.ndarray:
        """Scales (..., F) values; ``channels`` selects which fitted channels they are."""
        powered = transform_power(values, self.power_[channels])
        return (powered - self.shift_[channels]) / self.scale_[channels]  # type: ignore[no-any-return]

    def inverse_transform(self, values: np.ndarray, channels: slice = slice(None)) -> np.ndarray:
        """Undoes :meth:`transform` on (..., F) values."""
        affine = values * self.scale_[channels] + self.shift_[channels]
        return transform_power(affine, self.power_[channels], inverse=True)

    def state(self) -> dict[str, np.ndarray]:
        return {"shift": self.shift_, "scale": self.scale_, "power": self.power_}

    @classmethod
    def from_state(cls, kind: ScalerKind, state: dict[str, np.ndarray]) -> Scaler:
        scaler = cls(kind)
        scaler.shift_ = np.asarray(state["shift"], dtype=np.float64)
        scaler.scale_ = np.asarray(state["scale"], dtype=np.float64)
        # Absent from models saved before transforms existed: no transform.
        power = state.get("power", np.ones(len(scaler.shift_)))
        scaler.power_ = np.asarray(power, dtype=np.float64)
        return scaler
