"""The course series, bit for bit, and what each option of the generator changes."""

from __future__ import annotations

import numpy as np
import pytest

from seqcast.data.synthetic import course_series, seasonal_pattern, synthetic_series


def course_oracle() -> np.ndarray:
    """The course's code: float32 time, pattern, trend, then float64 noise added in place."""
    time = np.arange(4 * 365 + 1, dtype="float32")
    season_time = (time % 365) / 365
    pattern = np.where(
        season_time < 0.4, np.cos(season_time * 2 * np.pi), 1 / np.exp(3 * season_time)
    )
    series = 10 + 0.05 * time + 40 * pattern
    noise = np.random.RandomState(42).randn(len(time)) * 5
    series += noise  # in place: stays float32
    return series


def lag1(x: np.ndarray) -> float:
    x = x - x.mean()
    return float(np.dot(x[1:], x[:-1]) / np.dot(x, x))


def test_course_series_is_exactly_the_course() -> None:
    values = course_series()
    assert values.dtype == np.float32
    assert values.shape == (1461,)
    expected = course_oracle()
    assert expected.dtype == np.float32
    np.testing.assert_array_equal(values, expected)


def test_course_series_hand_values() -> None:
    values = course_series().astype(np.float64)
    noise = np.random.RandomState(42).randn(1461) * 5
    # t = 0: 10 + 0 + 40 * cos(0); t = 146 (s = 0.4): the exp branch, 40 * exp(-1.2)
    assert values[0] == pytest.approx(50.0 + noise[0], abs=1e-4)
    s = 146 / 365
    assert values[146] == pytest.approx(
        10 + 0.05 * 146 + 40 * np.exp(-3 * s) + noise[146], abs=1e-4
    )
    assert values[1460] == pytest.approx(10 + 73.0 + 40 * 1.0 + noise[1460], abs=1e-4)


def test_default_generator_is_the_course_series() -> None:
    np.testing.assert_array_equal(synthetic_series(), course_series())


def test_seasonal_pattern_by_hand() -> None:
    got = seasonal_pattern(np.array([0.0, 0.25, 0.39, 0.4, 0.5, 0.99]))
    want = [1.0, 0.0, np.cos(0.78 * np.pi), np.exp(-1.2), np.exp(-1.5), np.exp(-2.97)]
    np.testing.assert_allclose(got, want, atol=1e-12)


def clean(**options: float) -> np.ndarray:
    """A noise-free series of 800 steps, float64 for exact comparisons."""
    return synthetic_series(800, noise_level=0.0, **options).astype(np.float64)  # type: ignore[arg-type]


def test_trend() -> None:
    line = clean(amplitude=0.0, baseline=3.0, slope=0.25)
    np.testing.assert_allclose(line, 3.0 + 0.25 * np.arange(800), rtol=1e-6)
    flat = clean(slope=0.0)
    assert abs(flat[365] - flat[0]) < 1e-4  # no trend: one season later, same value


@pytest.mark.parametrize("period", [7, 50, 365])
def test_period(period: int) -> None:
    values = clean(slope=0.0, period=period)
    np.testing.assert_allclose(values[period:], values[:-period], atol=1e-4)
    assert np.abs(values[1 : period // 2 + 1] - values[0]).min() > 1e-3  # not a shorter period


def test_amplitude_scales_the_pattern() -> None:
    one = clean(slope=0.0, baseline=0.0, amplitude=1.0)
    five = clean(slope=0.0, baseline=0.0, amplitude=5.0)
    np.testing.assert_allclose(five, 5.0 * one, atol=1e-5)
    assert one.max() == pytest.approx(1.0)


def test_phase_shifts_the_pattern() -> None:
    base = clean(slope=0.0)
    shifted = clean(slope=0.0, phase=30.0)
    np.testing.assert_allclose(shifted[:-30], base[30:], atol=1e-4)
    assert np.abs(shifted - base).max() > 1.0


def test_noise_level_and_seed() -> None:
    noisy = synthetic_series(500, noise_level=2.0, seed=7).astype(np.float64)
    noise = noisy - clean()[:500]
    np.testing.assert_allclose(noise, np.random.RandomState(7).randn(500) * 2.0, atol=1e-4)
    other = synthetic_series(500, noise_level=2.0, seed=8)
    assert not np.array_equal(noisy, other)


@pytest.mark.parametrize("phi", [-0.5, 0.0, 0.5, 0.9])
def test_autocorrelated_noise_has_lag1_near_phi(phi: float) -> None:
    values = synthetic_series(
        20_000, baseline=0.0, slope=0.0, amplitude=0.0, noise_level=3.0, autocorrelation=phi
    ).astype(np.float64)
    assert lag1(values) == pytest.approx(phi, abs=0.03)
    assert values.std() == pytest.approx(3.0, rel=0.1)  # marginal variance kept


@pytest.mark.parametrize("phi", [1.0, -1.0, 1.5])
def test_autocorrelation_outside_unit_interval_is_refused(phi: float) -> None:
    with pytest.raises(ValueError, match="autocorrelation must lie in"):
        synthetic_series(10, autocorrelation=phi)


@pytest.mark.parametrize("option", ["length", "period", "n_series", "n_channels"])
def test_non_positive_sizes_are_refused(option: str) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        synthetic_series(**{option: 0})  # type: ignore[arg-type]


def test_several_series() -> None:
    values = synthetic_series(400, n_series=3)
    assert values.shape == (3, 400, 1)
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values[0, :, 0], synthetic_series(400))  # first = default
    assert not np.allclose(values[1], values[0])
    assert not np.allclose(values[2], values[1])


def test_several_series_have_shifted_phases_and_larger_amplitudes() -> None:
    values = synthetic_series(800, n_series=3, noise_level=0.0, slope=0.0, baseline=0.0)
    base = clean(slope=0.0, baseline=0.0)
    # series k: phase shifted by k tenths of a period, amplitude (1 + k/4) times larger
    shift, scale = 73, 1.5  # k = 2: 2 * 365 / 10 = 73 whole steps
    np.testing.assert_allclose(values[2, :-shift, 0], scale * base[shift:], atol=1e-3)
    for k in (1, 2):
        assert np.abs(values[k, :, 0]).max() == pytest.approx(40 * (1 + 0.25 * k), rel=1e-3)


def test_multivariate_channels() -> None:
    values = synthetic_series(300, n_channels=4)
    assert values.shape == (1, 300, 4)
    np.testing.assert_array_equal(values[0, :, 0], synthetic_series(300))
    for c in range(1, 4):
        assert not np.allclose(values[0, :, c], values[0, :, c - 1])


def test_same_seed_same_series() -> None:
    np.testing.assert_array_equal(
        synthetic_series(200, n_series=2, seed=3), synthetic_series(200, n_series=2, seed=3)
    )
