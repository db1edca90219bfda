"""Every baseline: the registry, shapes and refusals with the baselines' own messages, then each
against its own slow oracle. The contract every forecaster shares is in tests/test_contract.py."""

from __future__ import annotations

import numpy as np
import pytest

from seqcast.errors import DataError, SeqcastError
from seqcast.forecasters import (
    DiffMovingAverage,
    Drift,
    LinearRegression,
    MovingAverage,
    Naive,
    SeasonalNaive,
    SmoothedDiffMovingAverage,
)
from seqcast.forecasters.base import Forecaster
from seqcast.forecasters.registry import (
    BASELINES,
    create_for,
    forecaster_class,
    model_names,
)

NAMES = sorted(BASELINES)
SEASON = 12


def make(name: str, horizon: int = 1, window: int = 5, season: int = SEASON) -> Forecaster:
    return create_for(name, dict(window=window, horizon=horizon, season=season))


def walk(n: int, f: int, seed: int = 0) -> np.ndarray:
    """(N, F) random walks with a season, so that every baseline has something to learn."""
    rng = np.random.default_rng(seed)
    season = 5.0 * np.sin(2 * np.pi * np.arange(n) / SEASON)[:, None]
    return rng.normal(size=(n, f)).cumsum(axis=0) + season + 50.0


# ---------------------------------------------------------------- registry and shapes
def test_registry_lists_the_baselines() -> None:
    assert set(NAMES) == {"naive", "snaive", "ma", "drift", "diff-ma", "diff-ma-smooth", "linear"}
    assert model_names()[: len(BASELINES)] == list(BASELINES)
    for name, cls in BASELINES.items():
        assert cls.name == name
        assert forecaster_class(name) is cls


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(SeqcastError, match="unknown model 'prophet'; choose from naive, snaive"):
        create_for("prophet", dict())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("horizon", [1, 3, 7])
@pytest.mark.parametrize(("n_features", "n_targets"), [(1, 1), (3, 1), (3, 2)])
def test_output_shape_and_finite(name: str, horizon: int, n_features: int, n_targets: int) -> None:
    values = walk(150, n_features)
    model = make(name, horizon=horizon).fit([values[:100], values[100:]], n_targets)
    steps = model.context_length
    contexts = np.stack([values[s - steps : s] for s in (steps, 80, 150)])  # (B, C, F)
    before = contexts.copy()
    forecast = model.predict(contexts)
    assert forecast.shape == (3, horizon, n_targets)
    assert np.isfinite(forecast).all()
    np.testing.assert_array_equal(contexts, before)  # the input is not modified


@pytest.mark.parametrize("name", NAMES)
def test_bad_contexts_are_refused(name: str) -> None:
    values = walk(100, 2)
    model = make(name).fit([values], 1)
    steps = model.context_length
    with pytest.raises(DataError, match=f"context must have shape \\(B, >={steps}, 2\\)"):
        model.predict(values[None, : steps - 1])
    with pytest.raises(DataError, match="context must have shape"):
        model.predict(values[None, :steps, :1])
    bad = values[None, :steps].copy()
    bad[0, -1, 0] = np.nan
    with pytest.raises(DataError, match="the context has missing or infinite values"):
        model.predict(bad)
    with pytest.raises(DataError, match="horizon must be at least 1, got 0"):
        model.predict(values[None, :steps], horizon=0)


# ---------------------------------------------------------------------------- oracles
def origins_of(values: np.ndarray, steps: int) -> list[int]:
    return list(range(steps, len(values) + 1, 7))


def contexts_at(values: np.ndarray, origins: list[int], steps: int) -> np.ndarray:
    return np.stack([values[o - steps : o] for o in origins])


