"""seqcast/frames.py: long DataFrames in and out. Oracles: the naive forecast (the last value
seen), hand-built cutoffs and timestamps, numpy scores; leakage checked by changing every
value after a cutoff."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

import seqcast
from seqcast.errors import DataError, NotFittedError
from seqcast.forecasters import LinearRegression, Naive, SeasonalNaive
from seqcast.frames import Forecast, evaluate

LENGTHS = {"a": 30, "b": 45, "c": 24}


def long_frame(dates: bool = True, integer_ids: bool = False) -> pd.DataFrame:
    """Ragged series of different levels and end dates, daily or at integer steps."""
    rng = np.random.default_rng(0)
    parts = []
    for k, (name, n) in enumerate(LENGTHS.items()):
        start = pd.Timestamp("2024-01-01") + pd.Timedelta(days=7 * k)
        ds: Any = pd.date_range(start, periods=n, freq="D") if dates else np.arange(n) + 3 * k
        y = (k + 1) * 100.0 + rng.normal(size=n).cumsum()
        parts.append(pd.DataFrame({"unique_id": k if integer_ids else name, "ds": ds, "y": y}))
    return pd.concat(parts, ignore_index=True)


def test_predict_gives_each_series_its_last_value_at_its_next_dates() -> None:
    df = long_frame()
    forecast = Forecast([Naive(window=3)]).fit(df)
    out = forecast.predict(2)
    assert list(out.columns) == ["unique_id", "ds", "naive"]
    for name, group in df.groupby("unique_id"):
        rows = out[out["unique_id"] == name]
        last = group["ds"].iloc[-1]
        assert list(rows["ds"]) == [last + pd.Timedelta(days=1), last + pd.Timedelta(days=2)]
        assert list(rows["naive"]) == [group["y"].iloc[-1]] * 2


def test_integer_ids_and_steps_come_back_as_integers() -> None:
    df = long_frame(dates=False, integer_ids=True)
    out = Forecast([Naive(window=3)]).fit(df).predict(3, ids=[1])
    assert out["unique_id"].tolist() == [1, 1, 1]
    assert out["ds"].tolist() == [3 + 45, 3 + 46, 3 + 47]  # series 1 starts at step 3
    assert pd.api.types.is_integer_dtype(out["ds"])


def test_models_are_named_by_name_or_alias_and_never_changed() -> None:
    naive = Naive(window=3)
    out = Forecast([naive, Naive(window=5), LinearRegression(window=4)]).fit(long_frame())
    assert list(out.predict(1).columns) == ["unique_id", "ds", "naive", "naive_2", "linear"]
    assert not hasattr(naive, "is_fitted_")  # fitted copies, the caller's model untouched
    aliased = Forecast({"last": Naive(window=3)}).fit(long_frame()).predict(1)
    assert "last" in aliased.columns


def test_a_global_model_is_fitted_once_across_all_series() -> None:
    """Linear regression is fitted on the pooled windows of every series: its forecasts equal
    those of the same model fitted on the list of arrays."""
    df = long_frame()
    out = Forecast([LinearRegression(window=4)]).fit(df).predict(1)
    arrays = [g["y"].to_numpy()[:, None] for _, g in df.groupby("unique_id", sort=False)]
    model = LinearRegression(window=4).fit(arrays, 1)
    want = model.predict(np.stack([a[-4:] for a in arrays]), 1)[:, 0, 0]
    np.testing.assert_allclose(out["linear"].to_numpy(), want)


def test_cross_validation_cutoffs_count_back_from_each_series_end() -> None:
    df = long_frame()
    h, n_windows, step = 3, 3, 2
    cv = Forecast([Naive(window=2)]).cross_validation(df, h=h, n_windows=n_windows, step_size=step)
    assert list(cv.columns) == ["unique_id", "ds", "cutoff", "y", "naive"]
    assert len(cv) == len(LENGTHS) * n_windows * h
    for name, group in df.groupby("unique_id"):
        times, values = group["ds"].to_numpy(), group["y"].to_numpy()
        rows = cv[cv["unique_id"] == name]
        for k, (cutoff, window) in enumerate(rows.groupby("cutoff")):
            end = len(values) - h - (n_windows - 1 - k) * step  # first forecast position
            assert cutoff == times[end - 1]
            assert list(window["ds"]) == list(times[end : end + h])
            assert list(window["y"]) == list(values[end : end + h])
            assert list(window["naive"]) == [values[end - 1]] * h  # the last value seen


@pytest.mark.parametrize("refit", [True, False])
def test_cross_validation_never_sees_past_its_cutoff(refit: bool) -> None:
    """Every value after each series' first cutoff is replaced: the first window's forecasts
    (and, with refit, each window's) must not change; a model's training ends at its cutoff."""
    df = long_frame()
    forecast = Forecast([LinearRegression(window=4), SeasonalNaive(window=2, season=7)])
    cv = forecast.cross_validation(df, h=4, n_windows=2, step_size=4, refit=refit)
    first = cv.groupby("unique_id")["cutoff"].transform("min")
    changed = df.copy()
    cut = changed.merge(cv[["unique_id"]].assign(first=first).drop_duplicates(), on="unique_id")
    changed.loc[cut["ds"].to_numpy() > cut["first"].to_numpy(), "y"] = 1e6
    again = forecast.cross_validation(changed, h=4, n_windows=2, step_size=4, refit=refit)
    early = cv["cutoff"] == first
    pd.testing.assert_frame_equal(
        cv.loc[early, ["linear", "snaive"]], again.loc[early, ["linear", "snaive"]]
    )


def test_refitting_at_each_cutoff_matches_fitting_on_the_data_up_to_it() -> None:
    df = long_frame()
    cv = Forecast([LinearRegression(window=4)]).cross_validation(df, h=2, n_windows=2)
    last = cv[cv["cutoff"] == cv.groupby("unique_id")["cutoff"].transform("max")]
    head = df[df.groupby("unique_id").cumcount(ascending=False) >= 2]  # all but the last 2
    want = Forecast([LinearRegression(window=4)]).fit(head).predict(2)
    np.testing.assert_allclose(last["linear"].to_numpy(), want["linear"].to_numpy())


def test_evaluate_scores_each_series_as_numpy_does() -> None:
    df = long_frame()
    cv = Forecast([Naive(window=2)]).cross_validation(df, h=3, n_windows=2)
    scores = evaluate(cv, ["mae", "smape", "mase"], train_df=df, season=1)
    assert list(scores.columns) == ["unique_id", "metric", "naive"]
    for name, group in cv.groupby("unique_id"):
        error = np.abs(group["y"].to_numpy() - group["naive"].to_numpy())
        got = scores[scores["unique_id"] == name].set_index("metric")["naive"]
        assert got["mae"] == pytest.approx(error.mean())
        smape = 200 * error / (np.abs(group["y"]) + np.abs(group["naive"]))
        assert got["smape"] == pytest.approx(smape.mean())
        values = df.loc[df["unique_id"] == name, "y"].to_numpy()
        times = df.loc[df["unique_id"] == name, "ds"].to_numpy()
        mase = []
        for cutoff, window in group.groupby("cutoff"):
            seen = values[times <= cutoff]  # the scale from what the model saw
            scale = np.abs(np.diff(seen)).mean()
            mase.append(np.abs(window["y"] - window["naive"]).mean() / scale)
        assert got["mase"] == pytest.approx(np.mean(mase))
    total = evaluate(cv, ["smape"], aggregate=True)
    assert total["naive"].iloc[0] == pytest.approx(
        scores[scores["metric"] == "smape"]["naive"].mean()
    )


def test_mistakes_are_named() -> None:
    df = long_frame()
    with pytest.raises(DataError, match="df has no column 'y'"):
        Forecast([Naive()]).fit(df.rename(columns={"y": "sales"}))
    assert Forecast([Naive()], target_col="sales").fit(df.rename(columns={"y": "sales"}))
    with pytest.raises(NotFittedError):
        Forecast([Naive()]).predict(1)
    with pytest.raises(DataError, match="h must be at least 1, got 0"):
        Forecast([Naive()]).fit(df).predict(0)
    with pytest.raises(DataError, match="ids: no series 'z'"):
        Forecast([Naive()]).fit(df).predict(1, ids=["z"])
    with pytest.raises(DataError, match="series 'c' has 24 points; 3 window"):
        Forecast([Naive()]).cross_validation(df, h=8, n_windows=3)
    with pytest.raises(DataError, match=r"series 'c' has 24 points before its forecast; snaive"):
        Forecast([SeasonalNaive(window=2, season=26)]).fit(df).predict(1)
    with pytest.raises(DataError, match="not a seqcast forecaster"):
        Forecast(["naive"])  # type: ignore[list-item]
    with pytest.raises(DataError, match="unknown metric 'r2'"):
        evaluate(pd.DataFrame({"unique_id": [], "y": [], "m": []}), ["r2"])
    with pytest.raises(DataError, match="mase needs train_df"):
        evaluate(pd.DataFrame({"unique_id": ["a"], "y": [1.0], "m": [1.0]}), ["mase"])


def test_the_public_api_exports_the_frame_entry_point() -> None:
    assert seqcast.Forecast is Forecast and seqcast.evaluate is evaluate


def test_a_series_shorter_than_the_context_is_forecast_from_its_padded_past() -> None:
    """Ragged lengths: the neural model pads the short series (saying how many), the baseline
    that needs whole contexts names the series it cannot forecast."""
    df = long_frame(dates=False)
    short = pd.DataFrame({"unique_id": "d", "ds": np.arange(6), "y": 50.0 + np.arange(6)})
    df = pd.concat([df, short], ignore_index=True)
    rnn = seqcast.RNNForecaster(window=8, horizon=2, epochs=2, hidden_size=4)
    forecast = Forecast([rnn])
    with pytest.warns(Warning, match="1 of 4 training series are shorter"):
        forecast.fit(df)
    with pytest.warns(Warning, match="1 of 4 series are shorter than its context"):
        out = forecast.predict()
    rows = out[out["unique_id"] == "d"]
    assert rows["ds"].tolist() == [6, 7] and np.isfinite(rows["rnn"]).all()
    linear = Forecast([LinearRegression(window=8)]).fit(df)
    with pytest.raises(DataError, match="series 'd' has 6 points before its forecast; linear"):
        linear.predict(1)


def test_a_model_without_a_season_on_seasonal_data_is_warned_never_changed() -> None:
    """Daily data has a weekly season: a model left at season 1 hears of it; one given its
    season, or one without a season, does not. The fitted model keeps season 1."""
    df = long_frame()
    with pytest.warns(Warning, match=r"snaive has season 1, but the data's frequency \(D\) has a "
                      "season of 7: pass season=7"):  # fmt: skip
        forecast = Forecast([SeasonalNaive(window=3, season=1)]).fit(df)
    assert forecast.fitted_["snaive"].season == 1  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Forecast([SeasonalNaive(window=7, season=7), Naive(window=3)]).fit(df)
        Forecast([SeasonalNaive(window=3, season=1)]).fit(long_frame(dates=False))


def statics_for(df: pd.DataFrame) -> pd.DataFrame:
    names = list(dict.fromkeys(df["unique_id"]))
    return pd.DataFrame(
        {"unique_id": names, "size": [10.0 * (k + 1) for k in range(len(names))], "kind": 1}
    )


def test_static_columns_reach_every_model_as_constant_input_channels() -> None:
    """Oracle: the same model fitted on arrays whose extra columns repeat each series' static
    values; Forecast with static_df gives the same forecasts."""
    df = long_frame(dates=False)
    static = statics_for(df)
    out = Forecast([LinearRegression(window=4)]).fit(df, static_df=static).predict(1)
    arrays = []
    for k, (_, group) in enumerate(df.groupby("unique_id", sort=False)):
        y = group["y"].to_numpy()
        arrays.append(np.column_stack([y, np.full(len(y), 10.0 * (k + 1)), np.ones(len(y))]))
    model = LinearRegression(window=4).fit(arrays, 1)
    want = model.predict(np.stack([a[-4:] for a in arrays]), 1)[:, 0, 0]
    np.testing.assert_allclose(out["linear"].to_numpy(), want)
    fitted = Forecast([seqcast.RNNForecaster(window=4, epochs=1, hidden_size=3)])
    assert fitted.fit(df, static_df=static).fitted_["rnn"].n_features_ == 3
    cv = Forecast([LinearRegression(window=4)]).cross_validation(df, h=1, static_df=static)
    assert len(cv) == len(LENGTHS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing", "static_df has no row for series 'c' \\(1 series without one\\)"),
        ("twice", "static_df has several rows for series 'a'"),
        ("text", "static_df column 'kind' must hold finite numbers"),
        ("clash", "static_df has a column 'y', the name of the time or target column"),
        ("no-id", "static_df must be a DataFrame with the id column 'unique_id'"),
    ],
)
def test_bad_static_frames_are_named(change: str, message: str) -> None:
    df = long_frame()
    static = statics_for(df)
    if change == "missing":
        static = static[static["unique_id"] != "c"]
    elif change == "twice":
        static = pd.concat([static, static.iloc[:1]])
    elif change == "text":
        static["kind"] = "shop"
    elif change == "clash":
        static["y"] = 1.0
    else:
        static = static.drop(columns="unique_id")
    with pytest.raises(DataError, match=message):
        Forecast([Naive(window=3)]).fit(df, static_df=static)
