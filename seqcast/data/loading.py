"""Reading and validating series from CSV, Parquet, pandas and numpy.

Every problem found is raised as :class:`~seqcast.errors.DataError` with the file, column, row
and what was expected. Rows are counted from 1 after the header; for files the line number is
given too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd

from seqcast.data.calendar import CALENDARS, calendar_names, calendar_values
from seqcast.data.frame import Series, SeriesData
from seqcast.data.timestamps import (
    check_spacing,
    find_date_column,
    insert_missing_times,
    parse_time,
    sort_by_time,
)
from seqcast.data.values import (
    EXACT_INTEGERS,
    ROW,
    Where,
    check_finite,
    is_numeric_like,
    to_numeric,
)
from seqcast.errors import DataError

__all__ = ["FILL_POLICIES", "FillPolicy", "load_series"]

FillPolicy = Literal["error", "ffill", "interpolate", "drop", "mask"]
FILL_POLICIES: tuple[str, ...] = get_args(FillPolicy)
TIME_COLUMN_NAMES = ("date", "datetime", "timestamp", "time", "ds")


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
    if ROW in names:
        raise DataError(f"{where.label}: the column name '{ROW}' is reserved; rename it")
    frame = frame.copy()
    frame[ROW] = np.arange(len(frame))

    available = [c for c in frame.columns if c != ROW]
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
        time_col = find_date_column(frame, where, available, id_col, date_format, notes)
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
        frame[col] = to_numeric(frame[col], where, col)
        check_finite(frame, where, col)

    time: pd.Series | None = None
    if time_col is not None:
        time = parse_time(frame, where, time_col, date_format)
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
            group = sort_by_time(group, where, label, time_col, notes)
            if fill in ("ffill", "interpolate", "mask"):
                group = insert_missing_times(group, label, time_col, fill, notes)
            group_freq, group_step = check_spacing(group, where, label, time_col)
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
) -> tuple[pd.DataFrame, Where]:
    if isinstance(source, pd.DataFrame):
        frame = source
        index_name = str(source.index.name or "ds")
        if isinstance(source.index, pd.DatetimeIndex) and index_name not in source.columns:
            # The timestamps, as pandas keeps them: they become the time column.
            frame = source.rename_axis(index_name).reset_index()
        # Columns are named by strings everywhere (options, messages, saved models).
        frame = frame.reset_index(drop=True).rename(columns=str)
        return frame, Where("the DataFrame", has_lines=False)
    if isinstance(source, np.ndarray):
        array = np.asarray(source)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2:
            raise DataError(f"the array has shape {array.shape}; expected (N,) or (N, C)")
        names = ["y"] if array.shape[1] == 1 else [f"y{i}" for i in range(array.shape[1])]
        return pd.DataFrame(array, columns=names), Where("the array", has_lines=False)
    path = Path(source)
    suffixes = "".join(path.suffixes).lower()
    is_parquet = ".parquet" in suffixes or suffixes.endswith(".pq")
    where = Where(f"file '{path}'", has_lines=not is_parquet)  # a Parquet file has no lines
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


def _read_parquet(path: Path, where: Where) -> pd.DataFrame:
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


def _refuse_repeated(names: Sequence[str], where: Where) -> None:
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


def _unknown_column(where: Where, name: str, option: str, available: Sequence[object]) -> str:
    listed = ", ".join(f"'{c}'" for c in available)
    return f"{where.label} has no {option} '{name}'; available columns: {listed}"


def _choose_columns(
    frame: pd.DataFrame,
    where: Where,
    candidates: Sequence[object],
    targets: Sequence[str] | None,
    features: Sequence[str] | None,
    id_col: str | None,
    named: bool = True,
) -> tuple[list[str], list[str]]:
    for name in [*(targets or []), *(features or [])]:
        if name not in candidates:
            raise DataError(_unknown_column(where, name, "column", candidates))
    numeric = [str(c) for c in candidates if is_numeric_like(frame[c])]
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


def _handle_missing(
    group: pd.DataFrame,
    where: Where,
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
    first = int(group[ROW].to_numpy()[np.flatnonzero(missing[col].to_numpy())[0]])
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
