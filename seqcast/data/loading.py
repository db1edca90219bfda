"""Reading and validating series from CSV, Parquet, pandas and numpy.

Every problem found is raised as :class:`~seqcast.errors.DataError` with the file, column, row
and what was expected. Rows are counted from 1 after the header; for files the line number is
given too.
"""

from __future__ import annotations

import contextlib
import decimal
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from seqcast.data.calendar import CALENDARS, calendar_names, calendar_values
from seqcast.data.frame import Series, SeriesData
from seqcast.errors import DataError, SeqcastWarning

__all__ = ["FILL_POLICIES", "FillPolicy", "load_series"]

FillPolicy = Literal["error", "ffill", "interpolate", "drop", "mask"]
FILL_POLICIES: tuple[str, ...] = get_args(FillPolicy)
TIME_COLUMN_NAMES = ("date", "datetime", "timestamp", "time", "ds")
_ROW = "_seqcast_row"
#: The largest magnitude a value may have: variances and squared errors of larger ones
#: overflow float64 (about 1.8e308).
LARGEST_VALUE = 1e150


@dataclass(frozen=True)
class _Where:
    """Where the data came from, to phrase messages."""

    label: str
    has_lines: bool

    def row(self, position: int) -> str:
        """Describes the data row at 0-based ``position`` of the original table."""
        if self.has_lines:
            return f"row {position + 1} (line {position + 2})"
        return f"row {position + 1}"