def check_oracle(model: Forecaster, values: np.ndarray, oracle: object, horizon: int) -> None:
    steps = model.context_length
    origins = origins_of(values, steps)
    got = model.predict(contexts_at(values, origins, steps), horizon)
    for b, origin in enumerate(origins):
        want = oracle(values[:origin], horizon)  # type: ignore[operator]
        np.testing.assert_allclose(got[b], want, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("horizon", [1, 4])
def test_naive_oracle(horizon: int) -> None:
    values = walk(60, 3)
    model = Naive(horizon=horizon).fit([values], 2)

    def oracle(history: np.ndarray, h: int) -> np.ndarray:
        return np.array([history[-1, :2] for _ in range(h)])

    check_oracle(model, values, oracle, horizon)


@pytest.mark.parametrize(("season", "horizon"), [(1, 3), (4, 3), (4, 4), (4, 11), (12, 30)])
def test_snaive_oracle_including_horizon_past_the_season(season: int, horizon: int) -> None:
    values = walk(80, 2)
    model = SeasonalNaive(horizon=horizon, season=season).fit([values], 2)

    def oracle(history: np.ndarray, h: int) -> np.ndarray:
        n, rows = len(history), []
        for step in range(h):
            index = n + step
            while index >= n:  # go back whole seasons until the value was observed
                index -= season
            rows.append(history[index])
        return np.array(rows)

    check_oracle(model, values, oracle, horizon)


def test_snaive_by_hand() -> None:
    values = np.arange(10.0)[:, None]  # 0 .. 9
    model = SeasonalNaive(horizon=7, season=3).fit([values], 1)
    assert model.predict(values[None])[0, :, 0].tolist() == [7, 8, 9, 7, 8, 9, 7]


@pytest.mark.parametrize("window", [1, 3, 30])
def test_ma_oracle(window: int) -> None:
    values = walk(90, 2)
    model = MovingAverage(window=window, horizon=3).fit([values], 2)

    def oracle(history: np.ndarray, h: int) -> np.ndarray:
        mean = [sum(history[-window:, k]) / window for k in range(2)]
        return np.array([mean] * h)

    check_oracle(model, values, oracle, 3)


@pytest.mark.parametrize("window", [2, 5, 20])
def test_drift_oracle(window: int) -> None:
    values = walk(90, 1)
    model = Drift(window=window, horizon=4).fit([values], 1)

    def oracle(history: np.ndarray, h: int) -> np.ndarray:
        last, first = history[-1, 0], history[-window, 0]
        slope = (last - first) / (window - 1)
        return np.array([[last + (step + 1) * slope] for step in range(h)])

    check_oracle(model, values, oracle, 4)


def test_drift_by_hand() -> None:
    values = np.array([[1.0], [2.0], [4.0], [7.0]])  # line through 1 and 7 over 3 steps: slope 2
    model = Drift(window=4, horizon=3).fit([values], 1)
    assert model.predict(values[None])[0, :, 0].tolist() == [9.0, 11.0, 13.0]


def course_diff_ma(
    history: np.ndarray, season: int, window: int, smooth: int, horizon: int
) -> np.ndarray:
    """The course formula, extended step by step: for t = n, n+1, ... (n = len(history))
    ŷ[t] = y[t−P] (or the mean of y[t−P−K/2 .. t−P+K/2−1]) + mean_{s=n−L}^{n−1} (y[s] − y[s−P]),
    where a y not yet observed is the forecast already made."""
    y = [row.copy() for row in history]
    n = len(history)
    level = sum(y[s] - y[s - season] for s in range(n - window, n)) / window
    for t in range(n, n + horizon):
        if smooth:
            half = smooth // 2
            past = sum(y[s] for s in range(t - season - half, t - season + half)) / smooth
        else:
            past = y[t - season]
        y.append(past + level)
    return np.array(y[n:])


@pytest.mark.parametrize("smooth", [0, 4, 10])
@pytest.mark.parametrize("horizon", [1, 5, 30])  # 30 > P: later steps use earlier forecasts
@pytest.mark.parametrize("window", [3, 8])
def test_diff_ma_oracle(smooth: int, horizon: int, window: int) -> None:
    values = walk(120, 2)
    cls = SmoothedDiffMovingAverage if smooth else DiffMovingAverage
    model = cls(window=window, horizon=horizon, season=SEASON, smooth=smooth).fit([values], 2)
    assert model.context_length == SEASON + max(window, smooth // 2)

    def oracle(history: np.ndarray, h: int) -> np.ndarray:
        return course_diff_ma(history, SEASON, window, smooth, h)

    check_oracle(model, values, oracle, horizon)


def test_diff_ma_smooth_defaults_to_ten() -> None:
    assert SmoothedDiffMovingAverage().smooth == 10
    assert DiffMovingAverage().smooth == 0
    assert make("diff-ma-smooth").get_config()["smooth"] == 10


def test_diff_ma_hyperparameters_are_checked_in_fit() -> None:
    values = walk(100, 1)
    with pytest.raises(DataError, match="diff-ma needs a season of at least 2, got 1"):
        DiffMovingAverage(season=1).fit([values], 1)
    with pytest.raises(DataError, match=r"smooth must lie in 0..11 for a season of 12, got 12"):
        SmoothedDiffMovingAverage(season=12, smooth=12).fit([values], 1)
    with pytest.raises(DataError, match="season must be at least 1, got 0"):
        SeasonalNaive(season=0).fit([values], 1)


# ----------------------------------------------------------------------------- linear
def loop_design(
    series: list[np.ndarray], window: int, horizon: int, n_targets: int
) -> tuple[np.ndarray, np.ndarray]:
    rows, targets = [], []
    for values in series:
        n, f = values.shape
        for start in range(n - window - horizon + 1):
            rows.append([values[start + i, c] for i in range(window) for c in range(f)] + [1.0])
            targets.append(
                [values[start + window + h, k] for h in range(horizon) for k in range(n_targets)]
            )
    return np.array(rows), np.array(targets)


@pytest.mark.parametrize(
    ("window", "horizon", "n_features", "n_targets"),
    [
        (3, 1, 1, 1),
        (5, 3, 3, 2),
        (4, 7, 2, 1),
    ],
)
def test_linear_is_least_squares_on_every_window(
    window: int, horizon: int, n_features: int, n_targets: int
) -> None:
    series = [walk(80, n_features, seed=1), walk(50, n_features, seed=2)]
    model = LinearRegression(window=window, horizon=horizon).fit(series, n_targets)
    design, targets = loop_design(series, window, horizon, n_targets)
    coef, *_ = np.linalg.lstsq(design, targets, rcond=None)
    np.testing.assert_allclose(model.coef_, coef, rtol=1e-7, atol=1e-9)
    context = series[0][-window:]
    flat = [context[i, c] for i in range(window) for c in range(n_features)] + [1.0]
    want = (np.array(flat) @ coef).reshape(horizon, n_targets)
    np.testing.assert_allclose(model.predict(context[None])[0], want, rtol=1e-7, atol=1e-9)


def ar2(n: int) -> np.ndarray:
    """An exact AR(2): y[t] = 2cos(0.3)·y[t−1] − y[t−2] + 0.5, a sine around a level."""
    y = [3.0, 1.0]
    for _ in range(n - 2):
        y.append(2 * np.cos(0.3) * y[-1] - y[-2] + 0.5)
    return np.array(y)[:, None]


def test_linear_recovers_an_exact_ar2() -> None:
    values = ar2(200)
    model = LinearRegression(window=2, horizon=1).fit([values[:150]], 1)
    # coefficients of [y[t−1], y[t]] then the intercept
    np.testing.assert_allclose(model.coef_[:, 0], [-1.0, 2 * np.cos(0.3), 0.5], atol=1e-8)
    contexts = np.stack([values[o - 2 : o] for o in range(150, 200)])
    np.testing.assert_allclose(model.predict(contexts)[:, 0, 0], values[150:200, 0], atol=1e-7)


def test_linear_multi_step_direct_forecasts_an_ar2_exactly() -> None:
    values = ar2(200)
    model = LinearRegression(window=5, horizon=4).fit([values[:150]], 1)
    forecast = model.predict(values[None, 145:150])
    np.testing.assert_allclose(forecast[0, :, 0], values[150:154, 0], atol=1e-6)


def test_linear_rolls_out_past_the_trained_horizon() -> None:
    values = walk(120, 1)
    model = LinearRegression(window=6, horizon=2).fit([values[:100]], 1)
    context = values[None, 94:100]

    # oracle: feed each 2-step forecast back as input until 7 steps are made
    pieces, window = [], context.copy()
    while sum(p.shape[1] for p in pieces) < 7:
        step = model.predict(window)  # (1, 2, 1), the trained horizon
        pieces.append(step)
        window = np.concatenate([window, step], axis=1)[:, -6:]
    want = np.concatenate(pieces, axis=1)[:, :7]

    got = model.predict(context, horizon=7)
    assert got.shape == (1, 7, 1)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(model.predict(context, horizon=1), want[:, :1])  # shorter: direct


def test_linear_roll_out_of_an_exact_ar2_stays_exact() -> None:
    values = ar2(200)
    model = LinearRegression(window=2, horizon=1).fit([values[:150]], 1)
    got = model.predict(values[None, 148:150], horizon=20)
    np.testing.assert_allclose(got[0, :, 0], values[150:170, 0], atol=1e-6)


def test_linear_roll_out_is_refused_with_input_features() -> None:
    values = walk(100, 3)
    model = LinearRegression(window=4, horizon=2).fit([values], 1)
    with pytest.raises(
        DataError, match=r"cannot forecast 5 steps with a model trained for 2.*horizon 5"
    ):
        model.predict(values[None, -4:], horizon=5)


def test_linear_too_few_windows_states_the_points_needed() -> None:
    # window 10, one channel: 11 coefficients need 11 windows, i.e. 11 + 10 + 1 - 1 = 21 points
    with pytest.raises(DataError, match="gives only 10 windows; it needs at least 21 training"):
        LinearRegression(window=10).fit([walk(20, 1)], 1)
    LinearRegression(window=10).fit([walk(21, 1)], 1)  # exactly enough


def test_linear_state_round_trip() -> None:
    values = walk(100, 2)
    model = LinearRegression(window=4, horizon=3).fit([values], 2)
    copy = LinearRegression(**model.get_config())
    copy.n_features_, copy.n_targets_, copy.is_fitted_ = 2, 2, True
    copy.set_state(model.get_state())
    np.testing.assert_array_equal(copy.predict(values[None, -4:]), model.predict(values[None, -4:]))


def test_linear_fit_skips_a_series_too_short_for_one_window() -> None:
    """A series shorter than window + horizon adds no window (it used to crash the reshape):
    the fit equals the one without it."""
    long, short = walk(80, 1), walk(4, 1, seed=1)
    with_short = LinearRegression(window=6).fit([long, short], 1)
    without = LinearRegression(window=6).fit([long], 1)
    np.testing.assert_array_equal(with_short.coef_, without.coef_)
