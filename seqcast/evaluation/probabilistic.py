"""Probabilistic forecast scores: quantile forecasts against actual values.

Quantile forecasts have shape (..., Q) beside actual values of shape (...): the last axis holds
one forecast per quantile level, in the order of ``quantiles``. Central intervals follow Nixtla's
convention: the level-80 interval runs from the 0.1 to the 0.9 quantile.

- ``pinball``: the quantile (pinball) loss of one level, mean over the values.
- ``wql``: weighted quantile loss, the mean over the levels of 2·Σ pinball / Σ |y| over every
  series and step (the definition of the Chronos and fev benchmarks). Over many evenly spread
  levels it approximates the scaled CRPS.
- ``coverage``: the fraction of actual values inside a central interval.
- ``msis``: mean scaled interval score (M4): the interval's width plus 2/α times each miss,
  divided by the training part's seasonal naive MAE.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seqcast.errors import DataError
from seqcast.evaluation.metrics import mase_scale

__all__ = [
    "check_quantiles",
    "coverage",
    "interval_bounds",
    "levels_to_quantiles",
    "msis",
    "pinball",
    "quantile_name",
    "score_quantiles",
    "wql",
]


def check_quantiles(quantiles: Sequence[float], argument: str = "quantiles") -> tuple[float, ...]:
    """The quantile levels, sorted and without repeats.

    Raises:
        DataError: none given, or a level outside (0, 1).
    """
    if len(quantiles) == 0:
        raise DataError(f"{argument} is empty; give levels in (0, 1)", arguments=(argument,))
    for q in quantiles:
        if not 0.0 < float(q) < 1.0:
            raise DataError(
                f"{argument} must lie strictly between 0 and 1, got {q}", arguments=(argument,)
            )
    return tuple(sorted({round(float(q), 6) for q in quantiles}))


def levels_to_quantiles(levels: Sequence[float]) -> tuple[float, ...]:
    """The quantiles bounding central intervals of ``levels`` percent, with the median:
    (80, 95) -> (0.025, 0.1, 0.5, 0.9, 0.975).

    Raises:
        DataError: a level outside (0, 100).
    """
    bounds = [0.5]
    for level in levels:
        if not 0.0 < float(level) < 100.0:
            raise DataError(
                f"level must lie strictly between 0 and 100 (percent), got {level}",
                arguments=("level",),
            )
        alpha = (100.0 - float(level)) / 200.0
        bounds += [alpha, 1.0 - alpha]
    return check_quantiles(bounds, "level")


def quantile_name(model: str, q: float) -> str:
    """The forecast column of quantile ``q`` of ``model``: ``rnn-q0.1``."""
    return f"{model}-q{q:g}"


def interval_bounds(quantiles: Sequence[float]) -> dict[int | float, tuple[int, int]]:
    """The central intervals the quantiles hold: level (percent) -> (lower, upper) index into
    ``quantiles``, for every pair q, 1 − q with q < 0.5."""
    found: dict[int | float, tuple[int, int]] = {}
    for i, low in reversed(list(enumerate(quantiles))):  # the narrowest interval first
        for j, high in enumerate(quantiles):
            if low < 0.5 and abs(low + high - 1.0) < 1e-9:
                level = round(100.0 * (high - low), 6)
                found[int(level) if level.is_integer() else level] = (i, j)
    return found


def _check(y_true: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float]) -> None:
    if q_pred.shape != (*y_true.shape, len(quantiles)):
        raise ValueError(
            f"q_pred has shape {q_pred.shape}; expected y_true's {y_true.shape} plus one axis of "
            f"{len(quantiles)} quantiles"
        )
    if y_true.size == 0:
        raise ValueError("no values to score")


def pinball(y_true: np.ndarray, q_pred: np.ndarray, q: float) -> float:
    """Mean pinball loss of the ``q`` quantile forecasts ``q_pred`` (same shape as y_true):
    mean of max(q·(y − f), (q − 1)·(y − f)).

    Example:
        >>> pinball(np.array([10.0]), np.array([8.0]), 0.9)  # under by 2: 0.9 · 2
        1.8
    """
    error = np.asarray(y_true, dtype=np.float64) - np.asarray(q_pred, dtype=np.float64)
    return float(np.mean(np.maximum(q * error, (q - 1.0) * error)))


def wql(y_true: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float]) -> float:
    """Weighted quantile loss: mean over the levels of 2·Σ pinball / Σ |y|.

    Args:
        y_true: (...) actual values, every series and step pooled.
        q_pred: (..., Q) quantile forecasts.
        quantiles: the Q levels.

    Raises:
        DataError: every actual value is 0 (the weight Σ |y| is 0).
    """
    true = np.asarray(y_true, dtype=np.float64)
    pred = np.asarray(q_pred, dtype=np.float64)
    _check(true, pred, quantiles)
    weight = float(np.sum(np.abs(true)))
    if weight == 0.0:
        raise DataError("WQL is undefined: every actual value is 0")
    losses = [
        2.0 * pinball(true, pred[..., k], q) * true.size / weight for k, q in enumerate(quantiles)
    ]
    return float(np.mean(losses))


def coverage(y_true: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Fraction of actual values with lower ≤ y ≤ upper."""
    true = np.asarray(y_true, dtype=np.float64)
    inside = (true >= np.asarray(lower)) & (true <= np.asarray(upper))
    return float(np.mean(inside))


