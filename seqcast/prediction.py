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
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from seqcast.data.frame import SeriesData, future_index
from seqcast.data.known import future_names, future_rows, known_ahead
from seqcast.errors import DataError, ModelFormatError
from seqcast.evaluation.conformal import Conformal, series_floors, series_scales
from seqcast.evaluation.probabilistic import check_quantiles, interval_bounds
from seqcast.persistence import SavedModel

__all__ = [
    "continue_timestamps",
    "future_times",
    "predict_saved",
    "saved_quantiles",
    "step_numbers",
]


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
        index = given if isinstance(given, pd.DatetimeIndex) else parse_dates(list(given))
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


def parse_dates(given: list[str]) -> pd.DatetimeIndex:
    """ISO 8601 timestamps of a request, read with one UTC offset.

    Raises:
        DataError: one is not ISO 8601, or their offsets differ.
    """
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
    saved: SavedModel,
    horizon: int | None = None,
    data: SeriesData | None = None,
    quantiles: Sequence[float] | None = None,
    level_names: bool = False,
    future: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Forecasts ``horizon`` steps (default: the trained horizon) past the end of every series
    the model was trained on, or, given ``data`` (newer rows of the same columns, at the
    model's frequency), past the end of each of its series.

    Args:
        saved: the loaded model.
        horizon: T.
        data: newer data to forecast from.
        quantiles: levels in (0, 1) to forecast too: the model's own (a quantile network,
            up to its horizon) or its saved conformal intervals (``seqcast fit --intervals``).
        level_names: name the pairs q, 1 − q of ``quantiles`` as intervals (``-lo-80``,
            ``-hi-80``) instead of quantiles (``-q0.1``).
        future: the values of the model's future features (inputs known ahead, not its
            calendar, which is computed) at the forecast steps: rows of the time column (and
            the id column) and those columns, for at least the model's horizon.

    Returns:
        One row per series and step: the id column (long format), the time column (or
        ``step``) and one column per target, then its quantile or interval columns.

    Raises:
        DataError: ``horizon`` is below 1, a series of ``data`` is shorter than the context,
            or its timestamps do not follow the model's frequency.
    """
    forecaster = saved.forecaster
    description = saved.data
    steps = forecaster.horizon if horizon is None else horizon
    if steps < 1:
        raise DataError(f"horizon must be at least 1, got {steps}", arguments=("horizon",))
    # Inputs known ahead are needed for the trained horizon at least: timestamps that far.
    span = max(steps, forecaster.horizon) if forecaster.n_known else steps
    contexts: list[np.ndarray] = []
    indexes, ids = [], []
    if data is None:
        for i, context in enumerate(saved.contexts):
            contexts.append(context)
            indexes.append(saved.future_index(i, span))
            ids.append(description["series"][i]["id"])
    else:
        data = forecaster.readable(data)  # gaps (fill mask) kept, or carried forward
        for s in data.series:
            contexts.append(s.values)
            if s.time is None:  # rows without time: steps after the last row
                indexes.append(data.future_time(s, span))
            else:
                series = None if s.series_id is None else data.label(s)
                times = future_times(s.time, span, description, series=series)
                indexes.append(times.rename(description["time_col"]))
            ids.append(s.series_id)
    if data is None:
        labels = ["the saved series" if i is None else f"series '{i}'" for i in ids]
    else:
        labels = [data.label(s) for s in data.series]
    ready = forecaster.last_contexts(contexts, labels)
    known = known_inputs(saved, indexes, ids, labels, future, ready) if forecaster.n_known else None
    forecast = forecaster.predict(ready, steps, future=known)  # (S, T, Ft)
    bands = None
    if quantiles is not None:
        levels = check_quantiles(quantiles)
        bands = saved_quantiles(saved, ready, forecast, contexts, data is None, levels, known)
    frames = []
    time_name = description["time_col"] or "step"
    for i, index in enumerate(indexes):
        index = index[:steps]
        frame = pd.DataFrame(forecast[i], columns=saved.targets)
        if bands is not None:
            _add_band_columns(frame, bands[i], levels, saved.targets, level_names)
        frame.insert(0, time_name, np.asarray(index))
        if description["id_col"]:
            frame.insert(0, description["id_col"], ids[i])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def known_inputs(
    saved: SavedModel,
    indexes: list[pd.Index],
    ids: list[Any],
    labels: list[str],
    future: pd.DataFrame | None,
    contexts: np.ndarray,
) -> np.ndarray:
    """(S, T, F_k) values of a saved model's inputs known ahead at each series' forecast
    steps ``indexes``: its future features from ``future`` (rows of the time column, and the
    id column, at those steps), its static features (their last value in each of the (S, C, F)
    ``contexts``), then its calendar, computed from the timestamps.

    Raises:
        DataError: ``future`` is missing, lacks a column, or lacks a step of a series.
    """
    description = saved.data
    cycles = list(description.get("calendar", []))
    static = list(description.get("static", []))
    named = future_names(
        description["columns"], int(description.get("n_future", 0)), static, cycles
    )
    time_col, id_col = description["time_col"] or "step", description["id_col"]
    form = description.get("date_format")
    out = []
    for i, (index, series_id, label) in enumerate(zip(indexes, ids, labels, strict=True)):
        given = (
            future_rows(future, named, index, time_col, id_col, series_id, label, form)
            if named
            else None
        )
        out.append(known_ahead(contexts[i, -1], index, given, static, cycles))
    return np.stack(out)


def quantiles_refused(saved: SavedModel, steps: int) -> DataError | None:
    """Why a saved model cannot forecast quantiles ``steps`` ahead, or None when it can (its
    own, or from its saved conformal calibration)."""
    forecaster = saved.forecaster
    if forecaster.quantiles_reach(steps) or "conformal.widths" in saved.extras:
        return None
    if forecaster.has_quantiles:
        why = (
            f"it forecasts quantiles up to its horizon {forecaster.horizon} only (its input "
            "features have no future values)"
        )
    else:
        why = "it was fitted without intervals"
    return DataError(
        f"quantiles: {why}; fit the model with intervals (seqcast fit --intervals) or, "
        "for a neural model, likelihood quantile",
        arguments=("quantiles", "likelihood quantile"),
    )


def saved_quantiles(
    saved: SavedModel,
    ready: np.ndarray,
    point: np.ndarray,
    histories: list[np.ndarray],
    own: bool,
    levels: tuple[float, ...],
    known: np.ndarray | None = None,
) -> np.ndarray:
    """(S, T, Ft, Q) quantiles of a saved model: its own, or from its saved calibration
    around the point forecasts (S, T, Ft); ``own``: the histories are its saved contexts;
    ``known``: (S, T, F_k) values of its inputs known ahead."""
    forecaster = saved.forecaster
    steps = point.shape[1]
    if forecaster.quantiles_reach(steps):
        return forecaster.predict_quantiles(ready, levels, steps, future=known)
    refusal = quantiles_refused(saved, steps)
    if refusal is not None:
        raise refusal
    try:
        conformal = Conformal.from_state(saved.extras)
    except (KeyError, ValueError) as exc:
        raise ModelFormatError(f"the model folder is inconsistent: {exc}") from exc
    if own:
        scales = np.asarray(saved.extras.get("conformal.scales"), dtype=np.float64)
        floors = np.asarray(saved.extras.get("conformal.floors"), dtype=np.float64)
        wanted = (len(histories), 1, forecaster.n_targets_)
        if scales.shape != wanted or not (np.isfinite(scales).all() and (scales > 0).all()):
            raise ModelFormatError("the model folder is inconsistent: bad conformal.scales")
        if floors.shape != wanted or not np.isin(floors, (0.0, -np.inf)).all():
            raise ModelFormatError("the model folder is inconsistent: bad conformal.floors")
    else:
        scales = series_scales(histories, forecaster.n_targets_)
        floors = series_floors(histories, forecaster.n_targets_)
    return conformal.quantiles(point, scales, levels, floors)


def _add_band_columns(
    frame: pd.DataFrame,
    bands: np.ndarray,
    levels: tuple[float, ...],
    targets: list[str],
    level_names: bool,
) -> None:
    """Adds one series' (T, Ft, Q) quantiles as ``<target>-q0.1`` columns, or as
    ``<target>-lo-80`` and ``<target>-hi-80`` (with ``level_names``) for each interval."""
    for k, target in enumerate(targets):
        if level_names:
            for level, (low, high) in sorted(interval_bounds(levels).items()):
                frame[f"{target}-lo-{level:g}"] = bands[:, k, low]
                frame[f"{target}-hi-{level:g}"] = bands[:, k, high]
        else:
            for j, q in enumerate(levels):
                frame[f"{target}-q{q:g}"] = bands[:, k, j]
