"""The in-memory form of one or many time series, as every other module receives it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from seqcast.data.gaps import carry_forward, has_gaps

__all__ = ["Series", "SeriesData", "future_index"]


@dataclass(frozen=True)
class Series:
    """One series: ``values`` of shape (N, C), targets first, then input features.

    Attributes:
        values: float64 array (N, C); channel order is ``SeriesData.columns``.
        time: timestamps or numeric steps of length N, or None when rows are steps.
        series_id: the value of the id column in long format, else None.
        unobserved: (N,) True where a target value of the row was not observed (filled, or
            missing with ``fill`` ``mask``), or None when every row was: such rows are never
            scored (see :mod:`seqcast.data.gaps`).
    """

    values: np.ndarray
    time: pd.Index | None = None
    series_id: str | None = None
    unobserved: np.ndarray | None = None

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
        date_format: how the time column's dates were written, when it was given.
        notes: what validation did to the data (filled values, sorted rows), for the report.
        n_future: how many of the last channels are known ahead (future features, then the
            calendar): their values at the forecast steps are inputs too.
        calendar: the names of the calendar channels (the last ones), computed from the
            timestamps (:mod:`seqcast.data.calendar`), for any future step too.
        static: the names of the static channels, constant within each series (just before
            the calendar): known ahead, as their own last value.
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
    date_format: str | None = None
    notes: tuple[str, ...] = field(default=())
    n_future: int = 0
    calendar: tuple[str, ...] = ()
    static: tuple[str, ...] = ()

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

    @property
    def has_gaps(self) -> bool:
        """Whether some values are missing (NaN): loaded with ``fill`` ``mask``."""
        return any(has_gaps(s.values) for s in self.series)

    def carried_forward(self) -> SeriesData:
        """The same data with each gap carried forward from the value before it (for models
        that do not read gaps); which rows were unobserved is kept."""
        if not self.has_gaps:
            return self
        series = tuple(replace(s, values=carry_forward(s.values)) for s in self.series)
        return replace(self, series=series)

    def observed(self) -> SeriesData:
        """The same data with every unobserved target value (filled, or a gap) missing (NaN):
        what scores and their scales are computed from, whatever filled the data."""
        if all(s.unobserved is None for s in self.series):
            return self
        series = []
        for s in self.series:
            values = np.array(s.values)
            if s.unobserved is not None:
                values[s.unobserved, : self.n_targets] = np.nan
            series.append(replace(s, values=values))
        return replace(self, series=tuple(series))

    def label(self, series: Series) -> str:
        """How messages name ``series``: by its id in long format, else by the data's source."""
        return self.source if series.series_id is None else f"series '{series.series_id}'"

    def future_time(self, series: Series, horizon: int) -> pd.Index:
        """Timestamps (or steps) of the ``horizon`` points after the end of ``series``."""
        last = None if series.time is None else series.time[-1]
        return future_index(
            last, horizon, length=len(series), freq=self.freq, step=self.step, name=self.time_col
        )


def future_index(
    last_time: object,
    horizon: int,
    *,
    length: int,
    freq: str | None,
    step: float = 1.0,
    name: str | None = None,
) -> pd.Index:
    """The ``horizon`` timestamps after ``last_time``.

    Args:
        last_time: the last timestamp (datetime-like or ISO string), a number for numeric
            time columns, or None when rows are steps (then steps ``length`` onwards).
        horizon: number of future steps T.
        length: length of the series, for step numbering.
        freq: pandas frequency of datetime timestamps.
        step: spacing of numeric time.
        name: name of the index (the time column).
    """
    if last_time is None:
        return pd.RangeIndex(length, length + horizon, name="step")
    if isinstance(last_time, int | float | np.number):
        values = float(last_time) + step * np.arange(1, horizon + 1)
        numeric: pd.Index = pd.Index(values, name=name)
        return numeric
    if freq is None:
        raise ValueError("the series has timestamps but no inferred frequency")
    start = pd.Timestamp(last_time)  # type: ignore[arg-type]
    future: pd.Index = pd.date_range(start=start, periods=horizon + 1, freq=freq)[1:]
    future.name = name
    return future
