"""The timestamps of a forecast: continuing the request's, at the model's frequency.

A model trained on dated rows knows its frequency (``SavedModel.data["freq"]``), one trained
on a numeric time column its spacing (``data["step"]``). A model trained on bare rows knows
neither; then the spacing of the request's own timestamps is used.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from seqcast.data.frame import future_index
from seqcast.errors import DataError

__all__ = ["continue_timestamps", "step_numbers"]


def step_numbers(horizon: int) -> list[int]:
    """Steps 1..T after the last history step: what a forecast without timestamps carries."""
    return list(range(1, horizon + 1))


def continue_timestamps(
    given: list[str] | list[float], horizon: int, data: dict[str, Any], model: str
) -> list[str] | list[float]:
    """The ``horizon`` timestamps after ``given``.

    Args:
        given: one timestamp per history step, ISO 8601 strings or numbers, oldest first.
        horizon: forecast length T.
        data: the model's training-data description (``freq``, ``step``, ``time_col``).
        model: the model's served name, for messages.

    Returns:
        T ISO strings, or T numbers.

    Raises:
        DataError: the kind does not match the model's time column, the timestamps are not
            increasing or not evenly spaced at its frequency, or the frequency cannot be told.
    """
    freq: str | None = data.get("freq")
    numeric_model = data.get("time_col") is not None and freq is None
    if isinstance(given[0], str):
        if numeric_model:
            raise DataError(
                f"model '{model}' was trained on a numeric time column; send timestamps as numbers"
            )
        return _continue_dates([str(t) for t in given], horizon, freq, model)
    values = np.asarray(given, dtype=np.float64)
    if freq is not None:
        raise DataError(
            f"model '{model}' was trained on dated rows (frequency '{freq}'); send timestamps "
            "as ISO 8601 dates"
        )
    _check_increasing(np.diff(values) > 0)
    if numeric_model or len(values) < 2:
        step = float(data.get("step") or 1.0)
    else:
        step = float(values[-1] - values[-2])
    _check_numeric_spacing(values, step, "the model's step" if numeric_model else "their last step")
    future = np.asarray(
        future_index(float(values[-1]), horizon, length=len(values), freq=None, step=step),
        dtype=np.float64,
    )
    if not np.isfinite(future).all():
        raise DataError("timestamps are too large to continue as float64 numbers")
    return [float(v) for v in future]


def _check_numeric_spacing(values: np.ndarray, step: float, what: str) -> None:
    """Refuses numbers that do not follow each other at ``step``, as dates must at the freq."""
    # Differences of large numbers are exact only to a few units in their last place.
    tolerance = 4 * float(np.spacing(np.abs(values).max()))
    wrong = np.flatnonzero(~np.isclose(np.diff(values), step, rtol=1e-9, atol=tolerance))
    if len(wrong):
        i = int(wrong[0]) + 1
        raise DataError(
            f"timestamps must be evenly spaced at {what} {step:g}: timestamp {i} is "
            f"{values[i]:g}, expected {values[i - 1] + step:g}"
        )


def _continue_dates(given: list[str], horizon: int, freq: str | None, model: str) -> list[str]:
    try:
        index = pd.DatetimeIndex(pd.to_datetime(given, format="ISO8601"))
    except (ValueError, TypeError, OverflowError) as exc:
        # pandas' first sentence says what is wrong; the rest is advice on its own arguments
        # ("Pass utc=True ..."), which means nothing to a client.
        reason = re.split(r"\.\s", str(exc).strip(), maxsplit=1)[0].rstrip(".")
        raise DataError(
            f"timestamps must be ISO 8601 dates, with one UTC offset ({reason})"
        ) from None
    _check_increasing(np.asarray(index[1:] > index[:-1]))
    if freq is None:
        if len(index) < 3:
            raise DataError(
                f"model '{model}' was trained without dates, so the frequency of the timestamps "
                "is taken from them: send at least 3"
            )
        try:
            freq = pd.infer_freq(index)
        except (ValueError, TypeError):
            freq = None
        if freq is None:
            raise DataError("timestamps are not evenly spaced; their frequency cannot be told")
    try:
        expected = pd.date_range(start=index[0], periods=len(index), freq=freq)
        future = future_index(index[-1], horizon, length=len(index), freq=freq)
    except (ValueError, OverflowError) as exc:
        raise DataError(f"cannot continue the timestamps at frequency '{freq}' ({exc})") from None
    wrong = np.flatnonzero(expected != index)
    if len(wrong):
        i = int(wrong[0])
        raise DataError(
            f"timestamps must follow each other at the model's frequency '{freq}': timestamp "
            f"{i} is {index[i].isoformat()}, expected {expected[i].isoformat()}"
        )
    return [t.isoformat() for t in future]


def _check_increasing(increasing: np.ndarray) -> None:
    if not increasing.all():
        i = int(np.flatnonzero(~increasing)[0]) + 1
        raise DataError(f"timestamps must increase: timestamp {i} is not after timestamp {i - 1}")
