"""Gaps in time and in values (issue 17): what was not observed is marked, filled or masked,
and never scored; neural models read masked gaps natively and never train on one."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_runner import TINY, run_main

from seqcast.data import load_series
from seqcast.data.frame import SeriesData
from seqcast.data.gaps import carry_forward
from seqcast.evaluation import backtest
from seqcast.evaluation.metrics import mase_scale
from seqcast.evaluation.probabilistic import score_quantiles
from seqcast.forecasters import Naive
from seqcast.forecasters.registry import create_for
from seqcast.frames import Forecast, evaluate

N = 160
MISSING_VALUES = [30, 31, 120, 141]  # target values left empty in the file
MISSING_ROWS = [60, 61, 150]  # timestamps absent from the file


def gapped_frame() -> tuple[pd.DataFrame, np.ndarray]:
    """A daily series with a weekly cycle, empty values and absent days, and the (N,) mask of
    the days whose value is not in the file."""
    rng = np.random.default_rng(3)
    days = pd.date_range("2021-01-01", periods=N, freq="D")
    y = 50 + 8 * np.sin(np.arange(N) * 2 * np.pi / 7) + rng.normal(0, 1, N)
    frame = pd.DataFrame({"date": days, "y": y, "x": np.arange(N, dtype=float)})
    frame.loc[MISSING_VALUES, "y"] = np.nan
    frame.loc[[10, 11], "x"] = np.nan  # a feature gap: carried forward, never a target
    unobserved = np.zeros(N, dtype=bool)
    unobserved[MISSING_VALUES + MISSING_ROWS] = True
    return frame.drop(index=MISSING_ROWS).reset_index(drop=True), unobserved


def load(fill: str, features: bool = False) -> SeriesData:
    frame, _ = gapped_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_series(
            frame,
            targets=["y"],
            features=["x"] if features else [],
            fill=fill,  # type: ignore[arg-type]
        )


def test_carry_forward_looks_back_and_fills_a_leading_gap_from_the_first_value() -> None:
    values = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, np.nan], [4.0, 5.0]])
    expected = np.array([[2.0, 1.0], [2.0, 1.0], [2.0, 1.0], [4.0, 5.0]])
    np.testing.assert_array_equal(carry_forward(values), expected)
    same = np.ones((3, 1))
    assert carry_forward(same) is same


@pytest.mark.parametrize("fill", ["ffill", "interpolate", "mask"])
def test_every_unobserved_row_is_marked_whatever_fills_it(fill: str) -> None:
    _, unobserved = gapped_frame()
    series = load(fill, features=True).series[0]
    assert len(series) == N  # the absent days were added
    assert series.unobserved is not None
    np.testing.assert_array_equal(series.unobserved, unobserved)
    # Oracle: pandas on the full daily grid.
    frame, _ = gapped_frame()
    grid = frame.set_index("date").asfreq("D")
    if fill == "mask":
        np.testing.assert_array_equal(np.isnan(series.values[:, 0]), unobserved)
        np.testing.assert_allclose(series.values[~unobserved, 0], grid["y"].dropna().to_numpy())
        # The feature is carried forward (looking back), never left missing.
        np.testing.assert_allclose(series.values[:, 1], grid["x"].ffill().bfill().to_numpy())
    else:
        assert np.isfinite(series.values).all()


def test_drop_marks_nothing_since_nothing_is_filled() -> None:
    frame = pd.DataFrame({"y": [1.0, np.nan, 3.0, 4.0]})
    series = load_series(frame, fill="drop").series[0]
    assert series.unobserved is None and series.values[:, 0].tolist() == [1.0, 3.0, 4.0]


@pytest.mark.parametrize("fill", ["ffill", "interpolate", "mask"])
def test_a_backtest_never_scores_an_unobserved_point(fill: str) -> None:
    """Oracle: the MAE and MASE of the forecasts over the observed validation points only,
    by numpy, from the file's own values."""
    data = load(fill)
    split = 100
    result = backtest(Naive(), data, [split], season=7)
    _, unobserved = gapped_frame()
    origins = result.origins[0]
    truth = result.actuals[0][:, 0, 0]
    np.testing.assert_array_equal(np.isnan(truth), unobserved[origins])
    observed = ~unobserved[origins]
    frame, _ = gapped_frame()
    actual = frame.set_index("date").asfreq("D")["y"].to_numpy()[origins][observed]
    errors = np.abs(actual - result.forecasts[0][observed, 0, 0])
    assert result.metrics["mae"] == pytest.approx(errors.mean())
    # The scale too comes from observed values only: pairs across a gap are left out.
    train = frame.set_index("date").asfreq("D")["y"].to_numpy()[:split]
    assert result.metrics["mase"] == pytest.approx(errors.mean() / mase_scale(train, 7))
    assert result.per_series[0]["mae"] == pytest.approx(errors.mean())


def test_a_baseline_reads_masked_gaps_carried_forward() -> None:
    """With fill mask a model that cannot read gaps gets them carried forward: the same
    forecasts as from the data filled with ffill."""
    masked = backtest(Naive(), load("mask"), [100])
    filled = backtest(Naive(), load("ffill"), [100])
    np.testing.assert_array_equal(masked.forecasts[0], filled.forecasts[0])
    assert masked.metrics == filled.metrics


