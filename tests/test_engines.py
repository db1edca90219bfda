"""Engines give the same numbers as ``local``, bit for bit: refit backtests per series and
cross-validation per model and cutoff, on ``process`` and a local Dask cluster (and Ray where
it is installed), with each worker's threads set to its share of the cores."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import seqcast
from seqcast.data.frame import SeriesData
from seqcast.data.loading import load_series
from seqcast.engines import ProcessEngine, get_engine
from seqcast.engines.base import cpu_count
from seqcast.errors import ModelFormatError, SeqcastError
from seqcast.evaluation.backtest import backtest
from seqcast.forecasters.registry import create_for
from seqcast.persistence import ModelSpec, forecaster_from_spec, model_spec
from tests.cli_runner import assert_one_error_line, run_main

ENGINES = ["process", "dask", "ray"]


def worker_facts(item: int) -> tuple[int, int, int]:
    """(item, PyTorch threads, process id): what a worker sees."""
    return item, torch.get_num_threads(), os.getpid()


def _frame(n_series: int = 5, length: int = 48) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    rows = []
    for i in range(n_series):
        t = np.arange(length + 3 * i)
        y = 10 + i + 3 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.3, len(t))
        rows += [(f"s{i}", step, value) for step, value in zip(t, y, strict=True)]
    return pd.DataFrame(rows, columns=["unique_id", "ds", "y"])


def _data() -> SeriesData:
    return load_series(_frame(), targets=["y"], time_col="ds", id_col="unique_id")


def _engine(name: str) -> Iterator[object]:
    if name == "dask":
        pytest.importorskip("distributed")
    if name == "ray":
        pytest.importorskip("ray")
    engine = get_engine(name, workers=2)
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[object]:
    yield from _engine(request.param)


def test_get_engine_refuses_unknown_names_addresses_and_worker_counts() -> None:
    with pytest.raises(SeqcastError, match="unknown engine 'spark'; choose from local, process"):
        get_engine("spark")
    with pytest.raises(SeqcastError, match="engine 'process' runs on this machine and takes no"):
        get_engine("process", address="tcp://10.0.0.1:8786")
    with pytest.raises(SeqcastError, match="workers must be at least 1, got 0"):
        get_engine("process", workers=0)
    local = get_engine()
    assert local.name == "local" and get_engine(local) is local


def test_a_missing_cluster_package_is_named_with_its_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(SeqcastError, match=r"needs the dask.distributed package: pip install "):
        get_engine("dask")
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SeqcastError, match=r"pip install 'seqcast\[ray\]' -c constraints.txt"):
        get_engine("ray")


def test_process_workers_keep_the_order_and_run_their_share_of_the_cores() -> None:
    with ProcessEngine(workers=2) as engine:
        facts = engine.map(worker_facts, list(range(7)))
        again = engine.map(worker_facts, [7])  # one partition runs here, no pool needed
    assert [f[0] for f in facts] == list(range(7))
    assert {f[1] for f in facts} == {max(1, cpu_count() // 2)}
    assert os.getpid() not in {f[2] for f in facts}
    assert again == [(7, torch.get_num_threads(), os.getpid())]


@pytest.mark.parametrize("name", ["rnn", "linear", "snaive"])
def test_refit_backtests_are_identical_on_every_engine(engine: object, name: str) -> None:
    data = _data()
    splits = [len(s) - 8 for s in data.series]
    settings = {"window": 8, "horizon": 2, "season": 12, "epochs": 2, "hidden_size": 4}

    def run(mapper: object) -> object:
        model = create_for(name, settings)
        return backtest(model, data, splits, stride=3, refit=True, season=12, mapper=mapper)  # type: ignore[arg-type]

    here = run(None)
    there = run(engine.map)  # type: ignore[attr-defined]
    for a, b in zip(here.forecasts, there.forecasts, strict=True):  # type: ignore[attr-defined]
        np.testing.assert_array_equal(a, b)
    assert here.metrics == there.metrics  # type: ignore[attr-defined]
    assert here.per_series == there.per_series  # type: ignore[attr-defined]
    # The last refitted model comes back from its spec and forecasts the same.
    context = np.asarray(data.series[-1].values[-30:], dtype=np.float64)[None]
    last_here, last_there = here.forecaster, there.forecaster  # type: ignore[attr-defined]
    np.testing.assert_array_equal(last_here.predict(context), last_there.predict(context))


def test_cross_validation_with_intervals_is_identical_on_every_engine(engine: object) -> None:
    df = _frame()
    models = [
        seqcast.RNNForecaster(window=8, horizon=3, season=12, epochs=2, hidden_size=4),
        seqcast.SeasonalNaive(season=12, horizon=3),
    ]
    here = seqcast.Forecast(models).cross_validation(df, h=3, n_windows=2, level=[80])
    there = seqcast.Forecast(models, engine=engine).cross_validation(  # type: ignore[arg-type]
        df, h=3, n_windows=2, level=[80]
    )
    pd.testing.assert_frame_equal(here, there)
    assert {"rnn-lo-80", "rnn-hi-80", "snaive-lo-80"} <= set(there.columns)


def test_a_fitted_spec_forecasts_the_same_and_checks_its_weights() -> None:
    data = _data()
    model = create_for("rnn", {"window": 8, "horizon": 2, "season": 12, "epochs": 1})
    model.fit([s.values for s in data.series], 1)
    spec = model_spec(model)
    twin = forecaster_from_spec(spec)
    contexts = np.stack([s.values[-model.context_length :] for s in data.series])
    np.testing.assert_array_equal(model.predict(contexts), twin.predict(contexts))
    damaged = ModelSpec(spec.config, spec.weights[:-1] + bytes([spec.weights[-1] ^ 1]))
    with pytest.raises(ModelFormatError, match="weights do not match their checksum"):
        forecaster_from_spec(damaged)
    with pytest.raises(ModelFormatError, match="not valid"):
        forecaster_from_spec(ModelSpec(b"\x80 not json", b""))


def test_an_unfitted_spec_gives_the_same_settings_and_no_weights() -> None:
    model = create_for("lstm", {"window": 9, "horizon": 4, "epochs": 3, "seed": 7})
    spec = model_spec(model)
    assert spec.weights == b""
    twin = forecaster_from_spec(spec)
    assert type(twin) is type(model) and twin.get_params() == model.get_params()
    assert not getattr(twin, "is_fitted_", False)
    # Settings the class does not take are the spec's fault, said as such.
    wrong = json.loads(spec.config)
    wrong["config"]["no_such_setting"] = 1
    with pytest.raises(ModelFormatError, match="model spec is inconsistent"):
        forecaster_from_spec(ModelSpec(json.dumps(wrong).encode()))


def test_cli_backtest_refit_on_the_process_engine_prints_what_local_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "many.csv"
    _frame().to_csv(path, index=False)
    common = ["backtest", str(path), "--id-col", "unique_id", "--time-col", "ds", "-m", "linear",
              "--horizon", "2", "--season", "12", "--val-size", "6", "--stride", "2", "--refit",
              "--quiet"]  # fmt: skip
    outputs = {}
    for name in ("local", "process"):
        out = tmp_path / f"{name}.json"
        run = run_main(capsys, *common, "--engine", name, "--json", str(out))
        assert run.code == 0, run.err
        board = pd.read_json(out, typ="series")
        for result in board["results"]:
            result.pop("fit_seconds"), result.pop("predict_seconds")
        outputs[name] = board.to_dict()
    assert outputs["local"] == outputs["process"]


def test_cli_names_the_engine_flags_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "many.csv"
    _frame().to_csv(path, index=False)
    base = ["backtest", str(path), "--id-col", "unique_id", "--time-col", "ds", "-m", "naive",
            "--season", "1"]  # fmt: skip
    assert_one_error_line(run_main(capsys, *base, "--engine", "spark"), "--engine 'spark'")
    run = run_main(capsys, *base, "--engine", "process", "--engine-address", "tcp://x:1")
    assert_one_error_line(run, "--engine-address")


def test_a_failing_partition_raises_its_own_error_on_every_engine(engine: object) -> None:
    # A seqcast function, so that every engine's workers can import it.
    good = model_spec(create_for("naive", {"horizon": 2}))
    with pytest.raises(ModelFormatError, match=r"^model spec: not a seqcast model description$"):
        engine.map(forecaster_from_spec, [good, ModelSpec(b"{}"), good])  # type: ignore[attr-defined]


def test_engines_started_from_a_name_are_stopped_when_the_call_ends() -> None:
    import multiprocessing

    models = [seqcast.Naive(horizon=2)]
    seqcast.Forecast(models, engine="process").cross_validation(_frame(), h=2, n_windows=3)
    assert multiprocessing.active_children() == []
    model = create_for("linear", {"window": 6, "horizon": 2}).fit([np.arange(40.0)[:, None]], 1)
    parts = [np.arange(30.0).reshape(3, 10, 1)] * 4
    assert len(list(seqcast.forecast_partitions(model, parts, engine="process"))) == 4
    assert multiprocessing.active_children() == []


def test_warnings_raised_in_workers_reach_the_caller(engine: object) -> None:
    import warnings

    from seqcast.errors import SeqcastWarning
    from seqcast.evaluation.backtest import RefitTask, refit_series

    settings = {"window": 6, "horizon": 2, "epochs": 1, "num_layers": 1, "dropout": 0.2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = model_spec(create_for("rnn", settings))
    values = np.sin(np.arange(40.0))[:, None]
    tasks = [RefitTask(spec, values, np.array([30 + k]), 1, 0, f"s{k}") for k in range(2)]
    with pytest.warns(SeqcastWarning, match="dropout acts between recurrent layers") as caught:
        engine.map(refit_series, tasks)  # type: ignore[attr-defined]
    named = [w.message for w in caught if "dropout acts" in str(w.message)]
    assert named[0].arguments == ("dropout", "num_layers")  # type: ignore[union-attr]
