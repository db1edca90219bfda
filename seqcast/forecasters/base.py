"""The contract every forecaster honours, baseline or neural.

A forecaster is built from its hyperparameters (the constructor only stores them), learns
from the training part of one or more series in :meth:`Forecaster.fit`, and maps a batch of
past contexts to forecasts in :meth:`Forecaster.predict`. Backtests, the command line, saved
models and the HTTP service only ever use this surface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self

import numpy as np

from seqcast.errors import DataError, NotFittedError

__all__ = ["Forecaster", "ModelOptions", "first_non_finite"]


def first_non_finite(values: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first missing or infinite value of ``values`` (None when all are finite)."""
    if np.isfinite(values).all():
        return None
    return tuple(int(i[0]) for i in np.nonzero(~np.isfinite(values)))


@dataclass(frozen=True)
class ModelOptions:
    """Every option a forecaster may take from the command line; each class reads its own.

    Attributes:
        window: input length L.
        horizon: forecast length T.
        season: seasonal period P in steps (1 turns seasonality off).
        smooth: width of the centred moving average on past values (``diff-ma-smooth``).
        seed: seed for everything random.
        epochs, batch_size, lr, hidden_size, num_layers, cell, bidirectional, dropout, loss,
        optimizer, patience, quiet, seq2seq, schedule: neural-network settings (see
            ``seqcast.models``).
        transform: variance-stabilising transform of the neural models: ``auto`` (chosen from
            the training data), ``none``, ``sqrt`` or ``log``.
    """

    window: int = 20
    horizon: int = 1
    season: int = 1
    smooth: int | None = None
    seed: int = 0
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    cell: str | None = None
    bidirectional: bool | None = None
    dropout: float | None = None
    loss: str | None = None
    optimizer: str | None = None
    patience: int | None = None
    seq2seq: bool | None = None
    schedule: str | None = None
    transform: str | None = None
    quiet: bool = True

    def given(self) -> dict[str, Any]:
        """The options that were set (not None)."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }


class Forecaster(ABC):
    """Base class: validates input, tracks fitted state, rolls forecasts out past the horizon.

    Subclasses implement :attr:`context_length`, :meth:`_fit` and :meth:`_predict`, and list
    their constructor arguments in :attr:`config_keys` so that a saved model can be rebuilt.
    """

    name: ClassVar[str]
    config_keys: ClassVar[tuple[str, ...]] = ("window", "horizon")
    #: Whether :meth:`_predict` can produce any horizon directly.
    any_horizon: ClassVar[bool] = True

    def __init__(self, *, window: int = 20, horizon: int = 1) -> None:
        self.window = window
        self.horizon = horizon

    @classmethod
    def from_options(cls, options: ModelOptions) -> Self:
        """Builds the forecaster from the options that apply to it."""
        given = options.given()
        return cls(**{k: given[k] for k in cls.config_keys if k in given})

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable."""
        return {k: getattr(self, k) for k in self.config_keys}

    @property
    @abstractmethod
    def context_length(self) -> int:
        """Past steps C the forecaster needs before a forecast origin."""

    # ----------------------------------------------------------------------- fit / predict
    def fit(self, series: Sequence[np.ndarray], n_targets: int) -> Self:
        """Learns from the training part of one or more series.

        Args:
            series: arrays of shape (N_i, F), the ``n_targets`` target channels first.
            n_targets: number of target channels F_target.

        Returns:
            self, fitted.
        """
        self._check_hyperparameters()
        if isinstance(series, np.ndarray):
            series = [series]
        if not series:
            raise DataError("fit needs at least one series")
        widths = {s.shape[1] if s.ndim == 2 else -1 for s in series}
        if len(widths) != 1 or -1 in widths:
            raise DataError("every series must have shape (N, F) with the same F")
        if not 1 <= n_targets <= next(iter(widths)):
            raise DataError(f"n_targets must lie in 1..{next(iter(widths))}, got {n_targets}")
        for s in series:
            if not np.isfinite(s).all():
                raise DataError("the training data has missing or infinite values")
        self.n_features_ = int(next(iter(widths)))
        self.n_targets_ = int(n_targets)
        self._fit([np.asarray(s, dtype=np.float64) for s in series])
        self.is_fitted_ = True
        return self

    def predict(self, context: np.ndarray, horizon: int | None = None) -> np.ndarray:
        """Forecasts from a batch of past contexts.

        Args:
            context: (B, C', F) past values, C' ≥ :attr:`context_length`; only the last
                ``context_length`` steps are used.
            horizon: steps T to forecast (default: the trained horizon). Past the trained
                horizon, forecasts are rolled out recursively.

        Returns:
            (B, T, F_target) forecasts on the original scale.
        """
        if not getattr(self, "is_fitted_", False):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit() first")
        context = np.asarray(context, dtype=np.float64)
        if context.ndim == 2:
            context = context[None]
        steps = self.context_length
        if context.ndim != 3 or context.shape[2] != self.n_features_ or context.shape[1] < steps:
            raise DataError(
                f"context must have shape (B, >={steps}, {self.n_features_}), got {context.shape}"
            )
        self._check_context(context[:, context.shape[1] - steps :])
        horizon = self.horizon if horizon is None else int(horizon)
        if horizon < 1:
            raise DataError(f"horizon must be at least 1, got {horizon}")
        context = context[:, context.shape[1] - steps :]
        if self.any_horizon or horizon <= self.horizon:
            forecast = self._predict(context, max(horizon, 1))[:, :horizon]
        else:
            forecast = self._rollout(context, horizon)
        if not np.isfinite(forecast).all():
            raise DataError(f"{self.name} produced non-finite forecasts")
        return forecast

    def _check_context(self, context: np.ndarray) -> None:
        """Refuses missing or infinite values in the (B, C, F) contexts a forecast reads. A
        model that reads only part of each context may check that part instead."""
        bad = first_non_finite(context)
        if bad is not None:
            window, step, channel = bad
            raise DataError(
                f"the context has missing or infinite values (first in window {window}, step "
                f"{step} of the last {context.shape[1]}, channel {channel})"
            )

    def _rollout(self, context: np.ndarray, horizon: int) -> np.ndarray:
        """Feeds forecasts back as inputs to go past the trained horizon."""
        if self.n_features_ != self.n_targets_:
            raise DataError(
                f"cannot forecast {horizon} steps with a model trained for {self.horizon}: "
                "its input features have no future values; refit with --horizon "
                f"{horizon}"
            )
        pieces = []
        done = 0
        while done < horizon:
            step = self._predict(context, self.horizon)  # (B, T, F)
            pieces.append(step)
            done += step.shape[1]
            context = np.concatenate([context, step], axis=1)[:, step.shape[1] :]
        return np.concatenate(pieces, axis=1)[:, :horizon]

    def validate(self) -> Self:
        """Checks the hyperparameters before any work (``fit`` checks them again)."""
        self._check_hyperparameters()
        return self

    def _check_hyperparameters(self) -> None:
        if self.window < 1:
            raise DataError(f"--window must be at least 1, got {self.window}")
        if self.horizon < 1:
            raise DataError(f"--horizon must be at least 1, got {self.horizon}")

    @abstractmethod
    def _fit(self, series: list[np.ndarray]) -> None:
        """Learns state from float64 series of shape (N_i, F)."""

    @abstractmethod
    def _predict(self, context: np.ndarray, horizon: int) -> np.ndarray:
        """(B, C, F) contexts of exactly ``context_length`` steps -> (B, T, F_target)."""

    # ---------------------------------------------------------------- saving and reporting
    def get_state(self) -> dict[str, np.ndarray]:
        """Learned arrays, saved as safetensors."""
        return {}

    def set_state(self, state: dict[str, np.ndarray]) -> None:  # noqa: B027
        """Restores what :meth:`get_state` returned."""

    def get_info(self) -> dict[str, Any]:
        """What was learned that is not an array (training history, ...), as JSON."""
        return {}

    def set_info(self, info: dict[str, Any]) -> None:  # noqa: B027
        """Restores what :meth:`get_info` returned."""

    @property
    def epochs_run(self) -> int | None:
        """Training epochs actually run (None for models that are not trained by epochs)."""
        return None

    @property
    def n_params(self) -> int | None:
        """Number of learned parameters of a neural model, else None."""
        return None