def msis(
    y_true: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    y_train: np.ndarray,
    season: int = 1,
    alpha: float = 0.05,
) -> float:
    """Mean scaled interval score of one series' central (1 − α) interval (M4's definition):
    mean of (U − L) + 2/α·(L − y)·[y < L] + 2/α·(y − U)·[y > U], divided by the seasonal
    naive in-sample MAE of ``y_train``.

    Raises:
        DataError: the training part cannot scale it (see :func:`mase_scale`).
    """
    true = np.asarray(y_true, dtype=np.float64)
    low, high = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    score = (
        (high - low)
        + 2.0 / alpha * (low - true) * (true < low)
        + 2.0 / alpha * (true - high) * (true > high)
    )
    return float(np.mean(score)) / mase_scale(y_train, season)


def score_quantiles(
    actuals: Sequence[np.ndarray],
    forecasts: Sequence[np.ndarray],
    quantiles: Sequence[float],
    trains: Sequence[np.ndarray],
    season: int = 1,
) -> tuple[dict[str, float | None], list[dict[str, float | None]]]:
    """The probabilistic scores of many series' quantile forecasts, averaged over targets.

    Args:
        actuals: per series, (B, T, F_target) actual values.
        forecasts: per series, (B, T, F_target, Q) quantile forecasts.
        quantiles: the Q levels.
        trains: per series, (N, F_target) training values (the MSIS scale).
        season: the seasonal period of the MSIS scale.

    Returns:
        The scores pooled over every series and step (``wql``, ``coverage_<level>`` for every
        central interval the quantiles hold, ``msis`` when they hold the 95 % one: the mean of
        the series' MSIS), and the same per series. A score that is undefined is None.
    """
    intervals = interval_bounds(quantiles)
    n_targets = actuals[0].shape[-1]

    def scores(
        true: Sequence[np.ndarray], pred: Sequence[np.ndarray], train: Sequence[np.ndarray]
    ) -> dict[str, float | None]:
        row: dict[str, list[float | None]] = {}
        for k in range(n_targets):
            y = np.concatenate([a[..., k].ravel() for a in true])
            f = np.concatenate([p[..., k, :].reshape(-1, len(quantiles)) for p in pred])
            observed = np.isfinite(y)  # a filled point or a gap is never scored
            y, f = y[observed], f[observed]
            if y.size == 0:
                for name in ("wql", *(f"coverage_{level}" for level in intervals)):
                    row.setdefault(name, []).append(None)
                if 95 in intervals:
                    row.setdefault("msis", []).append(None)
                continue
            try:
                row.setdefault("wql", []).append(wql(y, f, quantiles))
            except DataError:
                row.setdefault("wql", []).append(None)
            for level, (low, high) in intervals.items():
                row.setdefault(f"coverage_{level}", []).append(coverage(y, f[:, low], f[:, high]))
            if 95 in intervals:
                low, high = intervals[95]
                per_series: list[float | None] = []
                for a, p, t in zip(true, pred, train, strict=True):
                    seen = np.isfinite(a[..., k])
                    if not seen.any():
                        continue
                    try:
                        per_series.append(
                            msis(
                                a[..., k][seen],
                                p[..., k, low][seen],
                                p[..., k, high][seen],
                                t[:, k],
                                min(season, len(t) - 1),
                                0.05,
                            )
                        )
                    except DataError:
                        per_series.append(None)
                known = [v for v in per_series if v is not None]
                row.setdefault("msis", []).append(float(np.mean(known)) if known else None)
        return {
            name: None if any(v is None for v in values) else float(np.mean(values))  # type: ignore[arg-type]
            for name, values in row.items()
        }

    pooled = scores(actuals, forecasts, trains)
    each = [scores([a], [p], [t]) for a, p, t in zip(actuals, forecasts, trains, strict=True)]
    return pooled, each
