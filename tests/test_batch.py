"""Batch forecasts streamed by partition: the same numbers as one call, on every engine, with
only a few partitions drawn ahead of the forecasts."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from seqcast.batch import forecast_partitions
from seqcast.engines import ProcessEngine
from seqcast.errors import DataError
from seqcast.forecasters.base import Forecaster
from seqcast.forecasters.registry import create_for
from seqcast.persistence import model_spec


def _fitted() -> Forecaster:
    rng = np.random.default_rng(0)
    t = np.arange(80)
    series = [(5 + i + np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.1, 80))[:, None]
              for i in range(6)]  # fmt: skip
    model = create_for("rnn", {"window": 12, "horizon": 4, "season": 12, "epochs": 2})
    return model.fit(series, 1)


def _partitions(count: int, size: int, drawn: list[int] | None = None) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(1)
    for k in range(count):
        if drawn is not None:
            drawn.append(k)
        yield 5 + rng.normal(0, 1, (size, 40, 1))


def test_partitions_forecast_what_one_call_forecasts() -> None:
    model = _fitted()
    parts = list(_partitions(3, 7))
    streamed = list(forecast_partitions(model, parts))
    whole = model.predict(np.concatenate(parts)[:, -model.context_length :])
    np.testing.assert_array_equal(np.concatenate(streamed), whole)
    assert [p.shape for p in streamed] == [(7, 4, 1)] * 3
    longer = np.concatenate(list(forecast_partitions(model, parts, horizon=9)))
    assert longer.shape == (21, 9, 1)
    np.testing.assert_allclose(longer[:, :4], whole, rtol=1e-6)


def test_the_process_engine_streams_the_same_forecasts_holding_few_partitions() -> None:
    model = _fitted()
    here = np.concatenate(list(forecast_partitions(model_spec(model), _partitions(6, 5))))
    drawn: list[int] = []
    with ProcessEngine(workers=2) as engine:
        stream = forecast_partitions(model, _partitions(6, 5, drawn), engine=engine, in_flight=2)
        first = next(stream)
        assert drawn == [0, 1]  # two partitions handed out, the rest not yet read
        there = np.concatenate([first, *stream])
    np.testing.assert_array_equal(here, there)


def test_a_partition_of_the_wrong_shape_is_named() -> None:
    with pytest.raises(DataError, match=r"a partition is \(series, steps, channels\)"):
        list(forecast_partitions(_fitted(), [np.zeros((3, 40))]))
