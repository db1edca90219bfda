"""Batch forecasts of very many series from one fitted model, streamed by partition.

A catalogue of 10⁶ series does not fit in one call: :func:`forecast_partitions` takes the
series a partition at a time (any iterable, so they can be read or generated as they go) and
yields each partition's forecasts as soon as they are made, holding only a few partitions in
memory at once. Partitions run on an engine (:mod:`seqcast.engines`): each worker rebuilds the
model from its saved-model spec (safetensors + JSON) once and forecasts its partitions with
:func:`forecast_partition`, a pure function of its task.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from seqcast.engines import Engine, engine_for
from seqcast.errors import DataError
from seqcast.forecasters.base import Forecaster
from seqcast.persistence import ModelSpec, forecaster_from_spec, model_spec

__all__ = ["ForecastTask", "forecast_partition", "forecast_partitions"]


@dataclass(frozen=True)
class ForecastTask:
    """One partition: the model's spec, (S, N, F) the series' last N ≥ context rows (equal
    lengths; NaN in front where a series is shorter, for a model that pads) and the horizon."""

    spec: ModelSpec
    values: np.ndarray
    horizon: int


#: Models rebuilt in this process, by their spec's description (which holds its weights'
#: checksum; hashing the weights themselves for every partition cost more than the lookup
#: saves): a worker reads each model once.
_built: dict[bytes, Forecaster] = {}


def forecast_partition(task: ForecastTask) -> np.ndarray:
    """(S, T, Ft) forecasts of a partition's series from their last rows."""
    model = _built.get(task.spec.config)
    if model is None:
        _built.clear()  # one model at a time
        model = _built[task.spec.config] = forecaster_from_spec(task.spec)
    return _forecast(model, task.values, task.horizon)


def _forecast(model: Forecaster, values: np.ndarray, horizon: int) -> np.ndarray:
    if values.ndim != 3:
        raise DataError(
            f"a partition is (series, steps, channels), got shape {values.shape}",
            arguments=("partitions",),
        )
    return model.predict(values, horizon)  # it reads each series' last context_length rows


def forecast_partitions(
    model: Forecaster | ModelSpec,
    partitions: Iterable[np.ndarray],
    horizon: int | None = None,
    *,
    engine: str | Engine | None = None,
    in_flight: int | None = None,
) -> Iterator[np.ndarray]:
    """Forecasts every partition of series, in order, as they come.

    Args:
        model: a fitted forecaster, or its spec.
        partitions: arrays (S_i, N, F) of the series' last rows (at least the model's
            context; NaN in front for a series shorter than that, where the model pads).
        horizon: steps T (default: the model's own; past it, forecasts are rolled out).
        engine: where partitions are forecast (:func:`seqcast.engines.get_engine`); the
            numbers are the same on every engine. One named here is started for the stream and
            stopped at its end; one passed in is left running for the caller.
        in_flight: partitions handed to the engine at once (default: twice its workers, one
            here): memory holds these, their forecasts, and no more.

    Yields:
        (S_i, T, Ft) forecasts of each partition.

    Raises:
        DataError: a partition of the wrong shape, or too short for the model.
    """
    here = forecaster_from_spec(model) if isinstance(model, ModelSpec) else model
    steps = horizon or here.horizon
    with engine_for(engine) as runner:
        if runner.name == "local":  # here, from the model itself
            for values in partitions:
                yield _forecast(here, values, steps)
            return
        spec = model if isinstance(model, ModelSpec) else model_spec(model)
        group = in_flight or 2 * int(getattr(runner, "workers", 1))
        iterator = iter(partitions)
        while chunk := list(itertools.islice(iterator, group)):
            tasks = [ForecastTask(spec, values, steps) for values in chunk]
            yield from runner.map(forecast_partition, tasks)