def load_series(
    source: str | os.PathLike[str] | pd.DataFrame | np.ndarray,
    *,
    targets: Sequence[str] | None = None,
    features: Sequence[str] | None = None,
    time_col: str | None = None,
    id_col: str | None = None,
    fill: FillPolicy = "error",
    season: int | None = None,
    date_format: str | None = None,
    max_input_bytes: int | None = None,
    future_features: Sequence[str] | None = None,
    calendar: str = "none",
    static_features: Sequence[str] | None = None,
) -> SeriesData:
    """Reads, validates and arranges one or many series.

    Wide format: an optional time column and numeric columns. Long format (``id_col`` given):
    one row per series and time step. Without ``targets`` the one numeric column is the target
    (several are an error listing them; an array's columns are all targets); with them, the
    other numeric columns become input features (unless ``features`` says which).

    Args:
        source: a CSV or Parquet path, a DataFrame, or an array of shape (N,) or (N, C).
        targets: columns to forecast.
        features: extra input columns (past covariates).
        time_col: column of timestamps or numeric steps; found by name when omitted
            (date, datetime, timestamp, time, ds), else the one column holding dates (a
            DataFrame's DatetimeIndex counts as one, named after the index or ``ds``), else
            the one text column whose every value reads as a date (a note says which; two such
            columns are an error naming both).
        id_col: column naming the series in long format.
        fill: what to do with missing values: ``error``, ``ffill``, ``interpolate``, ``drop``
            or ``mask`` (targets stay missing: gaps that models read natively or carry
            forward; features are carried forward). All but ``error`` and ``drop`` also add
            the timestamps missing from the frequency; the rows not observed are marked
            (:attr:`Series.unobserved`) and never scored.
        season: the natural seasonal period, when known.
        date_format: how the time column's dates are written (``strftime`` codes, such as
            ``%d/%m/%Y``); needed only where they read two ways (day or month first).
        max_input_bytes: a file larger than this is refused before it is read (None: any).
        future_features: input columns known ahead (planned prices, holidays): a model reads
            their values at the forecast steps too, so forecasting needs them for the horizon.
        calendar: ``auto`` adds the calendar cycles of the frequency as inputs known ahead
            (:mod:`seqcast.data.calendar`; none without dates); ``none`` adds none.
        static_features: columns constant within each series (a store's size, a product's
            category code): inputs known ahead whose future values are their own.

    Returns:
        The validated data: values (N, C) per series, targets first.

    Raises:
        DataError: the data cannot be used; the message says where and why.

    Example:
        >>> data = load_series(np.arange(10.0))
        >>> data.series[0].values.shape
        (10, 1)
    """
    if fill not in FILL_POLICIES:
        raise DataError(f"unknown fill policy '{fill}'; expected one of {', '.join(FILL_POLICIES)}")
    if calendar not in CALENDARS:
        raise DataError(
            f"unknown calendar '{calendar}'; expected one of {', '.join(CALENDARS)}",
            arguments=("calendar",),
        )
    frame, where = _read(source, max_input_bytes)
    frame = _drop_index_artifacts(frame)
    if frame.shape[1] == 0:
        raise DataError(f"{where.label} has no columns")
    if len(frame) == 0:
        raise DataError(f"{where.label} has a header but no data rows")
    names = [str(c) for c in frame.columns]
    _refuse_repeated(names, where)
    if _ROW in names:
        raise DataError(f"{where.label}: the column name '{_ROW}' is reserved; rename it")
    frame = frame.copy()
    frame[_ROW] = np.arange(len(frame))

    available = [c for c in frame.columns if c != _ROW]
    for name, option in ((time_col, "time column"), (id_col, "id column")):
        if name is not None and name not in available:
            raise DataError(_unknown_column(where, name, option, available))
    if time_col is None:
        time_col = next((c for c in available if str(c).lower() in TIME_COLUMN_NAMES), None)
    notes: list[str] = []
    if time_col is None:  # a Parquet or pandas column of dates is the time, whatever its name
        dated = [c for c in available if pd.api.types.is_datetime64_any_dtype(frame[c])]
        time_col = dated[0] if len(dated) == 1 else None
    if time_col is None:  # else a text column of dates, such as Month holding 1949-01
        time_col = _find_date_column(frame, where, available, id_col, date_format, notes)
    reserved = {time_col, id_col}
    for name in [
        *(targets or []),
        *(features or []),
        *(future_features or []),
        *(static_features or []),
    ]:
        if name in reserved:
            role = "time" if name == time_col else "id"
            raise DataError(
                f"{where.label}: column '{name}' is the {role} column; it cannot also be a "
                "target or a feature"
                + (" (pass time_col to name another)" if role == "time" else ""),
                arguments=("time_col",),
            )
    candidates = [c for c in available if c not in reserved]
    named = not isinstance(source, np.ndarray)  # an array's columns have no names to give
    planned = list(dict.fromkeys(future_features or []))
    static = list(dict.fromkeys(static_features or []))
    both = [c for c in static if c in planned]
    if both:
        raise DataError(f"column '{both[0]}' is both a future feature and a static feature")
    known = [*planned, *static]
    for name in known:
        role = "future feature" if name in planned else "static feature"
        if name not in candidates:
            raise DataError(_unknown_column(where, name, f"{role} column", candidates))
        if name in (targets or []):
            raise DataError(f"column '{name}' is both a target and a {role}")
    targets, features = _choose_columns(
        frame, where, [c for c in candidates if c not in known], targets, features, id_col, named
    )
    columns = [*targets, *features, *known]

    for col in columns:
        frame[col] = _to_numeric(frame[col], where, col)
        _check_finite(frame, where, col)

    time: pd.Series | None = None
    if time_col is not None:
        time = _parse_time(frame, where, time_col, date_format)
        frame[time_col] = time

    groups: list[tuple[str | None, pd.DataFrame]]
    if id_col is not None:
        missing_id = frame[id_col].isna().to_numpy()
        if missing_id.any():  # groupby would drop these rows without a word
            position = int(np.flatnonzero(missing_id)[0])
            raise DataError(
                f"{where.label}, column '{id_col}', {where.row(position)}: missing series id "
                f"({int(missing_id.sum())} row(s) without one); expected every row to name its "
                "series"
            )
        groups = [(str(k), g) for k, g in frame.groupby(id_col, sort=False)]
    else:
        groups = [(None, frame)]

    series: list[Series] = []
    freq: str | None = None
    step = 1.0
    cycles: list[str] | None = None  # the calendar columns, from the first series' timestamps
    for series_id, group in groups:
        label = where.label if series_id is None else f"{where.label}, series '{series_id}'"
        if time_col is not None:
            group = _sort_by_time(group, where, label, time_col, notes)
            if fill in ("ffill", "interpolate", "mask"):
                group = _insert_missing_times(group, label, time_col, fill, notes)
            group_freq, group_step = _check_spacing(group, where, label, time_col)
            if series and group_freq != freq:
                raise DataError(
                    f"{label} has frequency {group_freq} but the first series has {freq}; "
                    "all series must share one frequency"
                )
            freq, step = group_freq, group_step
        # Rows whose targets were not observed (missing, or added for a missing timestamp):
        # never scored, whether filled or masked.
        unobserved = group[targets].isna().any(axis=1).to_numpy()
        group = _handle_missing(group, where, label, columns, targets, fill, notes)
        for name in static:
            if group[name].nunique() > 1:
                raise DataError(
                    f"{label}: static feature column '{name}' takes {group[name].nunique()} "
                    "values; a static feature is constant within each series",
                    arguments=("static_features",),
                )
        values = group[columns].to_numpy(dtype=np.float64)
        index = None if time_col is None else pd.Index(group[time_col], name=time_col)
        if calendar == "auto":
            if cycles is None:
                cycles = calendar_names(index) if index is not None else []
            if cycles and index is not None:
                values = np.hstack([values, calendar_values(pd.DatetimeIndex(index), cycles)])
        kept = unobserved if fill != "drop" and unobserved.any() else None
        series.append(Series(values=values, time=index, series_id=series_id, unobserved=kept))

    if calendar == "auto" and not cycles:
        notes.append(
            f"{where.label}: no calendar inputs (they need dates spaced less than a year apart)"
        )
    cycles = cycles or []
    return SeriesData(
        series=tuple(series),
        columns=tuple(str(c) for c in [*columns, *cycles]),
        n_targets=len(targets),
        n_future=len(known) + len(cycles),
        calendar=tuple(cycles),
        static=tuple(static),
        freq=freq,
        step=step,
        source=where.label,
        time_col=time_col,
        id_col=id_col,
        season=season,
        date_format=date_format,
        notes=tuple(notes),
    )


