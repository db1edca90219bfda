"""Forecasts from a saved model, with their timestamps: what ``seqcast predict`` and the HTTP
service both use.

:func:`predict_saved` forecasts past the end of every series the model was trained on, or of
newer data, as a table with timestamps. :func:`continue_timestamps` continues a history's own
timestamps at the model's frequency: a model trained on dated rows knows its frequency
(``SavedModel.data["freq"]``), one trained on a numeric time column its spacing
(``data["step"]``). A model trained on bare rows knows neither; then the spacing of the given
timestamps is used.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from seqcast.data.frame import SeriesData, future_index
from seqcast.errors import DataError
from seqcast.persistence import SavedModel

__all__ = ["at_training_spacing", "continue_timestamps", "predict_saved", "step_numbers"]


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
    contexts, indexes, ids = [], [], []
    if data is None:
        for i, context in enumerate(saved.contexts):
            contexts.append(context)
            indexes.append(saved.future_index(i, steps))
            ids.append(description["series"][i]["id"])
    else:
        data = at_training_spacing(data, description)
        for s in data.series:
            if len(s) < forecaster.context_length:
                raise DataError(
                    f"{data.label(s)} has {len(s)} points; the model needs the "
                    f"last {forecaster.context_length}"
                )
            contexts.append(s.values[-forecaster.context_length :])
            indexes.append(data.future_time(s, steps))
            ids.append(s.series_id)
    forecast = forecaster.predict(np.stack(contexts), steps)  # (S, T, Ft)
    frames = []
    time_name = description["time_col"] or "step"
    for i, index in enumerate(indexes):
        frame = pd.DataFrame(forecast[i], columns=saved.targets)
        frame.insert(0, time_name, np.asarray(index))
        if description["id_col"]:
            frame.insert(0, description["id_col"], ids[i])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def at_training_spacing(fresh: SeriesData, description: dict[str, Any]) -> SeriesData:
    """``fresh`` with the saved model's frequency and step, after checking that its timestamps
    follow them (a single row shows no spacing of its own, so the model's is the only one).

    Raises:
        DataError: the rows step otherwise than the model's training data did.
    """
    freq, step = description["freq"], float(description["step"])
    spaced = [(s, s.time) for s in fresh.series if s.time is not None and len(s) >= 2]
    if freq is None and spaced and not np.isclose(fresh.step, step, rtol=1e-9, atol=1e-9):
        raise DataError(
            f"{fresh.label(spaced[0][0])} steps by {fresh.step:g} but the "
            f"model was trained on steps of {step:g}"
        )
    for s, stamps in spaced if freq is not None else []:
        expected = pd.date_range(start=stamps[0], periods=len(s), freq=freq)
        wrong = np.flatnonzero(expected != stamps)
        if len(wrong):
            i = int(wrong[0])
            raise DataError(
                f"{fresh.label(s)} has {stamps[i]} where the model's frequency "
                f"'{freq}' expects {expected[i]}; send data at the frequency it was trained on"
            )
    return replace(fresh, freq=freq, step=step)
