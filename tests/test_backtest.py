"""Backtests and leaderboards: the course numbers, the protocol by loop, and no leakage."""

from __future__ import annotations

import json
import math
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from seqcast.data import default_splits, load_dataset, load_series, split_indices
from seqcast.data.frame import SeriesData
from seqcast.errors import DataError
from seqcast.evaluation import METRIC_NAMES, backtest
from seqcast.evaluation.leaderboard import run_leaderboard
from seqcast.evaluation.metrics import mase_scale
from seqcast.forecasters import (
    DiffMovingAverage,
    LinearRegression,
    MovingAverage,
    Naive,
    SeasonalNaive,
    SmoothedDiffMovingAverage,
)
from seqcast.forecasters.base import Forecaster

SPLIT = 1461 - 461  # the course: train on the first 1,000 points


@pytest.fixture(scope="module")
def synthetic() -> SeriesData:
    return load_dataset("synthetic")


@pytest.mark.parametrize(
    ("model", "mae", "mse"),
    [
        (Naive(), 5.938, 61.83),
        (MovingAverage(window=30), 7.142, 106.67),
        (SeasonalNaive(season=365), 18.366, None),
        (DiffMovingAverage(window=50, season=365), 5.839, None),
        (SmoothedDiffMovingAverage(window=50, season=365, smooth=10), 4.569, None),
    ],
    ids=["naive", "ma30", "snaive365", "diff-ma", "diff-ma-smooth"],
)
def test_course_numbers(
    synthetic: SeriesData, model: Forecaster, mae: float, mse: float | None
) -> None:
    result = backtest(model, synthetic, [SPLIT])
    assert round(result.metrics["mae"], 3) == mae  # type: ignore[arg-type]
    if mse is not None:
        assert round(result.metrics["mse"], 2) == mse  # type: ignore[arg-type]
    assert len(result.origins[0]) == 461


def test_naive_one_step_protocol_by_loop(synthetic: SeriesData) -> None:
    y = synthetic.series[0].values[:, 0].tolist()
    errors = [y[t] - y[t - 1] for t in range(SPLIT, len(y))]  # forecast y[t] by y[t − 1]
    mae = sum(abs(e) for e in errors) / len(errors)
    mse = sum(e * e for e in errors) / len(errors)
    scale = sum(abs(y[t] - y[t - 1]) for t in range(1, SPLIT)) / (SPLIT - 1)
    result = backtest(Naive(), synthetic, [SPLIT])
    assert result.metrics["mae"] == pytest.approx(mae, rel=1e-12)
    assert result.metrics["mse"] == pytest.approx(mse, rel=1e-12)
    assert result.metrics["rmse"] == pytest.approx(mse**0.5, rel=1e-12)
    assert result.metrics["mase"] == pytest.approx(mae / scale, rel=1e-12)
    assert set(result.metrics) == set(METRIC_NAMES)
    assert result.per_target["y"]["mae"] == result.metrics["mae"]
    np.testing.assert_array_equal(result.forecasts[0][:, 0, 0], y[SPLIT - 1 : -1])
    np.testing.assert_array_equal(result.actuals[0][:, 0, 0], y[SPLIT:])


def test_mase_uses_the_given_season(synthetic: SeriesData) -> None:
    result = backtest(Naive(), synthetic, [SPLIT], season=365)
    train = synthetic.series[0].values[:SPLIT, 0]
    assert result.metrics["mase"] == pytest.approx(
        result.metrics["mae"] / mase_scale(train, 365), rel=1e-12
    )


@pytest.mark.parametrize("horizon", [2, 7])
@pytest.mark.parametrize("stride", [1, 3])
def test_horizon_origins_and_actuals(synthetic: SeriesData, horizon: int, stride: int) -> None:
    values = synthetic.series[0].values[:, 0]
    result = backtest(Naive(horizon=horizon), synthetic, [SPLIT], stride=stride)
    origins = result.origins[0]
    # origins from the split to N − T inclusive: every forecast lies inside the validation part
    assert origins.tolist() == list(range(SPLIT, 1461 - horizon + 1, stride))
    assert origins[-1] + horizon <= 1461
    assert result.forecasts[0].shape == result.actuals[0].shape == (len(origins), horizon, 1)
    errors = []
    for b, origin in enumerate(origins):
        np.testing.assert_array_equal(result.actuals[0][b, :, 0], values[origin : origin + horizon])
        np.testing.assert_array_equal(result.forecasts[0][b, :, 0], values[origin - 1])
        errors.extend(abs(values[origin + h] - values[origin - 1]) for h in range(horizon))
    assert result.metrics["mae"] == pytest.approx(np.mean(errors), rel=1e-12)


