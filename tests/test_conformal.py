"""Conformal intervals: calibrated on the training part only, with the coverage they promise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_runner import assert_one_error_line, run_main

from seqcast.data import load_series
from seqcast.errors import DataError
from seqcast.evaluation.backtest import backtest
from seqcast.evaluation.conformal import GRID, Conformal, calibrate, series_floors, series_scales
from seqcast.forecasters.average import MovingAverage
from seqcast.forecasters.linear import LinearRegression

LEVELS = (0.025, 0.1, 0.5, 0.9, 0.975)


def noise_series(n: int = 3000, sigma: float = 2.0, seed: int = 0) -> np.ndarray:
    """A constant 50 with Gaussian noise of known spread: (N, 1)."""
    return 50.0 + sigma * np.random.default_rng(seed).normal(size=(n, 1))


def test_widths_match_the_noise_quantiles_of_a_mean_forecast() -> None:
    # Forecasting the mean of 400 values, the error is N(0, σ²(1 + 1/400)); the scale is the
    # mean absolute one-step change, 2σ/√π. So the 80 % half-width is z(0.9)·√(1.0025)·√π/2
    # scales.
    series = noise_series()
    conformal = calibrate(MovingAverage(window=400, horizon=3), [series], 1, 3)
    expected = 1.2815515655446004 * np.sqrt(1.0025) * np.sqrt(np.pi) / 2  # z(0.9) = 1.28
    np.testing.assert_allclose(conformal.half_width(0.8), expected, rtol=0.08)
    assert conformal.n_scores == 600 - 3 + 1  # a fifth of 3000 held out, origins at stride 1


def test_backtest_intervals_cover_what_they_promise_on_known_noise() -> None:
    data = load_series(noise_series(4000, seed=1))
    result = backtest(MovingAverage(window=400, horizon=2), data, [2000], quantiles=LEVELS)
    assert 0.77 <= result.probabilistic["coverage_80"] <= 0.83
    assert 0.93 <= result.probabilistic["coverage_95"] <= 0.97
    assert result.quantiles == LEVELS


def test_quantiles_never_cross_and_the_median_is_the_point_forecast() -> None:
    data = load_series(noise_series(600, seed=2))
    result = backtest(LinearRegression(window=10, horizon=4), data, [400], quantiles=LEVELS)
    q = result.quantile_forecasts[0]  # (origins, T, 1, Q)
    assert q.shape == (*result.forecasts[0].shape, len(LEVELS))
    assert np.all(np.diff(q, axis=-1) >= 0)
    np.testing.assert_array_equal(q[..., 2], result.forecasts[0])


def test_calibration_reads_only_the_training_part() -> None:
    values = noise_series(800, seed=3)
    changed = values.copy()
    changed[500:] *= 100.0  # the validation part: a model that peeked would widen its intervals
    widths = []
    for series in (values, changed):
        result = backtest(
            MovingAverage(window=30, horizon=2), load_series(series), [500], quantiles=LEVELS
        )
        widths.append(result.quantile_forecasts[0][..., 4] - result.forecasts[0][..., None, 0])
    np.testing.assert_allclose(widths[0], widths[1])


def test_the_conformal_quantile_is_the_finite_sample_order_statistic() -> None:
    # Errors 1..9 of a zero forecast (scale 1): level 0.8 takes the ⌈10·0.8⌉ = 8th smallest.
    ones = np.ones(2)
    series = np.concatenate([ones * 0, np.arange(1.0, 10.0)])[:, None]

    class Zero(MovingAverage):
        def _predict(self, context: np.ndarray, horizon: int) -> np.ndarray:
            return np.zeros((context.shape[0], horizon, 1))

    # Scale of the fitted part [0, 0]: no change, mean |value| 0, so 1.
    conformal = calibrate(Zero(window=1, horizon=1), [series], 1, 1, n_windows=9)
    assert conformal.n_scores == 9
    assert conformal.half_width(0.8)[0, 0] == 8.0
    assert conformal.half_width(0.5)[0, 0] == 5.0  # ⌈10·0.5⌉ = 5
    assert conformal.half_width(0.95)[0, 0] == 9.0  # beyond n: the largest


def test_half_width_interpolates_between_calibrated_levels() -> None:
    widths = np.repeat(GRID[:, None, None], 2, axis=1)  # width = level at both steps
    conformal = Conformal(widths=widths, n_scores=100)
    np.testing.assert_allclose(conformal.half_width(0.805), 0.805)
    np.testing.assert_allclose(conformal.half_width(0.004), 0.004)  # from 0 at level 0
    point, scales = np.zeros((1, 2, 1)), np.full((1, 1, 1), 10.0)
    q = conformal.quantiles(point, scales, (0.1, 0.5, 0.9))
    np.testing.assert_allclose(q[0, :, 0], [[-8.0, 0.0, 8.0]] * 2)
    with pytest.raises(DataError, match=r"calibrated for 2 step\(s\), not 3"):
        conformal.quantiles(np.zeros((1, 3, 1)), scales, (0.1,))
    state = Conformal.from_state(conformal.to_state())
    np.testing.assert_array_equal(state.widths, widths)


def test_series_scales_fall_back_for_flat_series() -> None:
    scales = series_scales([np.array([[1.0], [3.0], [2.0]]), np.full((4, 1), 5.0),
                            np.zeros((3, 1))], 1)  # fmt: skip
    np.testing.assert_allclose(scales[:, 0, 0], [1.5, 5.0, 1.0])


def test_a_series_too_short_to_hold_out_a_calibration_part_is_refused() -> None:
    with pytest.raises(DataError, match="calibration part"):
        calibrate(MovingAverage(window=20, horizon=5), [np.ones((24, 1))], 1, 5)


def test_many_series_pool_scaled_errors_across_sizes() -> None:
    # Two series of the same shape, one 1000 × larger: pooled scaled errors give each the
    # same relative width.
    small = noise_series(500, seed=4)
    series = [small, small * 1000.0]
    data = load_series(
        pd.DataFrame({"id": np.repeat(["a", "b"], 500), "y": np.concatenate(series)[:, 0]}),
        id_col="id",
    )
    result = backtest(MovingAverage(window=50, horizon=1), data, [400, 400], quantiles=LEVELS)
    widths = [q[..., 3] - q[..., 1] for q in result.quantile_forecasts]
    np.testing.assert_allclose(widths[1], widths[0] * 1000.0, rtol=1e-9)


def test_cli_backtest_quantiles_land_in_the_json_and_the_forecasts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out, forecasts = tmp_path / "out.json", tmp_path / "f.csv"
    run = run_main(capsys, "backtest", "synthetic", "-m", "naive", "-m", "linear", "--level",
                   "80", "--quantiles", "0.3", "--json", str(out), "--forecasts",
                   str(forecasts), "--quiet")  # fmt: skip
    assert run.code == 0, run.err
    document = json.loads(out.read_text())
    assert document["quantiles"] == [0.1, 0.3, 0.5, 0.9]
    for row in document["results"]:
        assert 0.7 <= row["coverage_80"] <= 0.9
        assert row["wql"] > 0
        assert "msis" not in row  # no 95 % interval asked for
    assert set(document["series"][0]["naive"]) >= {"wql", "coverage_80", "mase"}
    frame = pd.read_csv(forecasts)
    assert {"naive-q0.1", "naive-q0.3", "naive-q0.5", "linear-q0.9"} <= set(frame.columns)
    np.testing.assert_allclose(frame["naive-q0.5"], frame["naive"])
    assert "WQL" in run.out


@pytest.mark.parametrize(
    ("flag", "value", "fragment"),
    [("--quantiles", "0,0.5", "--quantiles must lie"), ("--level", "150", "--level must lie"),
     ("--quantiles", "a", "--quantiles takes numbers")],
)  # fmt: skip
def test_cli_refuses_bad_levels_in_one_line(
    capsys: pytest.CaptureFixture[str], flag: str, value: str, fragment: str
) -> None:
    run = run_main(capsys, "backtest", "synthetic", "-m", "naive", flag, value, "--quiet")
    assert_one_error_line(run, fragment)


def test_series_never_negative_keep_quantiles_at_or_above_zero() -> None:
    histories = [np.array([[0.0], [1.0], [3.0]]), np.array([[-1.0], [2.0], [0.0]])]
    floors = series_floors(histories, 1)
    assert floors[:, 0, 0].tolist() == [0.0, -np.inf]
    widths = np.repeat(GRID[:, None, None], 1, axis=1) * 10.0  # half-width 8 at level 0.8
    conformal = Conformal(widths=widths, n_scores=100)
    point = np.array([[[1.0]], [[1.0]]])  # (2, 1, 1)
    q = conformal.quantiles(point, np.ones((2, 1, 1)), (0.1, 0.9), floors)
    np.testing.assert_allclose(q[:, 0, 0], [[0.0, 9.0], [-7.0, 9.0]])
