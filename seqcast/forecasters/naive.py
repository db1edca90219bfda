"""Forecasts that repeat the past: naive, seasonal naive and drift."""

from __future__ import annotations

import numpy as np

from seqcast.errors import DataError
from seqcast.forecasters.base import Forecaster

__all__ = ["Drift", "Naive", "SeasonalNaive"]


class Naive(Forecaster):
    """Repeats the last observed value: ŷ[t+h] = y[t]."""

    name = "naive"

    @property
    def context_length(self) -> int:
        return 1

    def _fit(self, series: list[np.ndarray]) -> None:
        pass

    def _predict(
        self, context: np.ndarray, horizon: int, future: np.ndarray | None = None
    ) -> np.ndarray:
        last = context[:, -1:, : self.n_targets_]  # (B, 1, Ft)
        return np.repeat(last, horizon, axis=1)


class SeasonalNaive(Forecaster):
    """Repeats the last season: ŷ[t+h] = y[t+h−P·k] with k the smallest that reaches the past."""

    name = "snaive"

    def __init__(self, *, window: int = 20, horizon: int = 1, season: int = 1) -> None:
        super().__init__(window=window, horizon=horizon)
        self.season = season

    @property
    def context_length(self) -> int:
        return max(self.season, 1)

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        if self.season < 1:
            raise DataError(f"season must be at least 1, got {self.season}", arguments=("season",))

    def _fit(self, series: list[np.ndarray]) -> None:
        pass

    def _predict(
        self, context: np.ndarray, horizon: int, future: np.ndarray | None = None
    ) -> np.ndarray:
        season = self.context_length
        index = np.arange(horizon) % season  # position within the last season
        return context[:, -season:, : self.n_targets_][:, index]


class Drift(Forecaster):
    """Extends the line through the first and last value of the window:
    ŷ[t+h] = y[t] + (h+1)·(y[t] − y[t−L+1]) / (L − 1)."""

    name = "drift"

    @property
    def context_length(self) -> int:
        return max(self.window, 2)

    def _fit(self, series: list[np.ndarray]) -> None:
        pass

    def _predict(
        self, context: np.ndarray, horizon: int, future: np.ndarray | None = None
    ) -> np.ndarray:
        targets = context[:, :, : self.n_targets_]
        slope = (targets[:, -1] - targets[:, 0]) / (targets.shape[1] - 1)  # (B, Ft)
        steps = np.arange(1, horizon + 1)[None, :, None]
        return targets[:, -1:, :] + steps * slope[:, None, :]  # type: ignore[no-any-return]
