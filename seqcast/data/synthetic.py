"""Synthetic series: the course series and a generator with every part exposed."""

from __future__ import annotations

import numpy as np

__all__ = ["course_series", "seasonal_pattern", "synthetic_series"]


def seasonal_pattern(season_time: np.ndarray) -> np.ndarray:
    """The course's yearly shape: cos(2πs) for s < 0.4, else exp(−3s), for s in [0, 1)."""
    return np.where(season_time < 0.4, np.cos(season_time * 2 * np.pi), 1 / np.exp(3 * season_time))


def synthetic_series(
    length: int = 1461,
    *,
    baseline: float = 10.0,
    slope: float = 0.05,
    period: int = 365,
    amplitude: float = 40.0,
    phase: float = 0.0,
    noise_level: float = 5.0,
    autocorrelation: float = 0.0,
    n_series: int = 1,
    n_channels: int = 1,
    seed: int = 42,
) -> np.ndarray:
    """Trend + seasonal pattern + (optionally autocorrelated) Gaussian noise.

    With the defaults and one series of one channel this is exactly the course series.
    Further series and channels get their own phase shift (a tenth of a period each),
    amplitude and noise, drawn from the same seed.

    Args:
        length: number of time steps N.
        baseline: level at t = 0.
        slope: trend per step.
        period: steps per season.
        amplitude: height of the seasonal pattern.
        phase: shift of the pattern in steps.
        noise_level: standard deviation of the noise.
        autocorrelation: AR(1) coefficient φ of the noise, in (−1, 1); 0 gives white noise.
        n_series: number of independent series S.
        n_channels: channels per series C (multivariate when above 1).
        seed: seed of ``np.random.RandomState``.

    Returns:
        float32 array (N,) for one series of one channel, else (S, N, C).
    """
    if not -1.0 < autocorrelation < 1.0:
        raise ValueError(f"autocorrelation must lie in (-1, 1), got {autocorrelation}")
    if length < 1 or period < 1 or n_series < 1 or n_channels < 1:
        raise ValueError("length, period, n_series and n_channels must be positive")
    time = np.arange(length, dtype="float32")
    rng = np.random.RandomState(seed)
    out = np.empty((n_series, length, n_channels), dtype=np.float32)
    for s in range(n_series):
        for c in range(n_channels):
            k = s * n_channels + c
            shift = phase + k * period / 10.0
            scale = amplitude * (1.0 + 0.25 * k) if k else amplitude
            season_time = ((time + shift) % period) / period
            series = baseline + slope * time + scale * seasonal_pattern(season_time)
            noise = rng.randn(length) * noise_level
            if autocorrelation:
                noise = _ar1(noise, autocorrelation)
            series += noise  # in place: stays float32, as in the course
            out[s, :, c] = series
    if n_series == 1 and n_channels == 1:
        return out[0, :, 0]
    return out


def course_series() -> np.ndarray:
    """The course series (1,461 float32 points, season 365); train on the first 1,000."""
    return synthetic_series()


def _ar1(innovations: np.ndarray, phi: float) -> np.ndarray:
    """AR(1) noise with the innovations' marginal variance: e_t = φ e_{t−1} + √(1−φ²) z_t."""
    out = np.empty_like(innovations)
    scale = np.sqrt(1.0 - phi * phi)
    out[0] = innovations[0]
    for t in range(1, len(innovations)):
        out[t] = phi * out[t - 1] + scale * innovations[t]
    return out