def _read(
    source: str | os.PathLike[str] | pd.DataFrame | np.ndarray,
    max_input_bytes: int | None = None,
) -> tuple[pd.DataFrame, _Where]:
    if isinstance(source, pd.DataFrame):
        frame = source
        index_name = str(source.index.name or "ds")
        if isinstance(source.index, pd.DatetimeIndex) and index_name not in source.columns:
            # The timestamps, as pandas keeps them: they become the time column.
            frame = source.rename_axis(index_name).reset_index()
        # Columns are named by strings everywhere (options, messages, saved models).
        frame = frame.reset_index(drop=True).rename(columns=str)
        return frame, _Where("the DataFrame", has_lines=False)
    if isinstance(source, np.ndarray):
        array = np.asarray(source)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2:
            raise DataError(f"the array has shape {array.shape}; expected (N,) or (N, C)")
        names = ["y"] if array.shape[1] == 1 else [f"y{i}" for i in range(array.shape[1])]
        return pd.DataFrame(array, columns=names), _Where("the array", has_lines=False)
    path = Path(source)
    suffixes = "".join(path.suffixes).lower()
    is_parquet = ".parquet" in suffixes or suffixes.endswith(".pq")
    where = _Where(f"file '{path}'", has_lines=not is_parquet)  # a Parquet file has no lines
    if not path.exists():
        raise DataError(f"{where.label} does not exist")
    if path.is_dir():
        raise DataError(f"{where.label} is a folder; expected a CSV or Parquet file")
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{where.label} is empty")
    if max_input_bytes is not None and size > max_input_bytes:
        raise DataError(
            f"{where.label} holds {size:,} bytes, above max_input_bytes {max_input_bytes:,}; "
            "raise the limit to read it (a table takes several times its file's size in memory)",
            arguments=("max_input_bytes",),
        )
    if is_parquet:
        return _read_parquet(path, where), where
    try:
        frame = pd.read_csv(path)
        # pandas renames a repeated header ('sales', 'sales.1'): read the header as written.
        first_line = pd.read_csv(path, nrows=1, header=None, dtype=str).iloc[0]
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{where.label} is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise DataError(f"{where.label} is not a CSV table ({_reason(exc)})") from exc
    _refuse_repeated([str(v) for v in first_line if isinstance(v, str)], where)
    # Integers with a missing value are read as floats, which may merge distinct large ones:
    # such columns are read again as text, so that their exact values are checked.
    inexact = [
        str(col)
        for col in frame.columns
        if pd.api.types.is_float_dtype(frame[col])
        and (np.abs(frame[col].to_numpy()) > EXACT_INTEGERS).any()
    ]
    if inexact:
        text = pd.read_csv(path, usecols=inexact, dtype=str)
        for col in inexact:
            frame[col] = text[col].astype(object)
    if frame.shape[1] == 1:
        header = str(frame.columns[0])
        if any(sep in header for sep in (";", "\t", "|")):
            raise DataError(
                f"{where.label} has one column '{header}'; expected comma-separated columns "
                "(the file seems to use another separator)"
            )
    return frame, where


