"""Inputs known ahead (issue 17): calendar cycles and future features, given to a model at
the forecast steps. Tests for leakage (a target after the origin, or a known value past the
horizon, never moves a forecast), for alignment (the value at step t serves step t), and for
the roll-out, the saved model and the command line."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_runner import run_main

from seqcast.data import load_series
from seqcast.data.calendar import calendar_names, calendar_values
from seqcast.data.frame import SeriesData
from seqcast.errors import DataError
from seqcast.evaluation import backtest
from seqcast.forecasters import LinearRegression, Naive
from seqcast.forecasters.registry import create_for
from seqcast.persistence import load_model, save_model
from seqcast.prediction import predict_saved

RNN = dict(window=8, horizon=3, epochs=3, hidden_size=8, batch_size=64, patience=0, seed=0)


def promo_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Daily sales that jump on promotion days, which are planned (known ahead)."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2023-01-02", periods=n, freq="D")  # a Monday
    promo = (rng.random(n) < 0.2).astype(float)
    sales = 50 + 4 * (days.day_of_week >= 5) + 20 * promo + rng.normal(0, 0.5, n)
    return pd.DataFrame({"date": days, "sales": sales, "promo": promo})


def promo_data(calendar: str = "none") -> SeriesData:
    return load_series(
        promo_frame(), targets=["sales"], future_features=["promo"], calendar=calendar
    )


# --------------------------------------------------------------------------- calendar
def test_calendar_values_are_the_sine_and_cosine_of_each_phase_by_a_loop() -> None:
    stamps = pd.DatetimeIndex(["2024-01-01 06:00", "2024-03-15 18:30", "2024-12-31 23:00"])
    names = calendar_names(pd.date_range("2024-01-01", periods=3, freq="h"))
    assert names == ["calendar:hour_sin", "calendar:hour_cos", "calendar:weekday_sin",
                     "calendar:weekday_cos"]  # fmt: skip
    values = calendar_values(stamps, names)
    for row, stamp in zip(values, stamps, strict=True):
        hour = 2 * np.pi * (stamp.hour + stamp.minute / 60) / 24
        weekday = 2 * np.pi * stamp.weekday() / 7
        np.testing.assert_allclose(
            row, [np.sin(hour), np.cos(hour), np.sin(weekday), np.cos(weekday)], atol=1e-12
        )


@pytest.mark.parametrize(
    ("freq", "cycles"),
    [("h", ["hour", "weekday"]), ("D", ["weekday", "yearday"]), ("W", ["week"]),
     ("MS", ["month"]), ("QS", ["quarter"]), ("YS", [])],
)  # fmt: skip
def test_the_cycles_follow_the_frequency(freq: str, cycles: list[str]) -> None:
    names = calendar_names(pd.date_range("2024-01-01", periods=10, freq=freq))
    assert names == [f"calendar:{c}_{p}" for c in cycles for p in ("sin", "cos")]
    assert calendar_names(pd.RangeIndex(10)) == []  # steps without dates


def test_loaded_data_puts_the_known_columns_last() -> None:
    frame = promo_frame().assign(temperature=1.0)
    data = load_series(frame, targets=["sales"], future_features=["promo"], calendar="auto")
    assert data.columns == ("sales", "temperature", "promo", "calendar:weekday_sin",
                            "calendar:weekday_cos", "calendar:yearday_sin",
                            "calendar:yearday_cos")  # fmt: skip
    assert data.n_future == 5 and len(data.calendar) == 4
    values = data.series[0].values
    np.testing.assert_array_equal(values[:, 2], frame["promo"])
    np.testing.assert_allclose(values[:, 3:], calendar_values(pd.DatetimeIndex(frame["date"]),
                                                              list(data.calendar)))  # fmt: skip
    with pytest.raises(DataError, match="has no future feature column 'price'"):
        load_series(frame, targets=["sales"], future_features=["price"])
    with pytest.raises(DataError, match="'sales' is both a target and a future feature"):
        load_series(frame, targets=["sales"], future_features=["sales"])
    with pytest.raises(DataError, match="unknown calendar 'yes'"):
        load_series(frame, targets=["sales"], calendar="yes")


# ------------------------------------------------------------------- alignment, leakage
@pytest.mark.parametrize("model", ["linear", "rnn"])
def test_the_value_known_at_a_step_serves_that_step(model: str) -> None:
    """y[t] = 3·k[t] + noise with k random: only the known value at the same step explains
    it. A model reading k one step off could not forecast it."""
    rng = np.random.default_rng(1)
    known = rng.normal(size=400)
    y = 3 * known + rng.normal(0, 0.01, 400)
    values = np.stack([y, known], axis=1)
    options = dict(window=6, horizon=3) if model == "linear" else dict(RNN, epochs=40)
    forecaster = create_for(model, options).fit([values[:300]], 1, n_future=1)
    starts = np.arange(300, 397)
    contexts = np.stack([values[s - forecaster.context_length : s] for s in starts])
    future = np.stack([values[s : s + 3, 1:] for s in starts])
    truth = np.stack([values[s : s + 3, 0] for s in starts])
    error = np.abs(forecaster.predict(contexts, future=future)[:, :, 0] - truth).mean()
    blind = np.abs(forecaster.predict(contexts, future=np.roll(future, 1, axis=1))[:, :, 0]
                   - truth).mean()  # fmt: skip
    assert error < 0.2 * blind
    assert error < (0.05 if model == "linear" else 1.0)  # noise 0.01, k of size 1: y of size 3


@pytest.mark.parametrize("model", ["linear", "rnn"])
def test_a_forecast_never_moves_with_a_target_after_its_origin_or_a_value_past_its_horizon(
    model: str,
) -> None:
    data = promo_data()
    options = dict(window=6, horizon=3) if model == "linear" else RNN
    split = 250
    base = backtest(create_for(model, options), data, [split], stride=5)
    values = data.series[0].values
    origin = int(base.origins[0][3])
    for column, start in ((0, origin), (1, origin + 3)):
        changed = values.copy()
        changed[start:, column] = changed[start:, column] * -7 + 1000  # after the origin
        other = SeriesData(series=(data.series[0].__class__(changed, data.series[0].time),),
                           columns=data.columns, n_targets=1, freq=data.freq,
                           n_future=data.n_future)  # fmt: skip
        moved = backtest(create_for(model, options), other, [split], stride=5)
        # Equal but for the last bits of a batched product (a leak moves it by far more).
        np.testing.assert_allclose(moved.forecasts[0][3], base.forecasts[0][3], rtol=1e-12)
    # The known values inside the horizon are read: changing one moves the forecast.
    changed = values.copy()
    changed[origin + 1, 1] += 5.0
    other = SeriesData(series=(data.series[0].__class__(changed, data.series[0].time),),
                       columns=data.columns, n_targets=1, freq=data.freq,
                       n_future=data.n_future)  # fmt: skip
    moved = backtest(create_for(model, options), other, [split], stride=5)
    assert not np.array_equal(moved.forecasts[0][3], base.forecasts[0][3])


def test_known_values_beat_the_same_values_known_only_in_the_past() -> None:
    frame = promo_frame()
    past = load_series(frame, targets=["sales"], features=["promo"])
    known = load_series(frame, targets=["sales"], future_features=["promo"])
    model = LinearRegression(window=7, horizon=3)
    blind = backtest(model, past, [250]).metrics["mae"]
    seen = backtest(LinearRegression(window=7, horizon=3), known, [250]).metrics["mae"]
    assert seen is not None and blind is not None and seen < 0.3 * blind


# -------------------------------------------------------------------------- roll-out
def test_a_roll_out_feeds_each_block_its_known_values_and_ends_at_the_horizon() -> None:
    """Oracle: blocks from 0 and 3, and a last one from 4 (7 − 3) that ends at step 7, each
    forecast directly from the context extended by the earlier blocks and their known values."""
    values = promo_data().series[0].values
    model = LinearRegression(window=6, horizon=3).fit([values[:250]], 1, n_future=1)
    context, future = values[244:250][None], values[250:257, 1:][None]
    rolled = model.predict(context, 7, future=future)
    extended = context
    expected = np.empty((1, 7, 1))
    for start in (0, 3, 4):
        block = model.predict(extended[:, start : start + 6], future=future[:, start : start + 3])
        expected[:, start : start + 3] = block
        rows = np.concatenate([block, future[:, start : start + 3]], axis=2)
        extended = np.concatenate([extended[:, : 6 + start], rows], axis=1)
    np.testing.assert_allclose(rolled, expected)


def test_a_model_without_known_inputs_ignores_future_and_one_with_them_needs_it() -> None:
    values = promo_data().series[0].values
    naive = Naive().fit([values], 1, n_future=1)
    assert naive.n_known == 0
    alone = naive.predict(values[None], 2)
    np.testing.assert_array_equal(alone, naive.predict(values[None], 2, values[None, :2, 1:]))
    model = LinearRegression(window=6, horizon=3).fit([values], 1, n_future=1)
    with pytest.raises(DataError, match=r"reads 1 input\(s\) known ahead; pass their values"):
        model.predict(values[None, -6:])
    with pytest.raises(DataError, match="future covers 2 step"):
        model.predict(values[None, -6:], 3, future=values[None, :2, 1:])
    with pytest.raises(DataError, match="future has missing or infinite values"):
        model.predict(values[None, -6:], 3, future=np.full((1, 3, 1), np.nan))
    with pytest.raises(DataError, match=r"n_future must lie in 0\.\.1"):
        LinearRegression().fit([values], 1, n_future=2)


# ---------------------------------------------------------------- saved models, CLI
def test_a_saved_model_computes_its_calendar_and_reads_its_future_features(
    tmp_path: Path,
) -> None:
    data = promo_data(calendar="auto")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_for("linear", dict(window=6, horizon=3)).fit(
            [s.values for s in data.series], 1, n_future=data.n_future
        )
    saved = load_model(save_model(model, tmp_path / "m", data))
    assert saved.forecaster.n_known == 5
    days = pd.date_range("2023-10-29", periods=5, freq="D")  # the 5 days after the data
    future = pd.DataFrame({"date": days, "promo": [1.0, 0.0, 0.0, 1.0, 0.0]})
    table = predict_saved(saved, 5, future=future)
    assert list(table["date"]) == list(days)
    # Oracle: the model's own roll-out from its stored context, with the calendar by hand.
    known = np.hstack([future[["promo"]].to_numpy(), calendar_values(days, list(data.calendar))])
    expected = model.predict(data.series[0].values[None, -6:], 5, future=known[None])
    np.testing.assert_allclose(table["sales"].to_numpy(), expected[0, :, 0])
    with pytest.raises(DataError, match=r"reads inputs known ahead \(promo\)"):
        predict_saved(saved, 5)
    with pytest.raises(DataError, match=r"future has no row for .* at 2023-11-02"):
        predict_saved(saved, 5, future=future.iloc[:4])


def test_the_service_takes_future_features_and_computes_calendar_and_static_values(
    tmp_path: Path,
) -> None:
    """Oracle: the saved model's predict_saved with the same future values."""
    from fastapi.testclient import TestClient

    from seqcast.serving import create_app

    frame = promo_frame().assign(store=1.0)
    data = load_series(frame, targets=["sales"], future_features=["promo"],
                       static_features=["store"], calendar="auto")  # fmt: skip
    model = LinearRegression(window=6, horizon=3).fit(
        [data.series[0].values], 1, n_future=data.n_future
    )
    folder = save_model(model, tmp_path / "m", data)
    client = TestClient(create_app([folder]))
    info = client.get("/models/m").json()
    assert info["future_features"] == ["promo"] and info["features"] == ["promo", "store"]
    assert info["calendar"] == list(data.calendar)
    tail = frame.iloc[-10:]
    body = {
        "history": tail[["sales", "promo", "store"]].to_numpy().tolist(),
        "timestamps": [t.isoformat() for t in tail["date"]],
        "horizon": 5,
        "future": [1.0, 0.0, 0.0, 1.0, 0.0],
    }
    answer = client.post("/models/m/forecast", json=body)
    assert answer.status_code == 200, answer.text
    days = pd.date_range(frame["date"].iloc[-1] + pd.Timedelta(days=1), periods=5, freq="D")
    expected = predict_saved(
        load_model(folder), 5, future=pd.DataFrame({"date": days, "promo": body["future"]})
    )
    np.testing.assert_allclose(answer.json()["forecast"], expected["sales"].to_numpy())
    short = client.post("/models/m/forecast", json={**body, "future": [1.0, 0.0]})
    assert short.status_code == 422 and "send future with 5 row(s)" in short.json()["detail"]
    undated = client.post("/models/m/forecast", json={**body, "timestamps": None})
    assert undated.status_code == 422 and "send timestamps" in undated.json()["detail"]


