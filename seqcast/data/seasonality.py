"""Guessing the seasonal period: from the frequency, or from the autocorrelation."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from seqcast.data.frame import SeriesData
from seqcast.errors import DataError, SeqcastWarning

__all__ = ["estimate_season", "resolve_season", "season_from_freq"]

_FREQ_SEASONS = {
    "h": 24,
    "min": 60,
    "D": 7,
    "B": 5,
    "W": 52,
    "M": 12,
    "MS": 12,
    "ME": 12,
    "Q": 4,
    "QS": 4,
    "QE": 4,
}


def season_from_freq(freq: str | None) -> int | None:
    """The usual period of a pandas frequency (hourly 24, daily 7, monthly 12, ...), or None."""
    if freq is None:
        return None
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        return None
    base = offset.rule_code.split("-")[0]
    if base == "H":
        base = "h"
    if offset.n != 1:
        return None
    return _FREQ_SEASONS.get(base)


def estimate_season(
    values: np.ndarray, max_period: int | None = None, threshold: float = 0.2
) -> int:
    """The seasonal period suggested by the autocorrelation, or 1 when there is none.

    First the highest peak of the linearly detrended series standing ``threshold`` above its
    first trough (a strong season); else the highest peak of the autocorrelation of the first
    differences that reaches ``threshold`` (a season riding on a persistent level). A
    heuristic: a random walk can show a spurious long period, so check what it prints.

    Example:
        >>> estimate_season(np.sin(np.arange(400) * 2 * np.pi / 25))
        25
    """
    series = np.asarray(values, dtype=np.float64).ravel()
    found = _acf_peak(series, max_period, threshold, relative=True)
    if found == 1 and series.size > 8:
        found = _acf_peak(np.diff(series), max_period, threshold, relative=False)
    return found


def _acf_peak(series: np.ndarray, max_period: int | None, threshold: float, relative: bool) -> int:
    """The seasonal lag of the autocorrelation of the linearly detrended series, or 1.

    Candidates are the local maxima after the first trough that clear both ``threshold``
    (above the trough when ``relative``) and the noise band 3/√N. Multiples of a period peak
    almost as high as the period itself, so the shortest candidate within 5 % of the highest
    one wins (compared on the unbiased estimate).
    """
    n = series.size
    if n < 8:
        return 1
    steps = np.arange(n)
    series = series - np.polyval(np.polyfit(steps, series, 1), steps)
    # Autocorrelation by FFT, zero-padded so that it is not circular; the biased estimate
    # damps the long lags, which rest on few pairs.
    spectrum = np.fft.rfft(series, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    if acf[0] <= 1e-12 * max(1.0, float(np.abs(series).max()) ** 2):
        return 1
    acf = acf / acf[0]
    longest = min(max_period or n // 2, n // 2)
    rising = np.flatnonzero(np.diff(acf[1 : longest + 1]) > 0)
    if rising.size == 0:
        return 1
    trough = int(rising[0]) + 1
    lags = np.arange(max(trough + 1, 2), longest)
    if lags.size == 0:
        return 1
    peaks = lags[(acf[lags] >= acf[lags - 1]) & (acf[lags] >= acf[lags + 1])]
    height = acf[peaks] - acf[trough] if relative else acf[peaks]
    peaks = peaks[(height >= threshold) & (acf[peaks] >= 3.0 / np.sqrt(n))]
    if peaks.size == 0:
        return 1
    # Rank the survivors without the bias, which would favour short lags.
    unbiased = acf[peaks] * n / (n - peaks)
    return int(peaks[unbiased >= 0.95 * unbiased.max()][0])


def resolve_season(season: int | str | None, data: SeriesData, splits: list[int]) -> int:
    """The seasonal period P: ``season`` as given, ``'auto'`` (estimated from the first
    series' training part, before ``splits[0]``), or by default the dataset's own, else the
    one its frequency implies, else 1 (none), with a warning where the time column is numeric
    steps (their spacing tells no calendar) rather than absent.

    Raises:
        DataError: ``season`` is neither a whole number of at least 1 nor ``'auto'``.
    """
    if season is None:
        known = data.season or season_from_freq(data.freq)
        if known is None and data.time_col is not None and data.freq is None:
            warnings.warn(
                SeqcastWarning(
                    f"the time column '{data.time_col}' holds numeric steps, which tell no "
                    "seasonal period: none is used (season 1); pass season, or season 'auto' "
                    "to estimate it",
                    arguments=("season",),
                ),
                stacklevel=2,
            )
        return known or 1
    if isinstance(season, str) and season.strip().lower() == "auto":
        return estimate_season(data.series[0].values[: splits[0], 0])
    try:
        period = int(season)
    except ValueError:
        raise DataError(
            f"season must be a whole number or 'auto', got {season!r}", arguments=("season",)
        ) from None
    if period < 1:
        raise DataError(f"season must be at least 1, got {period}", arguments=("season",))
    return period