def _read_parquet(path: Path, where: _Where) -> pd.DataFrame:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DataError(
            f"reading {where.label} needs pyarrow: pip install 'seqcast[parquet]'"
        ) from exc
    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises many types for a corrupt file
        raise DataError(f"{where.label} is not a Parquet table ({_reason(exc)})") from exc
    _refuse_repeated(names, where)
    try:
        table = pq.read_table(path)
        table.validate(full=True)  # text that is not UTF-8, found now and not mid-way
        frame: pd.DataFrame = table.to_pandas()
    except Exception as exc:
        raise DataError(f"{where.label} is not a Parquet table ({_reason(exc)})") from exc
    for position, field in enumerate(table.schema):
        # pandas turns integers with a missing value into floats, which may merge distinct
        # large ones: such columns keep their exact values, checked when read as numbers.
        if pa.types.is_integer(field.type) and frame.iloc[:, position].dtype.kind == "f":
            frame[field.name] = pd.Series(
                table.column(position).to_pylist(), index=frame.index, dtype=object
            )
    return frame


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message, control characters escaped: pyarrow and
    pandas messages run over several lines and may quote raw bytes."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in first)


def _refuse_repeated(names: Sequence[str], where: _Where) -> None:
    """Refuses a table whose header repeats a name (pandas would rename or refuse it)."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(
            f"{where.label} has several columns named '{repeated[0]}'; give each column its "
            "own name"
        )


def _drop_index_artifacts(frame: pd.DataFrame) -> pd.DataFrame:
    """Drops 'Unnamed: 0' columns that only repeat the row number (pandas' saved index)."""
    drop = []
    for col in frame.columns:
        if str(col).startswith("Unnamed: "):
            values = frame[col]
            if pd.api.types.is_integer_dtype(values) and np.array_equal(
                values.to_numpy(), np.arange(len(frame))
            ):
                drop.append(col)
    return frame.drop(columns=drop)


def _unknown_column(where: _Where, name: str, option: str, available: Sequence[object]) -> str:
    listed = ", ".join(f"'{c}'" for c in available)
    return f"{where.label} has no {option} '{name}'; available columns: {listed}"


def _is_numeric_like(values: pd.Series) -> bool:
    # Dates convert to numbers (nanoseconds since 1970), but they are never a value to forecast.
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return False
    if pd.api.types.is_numeric_dtype(values):
        return True
    return bool(pd.to_numeric(values, errors="coerce").notna().any())


def _choose_columns(
    frame: pd.DataFrame,
    where: _Where,
    candidates: Sequence[object],
    targets: Sequence[str] | None,
    features: Sequence[str] | None,
    id_col: str | None,
    named: bool = True,
) -> tuple[list[str], list[str]]:
    for name in [*(targets or []), *(features or [])]:
        if name not in candidates:
            raise DataError(_unknown_column(where, name, "column", candidates))
    numeric = [str(c) for c in candidates if _is_numeric_like(frame[c])]
    if targets:
        chosen_targets = list(dict.fromkeys(targets))
    else:
        if not numeric:
            raise DataError(f"{where.label} has no numeric column to forecast")
        if len(numeric) > 1 and (named or id_col is not None):  # never a silent choice
            listed = ", ".join(f"'{c}'" for c in numeric)
            raise DataError(
                f"{where.label} has several numeric columns ({listed}); name the column(s) to "
                "forecast with targets (the others become input features)",
                arguments=("targets",),
            )
        chosen_targets = numeric
    if features is None:
        chosen_features = [c for c in numeric if c not in chosen_targets]
    else:
        overlap = [c for c in features if c in chosen_targets]
        if overlap:
            raise DataError(f"column '{overlap[0]}' is both a target and a feature")
        chosen_features = list(dict.fromkeys(features))
    return chosen_targets, chosen_features


def _to_numeric(values: pd.Series, where: _Where, col: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        raise DataError(f"{where.label}, column '{col}': expected numbers, got true/false values")
    if pd.api.types.is_float_dtype(values):
        return values.astype(np.float64)
    if pd.api.types.is_numeric_dtype(values):
        converted = values.astype(np.float64)
    else:
        converted = pd.to_numeric(values, errors="coerce").astype(np.float64)
        bad = values.notna() & converted.isna()
        if bad.any():
            position = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{where.label}, column '{col}', {where.row(position)}: expected a number, got "
                f"{values.iloc[position]!r} ({int(bad.sum())} non-numeric value(s) in the column)"
            )
    _check_exact(values, converted, where, col)
    return converted


#: Integers beyond this magnitude are not all exact as 64-bit floats (2 ** 53).
EXACT_INTEGERS = float(2**53)


def _check_exact(values: pd.Series, converted: pd.Series, where: _Where, col: str) -> None:
    """Refuses distinct numbers (large integers, decimals, text) that read as one float.

    A float keeps 15 to 17 significant digits: ``1e30 + 1`` and ``1e30 + 2`` both become
    ``1e30``, and a series of them would be forecast as a constant.
    """
    big = np.abs(converted.to_numpy()) > EXACT_INTEGERS  # NaN compares False
    if not big.any():
        return
    raw, floats = values[big], converted[big]
    exact = raw.map(_exact_text)
    merged = pd.DataFrame({"exact": exact.to_numpy(), "float": floats.to_numpy()})
    distinct = merged.groupby("float")["exact"].transform("nunique").to_numpy()
    if not (distinct > 1).any():
        return
    first = int(np.flatnonzero(distinct > 1)[0])
    value = floats.iloc[first]
    others = raw[(floats == value).to_numpy() & (exact != exact.iloc[first]).to_numpy()]
    position = int(np.flatnonzero(big)[first])
    raise DataError(
        f"{where.label}, column '{col}', {where.row(position)}: {raw.iloc[first]!s} and "
        f"{others.iloc[0]!s} are different numbers but the same 64-bit float ({value:.17g}), "
        "which keeps 15 to 17 significant digits; subtract an offset or divide the column by "
        "a power of ten first"
    )


def _exact_text(value: object) -> str:
    """A number's exact value as canonical text (``1e3`` and ``1000`` alike)."""
    try:
        return str(decimal.Decimal(str(value).strip()).normalize(_EXACT))
    except (decimal.InvalidOperation, ValueError):
        return str(value)


#: Enough digits for any number a file can hold (Python refuses integers of over 4,300).
_EXACT = decimal.Context(prec=5000)


def _check_finite(frame: pd.DataFrame, where: _Where, col: str) -> None:
    infinite = np.isinf(frame[col].to_numpy())
    if infinite.any():
        position = int(frame[_ROW].to_numpy()[np.flatnonzero(infinite)[0]])
        raise DataError(
            f"{where.label}, column '{col}' has {int(infinite.sum())} infinite value(s), "
            f"the first at {where.row(position)}; expected finite numbers"
        )
    huge = np.abs(frame[col].to_numpy()) > LARGEST_VALUE
    if huge.any():
        first = int(np.flatnonzero(huge)[0])
        position = int(frame[_ROW].to_numpy()[first])
        raise DataError(
            f"{where.label}, column '{col}' has {int(huge.sum())} value(s) beyond "
            f"±{LARGEST_VALUE:.0e}, the first {frame[col].iloc[first]:.3g} at "
            f"{where.row(position)}: their squares overflow; divide the column by a power of ten"
        )


def _find_date_column(
    frame: pd.DataFrame,
    where: _Where,
    available: Sequence[object],
    id_col: str | None,
    date_format: str | None,
    notes: list[str],
) -> str | None:
    """The one text column whose every value reads as a date, or None; two are refused."""
    found = []
    for column in available:
        values = frame[column]
        if column == id_col or not _is_text(values) or _is_numeric_like(values):
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
            _parse_time(frame, where, str(column))  # dates but one unreadable: names its row
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


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)


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


