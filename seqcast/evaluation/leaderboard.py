"""Every requested model backtested on the same split, sorted by accuracy."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from seqcast.data.frame import SeriesData
from seqcast.errors import DataError
from seqcast.evaluation.backtest import BacktestResult, Mapper, backtest, check_lengths
from seqcast.evaluation.metrics import finite_or_none
from seqcast.evaluation.probabilistic import quantile_name
from seqcast.forecasters.base import EpochEnd
from seqcast.forecasters.registry import create_for

__all__ = ["Leaderboard", "run_leaderboard"]


@dataclass
class Leaderboard:
    """Backtest results of several models on one split, best (lowest MAE) first."""

    dataset: str
    targets: list[str]
    window: int
    horizon: int
    val_sizes: list[int]
    season: int
    results: list[BacktestResult]
    series_ids: list[str | None] = field(default_factory=list)
    quantiles: tuple[float, ...] = ()

    @property
    def val_size(self) -> int | None:
        """Validation points per series when every series has as many, else None."""
        return self.val_sizes[0] if len(set(self.val_sizes)) == 1 else None

    def describe_validation(self) -> str:
        """``"461 validation points"``, or their range over the series when they differ."""
        if self.val_size is not None:
            return f"{self.val_size} validation points"
        return f"{min(self.val_sizes)} to {max(self.val_sizes)} validation points"

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document of ``seqcast backtest``."""
        return {
            "dataset": self.dataset,
            "targets": self.targets,
            "window": self.window,
            "horizon": self.horizon,
            "val_size": self.val_size,
            "val_sizes": self.val_sizes,
            "season": self.season,
            "quantiles": list(self.quantiles),
            "pooling": "each metric pools every series' forecast errors; series_mean is the "
            "mean over series of each series' own score (mae, mse and rmse mix the series' "
            "units either way: compare series of different levels on smape, mape or mase); "
            "wql weighs every series by its size (2·Σ pinball / Σ |y| over all series and steps, "
            "the mean over the quantiles), coverage_<level> is the share of actual values inside "
            "each central interval, msis the mean over series of M4's scaled interval score",
            "results": [r.summary() for r in self.results],
            "series": [
                {
                    "id": series_id,
                    **{
                        r.model: {k: finite_or_none(v) for k, v in r.per_series[i].items()}
                        for r in self.results
                    },
                }
                for i, series_id in enumerate(self.series_ids)
            ],
        }

    def forecast_frame(self, data: SeriesData) -> pd.DataFrame:
        """Every forecast in long format: one row per series, origin and step, with the series
        id (when there are several), the time of the forecast step, the last time the model saw
        (``cutoff``), the actual values and each model's forecast, per target."""
        first = self.results[0]
        frames = []
        for i, series in enumerate(data.series):
            starts = first.origins[i]
            steps = np.arange(self.horizon)
            position = (starts[:, None] + steps[None, :]).ravel()  # (n_origins·T,)
            cutoff = np.repeat(starts - 1, self.horizon)
            frame = pd.DataFrame()
            if data.id_col is not None:
                frame[data.id_col] = [series.series_id] * len(position)
            time_name = data.time_col or "step"
            if series.time is None:
                frame[time_name], frame["cutoff"] = position, cutoff
            else:
                frame[time_name] = np.asarray(series.time[position])
                frame["cutoff"] = np.asarray(series.time[cutoff])
            for k, target in enumerate(data.targets):
                frame[target] = first.actuals[i][..., k].ravel()
                for result in self.results:
                    column = result.model if data.n_targets == 1 else f"{result.model}:{target}"
                    frame[column] = result.forecasts[i][..., k].ravel()
                    for j, q in enumerate(result.quantiles):
                        frame[quantile_name(column, q)] = result.quantile_forecasts[i][
                            ..., k, j
                        ].ravel()
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)


def run_leaderboard(
    data: SeriesData,
    models: Sequence[str],
    settings: Mapping[str, Any],
    splits: Sequence[int],
    *,
    stride: int = 1,
    refit: bool = False,
    on_start: Callable[[str], None] | None = None,
    on_epoch: Callable[[EpochEnd], None] | None = None,
    quantiles: Sequence[float] | None = None,
    intervals: str = "required",
    mapper: Mapper | None = None,
) -> Leaderboard:
    """Backtests each model (built from ``settings``) on the same split and ranks them by MAE.

    Args:
        data: the series.
        models: model names (``seqcast.forecasters.registry.model_names()``).
        settings: constructor arguments shared by the models (window, horizon, season, seed,
            training settings); each model takes those it has.
        splits: per series, the first validation index.
        stride: steps between forecast origins.
        refit: refit before every origin (cheap models only).
        on_start: called with each model name before it runs (progress display).
        on_epoch: hears of every training epoch of the neural models.
        quantiles: levels in (0, 1) each model also forecasts, from conformal intervals
            calibrated on the training parts (see :func:`backtest`); ``intervals`` says
            whether a model that cannot calibrate them is an error (``required``) or goes
            without (``optional``).
        mapper: how ``refit``'s per-series fits run (an engine's ``map``; see
            :func:`~seqcast.evaluation.backtest.backtest`).
    """
    if not models:
        raise DataError("give at least one model to backtest", arguments=("models",))
    forecasters = [create_for(name, settings) for name in dict.fromkeys(models)]
    season = int(settings.get("season", 1))
    for forecaster in forecasters:  # fail on a too-short series before any work
        check_lengths(
            data,
            splits,
            forecaster.context_length,
            forecaster.horizon,
            forecaster.name,
            forecaster.can_pad,
        )
    results = []
    for forecaster in forecasters:
        if on_start is not None:
            on_start(forecaster.name)
        results.append(
            backtest(
                forecaster,
                data,
                splits,
                stride=stride,
                refit=refit,
                season=season,
                on_epoch=on_epoch,
                quantiles=quantiles,
                intervals=intervals,
                mapper=mapper,
            )
        )
    results.sort(key=lambda r: (r.metrics["mae"] is None, r.metrics["mae"]))
    return Leaderboard(
        dataset=data.source,
        targets=list(data.targets),
        window=forecasters[0].window,
        horizon=forecasters[0].horizon,
        val_sizes=[len(s) - split for s, split in zip(data.series, splits, strict=True)],
        season=season,
        results=results,
        series_ids=[s.series_id for s in data.series],
        quantiles=next((r.quantiles for r in results if r.quantiles), ()),
    )