def test_stride_takes_every_kth_origin(synthetic: SeriesData) -> None:
    model = LinearRegression(window=10, horizon=3)
    every = backtest(model, synthetic, [SPLIT])
    strided = backtest(LinearRegression(window=10, horizon=3), synthetic, [SPLIT], stride=5)
    np.testing.assert_array_equal(strided.origins[0], every.origins[0][::5])
    np.testing.assert_allclose(strided.forecasts[0], every.forecasts[0][::5], rtol=1e-10)


@pytest.mark.parametrize("make", [lambda: Naive(horizon=2), lambda: MovingAverage(window=30)])
def test_refit_gives_the_same_as_no_refit_for_stateless_models(
    synthetic: SeriesData, make: object
) -> None:
    plain = backtest(make(), synthetic, [1400])  # type: ignore[operator]
    refit = backtest(make(), synthetic, [1400], refit=True)  # type: ignore[operator]
    np.testing.assert_array_equal(plain.forecasts[0], refit.forecasts[0])
    assert plain.metrics == refit.metrics


class Spy(Naive):
    """A naive forecaster that records every value ``fit`` and ``predict`` were given."""

    fitted: ClassVar[list[np.ndarray]] = []
    contexts: ClassVar[list[np.ndarray]] = []

    def _fit(self, series: list[np.ndarray]) -> None:
        Spy.fitted.extend(s.copy() for s in series)

    def _predict(self, context: np.ndarray, horizon: int) -> np.ndarray:
        Spy.contexts.append(context.copy())
        return super()._predict(context, horizon)


@pytest.fixture
def spy() -> type[Spy]:
    Spy.fitted.clear()
    Spy.contexts.clear()
    return Spy


def step_data(n: int) -> SeriesData:
    """A series whose value is its own time index, so each value tells where it came from."""
    return load_series(np.arange(n, dtype=np.float64))


@pytest.mark.parametrize("horizon", [1, 4])
def test_fit_never_sees_a_validation_value(spy: type[Spy], horizon: int) -> None:
    data, split = step_data(200), 150
    backtest(spy(horizon=horizon), data, [split])
    assert len(spy.fitted) == 1
    np.testing.assert_array_equal(spy.fitted[0][:, 0], np.arange(split))
    assert max(float(s.max()) for s in spy.fitted) < split
    # every forecast is made from history strictly before its first forecast step
    (contexts,) = spy.contexts
    np.testing.assert_array_equal(contexts[:, -1, 0], np.arange(split, 200 - horizon + 1) - 1)


def test_refit_fits_only_on_the_past_of_each_origin(spy: type[Spy]) -> None:
    data, split = step_data(60), 50
    result = backtest(spy(horizon=2), data, [split], refit=True)
    origins = result.origins[0].tolist()
    assert origins == list(range(split, 59))
    assert [len(s) for s in spy.fitted] == origins  # values[:origin] for each origin
    for seen, origin in zip(spy.fitted, origins, strict=True):
        assert seen[:, 0].max() == origin - 1
    for context, origin in zip(spy.contexts, origins, strict=True):
        assert context[0, -1, 0] == origin - 1


def test_several_series_are_pooled() -> None:
    frame = pd.DataFrame(
        {
            "id": ["a"] * 30 + ["b"] * 40,
            "t": [*range(30), *range(40)],
            "y": np.r_[np.arange(30.0) ** 1.5, np.sqrt(np.arange(40.0)) * 10],
        }
    )
    data = load_series(frame, id_col="id", time_col="t")
    result = backtest(Naive(), data, [20, 30])
    errors = []
    for series, split in zip(data.series, [20, 30], strict=True):
        y = series.values[:, 0]
        errors.extend(abs(y[t] - y[t - 1]) for t in range(split, len(y)))
    assert len(errors) == 20
    assert result.metrics["mae"] == pytest.approx(np.mean(errors), rel=1e-12)
    assert [o.tolist() for o in result.origins] == [list(range(20, 30)), list(range(30, 40))]


def test_too_short_series_states_the_minimum_length() -> None:
    data = step_data(70)  # split 50: 20 validation points, but ma needs 60 past points
    with pytest.raises(DataError) as info:
        backtest(MovingAverage(window=60), data, [50])
    message = str(info.value)
    assert "ma needs 60 past points before the first forecast" in message
    assert "the training part has 50" in message
    assert "needs at least 80 points for this split (it has 70)" in message


