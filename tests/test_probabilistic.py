"""Probabilistic scores against hand computations and slow loops."""

from __future__ import annotations

import numpy as np
import pytest

from seqcast.errors import DataError
from seqcast.evaluation.probabilistic import (
    check_quantiles,
    coverage,
    interval_bounds,
    levels_to_quantiles,
    msis,
    pinball,
    quantile_name,
    score_quantiles,
    wql,
)


def test_pinball_by_hand() -> None:
    # Under by 2 at q = 0.9: 0.9·2; over by 2: 0.1·2; mean of both.
    assert pinball(np.array([10.0, 10.0]), np.array([8.0, 12.0]), 0.9) == pytest.approx(
        (1.8 + 0.2) / 2
    )
    assert pinball(np.array([3.0]), np.array([3.0]), 0.3) == 0.0


def test_pinball_at_the_median_is_half_the_absolute_error() -> None:
    rng = np.random.default_rng(0)
    y, f = rng.normal(size=50), rng.normal(size=50)
    assert pinball(y, f, 0.5) == pytest.approx(0.5 * np.mean(np.abs(y - f)))


def test_wql_against_a_slow_loop() -> None:
    rng = np.random.default_rng(1)
    y = rng.uniform(1, 10, size=(4, 6))
    levels = (0.1, 0.5, 0.9)
    q = np.sort(rng.uniform(0, 12, size=(4, 6, 3)), axis=-1)
    per_level = []
    for k, level in enumerate(levels):
        total = 0.0
        for i in range(4):
            for t in range(6):
                e = y[i, t] - q[i, t, k]
                total += max(level * e, (level - 1) * e)
        per_level.append(2 * total / np.abs(y).sum())
    assert wql(y, q, levels) == pytest.approx(np.mean(per_level))


def test_wql_of_a_perfect_forecast_is_zero_and_of_zeros_undefined() -> None:
    y = np.array([1.0, 2.0, 3.0])
    assert wql(y, np.repeat(y[:, None], 2, axis=1), (0.2, 0.8)) == 0.0
    with pytest.raises(DataError, match="every actual value is 0"):
        wql(np.zeros(3), np.zeros((3, 1)), (0.5,))
    with pytest.raises(ValueError, match="one axis of 2 quantiles"):
        wql(y, np.zeros((3, 3)), (0.2, 0.8))


def test_coverage_counts_the_bounds_as_inside() -> None:
    y = np.array([0.0, 1.0, 2.0, 3.0])
    assert coverage(y, np.full(4, 1.0), np.full(4, 2.0)) == 0.5


def test_msis_by_hand() -> None:
    # Width 2 everywhere; y = 5 is 2 above the upper bound 3: penalty 2/0.05 · 2 = 80.
    y = np.array([2.0, 5.0])
    lower, upper = np.array([1.0, 1.0]), np.array([3.0, 3.0])
    train = np.array([0.0, 2.0, 4.0])  # naive in-sample MAE 2
    assert msis(y, lower, upper, train, 1) == pytest.approx(((2 + 0) + (2 + 80)) / 2 / 2)


def test_levels_become_the_quantiles_bounding_them_with_the_median() -> None:
    assert levels_to_quantiles([80, 95]) == (0.025, 0.1, 0.5, 0.9, 0.975)
    assert interval_bounds((0.025, 0.1, 0.5, 0.9, 0.975)) == {80: (1, 3), 95: (0, 4)}
    assert interval_bounds((0.1, 0.2, 0.5)) == {}
    assert quantile_name("rnn", 0.1) == "rnn-q0.1"


@pytest.mark.parametrize("bad", [[0.0], [1.0], [-0.2], []])
def test_quantiles_outside_the_open_interval_are_refused(bad: list[float]) -> None:
    with pytest.raises(DataError, match="quantiles") as caught:
        check_quantiles(bad)
    assert caught.value.arguments == ("quantiles",)


@pytest.mark.parametrize("bad", [0, 100, 120])
def test_levels_outside_0_to_100_are_refused(bad: float) -> None:
    with pytest.raises(DataError, match="level must lie"):
        levels_to_quantiles([bad])


def test_score_quantiles_pools_series_and_scores_each() -> None:
    rng = np.random.default_rng(2)
    levels = (0.025, 0.1, 0.5, 0.9, 0.975)
    actuals = [rng.uniform(1, 5, size=(3, 2, 1)), rng.uniform(100, 200, size=(2, 2, 1))]
    forecasts = [np.sort(a[..., None] + rng.normal(size=(*a.shape, 5)), axis=-1) for a in actuals]
    trains = [rng.uniform(1, 5, size=(20, 1)), rng.uniform(100, 200, size=(20, 1))]
    pooled, each = score_quantiles(actuals, forecasts, levels, trains, season=1)
    y = np.concatenate([a.ravel() for a in actuals])
    q = np.concatenate([f.reshape(-1, 5) for f in forecasts])
    assert pooled["wql"] == pytest.approx(wql(y, q, levels))
    assert pooled["coverage_80"] == pytest.approx(coverage(y, q[:, 1], q[:, 3]))
    assert pooled["coverage_95"] == pytest.approx(coverage(y, q[:, 0], q[:, 4]))
    per_series_msis = [
        msis(a[..., 0], f[..., 0, 0], f[..., 0, 4], t[:, 0], 1)
        for a, f, t in zip(actuals, forecasts, trains, strict=True)
    ]
    assert pooled["msis"] == pytest.approx(np.mean(per_series_msis))
    assert each[1]["wql"] == pytest.approx(wql(actuals[1], forecasts[1], levels))
    assert each[0]["msis"] == pytest.approx(per_series_msis[0])
