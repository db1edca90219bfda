"""The contract every forecaster honours, baseline or neural.

A forecaster is built from its hyperparameters (the constructor only stores them), learns
from the training part of one or more series in :meth:`Forecaster.fit`, and maps a batch of
past contexts to forecasts in :meth:`Forecaster.predict`. Backtests, the command line, saved
models and the HTTP service only ever use this surface.
"""

from __future__ import annotations

import inspect
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np

from seqcast.data.frame import SeriesData
from seqcast.data.gaps import carry_forward
from seqcast.errors import DataError, NotFittedError, SeqcastWarning

__all__ = ["EpochEnd", "Forecaster", "first_non_finite"]


@dataclass(frozen=True)
class EpochEnd:
    """What a progress display hears after each training epoch.

    Attributes:
        model: the forecaster's name.
        epoch: 1-based epoch just finished.
        epochs: the most epochs training may run.
        train_loss: mean training loss of the epoch.
        val_loss: loss on the early-stopping slice, or None without one.
    """

    model: str
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float | None


def block_starts(horizon: int, steps: int) -> list[int]:
    """Where the blocks of ``steps`` of a roll-out to ``horizon`` with values known ahead
    start: 0, T, 2T, …, and a last one at ``horizon`` − T, so that no block reads a known value
    past the horizon.

    Example:
        >>> block_starts(7, 3)
        [0, 3, 4]
    """
    starts = list(range(0, horizon - steps + 1, steps))
    if starts[-1] + steps < horizon:
        starts.append(horizon - steps)
    return starts