def test_a_neural_model_backtests_a_series_whose_training_part_is_shorter_than_its_context() -> (
    None
):
    """The short series' forecasts are those of the fitted model from its padded past: the
    origins' contexts hold NaN before the series' start, never a value after the origin."""
    from seqcast.forecasters import RNNForecaster

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"id": ["a"] * 60 + ["b"] * 12, "t": [*range(60), *range(12)],
         "y": np.r_[rng.normal(size=60).cumsum(), rng.normal(size=12).cumsum()]}
    )  # fmt: skip
    data = load_series(frame, id_col="id", time_col="t")
    model = RNNForecaster(window=8, horizon=2, epochs=1, hidden_size=4)
    with pytest.warns(Warning, match="1 of 2 training series are shorter"):
        result = backtest(model, data, [50, 6], stride=2)
    fitted = result.forecaster
    values = data.series[1].values
    assert result.origins[1].tolist() == [6, 8, 10]
    with pytest.warns(Warning, match="shorter than its context"):
        want = [fitted.predict(fitted.last_contexts([values[:o]], ["b"])) for o in (6, 8, 10)]
    np.testing.assert_allclose(result.forecasts[1], np.concatenate(want), rtol=1e-6)


def test_horizon_longer_than_validation_states_the_minimum_length() -> None:
    with pytest.raises(DataError, match="fewer than the horizon 5; the series needs at least 65"):
        backtest(Naive(horizon=5), step_data(63), [60])


def test_stride_must_be_positive() -> None:
    with pytest.raises(DataError, match="stride must be at least 1, got 0"):
        backtest(Naive(), step_data(20), [10], stride=0)


def test_summary_row() -> None:
    row = backtest(Naive(), step_data(20), [10]).summary()
    assert list(row) == [
        "model",
        *METRIC_NAMES,
        "fit_seconds",
        "predict_seconds",
        "epochs",
        "best_epoch",
        "params",
        "series_mean",
    ]
    assert row["model"] == "naive" and row["mae"] == 1.0
    assert row["epochs"] is None and row["params"] is None


# ------------------------------------------------------------------------ leaderboard
def test_leaderboard_ranks_by_mae(synthetic: SeriesData) -> None:
    options = dict(window=30, horizon=1, season=365)
    started: list[str] = []
    board = run_leaderboard(
        synthetic, ["snaive", "naive", "ma", "naive"], options, [SPLIT], on_start=started.append
    )
    assert started == ["snaive", "naive", "ma"]  # duplicates run once
    assert [r.model for r in board.results] == ["naive", "ma", "snaive"]
    maes = [round(r.metrics["mae"], 3) for r in board.results]  # type: ignore[arg-type]
    assert maes == [5.938, 7.142, 18.366]
    document = board.to_json()
    assert {k: document[k] for k in ("dataset", "targets", "window", "horizon", "val_size")} == {
        "dataset": "synthetic",
        "targets": ["y"],
        "window": 30,
        "horizon": 1,
        "val_size": 461,
    }
    assert [row["model"] for row in document["results"]] == ["naive", "ma", "snaive"]


def test_leaderboard_checks_every_model_before_running_any(synthetic: SeriesData) -> None:
    started: list[str] = []
    options = dict(window=30, season=1200)  # snaive needs 1,200 past points
    with pytest.raises(DataError, match="snaive needs 1200 past points"):
        run_leaderboard(synthetic, ["naive", "snaive"], options, [SPLIT], on_start=started.append)
    assert started == []


def test_leaderboard_reports_each_series_validation_size() -> None:
    """Series may have validation parts of different sizes (--split-time on series of different
    lengths): the document lists each (counted by hand) and claims no single per-series size."""
    frame = pd.DataFrame(
        {
            "id": ["a"] * 30 + ["b"] * 40,
            "date": [
                *pd.date_range("2020-01-01", periods=30),
                *pd.date_range("2020-01-01", periods=40),
            ],
            "y": np.arange(70.0),
        }
    )
    data = load_series(frame, id_col="id")
    board = run_leaderboard(data, ["naive"], dict(window=3), [20, 25])
    document = board.to_json()
    assert document["val_sizes"] == [30 - 20, 40 - 25]
    assert document["val_size"] is None
    assert board.describe_validation() == "10 to 15 validation points"
    same = run_leaderboard(data, ["naive"], dict(window=3), [20, 30]).to_json()
    assert (same["val_size"], same["val_sizes"]) == (10, [10, 10])


