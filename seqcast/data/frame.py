"""The in-memory form of one or many time series, as every other module receives it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Series", "SeriesData"]


@dataclass(frozen=True)
class Series:
    """One series: ``values`` of shape (N, C), targets first, then input features.

    Attributes:
        values: float64 array (N, C); channel order is ``SeriesData.columns``.
        time: timestamps or numeric steps of length N, or None when rows are steps.
        series_id: the value of the id column in long format, else None.
    """

    values: np.ndarray
    time: pd.Index | None = None
    series_id: str | None = None

    def __len__(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True)
class SeriesData:
    """A validated collection of series sharing the same columns.

    Attributes:
        series: one or more series (several only in long format).
        columns: channel names, the ``n_targets`` targets first, then the input features.
        n_targets: how many leading channels are forecast.
        freq: pandas frequency string of the timestamps, or None.
        step: spacing of numeric time columns (1.0 when rows are steps).
        source: file name or dataset name, for messages and reports.
        time_col: name of the time column, or None.
        id_col: name of the id column (long format), or None.
        season: the natural seasonal period when known (built-in data), else None.
        notes: what validation did to the data (filled values, sorted rows), for the report.
    """

    series: tuple[Series, ...]
    columns: tuple[str, ...]
    n_targets: int
    freq: str | None = None
    step: float = 1.0
    source: str = "<data>"
    time_col: str | None = None
    id_col: str | None = None
    season: int | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def targets(self) -> tuple[str, ...]:
        return self.columns[: self.n_targets]

    @property
    def features(self) -> tuple[str, ...]:
        return self.columns[self.n_targets :]

    @property
    def n_features(self) -> int:
        """Number of input channels F (targets and features)."""
        return len(self.columns)

    @property
    def lengths(self) -> list[int]:
        return [len(s) for s in self.series]

    def future_time(self, series: Series, horizon: int) -> pd.Index:
        """Timestamps (or steps) of the ``horizon`` points after the end of ``series``."""
        if series.time is None:
            start = len(series)
            return pd.RangeIndex(start, start + horizon, name="step")
        last = series.time[-1]
        if isinstance(series.time, pd.DatetimeIndex):
            if self.freq is None:
                raise ValueError("the series has timestamps but no inferred frequency")
            future = pd.date_range(start=last, periods=horizon + 1, freq=self.freq)[1:]
            return future.rename(series.time.name)
        values = float(last) + self.step * np.arange(1, horizon + 1)
        return pd.Index(values, name=series.time.name)
