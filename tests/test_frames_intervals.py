"""Intervals and quantiles through the DataFrame entry point, and their scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seqcast.errors import DataError
from seqcast.evaluation.probabilistic import coverage, wql
from seqcast.forecasters import MovingAverage, Naive
from seqcast.frames import Forecast, evaluate


def noisy_panel(n_series: int = 6, length: int = 300, seed: int = 0) -> pd.DataFrame:
    """Series of constant levels 10, 100, 1000 ... with Gaussian noise of 5 % of the level."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_series):
        level = 10.0 ** (1 + i % 3)
        y = level + 0.05 * level * rng.normal(size=length)
        frames.append(pd.DataFrame({"unique_id": f"s{i}", "ds": np.arange(length), "y": y}))
    return pd.concat(frames, ignore_index=True)


def test_predict_gives_interval_and_quantile_columns_around_the_point() -> None:
    forecast = Forecast([MovingAverage(window=50, horizon=3)]).fit(noisy_panel())
    out = forecast.predict(3, level=[95, 80], quantiles=[0.5, 0.1])
    assert list(out.columns) == ["unique_id", "ds", "ma", "ma-lo-80", "ma-hi-80", "ma-lo-95",
                                 "ma-hi-95", "ma-q0.1", "ma-q0.5"]  # fmt: skip
    assert (out["ma-lo-95"] < out["ma-lo-80"]).all()
    assert (out["ma-lo-80"] < out["ma"]).all() and (out["ma"] < out["ma-hi-80"]).all()
    np.testing.assert_allclose(out["ma-q0.1"], out["ma-lo-80"])
    np.testing.assert_allclose(out["ma-q0.5"], out["ma"])
    # Each series' band is in its own units: a level 100 × larger, a band about 100 × wider.
    width = (out["ma-hi-80"] - out["ma-lo-80"]).groupby(out["unique_id"]).mean()
    assert 30 < width["s2"] / width["s0"] < 300


def test_cross_validation_intervals_cover_known_noise_and_never_see_past_the_cutoff() -> None:
    panel = noisy_panel(length=400)
    forecast = Forecast([MovingAverage(window=100, horizon=5)])
    cv = forecast.cross_validation(panel, h=5, n_windows=10, level=[80])
    inside = (cv["y"] >= cv["ma-lo-80"]) & (cv["y"] <= cv["ma-hi-80"])
    assert 0.72 <= inside.mean() <= 0.88
    # Values after the last cutoff changed: the last window's bands stay as they were.
    later = panel.copy()
    last_cutoff = 400 - 5 - 1
    later.loc[later["ds"] > last_cutoff, "y"] *= 50.0
    again = forecast.cross_validation(later, h=5, n_windows=10, level=[80])
    np.testing.assert_allclose(again["ma-lo-80"], cv["ma-lo-80"])
    np.testing.assert_allclose(again["ma-hi-80"], cv["ma-hi-80"])


def test_evaluate_scores_quantiles_and_intervals_as_numpy_does() -> None:
    forecast = Forecast([Naive(horizon=4), MovingAverage(window=30, horizon=4)])
    cv = forecast.cross_validation(
        noisy_panel(3, 200), h=4, n_windows=2, level=[80], quantiles=[0.1, 0.5, 0.9]
    )
    scores = evaluate(cv, metrics=["wql", "coverage", "mae"])
    assert set(scores.columns) == {"unique_id", "metric", "naive", "ma"}
    assert set(scores["metric"]) == {"wql", "coverage_80", "mae"}
    for series_id, group in cv.groupby("unique_id"):
        expected_wql, expected_coverage = [], []
        for _, window in group.groupby("cutoff"):
            y = window["y"].to_numpy()
            q = window[["ma-q0.1", "ma-q0.5", "ma-q0.9"]].to_numpy()
            expected_wql.append(wql(y, q, (0.1, 0.5, 0.9)))
            expected_coverage.append(coverage(y, window["ma-lo-80"], window["ma-hi-80"]))
        row = scores[scores["unique_id"] == series_id].set_index("metric")["ma"]
        assert row["wql"] == pytest.approx(np.mean(expected_wql))
        assert row["coverage_80"] == pytest.approx(np.mean(expected_coverage))


def test_evaluate_reads_intervals_alone_with_the_point_as_median() -> None:
    frame = pd.DataFrame({"unique_id": "a", "ds": [0, 1], "y": [10.0, 20.0], "m": [11.0, 18.0],
                          "m-lo-80": [9.0, 15.0], "m-hi-80": [12.0, 19.0]})  # fmt: skip
    scores = evaluate(frame, metrics=["wql", "coverage"]).set_index("metric")["m"]
    q = np.array([[9.0, 11.0, 12.0], [15.0, 18.0, 19.0]])
    assert scores["wql"] == pytest.approx(wql(frame["y"].to_numpy(), q, (0.1, 0.5, 0.9)))
    assert scores["coverage_80"] == 0.5


def test_bands_are_refused_before_any_work_and_scores_need_them() -> None:
    forecast = Forecast([Naive()]).fit(noisy_panel(2, 50))
    with pytest.raises(DataError, match="level must lie"):
        forecast.predict(2, level=[100])
    with pytest.raises(DataError, match="quantiles must lie"):
        forecast.cross_validation(noisy_panel(2, 50), h=2, quantiles=[1.5])
    frame = forecast.predict(2).assign(y=1.0)
    with pytest.raises(DataError, match="wql needs quantile or interval columns of model"):
        evaluate(frame, metrics=["wql"])
