"""Seasonal periods: estimate_season finds the course season and a sine's period and no season in
white noise; resolve_season takes the given, the dataset's or the frequency's, and says when
numeric steps leave none."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from seqcast.data import load_series
from seqcast.data.seasonality import estimate_season, resolve_season, season_from_freq


def test_course_training_part_has_season_365(course: np.ndarray) -> None:
    assert estimate_season(course[:1000]) == 365
    assert estimate_season(course) == 365


@pytest.mark.parametrize("period", [5, 7, 12, 24, 25, 50, 120])
def test_clean_sine(period: int) -> None:
    steps = np.arange(10 * period if period > 50 else 600)
    assert estimate_season(np.sin(2 * np.pi * steps / period)) == period


def test_sine_on_a_trend_with_noise() -> None:
    steps = np.arange(1000)
    rng = np.random.default_rng(1)
    values = 0.05 * steps + 3 * np.sin(2 * np.pi * steps / 24) + rng.normal(size=1000)
    assert estimate_season(values) == 24


@pytest.mark.parametrize("seed", range(8))
def test_long_white_noise_has_no_season(seed: int) -> None:
    assert estimate_season(np.random.RandomState(seed).randn(1461)) == 1


@pytest.mark.parametrize(("n", "seed"), [(200, 0), (500, 1)])
def test_short_white_noise_has_no_season(n: int, seed: int) -> None:
    assert estimate_season(np.random.RandomState(seed).randn(n)) == 1


def test_max_period_limits_the_search() -> None:
    steps = np.arange(2000)
    values = np.sin(2 * np.pi * steps / 300) + 0.5 * np.sin(2 * np.pi * steps / 20)
    assert estimate_season(values) == 300
    assert estimate_season(values, max_period=100) == 20


def test_too_short_or_constant() -> None:
    assert estimate_season(np.arange(5.0)) == 1
    assert estimate_season(np.full(100, 3.0)) == 1
    assert estimate_season(np.arange(100.0)) == 1  # a pure trend


@pytest.mark.parametrize(
    ("freq", "season"),
    [
        ("h", 24),
        ("D", 7),
        ("B", 5),
        ("W-SUN", 52),
        ("ME", 12),
        ("MS", 12),
        ("QE-DEC", 4),
        ("min", 60),
        ("2h", None),
        ("YE", None),
        (None, None),
        ("not a freq", None),
    ],
)
def test_season_from_freq(freq: str | None, season: int | None) -> None:
    assert season_from_freq(freq) == season


def test_season_from_freq_emits_no_pandas_deprecation_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        season_from_freq("h")


def test_numeric_time_without_a_season_warns_that_none_is_used() -> None:
    steps = pd.DataFrame({"t": np.arange(40), "y": np.sin(np.arange(40.0))})
    data = load_series(steps, time_col="t")
    with pytest.warns(UserWarning, match="time column 't' holds numeric steps, which tell no"):
        assert resolve_season(None, data, [30]) == 1
    dated = load_series(
        pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=40, freq="MS"), "y": 1.0})
    )
    bare = load_series(np.sin(np.arange(40.0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these warns
        assert resolve_season(None, dated, [30]) == 12  # monthly dates: a year
        assert resolve_season(None, bare, [30]) == 1  # no time column: rows are steps
        assert resolve_season(4, data, [30]) == 4  # given
