"""Moving averages: plain, and on seasonal differences with the past season added back."""

from __future__ import annotations

import numpy as np

from seqcast.errors import DataError
from seqcast.forecasters.base import Forecaster

__all__ = ["DiffMovingAverage", "MovingAverage", "SmoothedDiffMovingAverage"]


class MovingAverage(Forecaster):
    """The mean of the last L values, for every step of the horizon."""

    name = "ma"

    @property
    def context_length(self) -> int:
        return self.window

    def _fit(self, series: list[np.ndarray]) -> None:
        pass

    def _predict(
        self, context: np.ndarray, horizon: int, future: np.ndarray | None = None
    ) -> np.ndarray:
        mean = context[:, :, : self.n_targets_].mean(axis=1, keepdims=True)  # (B, 1, Ft)
        return np.repeat(mean, horizon, axis=1)


class DiffMovingAverage(Forecaster):
    """Seasonal differencing, a moving average of the differences, the past season added back.

    With d[s] = y[s] − y[s−P]: ŷ[t+h] = past(t+h−P) + mean(d[t−L+1 .. t]), where ``past`` is
    the value one season earlier, or (``smooth`` = K > 0) the mean of the K values centred on
    it, y[t+h−P−K/2 .. t+h−P+K/2−1], as in the course. Steps whose past is not yet observed use
    the forecasts already made.
    """

    name = "diff-ma"

    def __init__(
        self, *, window: int = 20, horizon: int = 1, season: int = 1, smooth: int = 0
    ) -> None:
        super().__init__(window=window, horizon=horizon)
        self.season = season
        self.smooth = smooth

    @property
    def context_length(self) -> int:
        return self.season + max(self.window, self.smooth // 2)

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        if self.season < 2:
            raise DataError(
                f"{self.name} needs a season of at least 2, got {self.season}",
                arguments=("season",),
            )
        if self.smooth < 0 or self.smooth >= self.season:
            raise DataError(
                f"smooth must lie in 0..{self.season - 1} for a season of {self.season}, got "
                f"{self.smooth}; use a longer season",
                arguments=("season",),
            )

    def _fit(self, series: list[np.ndarray]) -> None:
        pass

    def _predict(
        self, context: np.ndarray, horizon: int, future: np.ndarray | None = None
    ) -> np.ndarray:
        values = context[:, :, : self.n_targets_]  # (B, C, Ft)
        period, length = self.season, values.shape[1]
        diffs = values[:, period:] - values[:, :-period]  # (B, C-P, Ft)
        level = diffs[:, -self.window :].mean(axis=1)  # (B, Ft)
        extended = np.concatenate(
            [values, np.empty((values.shape[0], horizon, values.shape[2]))], axis=1
        )
        half = self.smooth // 2
        for h in range(horizon):
            t = length + h  # index of the forecast step in ``extended``
            if self.smooth:
                past = extended[:, t - period - half : t - period - half + self.smooth].mean(axis=1)
            else:
                past = extended[:, t - period]
            extended[:, t] = past + level
        return extended[:, length:]


class SmoothedDiffMovingAverage(DiffMovingAverage):
    """:class:`DiffMovingAverage` with the past season smoothed (K = 10 by default)."""

    name = "diff-ma-smooth"

    def __init__(
        self, *, window: int = 20, horizon: int = 1, season: int = 1, smooth: int = 10
    ) -> None:
        super().__init__(window=window, horizon=horizon, season=season, smooth=smooth)
