"""Time columns: found by their values, read as dates or numeric steps, sorted, completed
with the timestamps missing from their frequency, and checked for regular spacing.

Every problem is a :class:`~seqcast.errors.DataError` naming the column and row.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from seqcast.data.values import LARGEST_VALUE, ROW, Where, is_numeric_like, is_text, to_numeric
from seqcast.errors import DataError, SeqcastWarning

__all__ = ["check_spacing", "find_date_column", "insert_missing_times", "parse_time",
           "sort_by_time"]  # fmt: skip


def find_date_column(
    frame: pd.DataFrame,
    where: Where,
    available: Sequence[object],
    id_col: str | None,
    date_format: str | None,
    notes: list[str],
) -> str | None:
    """The one text column whose every value reads as a date, or None; two are refused."""
    found = []
    for column in available:
        values = frame[column]
        if column == id_col or not is_text(values) or is_numeric_like(values):
            continue
        try:
            dates = _read_dates(values.dropna(), date_format)
        except DataError as exc:
            raise DataError(
                f"{where.label}, column '{column}': {exc}", arguments=exc.arguments
            ) from exc
        if dates is not None:
            found.append(str(column))
        elif values.dropna().astype(str).str.match(_DATE_SHAPE).all():
            parse_time(frame, where, str(column))  # dates but one unreadable: names its row
    if len(found) > 1:
        raise DataError(
            f"{where.label}: columns '{found[0]}' and '{found[1]}' both hold dates; name the "
            "time column with time_col",
            arguments=("time_col",),
        )
    if found:
        note = (
            f"{where.label}: column '{found[0]}' holds dates and is the time column (name "
            "another with time_col)"
        )
        notes.append(note)
        warnings.warn(SeqcastWarning(note, arguments=("time_col",)), stacklevel=4)
        return found[0]
    return None


#: What a written date looks like: digits with - / . or space between them, or a month name.
_DATE_SHAPE = re.compile(
    r"^\s*(\d{1,4}[-/. ]\d{1,2}([-/. ]\d{1,4})?|\d{1,2}[-/. ]?[A-Za-z]{3,9}[-/. ]?\d{2,4}|"
    r"[A-Za-z]{3,9}[-/. ]?\d{1,2},?[-/. ]?\d{2,4}|[A-Za-z]{3,9}[-/. ]\d{4}|"
    r"\d{4}[-/. ]?[A-Za-z]{3,9})"
)


def _read_dates(values: pd.Series, date_format: str | None) -> pd.Series | None:
    """``values`` (no missing ones) read as dates, or None where one cannot be read.

    ISO 8601 (``1949-01``, ``2020-01-02 03:00``) is read as such; other forms must read one way
    only: where every value reads both day-first and month-first (``01/02/2020``) and the two
    readings differ, :class:`DataError` asks for ``date_format``.
    """
    if len(values) == 0:
        return None
    text = values.astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if date_format is not None:
            try:
                return pd.to_datetime(text, format=date_format)
            except (ValueError, TypeError, OverflowError):
                return None
        if not text.str.match(_DATE_SHAPE).all():
            return None
        try:
            return pd.to_datetime(text, format="ISO8601")
        except (ValueError, TypeError, OverflowError):
            pass
        readings = []
        first = text.iloc[0]
        for dayfirst in (False, True):
            guessed = guess_datetime_format(first, dayfirst=dayfirst)
            if guessed is None:
                continue
            with contextlib.suppress(ValueError, TypeError, OverflowError):
                readings.append((guessed, pd.to_datetime(text, format=guessed)))
        if not readings:  # forms pandas guesses no format for, such as "Jan 1949"
            try:
                return pd.to_datetime(text, format="mixed")
            except (ValueError, TypeError, OverflowError):
                return None
    (format_a, reading), *others = readings
    for format_b, other in others:
        if not reading.equals(other):
            at = int(np.flatnonzero((reading != other).to_numpy())[0])  # the first that differs
            raise DataError(
                f"dates such as {text.iloc[at]!r} read both as {reading.iloc[at]:%Y-%m-%d} "
                f"({format_a}) and as {other.iloc[at]:%Y-%m-%d} ({format_b}); say which with "
                "date_format",
                arguments=("date_format",),
            )
    return reading


def parse_time(
    frame: pd.DataFrame, where: Where, time_col: str, date_format: str | None = None
) -> pd.Series:
    """The time column as timestamps or numeric steps, every one present and finite.

    Raises:
        DataError: a value is missing, unreadable, or reads as a missing time (text such as
            ``NaT``, ``NaN`` or an empty string); the message names its row.
    """
    time = _read_time(frame, where, time_col, date_format)
    missing = time.isna().to_numpy()
    if missing.any():
        position = int(np.flatnonzero(missing)[0])
        raise DataError(
            f"{where.label}, column '{time_col}', {where.row(position)}: "
            f"{frame[time_col].iloc[position]!r} is not a timestamp (it reads as a missing one)"
        )
    return time


def _read_time(
    frame: pd.DataFrame, where: Where, time_col: str, date_format: str | None
) -> pd.Series:
    raw = frame[time_col]
    missing = raw.isna().to_numpy()
    if missing.any():
        position = int(np.flatnonzero(missing)[0])
        raise DataError(
            f"{where.label}, column '{time_col}', {where.row(position)}: missing timestamp"
        )
    numeric = pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw)
    if numeric or (is_text(raw) and pd.to_numeric(raw, errors="coerce").notna().all()):
        steps = to_numeric(raw, where, time_col)  # (text: large numbers kept exact to here)
        odd = ~(np.abs(steps.to_numpy()) <= LARGEST_VALUE)  # infinite, or beyond the limit
        if odd.any():
            position = int(np.flatnonzero(odd)[0])
            raise DataError(
                f"{where.label}, column '{time_col}', {where.row(position)}: time step "
                f"{steps.iloc[position]:.3g} is not a finite number within ±{LARGEST_VALUE:.0e}; "
                "number the steps 0, 1, 2, … or use dates"
            )
        return steps
    if pd.api.types.is_datetime64_any_dtype(raw):
        return raw
    try:
        dates = _read_dates(raw, date_format)
    except DataError as exc:
        raise DataError(
            f"{where.label}, column '{time_col}': {exc}", arguments=exc.arguments
        ) from exc
    if dates is not None:
        return pd.Series(dates, index=raw.index)
    if date_format is not None:
        unread = pd.to_datetime(raw.astype(str), format=date_format, errors="coerce").isna()
        position = int(np.flatnonzero(unread.to_numpy())[0]) if unread.any() else 0
        raise DataError(
            f"{where.label}, column '{time_col}', {where.row(position)}: cannot read "
            f"{raw.iloc[position]!r} as a date written {date_format}",
            arguments=("date_format",),
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            return pd.Series(pd.to_datetime(raw), index=raw.index)
        except (ValueError, TypeError, OverflowError):
            try:
                parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
            except ValueError as exc:  # different UTC offsets, which "coerce" does not cover
                raise _mixed_offsets(raw, where, time_col) from exc
    bad = parsed.isna().to_numpy()
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where.label}, column '{time_col}', {where.row(position)}: cannot parse "
            f"{raw.iloc[position]!r} as a timestamp"
        )
    return parsed


def _mixed_offsets(raw: pd.Series, where: Where, time_col: str) -> DataError:
    """The error for timestamps whose UTC offsets differ, naming the first that differs."""
    first = None
    for position, value in enumerate(raw):
        try:
            offset = pd.Timestamp(value).utcoffset()
        except (ValueError, TypeError, OverflowError):
            return DataError(
                f"{where.label}, column '{time_col}', {where.row(position)}: cannot parse "
                f"{value!r} as a timestamp"
            )
        if position == 0:
            first = offset
        elif offset != first:
            return DataError(
                f"{where.label}, column '{time_col}', {where.row(position)}: timestamp "
                f"{value!r} has {_offset_text(offset)} but {where.row(0)} has "
                f"{_offset_text(first)}; expected one offset for the whole column (convert the "
                "timestamps to UTC first)"
            )
    return DataError(f"{where.label}, column '{time_col}': cannot parse the timestamps")


def _offset_text(offset: object) -> str:
    return "no UTC offset" if offset is None else f"UTC offset {offset}"


def sort_by_time(
    group: pd.DataFrame, where: Where, label: str, time_col: str, notes: list[str]
) -> pd.DataFrame:
    time = group[time_col]
    duplicated = time.duplicated(keep="first").to_numpy()
    if duplicated.any():
        position = int(np.flatnonzero(duplicated)[0])
        value = time.iloc[position]
        first = int(group[ROW].to_numpy()[np.flatnonzero((time == value).to_numpy())[0]])
        row = int(group[ROW].iloc[position])
        raise DataError(
            f"{label}, column '{time_col}', {where.row(row)}: duplicate timestamp {value} "
            f"(also at {where.row(first)}); expected one row per time step"
        )
    if not time.is_monotonic_increasing:
        message = f"{label}: rows are not in time order; sorted them by '{time_col}'"
        warnings.warn(message, UserWarning, stacklevel=4)
        notes.append(message)
        group = group.sort_values(time_col, kind="stable")
    return group


#: Gap filling refuses a grid this many times longer than the data (a wrong frequency).
MOST_INSERTED = 10


def insert_missing_times(
    group: pd.DataFrame, label: str, time_col: str, fill: str, notes: list[str]
) -> pd.DataFrame:
    """Rows for the timestamps missing from a regular grid (their values then filled like
    missing values): the grid of the usual step, or of the calendar frequency of the first
    timestamps (months, quarters). Timestamps off every such grid are left for
    :func:`check_spacing` to name."""
    time = group[time_col]
    if len(time) < 3 or not pd.api.types.is_datetime64_any_dtype(time):
        return group
    index = pd.DatetimeIndex(time)
    if _infer_freq(index) is not None:
        return group  # regular already
    steps = np.diff(index.asi8)
    candidates: list[Any] = [pd.Timedelta(int(_mode(steps)), unit=index.unit)]
    start_freq = _infer_freq(index[:3])
    if start_freq is not None:
        candidates.insert(0, start_freq)
    for freq in candidates:
        try:
            grid = pd.date_range(index[0], index[-1], freq=freq)
        except (ValueError, OverflowError):
            continue
        if len(grid) > MOST_INSERTED * len(index) or not index.isin(grid).all():
            continue
        missing = grid.difference(index)
        if len(missing) == 0:
            continue
        added = pd.DataFrame({time_col: missing})
        for column in group.columns:
            if column == ROW:  # the row before each gap names it in later messages
                before = np.searchsorted(index.asi8, missing.asi8) - 1
                added[column] = group[ROW].to_numpy()[np.maximum(before, 0)]
            elif column != time_col:
                # Ids and other constant columns repeat; values become missing, then filled.
                constant = group[column].nunique(dropna=False) == 1
                added[column] = group[column].iloc[0] if constant else np.nan
        group = pd.concat([group, added], ignore_index=True).sort_values(time_col, kind="stable")
        shown = ", ".join(str(t.date()) if t == t.normalize() else str(t) for t in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        step = freq if isinstance(freq, str) else str(pd.tseries.frequencies.to_offset(freq))
        message = (
            f"{label}: added {len(missing)} missing timestamp(s) at frequency {step} "
            f"({shown}{more}); "
            + (
                "their targets are gaps (fill mask)"
                if fill == "mask"
                else f"their values are filled with {fill}"
            )
        )
        warnings.warn(message, UserWarning, stacklevel=4)
        notes.append(message)
        return group
    return group


def check_spacing(
    group: pd.DataFrame, where: Where, label: str, time_col: str
) -> tuple[str | None, float]:
    time = group[time_col]
    if len(time) < 2:
        return None, 1.0
    rows = group[ROW].to_numpy()
    if pd.api.types.is_datetime64_any_dtype(time):
        index = pd.DatetimeIndex(time)
        freq = _infer_freq(index)
        if freq is not None:
            return freq, 1.0
        steps = np.diff(index.asi8)
        if len(index) < 3:
            step = pd.Timedelta(int(steps[0]), unit=index.unit)
            return pd.tseries.frequencies.to_offset(step).freqstr, 1.0
        usual = _mode(steps)
        position = int(np.flatnonzero(steps != usual)[0]) + 1
        # Months, quarters and business days have steps of different lengths: there the first
        # step off the usual length is no mistake, but the first step off the calendar is.
        start_freq = _infer_freq(index[:3])
        if start_freq is not None:
            expected = pd.date_range(index[0], periods=len(index), freq=start_freq)
            calendar_off = np.flatnonzero(index != expected)
            if len(calendar_off) and calendar_off[0] > position:
                position = int(calendar_off[0])
                raise DataError(
                    f"{label}, column '{time_col}', {where.row(int(rows[position]))}: irregular "
                    f"spacing ({index[position - 1]} to {index[position]}, while the frequency "
                    f"'{start_freq}' of the first timestamps expects {expected[position]}); "
                    "resample to a regular frequency first, or pass fill ffill or interpolate "
                    "to add the missing timestamps",
                    arguments=("fill",),
                )
        raise DataError(
            f"{label}, column '{time_col}', {where.row(int(rows[position]))}: irregular spacing "
            f"({index[position - 1]} to {index[position]}, while most steps are "
            f"{pd.Timedelta(int(usual), unit=index.unit)}); resample to a regular frequency "
            "first, or pass fill ffill, interpolate or mask to add missing timestamps",
            arguments=("fill",),
        )
    values = time.to_numpy(dtype=np.float64)
    steps_f = np.diff(values)
    usual_f = float(_mode(steps_f))
    off = ~np.isclose(steps_f, usual_f, rtol=1e-9, atol=1e-9)
    if usual_f <= 0 or off.any():
        position = int(np.flatnonzero(off)[0]) + 1 if off.any() else 1
        raise DataError(
            f"{label}, column '{time_col}', {where.row(int(rows[position]))}: irregular spacing "
            f"({values[position - 1]:g} to {values[position]:g}, while most steps are "
            f"{usual_f:g}); expected evenly spaced steps"
        )
    return None, usual_f


def _infer_freq(index: pd.DatetimeIndex) -> str | None:
    """pandas' inferred frequency string, or None (needs three timestamps)."""
    if len(index) < 3:
        return None
    try:
        with pd.option_context("future.infer_freq_returns_offset", True):
            offset = pd.infer_freq(index)
    except (KeyError, pd.errors.OptionError):  # pandas without that option returns a string
        offset = pd.infer_freq(index)
    if offset is None:
        return None
    return offset if isinstance(offset, str) else str(offset.freqstr)


def _mode(values: np.ndarray) -> np.generic:
    uniques, counts = np.unique(values, return_counts=True)
    return uniques[int(np.argmax(counts))]  # type: ignore[no-any-return]