def _parse_time(
    frame: pd.DataFrame, where: _Where, time_col: str, date_format: str | None = None
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
    frame: pd.DataFrame, where: _Where, time_col: str, date_format: str | None
) -> pd.Series:
    raw = frame[time_col]
    missing = raw.isna().to_numpy()
    if missing.any():
        position = int(np.flatnonzero(missing)[0])
        raise DataError(
            f"{where.label}, column '{time_col}', {where.row(position)}: missing timestamp"
        )
    numeric = pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw)
    if numeric or (_is_text(raw) and pd.to_numeric(raw, errors="coerce").notna().all()):
        steps = _to_numeric(raw, where, time_col)  # (text: large numbers kept exact to here)
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


def _mixed_offsets(raw: pd.Series, where: _Where, time_col: str) -> DataError:
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


def _sort_by_time(
    group: pd.DataFrame, where: _Where, label: str, time_col: str, notes: list[str]
) -> pd.DataFrame:
    time = group[time_col]
    duplicated = time.duplicated(keep="first").to_numpy()
    if duplicated.any():
        position = int(np.flatnonzero(duplicated)[0])
        value = time.iloc[position]
        first = int(group[_ROW].to_numpy()[np.flatnonzero((time == value).to_numpy())[0]])
        row = int(group[_ROW].iloc[position])
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


