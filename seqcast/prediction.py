"""Forecasts from a saved model, with their timestamps: what ``seqcast predict`` and the HTTP
service both use.

:func:`predict_saved` forecasts past the end of every series the model was trained on, or of
newer data, as a table with timestamps; the service forecasts one history a request
(:func:`continue_timestamps` for its JSON). Both continue a history's own timestamps with
:func:`future_times`, at the model's frequency: a model trained on dated rows knows its
frequency (``SavedModel.data["freq"]``), one trained on a numeric time column its spacing
(``data["step"]``). A model trained on bare rows knows neither; then the spacing of the given
timestamps is used.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pandas as pd

from seqcast.data.frame import SeriesData, future_index
from seqcast.errors import DataError
from seqcast.persistence import SavedModel

__all__ = ["continue_timestamps", "future_times", "predict_saved", "step_numbers"]


def step_numbers(horizon: int) -> list[int]:
    """Steps 1..T after the last history step: what a forecast without timestamps carries."""
    return list(range(1, horizon + 1))


def future_times(
    given: pd.Index | list[str],
    horizon: int,
    data: dict[str, Any],
    model: str = "the model",
    series: str | None = None,
) -> pd.Index:
    """The ``horizon`` timestamps after a history's own, at the saved model's frequency: the
    one computation behind ``seqcast predict --data`` and the service's forecasts.

    Args:
        given: the history's timestamps, oldest first: a DatetimeIndex or ISO 8601 strings,
            or numbers.
        horizon: forecast length T.
        data: the model's training-data description (``freq``, ``step``, ``time_col``).
        model: how messages name the model (``model 'sales'``).
        series: how messages name the series the history belongs to, if it is one of several.

    Returns:
        T timestamps: a DatetimeIndex, or a float64 Index.

    Raises:
        DataError: the kind does not match the model's time column, the timestamps are not
            increasing or not evenly spaced at its frequency, or the frequency cannot be told.
    """
    freq: str | None = data.get("freq")
    numeric_model = data.get("time_col") is not None and freq is None
    if isinstance(given, pd.DatetimeIndex) or (len(given) and isinstance(given[0], str)):
        if numeric_model:
            raise DataError(
                f"{model} was trained on a numeric time column; send timestamps as numbers"
            )
        index = given if isinstance(given, pd.DatetimeIndex) else _parse_dates(list(given))
        return _future_dates(index, horizon, freq, model, f"{series}: " if series else "")
    values = np.asarray(given, dtype=np.float64)
    if freq is not None:
        raise DataError(
            f"{model} was trained on dated rows (frequency '{freq}'); send timestamps "
            "as ISO 8601 dates"
        )
    _check_increasing(np.diff(values) > 0)
    if numeric_model or len(values) < 2:
        step = float(data.get("step") or 1.0)
    else:
        step = float(values[-1] - values[-2])
    what = "the model's step" if numeric_model else "their last step"
    _check_numeric_spacing(values, step, what, f"{series}: " if series else "")
    future = np.asarray(
        future_index(float(values[-1]), horizon, length=len(values), freq=None, step=step),
        dtype=np.float64,
    )
    if not np.isfinite(future).all():
        raise DataError("timestamps are too large to continue as float64 numbers")
    return pd.Index(future, name=data.get("time_col"))


def continue_timestamps(
    given: list[str] | list[float], horizon: int, data: dict[str, Any], model: str
) -> list[str] | list[float]:
    """:func:`future_times` for the timestamps of a JSON request: ISO 8601 strings or numbers
    in, the same kind out.

    Raises:
        DataError: a string is not an ISO 8601 date, or :func:`future_times` refuses them.
    """
    future = future_times(
        [str(t) for t in given] if isinstance(given[0], str) else pd.Index(given),
        horizon,
        data,
        f"model '{model}'",
    )
    if isinstance(future, pd.DatetimeIndex):
        return [t.isoformat() for t in future]
    return [float(v) for v in future]


def _check_numeric_spacing(values: np.ndarray, step: float, what: str, where: str) -> None:
    """Refuses numbers that do not follow each other at ``step``, as dates must at the freq."""
    # Differences of large numbers are exact only to a few units in their last place.
    tolerance = 4 * float(np.spacing(np.abs(values).max()))
    wrong = np.flatnonzero(~np.isclose(np.diff(values), step, rtol=1e-9, atol=tolerance))
    if len(wrong):
        i = int(wrong[0]) + 1
        raise DataError(
            f"{where}timestamps must be evenly spaced at {what} {step:g}: timestamp {i} is "
            f"{values[i]:g}, expected {values[i - 1] + step:g}"
        )


def _parse_dates(given: list[str]) -> pd.DatetimeIndex:
    try:
        return pd.DatetimeIndex(pd.to_datetime(given, format="ISO8601"))
    except (ValueError, TypeError, OverflowError) as exc:
        # pandas' first sentence says what is wrong; the rest is advice on its own arguments
        # ("Pass utc=True ..."), which means nothing to a client.
        reason = re.split(r"\.\s", str(exc).strip(), maxsplit=1)[0].rstrip(".")
        raise DataError(
            f"timestamps must be ISO 8601 dates, with one UTC offset ({reason})"
        ) from None


def _future_dates(
    index: pd.DatetimeIndex, horizon: int, freq: str | None, model: str, where: str
) -> pd.Index:
    _check_increasing(np.asarray(index[1:] > index[:-1]))
    if freq is None:
        if len(index) < 3:
            raise DataError(
                f"{model} was trained without dates, so the frequency of the timestamps "
                "is taken from them: send at least 3"
            )
        try:
            with warnings.catch_warnings():  # pandas 4 will return an offset: take its name
                warnings.filterwarnings("ignore", message=".*infer_freq")
                inferred: Any = pd.infer_freq(index)
            freq = getattr(inferred, "freqstr", inferred)
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
            f"{where}timestamps must follow each other at the model's frequency '{freq}': "
            f"timestamp {i} is {index[i].isoformat()}, expected {expected[i].isoformat()}"
        )
    return future


def _check_increasing(increasing: np.ndarray) -> None:
    if not increasing.all():
        i = int(np.flatnonzero(~increasing)[0]) + 1
        raise DataError(f"timestamps must increase: timestamp {i} is not after timestamp {i - 1}")


def predict_saved(
    saved: SavedModel, horizon: int | None = None, data: SeriesData | None = None
) -> pd.DataFrame:
    """Forecasts ``horizon`` steps (default: the trained horizon) past the end of every series
    the model was trained on, or, given ``data`` (newer rows of the same columns, at the
    model's frequency), past the end of each of its series.

    Returns:
        One row per series and step: the id column (long format), the time column (or
        ``step``) and one column per target.

    Raises:
        DataError: ``horizon`` is below 1, a series of ``data`` is shorter than the context,
            or its timestamps do not follow the model's frequency.
    """
    forecaster = saved.forecaster
    description = saved.data
    steps = forecaster.horizon if horizon is None else horizon
    if steps < 1:
        raise DataError(f"horizon must be at least 1, got {steps}", arguments=("horizon",))
    contexts: list[np.ndarray] = []
    indexes, ids = [], []
    if data is None:
        for i, context in enumerate(saved.contexts):
            contexts.append(context)
            indexes.append(saved.future_index(i, steps))
            ids.append(description["series"][i]["id"])
    else:
        for s in data.series:
            contexts.append(s.values)
            if s.time is None:  # rows without time: steps after the last row
                indexes.append(data.future_time(s, steps))
            else:
                series = None if s.series_id is None else data.label(s)
                times = future_times(s.time, steps, description, series=series)
                indexes.append(times.rename(description["time_col"]))
            ids.append(s.series_id)
    if data is None:
        labels = ["the saved series" if i is None else f"series '{i}'" for i in ids]
    else:
        labels = [data.label(s) for s in data.series]
    forecast = forecaster.predict(forecaster.last_contexts(contexts, labels), steps)  # (S, T, Ft)
    frames = []
    time_name = description["time_col"] or "step"
    for i, index in enumerate(indexes):
        frame = pd.DataFrame(forecast[i], columns=saved.targets)
        frame.insert(0, time_name, np.asarray(index))
        if description["id_col"]:
            frame.insert(0, description["id_col"], ids[i])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
