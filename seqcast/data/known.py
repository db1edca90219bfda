"""Values of inputs known ahead at forecast steps, from a table a user gives.

A model fitted with future features (:func:`seqcast.data.loading.load_series`'s
``future_features``) needs their values at every step it forecasts: ``seqcast predict --future
FILE`` and ``Forecast.predict(X_df=...)`` give them as rows of the time column (and the id
column) and those columns, checked here for every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from seqcast.data.calendar import calendar_values
from seqcast.errors import DataError

__all__ = ["future_names", "future_rows", "known_ahead"]


def future_names(
    columns: Sequence[str], n_future: int, static: Sequence[str], calendar: Sequence[str]
) -> list[str]:
    """The future features among ``columns`` (laid out targets, features, future features,
    static features, calendar): the known inputs whose values a user must give."""
    width = len(columns)
    return list(columns[width - n_future : width - len(static) - len(calendar)])


def known_ahead(
    last: np.ndarray,
    index: pd.Index,
    named: np.ndarray | None,
    static: Sequence[str],
    calendar: Sequence[str],
) -> np.ndarray:
    """(T, F_k) values of the inputs known ahead at the T steps ``index`` after a history whose
    last row is ``last`` (F,): the future features' ``named`` values (T, F_u), the static
    features' last values repeated, then the calendar computed from the timestamps."""
    parts = [] if named is None else [named]
    if static:
        first = len(last) - len(calendar) - len(static)
        parts.append(np.repeat(last[None, first : first + len(static)], len(index), axis=0))
    if calendar:
        parts.append(calendar_values(pd.DatetimeIndex(index), list(calendar)))
    return np.hstack(parts)


def future_rows(
    future: pd.DataFrame | None,
    names: Sequence[str],
    index: pd.Index,
    time_col: str,
    id_col: str | None,
    series_id: Any,
    label: str,
    date_format: str | None = None,
    argument: str = "future",
) -> np.ndarray:
    """(T, F_u) values of the columns ``names`` of ``future`` at the T timestamps ``index`` of
    one series (its rows: ``id_col`` equal to ``series_id`` in long format); dates written
    as text are read with ``date_format`` when the model's data needed one; messages name
    the table as ``argument``.

    Raises:
        DataError: ``future`` is missing, lacks a column, lacks a step of the series (named by
            ``label``), or has a missing value there.
    """
    listed = ", ".join(names)
    if future is None:
        raise DataError(
            f"the model reads inputs known ahead ({listed}): give their values at the "
            f"forecast steps with {argument}",
            arguments=(argument,),
        )
    needed = [time_col, *([id_col] if id_col else []), *names]
    absent = [c for c in needed if c not in future.columns]
    if absent:
        raise DataError(
            f"{argument} has no column '{absent[0]}'; it needs {', '.join(needed)}",
            arguments=(argument,),
        )
    rows = future if not id_col else future[future[id_col].astype(str) == str(series_id)]
    times = rows[time_col]
    if isinstance(index, pd.DatetimeIndex):
        read = pd.to_datetime(times, format=date_format, errors="coerce")
        unread = read.isna().to_numpy()
        if unread.any():  # never matched by a wrong reading: refused
            value = times.iloc[int(np.flatnonzero(unread)[0])]
            written = f" as {date_format}" if date_format else ""
            raise DataError(
                f"{argument}, column '{time_col}': cannot read {value!r} as a date{written}",
                arguments=(argument,),
            )
        times = read
    table = rows.assign(**{time_col: times}).drop_duplicates(time_col).set_index(time_col)
    missing = index.difference(table.index)
    if len(missing):
        raise DataError(
            f"{argument} has no row for {label} at {missing[0]} ({len(missing)} of its "
            f"{len(index)} forecast steps missing)",
            arguments=(argument,),
        )
    picked = table.loc[index, list(names)]
    for name in names:
        numbers = pd.to_numeric(picked[name], errors="coerce")
        bad = numbers.isna() & picked[name].notna()
        if bad.any():
            at = picked.index[int(np.flatnonzero(bad.to_numpy())[0])]
            raise DataError(
                f"{argument}, column '{name}': {picked[name].loc[at]!r} for {label} at {at} is "
                "not a number",
                arguments=(argument,),
            )
        picked[name] = numbers
    values = picked.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataError(f"{argument} has missing values for {label}", arguments=(argument,))
    return values
