"""Forecasts of one served model run side by side on the server's threads without a lock:
every kind of model answers exactly what it answers one request at a time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import torch

from seqcast.data import load_dataset
from seqcast.evaluation.conformal import calibrate
from seqcast.forecasters.registry import create_for
from seqcast.persistence import save_model
from seqcast.serving.models import ServedModel, load_served_models

TINY = dict(window=8, horizon=2, epochs=1, batch_size=256, patience=0)
SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "naive": ("naive", {}),
    "snaive": ("snaive", dict(season=12)),
    "linear": ("linear", dict(window=8, horizon=2)),
    "rnn": ("rnn", dict(TINY, hidden_size=8)),
    "rnn-quantile": ("rnn", dict(TINY, hidden_size=8, likelihood="quantile")),
    "lstm": ("lstm", dict(TINY, hidden_size=8, season=12)),
    "dnn": ("dnn", dict(TINY)),
    "cnn-lstm": ("cnn-lstm", dict(TINY, hidden_size=8)),
}
LEVELS = (0.1, 0.5, 0.9)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ServedModel]:
    data = load_dataset("synthetic")
    series = [s.values for s in data.series]
    root = tmp_path_factory.mktemp("threads")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        folders = []
        for name, (kind, options) in SPECS.items():
            forecaster = create_for(kind, options).fit(series, data.n_targets)
            extras = None
            if name in ("naive", "linear"):  # conformal intervals, as fit --intervals saves
                extras = calibrate(forecaster, series, data.n_targets, 8).to_state()
            folders.append(save_model(forecaster, root / name, data, extras=extras))
    finally:
        torch.set_num_threads(threads)
    return load_served_models(folders, 1000)


Job = tuple[str, np.ndarray, int, bool]


def answer(models: dict[str, ServedModel], job: Job) -> tuple[np.ndarray, np.ndarray | None]:
    name, context, horizon, quantiles = job
    model = models[name]
    point = model.forecast(context, horizon)
    bands = model.forecast_quantiles(context, point, LEVELS) if quantiles else None
    return point, bands


@pytest.mark.filterwarnings("ignore::seqcast.errors.SeqcastWarning")
def test_concurrent_forecasts_equal_the_same_forecasts_made_one_at_a_time(
    models: dict[str, ServedModel],
) -> None:
    values = load_dataset("synthetic").series[0].values
    rng = np.random.default_rng(0)
    jobs: list[Job] = []
    for name, model in models.items():
        for k in range(8):
            start = int(rng.integers(0, len(values) - 60))
            context = model.context(values[start : start + 60])
            horizon = (1, 2, 7, 8)[k % 4]  # the trained horizon, and rolled out past it
            quantiles = k % 2 == 1 and model.quantile_source is not None
            jobs.append((name, context, horizon, quantiles))
    assert {job[0] for job in jobs if job[3]} == {"naive", "linear", "rnn-quantile"}
    alone = [answer(models, job) for job in jobs]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            together = list(pool.map(lambda job: answer(models, job), jobs * 2))
            for (point, bands), (point_t, bands_t) in zip(alone * 2, together, strict=True):
                np.testing.assert_array_equal(point_t, point)
                if bands is None:
                    assert bands_t is None
                else:
                    np.testing.assert_array_equal(bands_t, bands)
