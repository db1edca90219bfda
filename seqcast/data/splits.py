"""Temporal train/validation splits: the validation part is always the later part."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from seqcast.data.frame import Series, SeriesData
from seqcast.errors import DataError

__all__ = ["split_indices", "split_point"]


def split_point(
    series: Series,
    *,
    val_size: int | None = None,
    val_frac: float | None = None,
    split_time: str | float | pd.Timestamp | None = None,
) -> int:
    """Index of the first validation step of one series (training part = ``[:index]``).

    Exactly one of the three options is used: the last ``val_size`` steps, the last
    ``val_frac`` of the steps (rounded to nearest, halves up, at least 1), or every step at or
    after ``split_time``.
    """
    given = [o is not None for o in (val_size, val_frac, split_time)]
    if sum(given) != 1:
        raise DataError(
            "give exactly one of val_size, val_frac or split_time",
            arguments=("val_size", "val_frac", "split_time"),
        )
    n = len(series)
    if val_size is not None:
        if val_size < 1:
            raise DataError(f"val_size must be at least 1, got {val_size}", arguments=("val_size",))
        return n - val_size
    if val_frac is not None:
        if not 0.0 < val_frac < 1.0:
            raise DataError(
                f"val_frac must lie strictly between 0 and 1, got {val_frac}",
                arguments=("val_frac",),
            )
        return n - max(1, math.floor(n * val_frac + 0.5))  # halves up, not to even
    if series.time is None:
        raise DataError(
            "split_time needs a time column; use val_size or val_frac",
            arguments=("split_time", "val_size", "val_frac"),
        )
    time = series.time
    if isinstance(time, pd.DatetimeIndex):
        try:
            cut = pd.Timestamp(split_time)  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"split_time {split_time!r} is not a timestamp", arguments=("split_time",)
            ) from exc
        if time.tz is not None and cut.tz is None:
            cut = cut.tz_localize(time.tz)
        elif time.tz is None and cut.tz is not None:
            raise DataError(
                f"split_time {split_time!r} has a time zone but the timestamps have none; "
                "give the time without an offset",
                arguments=("split_time",),
            )
        return int(time.searchsorted(cut, side="left"))
    try:
        cut_value = float(split_time)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"split_time {split_time!r} is not a number like the time column",
            arguments=("split_time",),
        ) from exc
    return int(np.searchsorted(time.to_numpy(dtype=np.float64), cut_value, side="left"))


def split_indices(
    data: SeriesData,
    *,
    val_size: int | None = None,
    val_frac: float | None = None,
    split_time: str | float | pd.Timestamp | None = None,
    min_train: int = 1,
) -> list[int]:
    """Split point of every series, checked so that both parts are non-empty.

    Raises:
        DataError: a part would be empty or the training part shorter than ``min_train``.
    """
    points = []
    for series in data.series:
        point = split_point(series, val_size=val_size, val_frac=val_frac, split_time=split_time)
        label = data.label(series)
        if point >= len(series):
            raise DataError(f"{label}: the split leaves no validation points")
        if point < min_train:
            raise DataError(
                f"{label} has {len(series)} points; the split leaves {max(point, 0)} for "
                f"training but at least {min_train} are needed (minimum length "
                f"{len(series) - point + min_train})"
            )
        points.append(point)
    return points