def test_leaderboard_json_is_strict_json_when_a_metric_overflows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Defence in depth: loading refuses values whose squares overflow (tests/test_loading.py);
    data built past that check still gives strict JSON."""
    import seqcast.data.values as values_module

    monkeypatch.setattr(values_module, "LARGEST_VALUE", np.inf)
    values = np.tile([1e160, -1e160], 15)
    data = load_series(values)
    splits = split_indices(data, val_size=6)
    with np.errstate(over="ignore"):  # the overflow is the point of the test
        board = run_leaderboard(data, ["naive"], dict(window=3, horizon=1), splits)
        errors = values[24:] - values[23:-1]  # naive: the previous value
        expected_mse = float(np.mean(errors**2))
    assert math.isinf(expected_mse)  # the square overflows; the absolute error does not
    # Before: json.dumps wrote "mse": Infinity, which no strict JSON parser reads.
    text = json.dumps(board.to_json(), allow_nan=False)
    row = json.loads(text)["results"][0]
    assert row["mse"] is None and row["rmse"] is None
    assert row["mae"] == pytest.approx(float(np.mean(np.abs(errors))))


def test_a_leaderboard_of_no_models_is_refused() -> None:
    data = load_dataset("synthetic")
    with pytest.raises(DataError, match="give at least one model"):
        run_leaderboard(data, [], {}, split_indices(data, val_size=100))


def two_stores() -> SeriesData:
    """Two daily series of very different levels and lengths, in long format."""
    rng = np.random.default_rng(3)
    frames = [
        pd.DataFrame(
            {
                "store": name,
                "date": pd.date_range("2024-01-01", periods=n, freq="D"),
                "sales": level + rng.normal(size=n).cumsum(),
            }
        )
        for name, n, level in (("small", 40, 10.0), ("large", 55, 5000.0))
    ]
    return load_series(pd.concat(frames), id_col="store", time_col="date", targets=["sales"])


def test_per_series_scores_are_each_series_own_and_their_mean_is_reported() -> None:
    data = two_stores()
    splits = [len(s) - 6 for s in data.series]
    result = backtest(Naive(window=3, horizon=2), data, splits, stride=2, season=1)
    assert len(result.per_series) == 2
    for i, (series, split) in enumerate(zip(data.series, splits, strict=True)):
        values = series.values[:, 0]
        errors, relative = [], []
        for origin in range(split, len(series) - 1, 2):  # 3 origins of 2 steps
            truth, last = values[origin : origin + 2], values[origin - 1]
            errors += list(np.abs(truth - last))
            relative += list(200 * np.abs(truth - last) / (np.abs(truth) + abs(last)))
        scale = np.abs(np.diff(values[:split])).mean()
        got = result.per_series[i]
        assert got["mae"] == pytest.approx(np.mean(errors))
        assert got["smape"] == pytest.approx(np.mean(relative))
        assert got["mase"] == pytest.approx(np.mean(errors) / scale)
    means = result.series_means
    assert means["smape"] == pytest.approx(np.mean([r["smape"] for r in result.per_series]))
    row = result.summary()
    assert row["series_mean"] == {k: pytest.approx(v) for k, v in means.items()}


def test_the_forecast_table_holds_every_origin_step_cutoff_and_actual() -> None:
    data = two_stores()
    splits = [len(s) - 6 for s in data.series]
    board = run_leaderboard(data, ["naive", "snaive"], {"window": 3, "horizon": 2, "season": 7},
                            splits, stride=2)  # fmt: skip
    table = board.forecast_frame(data)
    assert list(table.columns) == ["store", "date", "cutoff", "sales", "naive", "snaive"]
    assert len(table) == 2 * 3 * 2  # series × origins × steps
    for series in data.series:
        rows = table[table["store"] == series.series_id]
        times, values = series.time, series.values[:, 0]
        for _, row in rows.iterrows():
            position = times.get_loc(row["date"])
            assert row["sales"] == values[position]
            cutoff = times.get_loc(row["cutoff"])
            assert cutoff < position <= cutoff + 2  # the step is 1 or 2 after the cutoff
            assert row["naive"] == values[cutoff]  # naive: the last value seen
    document = board.to_json()
    assert [entry["id"] for entry in document["series"]] == ["small", "large"]
    assert "pools every series" in document["pooling"]


def test_n_windows_sets_the_validation_size() -> None:
    data = two_stores()
    splits = default_splits(data, n_windows=3, horizon=4, stride=2)
    assert splits == [len(s) - (4 + 2 * 2) for s in data.series]
    with pytest.raises(DataError, match="give n_windows or one of val_size"):
        default_splits(data, val_size=5, n_windows=2)
    with pytest.raises(DataError, match="n_windows must be at least 1, got 0"):
        default_splits(data, n_windows=0)