def first_non_finite(values: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first missing or infinite value of ``values`` (None when all are finite)."""
    if np.isfinite(values).all():
        return None
    return tuple(int(i[0]) for i in np.nonzero(~np.isfinite(values)))


class Forecaster(ABC):
    """Base class: validates input, tracks fitted state, rolls forecasts out past the horizon.

    In the scikit-learn manner: the constructor takes keyword arguments and only stores them
    under the same names; :meth:`get_params` reads them back from the constructor's signature
    (a saved model is rebuilt from them); what :meth:`fit` learns goes into attributes ending
    in ``_``. Subclasses implement :attr:`context_length`, :meth:`_fit` and :meth:`_predict`.
    """

    name: ClassVar[str]
    #: Whether the model learns by gradient steps (it has a learning rate and ``lr_find``).
    trained_by_gradient: ClassVar[bool] = False
    #: Whether :meth:`_predict` can produce any horizon directly.
    any_horizon: ClassVar[bool] = True
    #: Whether the model reads the values known ahead at the forecast steps (``n_future``).
    reads_known: ClassVar[bool] = False

    def __init__(self, *, window: int = 20, horizon: int = 1) -> None:
        self.window = window
        self.horizon = horizon

    @classmethod
    def param_names(cls) -> list[str]:
        """The constructor's keyword arguments, in its order."""
        signature = inspect.signature(cls.__init__)
        return [
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind is p.KEYWORD_ONLY
        ]

    def get_params(self) -> dict[str, Any]:
        """The constructor's arguments as they were given (JSON-serialisable):
        ``type(model)(**model.get_params())`` builds an unfitted twin."""
        return {name: getattr(self, name) for name in self.param_names()}

    def get_config(self) -> dict[str, Any]:
        """The same as :meth:`get_params`: what a saved model stores to rebuild the forecaster."""
        return self.get_params()

    @classmethod
    def check_param_names(cls, names: Iterable[str]) -> None:
        """Refuses names that are not constructor arguments.

        Raises:
            DataError: naming the unknown ones and listing those the constructor takes.
        """
        accepted = cls.param_names()
        if unknown := [key for key in names if key not in accepted]:
            raise DataError(
                f"{cls.__name__} has no argument {', '.join(repr(k) for k in unknown)}; "
                f"it takes {', '.join(accepted)}",
                arguments=tuple(unknown),
            )

    def set_params(self, **params: Any) -> Self:
        """Changes constructor arguments (before ``fit``); an unknown name is refused and
        nothing is changed."""
        self.check_param_names(params)
        for key, value in params.items():
            setattr(self, key, value)
        return self

    @property
    @abstractmethod
    def context_length(self) -> int:
        """Past steps C the forecaster needs before a forecast origin."""

    # ----------------------------------------------------------------------- fit / predict
    def fit(
        self,
        series: Sequence[np.ndarray] | np.ndarray,
        n_targets: int = 1,
        *,
        n_future: int = 0,
        on_epoch: Callable[[EpochEnd], None] | None = None,
    ) -> Self:
        """Learns from the training part of one or more series.

        Args:
            series: arrays of shape (N_i, F), the ``n_targets`` target channels first and the
                ``n_future`` channels known ahead (calendar, planned prices) last.
            n_targets: number of target channels F_target.
            n_future: number of channels F_k known ahead: a model that reads them sees their
                values at the forecast steps too (:meth:`predict`'s ``future``).
            on_epoch: called after each training epoch of a model trained by epochs (a
                progress display); models fitted in one go never call it.

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
        if not 0 <= n_future <= next(iter(widths)) - n_targets:
            raise DataError(
                f"n_future must lie in 0..{next(iter(widths)) - n_targets} (the channels after "
                f"the targets), got {n_future}",
                arguments=("n_future",),
            )
        for s in series:
            # A missing target value is a gap to a model that reads gaps (seqcast.data.gaps);
            # input features must be complete.
            missing = np.isnan(s)
            if (
                np.isinf(s).any()
                or missing[:, n_targets:].any()
                or (missing.any() and not self.can_pad)
            ):
                raise DataError("the training data has missing or infinite values")
        self.n_features_ = int(next(iter(widths)))
        self.n_targets_ = int(n_targets)
        self.n_future_ = int(n_future)
        self._learn([np.asarray(s, dtype=np.float64) for s in series], on_epoch)
        self.is_fitted_ = True
        return self

    def quantiles_reach(self, horizon: int) -> bool:
        """Whether :meth:`predict_quantiles` forecasts ``horizon`` steps: a model with
        quantiles of its own, up to its horizon or (every input a target or known ahead: it
        can roll out) past it."""
        return self.has_quantiles and (horizon <= self.horizon or self.can_roll_out)

    @property
    def n_known(self) -> int:
        """Channels F_k known ahead (the last ones) that the model reads at the forecast steps:
        those fitted as ``n_future`` for a model that :attr:`reads_known`, else 0."""
        return int(getattr(self, "n_future_", 0)) if self.reads_known else 0

    @property
    def can_roll_out(self) -> bool:
        """Whether forecasts can go past the trained horizon: every input channel is a target
        (fed back) or known ahead (given in ``future``); an input known only in the past stops
        it."""
        known = int(getattr(self, "n_future_", 0))
        return self.any_horizon or self.n_features_ - known == self.n_targets_

    def check_future(self, future: np.ndarray | None, rows: int, horizon: int) -> np.ndarray | None:
        """The (B, ≥T, F_k) values known ahead for a forecast of ``horizon`` steps, checked.

        Raises:
            DataError: they are needed and missing, of the wrong shape, or not finite.
        """
        if self.n_known == 0:
            return None
        if future is None:
            raise DataError(
                f"{self.name} reads {self.n_known} input(s) known ahead; pass their values "
                f"at the {horizon} forecast step(s) as future, of shape (B, {horizon}, "
                f"{self.n_known})",
                arguments=("future",),
            )
        values = np.asarray(future, dtype=np.float64)
        if values.ndim == 2:
            values = values[None]
        if values.ndim != 3 or values.shape[0] != rows or values.shape[2] != self.n_known:
            raise DataError(
                f"future must have shape ({rows}, {horizon}, {self.n_known}), got {values.shape}",
                arguments=("future",),
            )
        if values.shape[1] < horizon:
            raise DataError(
                f"future covers {values.shape[1]} step(s); the forecast needs {horizon}",
                arguments=("future",),
            )
        if not np.isfinite(values[:, :horizon]).all():
            raise DataError("future has missing or infinite values", arguments=("future",))
        return values[:, :horizon]

    @property
    def has_quantiles(self) -> bool:
        """Whether the model forecasts quantiles itself (:meth:`predict_quantiles`); the others
        get them from conformal intervals (:mod:`seqcast.evaluation.conformal`)."""
        return False

    def predict_quantiles(
        self,
        context: np.ndarray,
        quantiles: Sequence[float],
        horizon: int | None = None,
        future: np.ndarray | None = None,
    ) -> np.ndarray:
        """(B, T, F_target, Q) quantile forecasts, for a model with :attr:`has_quantiles`."""
        raise DataError(f"{self.name} forecasts points only", arguments=("likelihood",))

    def ready_context(self, context: np.ndarray) -> np.ndarray:
        """The last :attr:`context_length` steps of a fitted model's (B, C', F) contexts,
        checked: (B, C, F) float64."""
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
        return context[:, context.shape[1] - steps :]

    def predict(
        self, context: np.ndarray, horizon: int | None = None, future: np.ndarray | None = None
    ) -> np.ndarray:
        """Forecasts from a batch of past contexts.

        Args:
            context: (B, C', F) past values, C' ≥ :attr:`context_length`; only the last
                ``context_length`` steps are used.
            horizon: steps T to forecast (default: the trained horizon). Past the trained
                horizon, forecasts are rolled out recursively.
            future: (B, T, F_k) values of the channels known ahead at the forecast steps, for
                a model fitted with ``n_future``; ignored otherwise.

        Returns:
            (B, T, F_target) forecasts on the original scale.
        """
        context = self.ready_context(context)
        self._check_context(context)
        horizon = self.horizon if horizon is None else int(horizon)
        if horizon < 1:
            raise DataError(f"horizon must be at least 1, got {horizon}", arguments=("horizon",))
        known = self.check_future(future, len(context), max(horizon, self.horizon))
        if self.any_horizon or horizon <= self.horizon:
            forecast = self._forecast(context, max(horizon, 1), known)[:, :horizon]
        else:
            forecast = self._rollout(context, horizon, known)
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

    def _forecast(self, context: np.ndarray, horizon: int, known: np.ndarray | None) -> np.ndarray:
        """:meth:`_predict`, given the values known ahead only when there are some (so that a
        subclass written before them, ``_predict(context, horizon)``, still works)."""
        if known is None:
            return self._predict(context, horizon)
        return self._predict(context, horizon, known)

    def _rollout(
        self, context: np.ndarray, horizon: int, future: np.ndarray | None = None
    ) -> np.ndarray:
        """Feeds forecasts back as inputs to go past the trained horizon T; the channels known
        ahead are fed their ``future`` (B, horizon, F_k) values. With those, the last block
        ends at ``horizon`` (starting inside the one before it) so that it never reads a value
        past the ones given."""
        if not self.can_roll_out:
            raise DataError(
                f"cannot forecast {horizon} steps with a model trained for {self.horizon}: "
                f"its input features known only in the past have no future values; refit "
                f"with horizon {horizon}",
                arguments=("horizon",),
            )
        if future is not None:
            return self._rollout_known(context, horizon, future)
        pieces = []
        done = 0
        while done < horizon:
            step = self._predict(context, self.horizon)  # (B, T, F)
            if not np.isfinite(step).all():  # fed back, it would pass for a bad context
                raise DataError(
                    f"{self.name} produced non-finite forecasts (at steps {done + 1} to "
                    f"{done + step.shape[1]} of {horizon})"
                )
            pieces.append(step)
            done += step.shape[1]
            context = np.concatenate([context, step], axis=1)[:, step.shape[1] :]
        return np.concatenate(pieces, axis=1)[:, :horizon]

    def _rollout_known(self, context: np.ndarray, horizon: int, future: np.ndarray) -> np.ndarray:
        """:meth:`_rollout` with channels known ahead: blocks start at 0, T, 2T, … and the
        last at ``horizon`` − T; each block's context rows are its forecasts and their known
        values."""
        steps = self.horizon
        starts = block_starts(horizon, steps)
        out = np.empty((len(context), horizon, self.n_targets_))
        length = context.shape[1]
        history = context  # (B, C + forecast so far, F)
        for start in starts:
            known = future[:, start : start + steps]  # (B, T, F_k)
            block = self._forecast(history[:, start : length + start], steps, known)
            if not np.isfinite(block).all():
                raise DataError(
                    f"{self.name} produced non-finite forecasts (at steps {start + 1} to "
                    f"{start + steps} of {horizon})"
                )
            out[:, start : start + steps] = block
            rows = np.concatenate([block, known], axis=2)  # (B, T, Ft + F_k) = (B, T, F)
            history = np.concatenate([history[:, : length + start], rows], axis=1)
        return out

    def validate(self) -> Self:
        """Checks the hyperparameters before any work (``fit`` checks them again)."""
        self._check_hyperparameters()
        return self

    def _check_hyperparameters(self) -> None:
        if self.window < 1:
            raise DataError(f"window must be at least 1, got {self.window}", arguments=("window",))
        if self.horizon < 1:
            raise DataError(
                f"horizon must be at least 1, got {self.horizon}", arguments=("horizon",)
            )

    @abstractmethod
    def _fit(self, series: list[np.ndarray]) -> None:
        """Learns state from float64 series of shape (N_i, F)."""

    def _learn(self, series: list[np.ndarray], on_epoch: Callable[[EpochEnd], None] | None) -> None:
        """What :meth:`fit` runs once the input is checked: :meth:`_fit`, for models fitted in
        one go; a model trained by epochs overrides it to report each one to ``on_epoch``."""
        del on_epoch
        self._fit(series)

    @abstractmethod
    def _predict(
        self, context: np.ndarray, horizon: int, future: np.ndarray | None = None
    ) -> np.ndarray:
        """(B, C, F) contexts of exactly ``context_length`` steps, and (B, T, F_k) values known
        ahead (None for a model without them) -> (B, T, F_target)."""

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

    def lr_find(self, series: Sequence[np.ndarray], n_targets: int = 1, n_future: int = 0) -> Any:
        """The learning-rate range finder on training series (N_i, F); only models trained by
        a gradient have one (see :meth:`seqcast.forecasters.neural.NeuralForecaster.lr_find`).

        Raises:
            DataError: this model has no learning rate.
        """
        raise DataError(f"lr-find needs a neural model; '{self.name}' has no learning rate")

    # ------------------------------------------------------------------------ short series
    @property
    def can_pad(self) -> bool:
        """Whether :meth:`fit` may pad training series shorter than the context (and then
        forecasts from padded contexts): neural models say so; baselines need whole contexts."""
        return False

    @property
    def accepts_padding(self) -> bool:
        """Whether this fitted model forecasts from contexts padded in front with NaN (it
        trained on padded windows, so it knows them)."""
        return False

    def readable(self, data: SeriesData) -> SeriesData:
        """``data`` as this model reads it: with its gaps (missing values, ``fill`` ``mask``)
        for a model that reads them natively (one that pads: before fitting, :attr:`can_pad`;
        after, :attr:`accepts_padding`), else with each gap carried forward from the value
        before it (:mod:`seqcast.data.gaps`)."""
        return data if self.reads_gaps else data.carried_forward()

    def readable_values(self, values: np.ndarray) -> np.ndarray:
        """(N, F) ``values`` as this model reads them (see :meth:`readable`)."""
        return values if self.reads_gaps else carry_forward(values)

    @property
    def reads_gaps(self) -> bool:
        """Whether the model reads missing values (NaN) as gaps: before fitting,
        :attr:`can_pad`; after, :attr:`accepts_padding` (its inputs flag unobserved values)."""
        return self.accepts_padding if getattr(self, "is_fitted_", False) else self.can_pad

    def last_contexts(self, histories: Sequence[np.ndarray], labels: Sequence[str]) -> np.ndarray:
        """The contexts to forecast each series from: the last C = :attr:`context_length`
        steps of each (N_i, F) history, stacked (S, C, F); a history shorter than C is padded
        in front with NaN where the model accepts padding (a warning says how many).

        Raises:
            DataError: a history is shorter than C and the model does not accept padding
                (the message names the series by ``labels``), or a history is empty.
        """
        steps = self.context_length
        short = [i for i, h in enumerate(histories) if len(h) < steps]
        for i in short:
            if not self.accepts_padding or len(histories[i]) == 0:
                raise DataError(
                    f"{labels[i]} has {len(histories[i])} points before its forecast; "
                    f"{self.name} reads the last {steps}"
                    + (
                        " (a model fitted on data with series this short learns to forecast "
                        "from a padded past)"
                        if self.can_pad and len(histories[i])
                        else ""
                    )
                )
        if not histories:
            return np.empty((0, steps, getattr(self, "n_features_", 1)))
        contexts = np.full((len(histories), steps, histories[0].shape[1]), np.nan)
        for i, history in enumerate(histories):
            tail = history[max(len(history) - steps, 0) :]
            contexts[i, steps - len(tail) :] = tail
        if short:
            warnings.warn(
                SeqcastWarning(
                    f"{self.name}: {len(short)} of {len(histories)} series are shorter than "
                    f"its context ({steps} points); forecast from their padded past, the "
                    "missing steps flagged to the network"
                ),
                stacklevel=3,
            )
        return contexts

    @property
    def epochs_run(self) -> int | None:
        """Training epochs actually run (None for models that are not trained by epochs)."""
        return None

    @property
    def n_params(self) -> int | None:
        """Number of learned parameters of a neural model, else None."""
        return None
