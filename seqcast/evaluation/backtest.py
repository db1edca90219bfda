"""Rolling-origin backtests on a temporal split.

The forecaster is fitted on the training part only. Then from every forecast origin o in the
validation part (every ``stride`` steps) it forecasts the T points o .. o+T−1 from the true
history before o. With T = 1 this is the course's one-step protocol.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from seqcast.data.frame import Series, SeriesData
from seqcast.data.windows import contexts_before, known_after, sliding_windows
from seqcast.errors import DataError
from seqcast.evaluation import metrics
from seqcast.evaluation.conformal import calibrate, series_floors, series_scales
from seqcast.evaluation.probabilistic import check_quantiles, score_quantiles
from seqcast.forecasters.base import EpochEnd, Forecaster
from seqcast.persistence import ModelSpec, forecaster_from_spec, model_spec

__all__ = [
    "METRIC_NAMES",
    "BacktestResult",
    "Mapper",
    "RefitResult",
    "RefitTask",
    "backtest",
    "check_lengths",
    "refit_series",
]

#: Maps a module-level function over a list of partitions, results in order: an engine's
#: ``map`` (:mod:`seqcast.engines`), or the plain loop.
Mapper = Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]]

METRIC_NAMES = ("mae", "mse", "rmse", "mape", "smape", "mase")


@dataclass
class BacktestResult:
    """Scores and forecasts of one forecaster on one split.

    Attributes:
        model: the forecaster's name.
        metrics: each metric averaged over targets (None where undefined, e.g. MAPE at zeros).
        per_target: target name -> metric -> value.
        forecasts: per series, (n_origins, T, F_target) forecasts.
        actuals: per series, (n_origins, T, F_target) true values.
        origins: per series, the index of each forecast origin.
        fit_seconds, predict_seconds: wall time of fitting and of all forecasts.
        epochs, params: epochs run and parameter count for neural models, else None.
        best_epoch: the epoch whose weights were kept (0: the untrained start), else None.
        forecaster: the fitted forecaster (the last refit when ``refit`` is on).
        per_series: per series, each metric over its own forecasts, averaged over targets
            (MASE with the series' own scale): what a scale-free comparison across series of
            different levels averages; with quantiles, the probabilistic scores too.
        quantiles: the levels of the quantile forecasts (empty: point forecasts only).
        quantile_forecasts: per series, (n_origins, T, F_target, Q) quantile forecasts from
            conformal intervals calibrated on the training parts.
        probabilistic: ``wql``, ``coverage_<level>`` and ``msis`` (see
            :func:`seqcast.evaluation.probabilistic.score_quantiles`), averaged over targets.
        quantile_source: ``network`` (the model's own quantiles) or ``conformal``.
        quantile_note: why quantiles were asked for but not given (``intervals="optional"``).
    """

    model: str
    metrics: dict[str, float | None]
    per_target: dict[str, dict[str, float | None]]
    forecasts: list[np.ndarray]
    actuals: list[np.ndarray]
    origins: list[np.ndarray]
    fit_seconds: float
    predict_seconds: float
    epochs: int | None = None
    best_epoch: int | None = None
    params: int | None = None
    forecaster: Forecaster | None = field(default=None, repr=False)
    per_series: list[dict[str, float | None]] = field(default_factory=list)
    quantiles: tuple[float, ...] = ()
    quantile_forecasts: list[np.ndarray] = field(default_factory=list)
    probabilistic: dict[str, float | None] = field(default_factory=dict)
    quantile_source: str | None = None
    quantile_note: str = ""

    @property
    def series_means(self) -> dict[str, float | None]:
        """Each metric's mean over the series of the per-series scores (unlike :attr:`metrics`,
        which pools every series' errors: for MAE, MSE and RMSE that mixes their units)."""
        return {
            name: metrics.mean_or_none([row[name] for row in self.per_series])
            for name in METRIC_NAMES
        }

    def summary(self) -> dict[str, object]:
        """The JSON row of the leaderboard; a metric that is not finite is None (JSON has no
        NaN or infinity: ``json.dumps`` would write ``NaN``, which strict parsers refuse)."""
        row: dict[str, object] = {"model": self.model}
        for name in METRIC_NAMES:
            value = self.metrics.get(name)
            row[name] = value if value is None or math.isfinite(value) else None
        for name, value in self.probabilistic.items():
            row[name] = metrics.finite_or_none(value)
        if self.quantiles:
            row["quantiles"] = list(self.quantiles)
            row["quantile_source"] = self.quantile_source
        row.update(
            fit_seconds=round(self.fit_seconds, 4),
            predict_seconds=round(self.predict_seconds, 4),
            epochs=self.epochs,
            best_epoch=self.best_epoch,
            params=self.params,
        )
        row["series_mean"] = {k: metrics.finite_or_none(v) for k, v in self.series_means.items()}
        return row


def check_lengths(
    data: SeriesData,
    splits: Sequence[int],
    context_length: int,
    horizon: int,
    model: str,
    can_pad: bool = False,
) -> None:
    """Raises a clear error when a series is too short for the model, horizon and split (a
    model that pads needs only one training point per series)."""
    for series, split in zip(data.series, splits, strict=True):
        label = data.label(series)
        n_val = len(series) - split
        if split < (1 if can_pad else context_length):
            raise DataError(
                f"{label}: {model} needs {context_length} past points before the first forecast "
                f"but the training part has {split}; the series needs at least "
                f"{context_length + n_val} points for this split (it has {len(series)}), or use "
                "a smaller window or season, or a smaller validation part",
                arguments=("window", "season"),
            )
        if n_val < horizon:
            raise DataError(
                f"{label}: the validation part has {n_val} point(s), fewer than the horizon "
                f"{horizon}; the series needs at least {split + horizon} points"
            )


def backtest(
    forecaster: Forecaster,
    data: SeriesData,
    splits: Sequence[int],
    *,
    stride: int = 1,
    refit: bool = False,
    season: int = 1,
    on_epoch: Callable[[EpochEnd], None] | None = None,
    quantiles: Sequence[float] | None = None,
    calibration_windows: int = 2,
    intervals: str = "required",
    mapper: Mapper | None = None,
) -> BacktestResult:
    """Fits on the training parts and scores rolling-origin forecasts of the validation parts.

    Args:
        forecaster: an unfitted forecaster; its ``horizon`` is T.
        data: the series.
        splits: per series, the index of the first validation step.
        stride: steps between forecast origins.
        refit: refit on all history before each origin (for cheap models); each series is
            then refitted on its own history, while without ``refit`` one forecaster is fitted
            on every series' training part.
        season: seasonal period of the MASE scale.
        on_epoch: hears of every training epoch (see :meth:`Forecaster.fit`).
        quantiles: levels in (0, 1) to forecast besides the points, from conformal intervals
            calibrated on a backtest inside the training parts
            (:func:`seqcast.evaluation.conformal.calibrate`; ``calibration_windows`` horizons
            of each series held out at least); scored by WQL, coverage and MSIS.
        intervals: ``required`` (a series too short to calibrate on is an error) or
            ``optional`` (the result then has no quantiles and says why in ``quantile_note``).
        mapper: with ``refit``, how the per-series refits run: an engine's ``map``
            (:mod:`seqcast.engines`), called with :func:`refit_series` and one
            :class:`RefitTask` per series; default here, one after another. Results are the
            same either way; only here does ``on_epoch`` hear of the refits' epochs.

    Returns:
        The scores, per target and averaged, with every forecast.
    """
    if stride < 1:
        raise DataError(f"stride must be at least 1, got {stride}", arguments=("stride",))
    horizon = forecaster.horizon
    check_lengths(
        data, splits, forecaster.context_length, horizon, forecaster.name, forecaster.can_pad
    )

    levels = () if quantiles is None else check_quantiles(quantiles)
    observed = data.observed()  # the actual values scored, and their scales: never a filled one
    data = forecaster.readable(data)  # gaps kept for a model that reads them, else carried
    trains = [s.values[:split] for s, split in zip(data.series, splits, strict=True)]
    fit_seconds = predict_seconds = 0.0
    started = time.perf_counter()
    conformal, note = None, ""
    if levels and not forecaster.has_quantiles:
        try:
            conformal = calibrate(
                forecaster,
                trains,
                data.n_targets,
                horizon,
                n_windows=calibration_windows,
                n_future=data.n_future,
            )
        except DataError as exc:
            if intervals == "required":
                raise
            levels, note = (), str(exc)
    if not refit:
        forecaster.fit(trains, data.n_targets, n_future=data.n_future, on_epoch=on_epoch)
        # Fitted without a gap, a model reads none: later gaps are carried forward for it.
        data = forecaster.readable(data)
    fit_seconds += time.perf_counter() - started

    context = forecaster.context_length
    refitted: list[tuple[np.ndarray, np.ndarray | None, tuple[float, float]]] = []
    if refit:
        spec = None if mapper is None else model_spec(forecaster)
        tasks = [
            RefitTask(spec, s.values, np.arange(split, len(s) - horizon + 1, stride),
                      data.n_targets, data.n_future, data.label(s), levels,
                      keep_model=k == len(data.series) - 1)
            for k, (s, split) in enumerate(zip(data.series, splits, strict=True))
        ]  # fmt: skip
        if mapper is None:  # here, with the forecaster itself: progress reaches on_epoch
            done, last = [], forecaster
            for task in tasks:
                result, last = _refit(forecaster, task, on_epoch)
                done.append(result)
            forecaster = last
        else:
            done = mapper(refit_series, tasks)
            last_model = done[-1].last_model if done else None
            if last_model is not None:
                forecaster = forecaster_from_spec(last_model)
        refitted = [(r.forecasts, r.quantiles, (r.fit_seconds, r.predict_seconds)) for r in done]
    forecasts: list[np.ndarray] = []
    actuals, origins = [], []
    quantile_forecasts: list[np.ndarray] = []  # a quantile model's own
    for series, seen, split in zip(data.series, observed.series, splits, strict=True):
        values = series.values
        starts = np.arange(split, len(series) - horizon + 1, stride)
        # (B, T, Ft) actual values, NaN where not observed (filled, or a gap): never scored.
        truth = np.array(sliding_windows(seen.values[:, : data.n_targets], horizon)[starts])
        if refit:
            predicted, bands, spent = refitted[len(forecasts)]
            fit_seconds, predict_seconds = fit_seconds + spent[0], predict_seconds + spent[1]
            if bands is not None:
                quantile_forecasts.append(bands)
        else:
            started = time.perf_counter()
            # A series too short is padded in front (the model checks that it may be).
            contexts = contexts_before(values, starts, context)  # (B, C, F)
            known = known_after(values, starts, horizon, data.n_future)  # (B, T, F_k)
            predicted = forecaster.predict(contexts, future=known)
            if levels and forecaster.has_quantiles:
                quantile_forecasts.append(
                    forecaster.predict_quantiles(contexts, levels, future=known)
                )
            predict_seconds += time.perf_counter() - started
        forecasts.append(predicted)
        actuals.append(truth)
        origins.append(starts)

    scores = score(observed, splits, forecasts, actuals, season)
    per_series = [
        score_one(observed, series, split, predicted, truth, season)
        for series, split, predicted, truth in zip(
            observed.series, splits, forecasts, actuals, strict=True
        )
    ]
    averaged = {
        name: metrics.mean_or_none([scores[t][name] for t in scores]) for name in METRIC_NAMES
    }
    probabilistic: dict[str, float | None] = {}
    if conformal is not None:
        scales = series_scales(trains, data.n_targets)  # (S, 1, Ft)
        floors = series_floors(trains, data.n_targets)  # (S, 1, Ft)
        quantile_forecasts = [
            conformal.quantiles(predicted, scales[i : i + 1], levels, floors[i : i + 1])
            for i, predicted in enumerate(forecasts)
        ]
    if levels:
        probabilistic, each = score_quantiles(
            actuals,
            quantile_forecasts,
            levels,
            [
                s.values[:split, : data.n_targets]
                for s, split in zip(observed.series, splits, strict=True)
            ],
            season,
        )
        per_series = [{**row, **extra} for row, extra in zip(per_series, each, strict=True)]
    return BacktestResult(
        model=forecaster.name,
        metrics=averaged,
        per_target=scores,
        forecasts=forecasts,
        actuals=actuals,
        origins=origins,
        fit_seconds=fit_seconds,
        predict_seconds=predict_seconds,
        epochs=forecaster.epochs_run,
        best_epoch=getattr(getattr(forecaster, "history_", None), "best_epoch", None),
        params=forecaster.n_params,
        forecaster=forecaster,
        per_series=per_series,
        quantiles=levels,
        quantile_forecasts=quantile_forecasts,
        probabilistic=probabilistic,
        quantile_source=(None if not levels else "conformal" if conformal else "network"),
        quantile_note=note,
    )


def score_one(
    data: SeriesData,
    series: Series,
    split: int,
    forecasts: np.ndarray,
    actuals: np.ndarray,
    season: int,
) -> dict[str, float | None]:
    """One series' metrics over its forecasts (n_origins, T, Ft), averaged over targets; MASE
    and MAPE are None where undefined (a constant training part, zeros)."""
    rows = []
    for k in range(data.n_targets):
        true, pred = _observed(actuals[..., k].ravel(), forecasts[..., k].ravel())
        row = _point_metrics(true, pred)
        try:
            scale = metrics.mase_scale(series.values[:split, k], min(season, split - 1))
            row["mase"] = metrics.mae(true, pred) / scale if len(true) else None
        except DataError:
            row["mase"] = None
        rows.append(row)
    return {name: metrics.mean_or_none([r[name] for r in rows]) for name in METRIC_NAMES}


def _observed(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs whose actual value was observed (finite)."""
    keep = np.isfinite(true)
    return true[keep], pred[keep]


def _point_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    """Every metric but MASE of forecasts ``pred`` against ``true`` (MAPE None at zeros;
    every one None without a point)."""
    if len(true) == 0:
        return dict.fromkeys(("mae", "mse", "rmse", "smape", "mape"))
    row: dict[str, float | None] = {
        "mae": metrics.mae(true, pred),
        "mse": metrics.mse(true, pred),
        "rmse": metrics.rmse(true, pred),
        "smape": metrics.smape(true, pred),
    }
    try:
        row["mape"] = metrics.mape(true, pred)
    except DataError:
        row["mape"] = None
    return row


def score(
    data: SeriesData,
    splits: Sequence[int],
    forecasts: Sequence[np.ndarray],
    actuals: Sequence[np.ndarray],
    season: int,
) -> dict[str, dict[str, float | None]]:
    """Every metric per target, pooling all series and forecast steps.

    MASE divides each series' errors by that series' own in-sample seasonal naive MAE.
    """
    result: dict[str, dict[str, float | None]] = {}
    for k, name in enumerate(data.targets):
        true = np.concatenate([a[..., k].ravel() for a in actuals])
        pred = np.concatenate([f[..., k].ravel() for f in forecasts])
        row = _point_metrics(*_observed(true, pred))
        try:
            scaled = np.concatenate(
                [
                    np.abs(a[..., k] - f[..., k]).ravel()
                    / metrics.mase_scale(s.values[:split, k], min(season, split - 1))
                    for s, split, a, f in zip(data.series, splits, actuals, forecasts, strict=True)
                ]
            )
            scaled = scaled[np.isfinite(scaled)]  # the observed points only
            row["mase"] = float(np.mean(scaled)) if len(scaled) else None
        except DataError:
            row["mase"] = None
        result[name] = row
    return result


@dataclass(frozen=True)
class RefitTask:
    """One series of a refit backtest, as plain data for any engine's worker.

    Attributes:
        spec: the unfitted forecaster (:func:`~seqcast.persistence.model_spec`); None where
            the refits run here, from the forecaster itself.
        values: (N, F) the series, gaps as the forecaster reads them.
        origins: (B,) the forecast origins; each refit sees the rows before its origin only.
        n_targets, n_future: the series' target and known-ahead channel counts.
        label: how errors name the series.
        levels: quantile levels a probabilistic forecaster forecasts too (else empty).
        keep_model: send the last refitted model back (the backtest's last series: the model
            it returns); the others' would be serialised for nothing.
    """

    spec: ModelSpec | None
    values: np.ndarray
    origins: np.ndarray
    n_targets: int
    n_future: int
    label: str
    levels: tuple[float, ...] = ()
    keep_model: bool = False


@dataclass(frozen=True)
class RefitResult:
    """What :func:`refit_series` returns: (B, T, Ft) forecasts, (B, T, Ft, Q) quantiles of a
    probabilistic forecaster (else None), the seconds spent, and the last refitted model's
    spec where the task asks for it (``keep_model``), else None."""

    forecasts: np.ndarray
    quantiles: np.ndarray | None
    fit_seconds: float
    predict_seconds: float
    last_model: ModelSpec | None = None


def refit_series(task: RefitTask) -> RefitResult:
    """Fits the forecaster again on the history before each origin of one series and forecasts
    the horizon from it: a pure function of the task, so any engine gives the same numbers.

    Raises:
        DataError: the task carries no spec.
    """
    if task.spec is None:
        raise DataError("a refit task for an engine needs the forecaster's spec")
    result, last = _refit(forecaster_from_spec(task.spec), task, None)
    return replace(result, last_model=model_spec(last)) if task.keep_model else result


def _refit(
    template: Forecaster, task: RefitTask, on_epoch: Callable[[EpochEnd], None] | None
) -> tuple[RefitResult, Forecaster]:
    """:func:`refit_series` from the forecaster itself; returns the last one fitted too."""
    horizon = template.horizon
    pieces, bands = [], []
    fit_seconds = predict_seconds = 0.0
    fresh = template
    for origin in task.origins:
        started = time.perf_counter()
        fresh = type(template)(**template.get_params())
        fresh.fit([task.values[:origin]], task.n_targets, n_future=task.n_future, on_epoch=on_epoch)
        fit_seconds += time.perf_counter() - started
        started = time.perf_counter()
        history = fresh.readable_values(task.values[:origin])
        past = fresh.last_contexts([history], [task.label])
        known = known_after(task.values, np.array([origin]), horizon, task.n_future)
        pieces.append(fresh.predict(past, future=known))
        if task.levels and fresh.has_quantiles:
            bands.append(fresh.predict_quantiles(past, task.levels, future=known))
        predict_seconds += time.perf_counter() - started
    shape = (0, horizon, task.n_targets)
    result = RefitResult(
        np.concatenate(pieces) if pieces else np.empty(shape),
        np.concatenate(bands) if bands else None,
        fit_seconds,
        predict_seconds,
    )
    return result, fresh