def _insert_missing_times(
    group: pd.DataFrame, label: str, time_col: str, fill: str, notes: list[str]
) -> pd.DataFrame:
    """Rows for the timestamps missing from a regular grid (their values then filled like
    missing values): the grid of the usual step, or of the calendar frequency of the first
    timestamps (months, quarters). Timestamps off every such grid are left for
    :func:`_check_spacing` to name."""
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
            if column == _ROW:  # the row before each gap names it in later messages
                before = np.searchsorted(index.asi8, missing.asi8) - 1
                added[column] = group[_ROW].to_numpy()[np.maximum(before, 0)]
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


def _check_spacing(
    group: pd.DataFrame, where: _Where, label: str, time_col: str
) -> tuple[str | None, float]:
    time = group[time_col]
    if len(time) < 2:
        return None, 1.0
    rows = group[_ROW].to_numpy()
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


def _handle_missing(
    group: pd.DataFrame,
    where: _Where,
    label: str,
    columns: list[str],
    targets: list[str],
    fill: FillPolicy,
    notes: list[str],
) -> pd.DataFrame:
    missing = group[columns].isna()
    if not missing.to_numpy().any():
        return group
    col = next(c for c in columns if missing[c].any())
    count = int(missing[col].sum())
    first = int(group[_ROW].to_numpy()[np.flatnonzero(missing[col].to_numpy())[0]])
    if fill == "error":
        raise DataError(
            f"{label}, column '{col}' has {count} missing value(s), the first at "
            f"{where.row(first)}; pass fill ffill, interpolate, drop or mask, or clean the file",
            arguments=("fill",),
        )
    total = int(missing.to_numpy().sum())
    group = group.copy()
    if fill == "drop":
        group = group[~missing.any(axis=1)]
        if len(group) == 0:
            raise DataError(
                f"{label}: every row has a missing value; nothing left after fill drop",
                arguments=("fill",),
            )
        notes.append(
            f"{label}: dropped {int(missing.any(axis=1).sum())} row(s) with missing values"
        )
        return group
    if fill == "mask":
        # Targets stay missing (models that read gaps mask them, the others carry the last
        # value forward); input features are carried forward, looking back only.
        features = [c for c in columns if c not in targets]
        if features:
            group[features] = group[features].ffill().bfill()
        if group[targets].isna().all().any():
            raise DataError(f"{label}: a target column has no values at all")
        masked = int(group[targets].isna().to_numpy().sum())
        notes.append(
            f"{label}: {masked} missing target value(s) left as gaps (fill mask): never "
            "trained on or scored"
        )
        return group
    if fill == "ffill":
        group[columns] = group[columns].ffill().bfill()
    else:
        group[columns] = group[columns].interpolate(method="linear", limit_direction="both")
    if group[columns].isna().to_numpy().any():
        raise DataError(f"{label}: a column has no values at all; cannot fill it")
    if fill == "interpolate":
        ahead = (
            " (from the values either side: a forecast from a filled point has seen the value "
            "after its gap)"
        )
    else:
        leading = bool(missing.iloc[0].any())
        ahead = " (a leading gap from the first value after it)" if leading else ""
    notes.append(f"{label}: filled {total} missing value(s) with {fill}{ahead}")
    return group