def test_cli_backtest_fit_and_predict_with_inputs_known_ahead(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "promo.csv"
    promo_frame().to_csv(path, index=False)
    common = ["--target", "sales", "--future-feature", "promo", "--calendar", "auto",
              "-m", "linear", "--horizon", "3", "--window", "7"]  # fmt: skip
    run = run_main(capsys, "backtest", str(path), *common, "--val-size", "30")
    assert run.code == 0, run.err
    folder = tmp_path / "m"
    run = run_main(capsys, "fit", str(path), *common, "--out", str(folder), "--quiet")
    assert run.code == 0, run.err
    run = run_main(capsys, "predict", str(folder))
    assert run.code == 2 and "--future" in run.err
    future = tmp_path / "future.csv"
    days = pd.date_range("2023-10-29", periods=3, freq="D")
    pd.DataFrame({"date": days, "promo": [0.0, 1.0, 0.0]}).to_csv(future, index=False)
    run = run_main(capsys, "predict", str(folder), "--future", str(future))
    assert run.code == 0, run.err
    assert run.out.splitlines()[0] == "date,sales" and len(run.out.splitlines()) == 4


def long_stores(n: int = 120) -> pd.DataFrame:
    """Two stores whose sales scale with their size, a column constant within each store."""
    rng = np.random.default_rng(4)
    days = pd.date_range("2023-01-02", periods=n, freq="D")
    parts = []
    for store, size in (("a", 1.0), ("b", 3.0)):
        sales = size * (20 + 5 * (days.day_of_week >= 5)) + rng.normal(0, 0.3, n)
        parts.append(pd.DataFrame({"store": store, "date": days, "sales": sales, "size": size}))
    return pd.concat(parts, ignore_index=True)


def test_static_features_are_known_ahead_as_their_own_value(tmp_path: Path) -> None:
    frame = long_stores()
    data = load_series(frame, targets=["sales"], id_col="store", static_features=["size"])
    assert data.columns == ("sales", "size") and data.n_future == 1 and data.static == ("size",)
    model = LinearRegression(window=7, horizon=3).fit(
        [s.values for s in data.series], 1, n_future=data.n_future
    )
    saved = load_model(save_model(model, tmp_path / "m", data))
    table = predict_saved(saved, 5)  # no future needed: the size is the last one seen
    for store, series in zip(("a", "b"), data.series, strict=True):
        values = series.values
        known = np.repeat(values[-1:, 1:], 5, axis=0)[None]  # (1, 5, 1)
        expected = model.predict(values[None, -7:], 5, future=known)[0, :, 0]
        got = table.loc[table["store"] == store, "sales"].to_numpy()
        np.testing.assert_allclose(got, expected)
    changing = frame.assign(size=np.arange(len(frame), dtype=float))
    with pytest.raises(DataError, match=r"series 'a': static feature column 'size' takes 120"):
        load_series(changing, targets=["sales"], id_col="store", static_features=["size"])


def test_cli_static_feature_through_backtest_fit_and_predict(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "stores.csv"
    long_stores().to_csv(path, index=False)
    common = ["--id-col", "store", "--target", "sales", "--static-feature", "size", "-m",
              "linear", "--window", "7", "--horizon", "2"]  # fmt: skip
    run = run_main(capsys, "backtest", str(path), *common, "--val-size", "14")
    assert run.code == 0, run.err
    folder = tmp_path / "m"
    run = run_main(capsys, "fit", str(path), *common, "--out", str(folder), "--quiet")
    assert run.code == 0, run.err
    run = run_main(capsys, "predict", str(folder), "--horizon", "4")
    assert run.code == 0, run.err
    assert len(run.out.splitlines()) == 1 + 2 * 4


# ------------------------------------------------------------------ the DataFrame API
def promo_long() -> pd.DataFrame:
    frame = promo_frame(200)
    return frame.rename(columns={"date": "ds", "sales": "y"}).assign(unique_id="s")[
        ["unique_id", "ds", "y", "promo"]
    ]


def test_forecast_predict_takes_the_future_features_in_x_df() -> None:
    from seqcast.frames import Forecast

    df = promo_long()
    forecast = Forecast([LinearRegression(window=7, horizon=3)], future_features=["promo"],
                        calendar="auto").fit(df)  # fmt: skip
    days = pd.date_range(df["ds"].iloc[-1] + pd.Timedelta(days=1), periods=5, freq="D")
    x_df = pd.DataFrame({"unique_id": "s", "ds": days, "promo": [1.0, 0, 0, 1, 0]})
    out = forecast.predict(5, X_df=x_df)
    assert list(out["ds"]) == list(days)
    # Oracle: the same model on arrays, with the calendar by hand.
    data = load_series(promo_frame(200), targets=["sales"], future_features=["promo"],
                       calendar="auto")  # fmt: skip
    model = LinearRegression(window=7, horizon=3).fit(
        [data.series[0].values], 1, n_future=data.n_future
    )
    known = np.hstack([x_df[["promo"]].to_numpy(), calendar_values(days, list(data.calendar))])
    expected = model.predict(data.series[0].values[None, -7:], 5, future=known[None])
    np.testing.assert_allclose(out["linear"].to_numpy(), expected[0, :, 0])
    with pytest.raises(DataError, match=r"reads inputs known ahead \(promo\)"):
        forecast.predict(5)


def test_cross_validation_reads_the_known_values_after_each_cutoff_never_the_targets() -> None:
    from seqcast.frames import Forecast

    df = promo_long()
    forecast = Forecast([LinearRegression(window=7, horizon=3)], future_features=["promo"])
    cv = forecast.cross_validation(df, h=3, n_windows=4, step_size=3)
    later = df.copy()
    later.loc[later.index[-3:], "y"] += 1000.0  # the targets after the last cutoff
    moved = forecast.cross_validation(later, h=3, n_windows=4, step_size=3)
    np.testing.assert_allclose(moved["linear"], cv["linear"], rtol=1e-12)
    assert not np.allclose(moved["y"], cv["y"])  # the actual values did change
    planned = df.copy()
    planned.loc[planned.index[-2], "promo"] = 1.0 - planned["promo"].iloc[-2]
    read = forecast.cross_validation(planned, h=3, n_windows=4, step_size=3)
    # The last cutoff's forecast reads the planned value of its second step; no other does.
    changed = ~np.isclose(read["linear"], cv["linear"], rtol=1e-12)
    assert changed[-3:].any() and not changed[:-3].any()


def test_calibration_below_the_model_horizon_gives_known_values_for_its_whole_horizon() -> None:
    """Review: calibrating 3 steps of a model of horizon 5 with known inputs failed ('future
    covers 3 steps; the forecast needs 5')."""
    from seqcast.evaluation.conformal import calibrate

    values = promo_data().series[0].values
    conformal = calibrate(LinearRegression(window=6, horizon=5), [values], 1, 3, n_future=1)
    assert conformal.widths.shape[1] == 3 and np.isfinite(conformal.widths).all()


def test_cross_validation_shorter_than_a_model_reading_future_features_is_refused() -> None:
    from seqcast.frames import Forecast

    forecast = Forecast([LinearRegression(window=7, horizon=5)], future_features=["promo"])
    with pytest.raises(DataError, match="cross-validate with h=5 at least"):
        forecast.cross_validation(promo_long(), h=3)


def test_lr_find_sweeps_the_network_with_its_known_inputs() -> None:
    values = promo_data(calendar="auto").series[0].values
    model = create_for("rnn", dict(RNN, season=1))
    result = model.lr_find([values], 1, n_future=values.shape[1] - 1)
    assert np.isfinite(result.losses).any()


def test_predict_data_and_future_read_as_the_model_was_fitted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Review: predict --data refused a calendar model (it looked for calendar columns in the
    file), and a day-first --future file was read month-first, silently."""
    frame = promo_frame()
    path = tmp_path / "promo.csv"
    frame.assign(date=frame["date"].dt.strftime("%d/%m/%Y")).to_csv(path, index=False)
    folder = tmp_path / "m"
    run = run_main(capsys, "fit", str(path), "--target", "sales", "--future-feature", "promo",
                   "--calendar", "auto", "-m", "linear", "--window", "7", "--horizon", "3",
                   "--date-format", "%d/%m/%Y", "--out", str(folder), "--quiet")  # fmt: skip
    assert run.code == 0, run.err
    days = pd.date_range(frame["date"].iloc[-1] + pd.Timedelta(days=1), periods=3, freq="D")
    future = tmp_path / "future.csv"
    pd.DataFrame({"date": days.strftime("%d/%m/%Y"), "promo": [1.0, 0.0, 1.0]}).to_csv(
        future, index=False
    )
    run = run_main(capsys, "predict", str(folder), "--future", str(future))
    assert run.code == 0, run.err
    dated = run_main(capsys, "predict", str(folder), "--data", str(path), "--future", str(future))
    assert dated.code == 0, dated.err
    assert dated.out == run.out  # the same history, read again from the file
    sales = pd.read_csv(io.StringIO(run.out))["sales"].to_numpy()
    assert sales[0] > sales[1] < sales[2]  # the promotions lift the first and third days


def test_a_column_both_future_and_static_is_refused_and_linear_forecasts_zero_rows() -> None:
    frame = promo_frame()
    with pytest.raises(DataError, match="'promo' is both a future feature and a static feature"):
        load_series(frame, targets=["sales"], future_features=["promo"], static_features=["promo"])
    values = promo_data().series[0].values
    model = LinearRegression(window=6, horizon=3).fit([values], 1, n_future=1)
    empty = model.predict(np.empty((0, 6, 2)), 3, future=np.empty((0, 3, 1)))
    assert empty.shape == (0, 3, 1)


def test_the_service_refuses_odd_known_input_requests_in_one_line_never_a_500(
    tmp_path: Path,
) -> None:
    """Second review: mixed UTC offsets, a future past year 9999, quantiles a model cannot
    give, and a baseline fitted beside known inputs (it reads none, so asks for none)."""
    from fastapi.testclient import TestClient

    from seqcast.serving import create_app

    frame = promo_frame()
    data = load_series(frame, targets=["sales"], future_features=["promo"], calendar="auto")
    linear = LinearRegression(window=6, horizon=3).fit(
        [data.series[0].values], 1, n_future=data.n_future
    )
    naive = Naive().fit([data.series[0].values], 1, n_future=data.n_future)
    folders = [save_model(linear, tmp_path / "lin", data),
               save_model(naive, tmp_path / "nv", data)]  # fmt: skip
    client = TestClient(create_app(folders), raise_server_exceptions=False)
    tail = frame.iloc[-10:]
    stamps = [t.isoformat() for t in tail["date"]]
    body = {"history": tail[["sales", "promo"]].to_numpy().tolist(), "timestamps": stamps,
            "future": [0.0, 1.0, 0.0]}  # fmt: skip
    mixed = [f"{t.date()}T00:00:00+0{1 + (k > 4)}:00" for k, t in enumerate(tail["date"])]
    answer = client.post("/models/lin/forecast", json={**body, "timestamps": mixed})
    assert answer.status_code == 422 and "one UTC offset" in answer.json()["detail"]
    late = [f"9999-12-{d:02d}" for d in range(20, 30)]
    answer = client.post("/models/lin/forecast", json={**body, "timestamps": late})
    assert answer.status_code == 200, answer.text  # into year 10000, where pandas reaches
    assert answer.json()["timestamps"][-1] == "10000-01-01T00:00:00"
    answer = client.post("/models/lin/forecast", json={**body, "quantiles": [0.1, 0.9]})
    assert answer.status_code == 422 and "fitted without intervals" in answer.json()["detail"]
    info = client.get("/models/nv").json()
    assert info["future_features"] == [] and info["calendar"] == []
    plain = client.post("/models/nv/forecast", json={"history": body["history"]})
    assert plain.status_code == 200, plain.text
    assert plain.json()["forecast"] == [tail["sales"].iloc[-1]]


def test_a_future_value_that_is_not_a_number_is_named_and_x_df_named_as_such() -> None:
    from seqcast.frames import Forecast

    df = promo_long()
    forecast = Forecast([LinearRegression(window=7, horizon=3)], future_features=["promo"]).fit(df)
    days = pd.date_range(df["ds"].iloc[-1] + pd.Timedelta(days=1), periods=3, freq="D")
    x_df = pd.DataFrame({"unique_id": "s", "ds": days, "promo": ["1", "abc", "0"]})
    with pytest.raises(DataError, match=r"X_df, column 'promo': 'abc' for series 's' at .* is "
                       "not a number"):  # fmt: skip
        forecast.predict(3, X_df=x_df)
    with pytest.raises(DataError, match=r"forecast steps with X_df"):
        forecast.predict(3)


def test_a_quantile_network_samples_paths_past_its_horizon_with_the_known_values() -> None:
    values = promo_data().series[0].values
    model = create_for("rnn", dict(RNN, horizon=2, likelihood="quantile")).fit(
        [values[:250]], 1, n_future=1
    )
    assert model.quantiles_reach(5)
    context = values[None, 250 - model.context_length : 250]
    future = values[None, 250:255, 1:]
    levels = (0.1, 0.5, 0.9)
    bands = model.predict_quantiles(context, levels, 5, future=future)
    assert bands.shape == (1, 5, 1, 3) and np.isfinite(bands).all()
    assert (np.diff(bands, axis=-1) >= 0).all()
    own = model.predict_quantiles(context, levels, 2, future=future[:, :2])
    np.testing.assert_array_equal(bands[:, :2], own)  # the network's own, then the paths'
    again = model.predict_quantiles(context, levels, 5, future=future)
    np.testing.assert_array_equal(again, bands)  # the same seed, the same paths
    # The paths read the known values: a promotion on every later day moves their quantiles.
    planned = future.copy()
    planned[:, 2:] = 1.0 - planned[:, 2:]
    moved = model.predict_quantiles(context, levels, 5, future=planned)
    np.testing.assert_array_equal(moved[:, :2], bands[:, :2])
    assert not np.allclose(moved[:, 2:], bands[:, 2:])
