"""Per-channel scalers, fitted on the training part only and inverted on output."""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["SCALERS", "Scaler", "ScalerKind"]

ScalerKind = Literal["standard", "minmax", "none"]
SCALERS: tuple[str, ...] = ("standard", "minmax", "none")


class Scaler:
    """Affine per-channel scaling ``(x − shift) / scale``.

    ``standard`` uses mean and standard deviation, ``minmax`` maps the training range to
    [0, 1], ``none`` is the identity. Constant channels get scale 1.

    Example:
        >>> s = Scaler("standard").fit(np.array([[1.0], [3.0]]))
        >>> s.transform(np.array([[3.0]])).tolist()
        [[1.0]]
    """

    def __init__(self, kind: ScalerKind = "standard") -> None:
        if kind not in SCALERS:
            raise ValueError(f"unknown scaler '{kind}'; expected one of {', '.join(SCALERS)}")
        self.kind = kind

    def fit(self, values: np.ndarray | list[np.ndarray]) -> Scaler:
        """Learns shift and scale from (N, F) training values (or a list of such arrays)."""
        parts = values if isinstance(values, list) else [values]
        stacked = np.concatenate([p.reshape(-1, p.shape[-1]) for p in parts]).astype(np.float64)
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
        return (values - self.shift_[channels]) / self.scale_[channels]  # type: ignore[no-any-return]

    def inverse_transform(self, values: np.ndarray, channels: slice = slice(None)) -> np.ndarray:
        """Undoes :meth:`transform` on (..., F) values."""
        return values * self.scale_[channels] + self.shift_[channels]  # type: ignore[no-any-return]

    def state(self) -> dict[str, np.ndarray]:
        return {"shift": self.shift_, "scale": self.scale_}

    @classmethod
    def from_state(cls, kind: ScalerKind, state: dict[str, np.ndarray]) -> Scaler:
        scaler = cls(kind)
        scaler.shift_ = np.asarray(state["shift"], dtype=np.float64)
        scaler.scale_ = np.asarray(state["scale"], dtype=np.float64)
        return scaler