def test_a_neural_model_reads_gaps_and_never_trains_on_one() -> None:
    data = load("mask")
    values = data.series[0].values
    model = create_for("rnn", dict(window=8, epochs=1, hidden_size=4, patience=0, seed=0))
    model.n_features_, model.n_targets_ = 1, 1
    train, stop = model._prepare([values])  # type: ignore[attr-defined]
    assert stop is None
    # Oracle: the windows whose targets are all observed, by a loop.
    context, horizon = model.spec.context_length, model.horizon
    expected = sum(
        1
        for start in range(len(values) - context - horizon + 1)
        if np.isfinite(values[start + context : start + context + horizon, 0]).all()
    )
    assert len(train.target) == expected < len(values) - context - horizon + 1
    assert torch_finite(train.target) and torch_finite(train.window)
    fitted = model.fit([values], 1)
    assert fitted.padded_ and fitted.reads_gaps
    # A context with a gap forecasts; the same context carried forward gives another
    # forecast (the gap is read as one, not as a value).
    gap = values[25 : 25 + context][None]  # holds the empty days 30 and 31
    assert np.isnan(gap).any()
    point = fitted.predict(gap)
    assert np.isfinite(point).all()
    assert not np.array_equal(point, fitted.predict(carry_forward(gap[0])[None]))


def torch_finite(tensor: object) -> bool:
    import torch

    assert isinstance(tensor, torch.Tensor)
    return bool(torch.isfinite(tensor).all())


def test_a_model_that_cannot_read_gaps_refuses_them_in_its_own_fit() -> None:
    from seqcast.errors import DataError

    with pytest.raises(DataError, match="missing or infinite"):
        Naive().fit([load("mask").series[0].values])


def test_cross_validation_gives_no_actual_for_an_unobserved_point_and_evaluate_skips_it() -> None:
    frame, unobserved = gapped_frame()
    frame = frame.assign(unique_id="s")[["unique_id", "date", "y"]].rename(columns={"date": "ds"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = Forecast([Naive()], fill="mask").cross_validation(
            frame, h=10, n_windows=3, step_size=10
        )
    positions = (cv["ds"] - pd.Timestamp("2021-01-01")).dt.days.to_numpy()
    np.testing.assert_array_equal(cv["y"].isna().to_numpy(), unobserved[positions])
    scores = evaluate(cv, ["mae"], aggregate=True)
    seen = cv.dropna(subset=["y"])
    assert scores["naive"].iloc[0] == pytest.approx(
        seen.groupby("cutoff").apply(lambda w: np.abs(w["y"] - w["naive"]).mean()).mean()
    )


def test_mase_scale_leaves_out_the_pairs_across_a_gap() -> None:
    train = np.array([1.0, 3.0, np.nan, 4.0, 8.0])
    assert mase_scale(train, 1) == pytest.approx(np.mean([2.0, 4.0]))


def test_quantile_scores_leave_out_unobserved_points() -> None:
    actual = np.array([[[1.0], [np.nan]], [[3.0], [4.0]]])  # (B, T, Ft)
    bands = np.stack([actual - 1, actual, actual + 1], axis=-1)  # (B, T, Ft, 3)
    bands[0, 1] = [[0.0, 100.0, 200.0]]  # the unobserved point: any forecast
    pooled, _ = score_quantiles([actual], [bands], (0.1, 0.5, 0.9), [np.arange(8.0)[:, None]])
    assert pooled["coverage_80"] == 1.0  # 3 observed points, all inside


def test_cli_backtest_fit_and_predict_with_masked_gaps(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    frame, _ = gapped_frame()
    path = tmp_path / "gaps.csv"
    frame[["date", "y"]].to_csv(path, index=False)
    run = run_main(capsys, "backtest", str(path), "-m", "naive", "-m", "rnn", "--fill", "mask",
                   "--val-size", "30", *TINY, "--json", str(tmp_path / "b.json"))  # fmt: skip
    assert run.code == 0, run.err
    assert "their targets are gaps (fill mask)" in run.err
    folder = tmp_path / "m"
    run = run_main(capsys, "fit", str(path), "-m", "rnn", "--fill", "mask", "--out", str(folder),
                   *TINY, "--quiet")  # fmt: skip
    assert run.code == 0, run.err
    run = run_main(capsys, "predict", str(folder), "--horizon", "3")
    assert run.code == 0, run.err
    assert len(run.out.splitlines()) == 4
    run = run_main(capsys, "backtest", str(path), "-m", "naive")
    assert run.code == 2 and "--fill ffill, interpolate or mask to add missing" in run.err


def test_gaps_only_after_the_training_part_are_carried_for_a_model_fitted_without_one() -> None:
    """Review: a model fitted on a training part without a gap reads none; the validation
    contexts' gaps are then carried forward for it (they crashed the backtest)."""
    frame, _ = gapped_frame()
    frame.loc[frame.index < 100, "y"] = frame["y"].interpolate()[frame.index < 100]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_series(frame[frame["date"] < "2021-05-01"], targets=["y"], fill="mask")
    split = 25  # every gap after it
    assert not np.isnan(data.series[0].values[:split]).any()
    assert np.isnan(data.series[0].values[split:]).any()
    model = create_for("rnn", dict(window=6, epochs=1, hidden_size=4, patience=0))
    result = backtest(model, data, [split])
    assert result.metrics["mae"] is not None and np.isfinite(result.forecasts[0]).all()


def test_calibration_reads_gaps_held_out_after_a_fit_without_one() -> None:
    from seqcast.evaluation.conformal import calibrate

    values = load("mask").series[0].values[:140]
    clean = carry_forward(values[:100])
    history = np.concatenate([clean, values[100:]])  # gaps only in the held-out part
    assert np.isnan(history[100:]).any()
    model = create_for("rnn", dict(window=6, epochs=1, hidden_size=4, patience=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conformal = calibrate(model, [history], 1, 2)
    assert np.isfinite(conformal.widths).all()
