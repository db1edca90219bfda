"""Forecast accuracy metrics: typed pure functions on arrays of equal shape.

Percentage metrics (MAPE, sMAPE) are in percent. Each function flattens its inputs; use
:func:`per_target` for one figure per target channel (the last axis).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from seqcast.errors import DataError

__all__ = [
    "finite_or_none",
    "mae",
    "mape",
    "mase",
    "mase_scale",
    "mse",
    "per_target",
    "rmse",
    "smape",
]


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(y_true, dtype=np.float64)
    pred = np.asarray(y_pred, dtype=np.float64)
    if true.shape != pred.shape:
        raise ValueError(f"y_true has shape {true.shape} but y_pred has {pred.shape}")
    if true.size == 0:
        raise ValueError("no values to score")
    return true.ravel(), pred.ravel()


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error.

    Example:
        >>> mae(np.array([1.0, 2.0]), np.array([2.0, 4.0]))
        1.5
    """
    true, pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(true - pred)))


def mse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean squared error."""
    true, pred = _pair(y_true, y_pred)
    return float(np.mean((true - pred) ** 2))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(mse(y_true, y_pred)))


def mape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute percentage error, in percent.

    Raises:
        DataError: ``y_true`` contains zeros, where the percentage is undefined.
    """
    true, pred = _pair(y_true, y_pred)
    zeros = int(np.count_nonzero(true == 0))
    if zeros:
        raise DataError(
            f"MAPE is undefined: {zeros} actual value(s) are zero; use smape or mase instead"
        )
    return float(np.mean(np.abs((true - pred) / true)) * 100.0)


def smape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Symmetric MAPE in percent: mean of 200·|y − ŷ| / (|y| + |ŷ|), with 0/0 counted as 0."""
    true, pred = _pair(y_true, y_pred)
    denominator = np.abs(true) + np.abs(pred)
    ratio = np.divide(
        2.0 * np.abs(true - pred), denominator, out=np.zeros_like(true), where=denominator > 0
    )
    return float(np.mean(ratio) * 100.0)


def mase_scale(y_train: np.ndarray, season: int = 1) -> float:
    """In-sample MAE of the seasonal naive forecast on the training values, the MASE denominator
    (over the pairs of observed values: a gap, NaN, leaves its pairs out).

    Raises:
        DataError: the training part is not longer than ``season`` or is constant.
    """
    train = np.asarray(y_train, dtype=np.float64).ravel()
    if season < 1:
        raise DataError(f"the MASE season must be at least 1, got {season}")
    if train.size <= season:
        raise DataError(
            f"MASE with season {season} needs more than {season} training points, got {train.size}"
        )
    changes = np.abs(train[season:] - train[:-season])
    changes = changes[np.isfinite(changes)]  # pairs across a gap (fill mask) are unknown
    if changes.size == 0:
        raise DataError(f"MASE with season {season} has no pair of observed training points")
    scale = float(np.mean(changes))
    if scale == 0.0:
        raise DataError("MASE is undefined: the training part is constant at that season")
    return scale


def mase(y_true: np.ndarray, y_pred: np.ndarray, y_train: np.ndarray, season: int = 1) -> float:
    """Mean absolute scaled error: MAE divided by the seasonal naive in-sample MAE.

    Example:
        >>> mase(np.array([3.0]), np.array([4.0]), np.array([1.0, 3.0, 5.0]))
        0.5
    """
    return mae(y_true, y_pred) / mase_scale(y_train, season)


def per_target(
    metric: Callable[[np.ndarray, np.ndarray], float], y_true: np.ndarray, y_pred: np.ndarray
) -> list[float]:
    """One value of ``metric`` per target: inputs (..., F_target) -> F_target floats."""
    true = np.asarray(y_true)
    pred = np.asarray(y_pred)
    if true.shape != pred.shape:
        raise ValueError(f"y_true has shape {true.shape} but y_pred has {pred.shape}")
    return [metric(true[..., k], pred[..., k]) for k in range(true.shape[-1])]


def mean_or_none(values: Sequence[float | None]) -> float | None:
    """Average of the values, or None when any is undefined."""
    if any(v is None for v in values):
        return None
    return float(np.mean([v for v in values if v is not None]))


def finite_or_none(value: float | None) -> float | None:
    """``value``, or None where it is missing or not finite (JSON has no NaN or infinity)."""
    return value if value is None or math.isfinite(value) else None
