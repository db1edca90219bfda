"""Conformal intervals for every forecaster, calibrated on its own backtest of the training part.

Calibration (split conformal, as statsforecast's and NeuralForecast's conformal intervals):
a fresh copy of the model is fitted on each training series without its last W points, then
forecasts T steps from every origin of those W points (stride 1) from the true history before
it. Each absolute error is divided by its series' scale (the mean absolute one-step change of
the part the copy was fitted on), so that series of any size pool into one set of scores per
horizon step and target. The half-width of a central interval of level L at step t is the
finite-sample conformal quantile ⌈(n + 1)·L⌉ / n of the n scores of step t, times the scale of
the series being forecast. Quantile q < 0.5 is the point forecast minus the half-width of level
1 − 2q, q > 0.5 plus that of 2q − 1: quantiles never cross and the median is the point forecast.

W is, per series, the larger of ``n_windows``·T and a fifth of the training part, kept within
what leaves the copy enough points to fit; series too short for that only receive intervals.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seqcast.data.windows import contexts_before, known_after, sliding_windows
from seqcast.errors import DataError, SeqcastWarning
from seqcast.forecasters.base import Forecaster
from seqcast.forecasters.levels import GRID, conformal_levels, on_grid

__all__ = ["GRID", "Conformal", "calibrate", "series_floors", "series_scales"]

#: The smallest share of a training series held out for calibration.
HELD_OUT_FRACTION = 0.2


@dataclass(frozen=True)
class Conformal:
    """Calibrated half-widths of central intervals, in units of each series' scale.

    Attributes:
        widths: (G, T, F_target) the half-width of each level of :data:`GRID` at each step.
        n_scores: how many errors each step and target were calibrated on.
    """

    widths: np.ndarray
    n_scores: int

    @property
    def horizon(self) -> int:
        return int(self.widths.shape[1])

    def half_width(self, level: float) -> np.ndarray:
        """(T, F_target) half-widths of the central interval of ``level`` in (0, 1), linear
        between the calibrated levels (0 at level 0)."""
        return on_grid(self.widths, np.full((1, *self.widths.shape[1:], 1), float(level)))[
            0, ..., 0
        ]

    def quantiles(
        self,
        point: np.ndarray,
        scales: np.ndarray,
        quantiles: Sequence[float],
        floors: np.ndarray | None = None,
    ) -> np.ndarray:
        """Quantile forecasts around point forecasts.

        Args:
            point: (B, T', F_target) point forecasts, T' ≤ T.
            scales: (B, 1, F_target) each forecast series' scale (:func:`series_scales`).
            quantiles: Q levels in (0, 1).
            floors: (B, 1, F_target) the least value each series can take (0 for a series
                never negative: :func:`series_floors`); quantiles below it are raised to it.

        Returns:
            (B, T', F_target, Q) forecasts, non-decreasing along the last axis for sorted levels.
        """
        steps = point.shape[1]
        if steps > self.horizon:
            raise DataError(
                f"the intervals were calibrated for {self.horizon} step(s), not {steps}: "
                "calibrate them for more (interval_steps)",
                arguments=("interval_steps",),
            )
        out = np.empty((*point.shape, len(quantiles)))
        for k, q in enumerate(quantiles):
            width = self.half_width(abs(2.0 * q - 1.0))[:steps]  # (T', Ft)
            sign = -1.0 if q < 0.5 else 1.0
            out[..., k] = point + sign * width[None] * scales
        if floors is not None:
            np.maximum(out, floors[..., None], out=out)
        return out

    def to_state(self) -> dict[str, np.ndarray]:
        return {"conformal.widths": self.widths, "conformal.n_scores": np.array([self.n_scores])}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> Conformal:
        """The calibration saved by :meth:`to_state`.

        Raises:
            ValueError: the arrays are not a calibration (a tampered or foreign file).
        """
        widths = np.asarray(state["conformal.widths"], dtype=np.float64)
        count = np.asarray(state["conformal.n_scores"]).reshape(-1)
        if (
            widths.ndim != 3
            or widths.shape[0] != len(GRID)
            or widths.shape[1] < 1
            or not np.isfinite(widths).all()
            or (widths < 0).any()
            or (np.diff(widths, axis=0) < 0).any()
            or count.size != 1
        ):
            raise ValueError("the saved conformal calibration is not one seqcast wrote")
        return cls(widths, int(count[0]))


def series_floors(histories: Sequence[np.ndarray], n_targets: int) -> np.ndarray:
    """Each series' floor per target: 0 where its observed values are never negative
    (counts, sales, sunspots), else −∞: (S, 1, F_target)."""
    floors = np.full((len(histories), 1, n_targets), -np.inf)
    for i, history in enumerate(histories):
        values = history[:, :n_targets]
        floors[i, 0] = np.where(np.nanmin(values, axis=0) >= 0, 0.0, -np.inf)
    return floors


def series_scales(histories: Sequence[np.ndarray], n_targets: int) -> np.ndarray:
    """Each series' scale per target: the mean absolute one-step change of its observed
    values, else their mean absolute value, else 1: (S, 1, F_target)."""
    scales = np.ones((len(histories), 1, n_targets))
    for i, history in enumerate(histories):
        for k in range(n_targets):
            values = history[:, k]
            changes = np.abs(np.diff(values))
            changes = changes[np.isfinite(changes)]
            scale = float(changes.mean()) if changes.size else 0.0
            if not scale > 0.0:
                observed = np.abs(values[np.isfinite(values)])
                scale = float(observed.mean()) if observed.size else 0.0
            scales[i, 0, k] = scale if scale > 0.0 else 1.0
    return scales


def calibrate(
    forecaster: Forecaster,
    histories: Sequence[np.ndarray],
    n_targets: int,
    horizon: int,
    *,
    n_windows: int = 2,
    n_future: int = 0,
) -> Conformal:
    """Calibrates conformal intervals of ``horizon`` steps for the model ``forecaster`` (its
    settings; it is neither fitted nor changed).

    Args:
        forecaster: the model whose settings a fresh copy is fitted with.
        histories: per series, (N, F) training values, targets first.
        n_targets: leading target channels.
        horizon: T, the steps to calibrate.
        n_windows: at least this many horizons of each series are held out.
        n_future: the last channels known ahead (their values at the forecast steps are
            inputs: :meth:`Forecaster.fit`).

    Raises:
        DataError: no series is long enough to hold out a calibration part.
    """
    if n_windows < 1:
        raise DataError(f"n_windows must be at least 1, got {n_windows}", arguments=("n_windows",))
    fresh = type(forecaster)(**forecaster.get_params())
    needed = fresh.horizon + 1 if fresh.can_pad else fresh.context_length + fresh.horizon
    kept, held = [], []
    for history in histories:
        length = len(history)
        held_out = max(n_windows * horizon, math.ceil(HELD_OUT_FRACTION * length))
        held_out = min(held_out, length - needed)
        if held_out >= horizon:
            kept.append(history)
            held.append(held_out)
    if not kept:
        longest = max(len(h) for h in histories)
        raise DataError(
            f"intervals need a calibration part of at least {horizon} step(s) held out of a "
            f"training series that keeps {needed} point(s) to fit {fresh.name}; the longest "
            f"series has {longest}",
            arguments=("horizon",),
        )
    fits = [h[: len(h) - w] for h, w in zip(kept, held, strict=True)]
    with warnings.catch_warnings():  # the model's own fit says the same
        warnings.simplefilter("ignore", SeqcastWarning)
        fresh.fit(fits, n_targets, n_future=n_future)
    context = fresh.context_length
    scores = []
    # A model reading inputs known ahead needs them for its whole horizon T0 at least.
    span = max(horizon, fresh.horizon) if n_future else horizon
    for history, fit_part in zip(kept, fits, strict=True):
        split = len(fit_part)
        starts = np.arange(split, len(history) - span + 1)
        history = fresh.readable_values(history)  # gaps carried for a model that reads none
        contexts = contexts_before(history, starts, context)  # (B, C, F), padded if short
        known = known_after(history, starts, span, n_future)  # (B, T', F_k)
        predicted = fresh.predict(contexts, horizon, future=known)  # (B, T, Ft)
        truth = sliding_windows(history[:, :n_targets], horizon)[starts]  # (B, T, Ft)
        scale = series_scales([fit_part], n_targets)  # (1, 1, Ft)
        scores.append(np.abs(truth - predicted) / scale)
    pooled = np.concatenate(scores)  # (n, T, Ft)
    pooled = pooled[np.isfinite(pooled).all(axis=(1, 2))]  # windows with a gap are not scored
    count = pooled.shape[0]
    if count == 0:
        raise DataError("intervals need calibration windows without gaps; none has none")
    widths = np.quantile(pooled, conformal_levels(count), axis=0, method="inverted_cdf")
    return Conformal(widths=np.asarray(widths, dtype=np.float64), n_scores=count)
