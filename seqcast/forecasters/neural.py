"""What every neural forecaster shares: scaling, inputs, training, forecasting, saving.

Subclasses only say which network to build (:meth:`NeuralForecaster.build_network`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from seqcast import _native as native
from seqcast.data.gaps import carry_forward, has_gaps
from seqcast.data.scaling import TRANSFORMS, Scaler, choose_power, scale_span, transform_power
from seqcast.data.windows import sliding_windows
from seqcast.errors import DataError, ModelFormatError, SeqcastWarning, TrainingWarning
from seqcast.forecasters.base import EpochEnd
from seqcast.forecasters.inputs import InputSpec, build_inputs, read_mask
from seqcast.forecasters.levels import GRID
from seqcast.forecasters.network_outputs import NetworkOutputs
from seqcast.networks import (
    ForecastNet,
    NegativeBinomialNet,
    QuantileNet,
    RecurrentNet,
    StudentTNet,
)
from seqcast.training.device import training_device
from seqcast.training.loop import DIVERGENCE_ARGUMENTS, History, TrainConfig, TrainData, train
from seqcast.training.lr_finder import LRFinderResult, find_lr

__all__ = ["NeuralForecaster"]

#: Windows per chunk of a large batch forecast; chunks run side by side on the threads.
PREDICT_CHUNK = 8192

#: How windows are scaled: ``pooled`` (one scale from the training data), ``window`` (each
#: window shifted by its level is also divided by its context's spread, the mean absolute
#: one-step change over the C steps the model reads) or ``mean`` (DeepAR's: targets keep their
#: origin and each window is divided by its mean absolute value). The default, ``auto``, is
#: ``pooled`` unless the training series' step sizes span more than :data:`AUTO_SPAN`
#: (:func:`seqcast.data.scaling.scale_span`), where one scale cannot serve them all. Chosen on
#: two development folds of M3 and M1 (many_series.py --dev 1 and --dev 2, the last and the
#: second-last h points of every training part): pooled collapses on M1 (fold 1: 32.77 against
#: window's 16.52; yearly 127.74), whose step sizes span 5 to 7 decades, while window failed on
#: M3 monthly's second fold (18.28 against pooled's 14.71: short, volatile, padded series),
#: whose step sizes span 1.5 to 2.2 decades; mean collapsed on M1 yearly's second fold (183.81).
#: One series is always pooled: benchmarks/accuracy.py keeps its figures.
SCALINGS = ("pooled", "window", "mean")
#: The spread of step sizes (99th / 1st percentile across series) above which ``auto`` scales
#: each context by its own spread: M3's sets span 31 to 172, M1's 1.6e5 to 9.6e6.
AUTO_SPAN = 1000.0

#: How training windows are drawn: each once per epoch, or as often per series.
SAMPLINGS = ("windows", "series")

#: What the network forecasts: ``none`` (a point), ``quantile`` (several quantiles that never
#: cross, trained with the pinball loss; the median is the point forecast), ``studentt`` (a
#: Student-t distribution per step, trained by negative log-likelihood; its location, the
#: median, is the point forecast) or ``negbin`` (for series of counts, non-negative integers:
#: a negative binomial per step on the counts themselves, trained by negative log-likelihood;
#: its median is the point forecast).
LIKELIHOODS = ("none", "quantile", "studentt", "negbin")
#: The quantile levels a ``quantile`` network forecasts unless told: M3's 0.1 … 0.9 and the
#: bounds of the 80 %, 90 % and 95 % intervals.
QUANTILE_LEVELS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975)

#: Fraction of the training windows (the latest ones) kept aside for early stopping.
EARLY_STOPPING_FRACTION = 0.1


class NeuralForecaster(NetworkOutputs):
    """Base of the PyTorch forecasters.

    Data are standardised per channel on the training part and every window is shifted by its
    own mean level (see :mod:`seqcast.forecasters.inputs`); forecasts are mapped back. With a
    seasonal period P > 1 the network also sees the values one period earlier. Training stops
    early on the latest 10 % of the training windows (never on the part being scored) and keeps
    the best weights.

    Args:
        window: input length L.
        horizon: forecast length T.
        season: seasonal period P (1: none).
        epochs, batch_size, lr, loss, optimizer, patience, seed, schedule: training settings
            (:class:`seqcast.training.loop.TrainConfig`).
        seq2seq: add a loss on the forecasts made from every window step.
        transform: ``auto``, ``none``, ``sqrt`` or ``log`` (see :mod:`seqcast.data.scaling`).
        scaling: ``auto`` (``pooled``, or ``window`` where the series' sizes lie more than
            three decades apart; ``mean`` with ``likelihood`` negbin), ``pooled``, ``window``
            or ``mean`` (see :data:`SCALINGS`); the one used is ``scaling_``.
        sampling: ``windows`` (every training window once per epoch) or ``series`` (windows
            drawn so that every series is drawn as often, however long it is).
        ensemble: networks trained, from seeds ``seed`` to ``seed + ensemble − 1`` (initial
            weights and shuffling) on the same windows; forecasts are their mean.
        likelihood: ``none``, ``quantile``, ``studentt`` or ``negbin`` (see
            :data:`LIKELIHOODS`); a network trained for quantiles answers
            :meth:`predict_quantiles` itself, a point network gets conformal intervals
            (:mod:`seqcast.evaluation.conformal`). ``negbin`` needs target values that are
            non-negative integers and no transform (``auto`` is then ``none``).
        quantile_levels: the levels a quantile network is trained for (default
            :data:`QUANTILE_LEVELS`; 0.5 is always added); others are interpolated.
        calibrate_intervals: move a probabilistic network's interval bounds by how far the
            early-stopping windows (never trained on) fell outside them (conformalised
            quantile regression), so that an 80 % interval holds about 80 % of new points.
        device: where training runs: ``cpu`` (the compiled recurrence), ``cuda`` (PyTorch's
            own layers on the GPU, ``cuda:1`` for another) or ``auto`` (``cuda`` where one is
            present). The trained networks come back to the CPU, so forecasts, saved models
            and the service are the same whichever trained them.
    """

    any_horizon = False
    reads_known = True
    trained_by_gradient = True

    def __init__(
        self,
        *,
        window: int = 20,
        horizon: int = 1,
        season: int = 1,
        epochs: int = 200,
        batch_size: int = 32,
        lr: float = 1e-3,
        loss: str = "huber",
        optimizer: str = "adam",
        patience: int = 20,
        seed: int = 0,
        seq2seq: bool = False,
        schedule: str = "plateau",
        transform: str = "auto",
        scaling: str = "auto",
        ensemble: int = 1,
        sampling: str = "windows",
        likelihood: str = "none",
        quantile_levels: Sequence[float] | None = None,
        calibrate_intervals: bool = True,
        device: str = "cpu",
    ) -> None:
        super().__init__(window=window, horizon=horizon)
        self.season = season
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.loss = loss
        self.optimizer = optimizer
        self.patience = patience
        self.seed = seed
        self.seq2seq = seq2seq
        self.schedule = schedule
        self.transform = transform
        self.scaling = scaling
        self.ensemble = ensemble
        self.sampling = sampling
        self.likelihood = likelihood
        self.quantile_levels = quantile_levels
        self.calibrate_intervals = calibrate_intervals
        self.device = device

    @property
    def radius(self) -> int:
        """Half-width K of the seasonal neighbourhood: up to 5 steps, a quarter period at most,
        for one-step forecasts; 0 for longer horizons, whose T seasonal values already overlap
        (else the output layer would see T·(2K+1) values per target)."""
        if self.horizon > 1:
            return 0
        return max(0, min(5, self.season // 4))

    @property
    def spec(self) -> InputSpec:
        """The input layout (the scaling resolved by :meth:`fit`, else as set)."""
        scaling = getattr(self, "scaling_", self.scaling)
        return InputSpec(
            window=self.window,
            horizon=self.horizon,
            season=self.season,
            radius=self.radius,
            n_features=self.n_features_,
            n_targets=self.n_targets_,
            window_scaling=scaling == "window",
            masked=getattr(self, "padded_", False),
            mean_unit=getattr(self, "mean_unit_", 0.0) if scaling == "mean" else 0.0,
            n_future=self.n_known,
        )

    @property
    def context_length(self) -> int:
        spec = InputSpec(self.window, self.horizon, self.season, self.radius, 1, 1)
        return spec.context_length

    @property
    def levels(self) -> tuple[float, ...]:
        """The quantile levels the network forecasts (empty without ``likelihood`` quantile)."""
        if self.likelihood != "quantile":
            return ()
        given = QUANTILE_LEVELS if self.quantile_levels is None else self.quantile_levels
        return tuple(sorted({round(float(q), 6) for q in given} | {0.5}))

    @property
    def has_quantiles(self) -> bool:
        return self.likelihood != "none"

    def network(self, spec: InputSpec) -> ForecastNet:
        """The untrained network, with its quantile or distribution output when the
        likelihood asks."""
        if self.likelihood == "studentt":
            return StudentTNet(self.build_network(spec, outputs=3))
        if self.likelihood == "negbin":
            return NegativeBinomialNet(self.build_network(spec, outputs=2))
        levels = self.levels
        if not levels:
            return self.build_network(spec)
        return QuantileNet(self.build_network(spec, outputs=len(levels)), levels)

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            loss=self.loss,
            optimizer=self.optimizer,
            patience=self.patience,
            seed=self.seed,
            seq2seq=self.seq2seq,
            schedule=self.schedule,
            quantiles=self.levels,
            distribution=self.likelihood if self.likelihood in ("studentt", "negbin") else "",
        )

    def build_network(self, spec: InputSpec, outputs: int = 1) -> ForecastNet:
        """The untrained network for this input layout, forecasting ``outputs`` values per
        target and step."""
        raise NotImplementedError

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        if self.season < 1:
            raise DataError(f"season must be at least 1, got {self.season}", arguments=("season",))
        if self.transform not in ("auto", *TRANSFORMS):
            raise DataError(
                f"unknown transform '{self.transform}'; choose from auto, {', '.join(TRANSFORMS)}",
                arguments=("transform",),
            )
        if self.sampling not in SAMPLINGS:
            raise DataError(
                f"unknown sampling '{self.sampling}'; choose from {', '.join(SAMPLINGS)}",
                arguments=("sampling",),
            )
        if self.ensemble < 1:
            raise DataError(
                f"ensemble must be at least 1, got {self.ensemble}", arguments=("ensemble",)
            )
        if self.likelihood not in LIKELIHOODS:
            raise DataError(
                f"unknown likelihood '{self.likelihood}'; choose from {', '.join(LIKELIHOODS)}",
                arguments=("likelihood",),
            )
        if self.likelihood != "none" and self.seq2seq:
            raise DataError(
                f"likelihood {self.likelihood} cannot train seq2seq; turn one off",
                arguments=("likelihood", "seq2seq"),
            )
        if self.likelihood == "negbin" and self.transform not in ("auto", "none"):
            raise DataError(
                f"likelihood negbin models the counts themselves; transform {self.transform} "
                "cannot apply (use transform none or auto)",
                arguments=("likelihood", "transform"),
            )
        if self.likelihood == "quantile":
            for q in self.levels:
                if not 0.0 < q < 1.0:
                    raise DataError(
                        f"quantile_levels must lie strictly between 0 and 1, got {q}",
                        arguments=("quantile_levels",),
                    )
        if self.scaling not in ("auto", *SCALINGS):
            raise DataError(
                f"unknown scaling '{self.scaling}'; choose from auto, {', '.join(SCALINGS)}",
                arguments=("scaling",),
            )
        self.train_config().check()
        training_device(self.device)

    def _check_network(self, hidden_size: int, num_layers: int, dropout: float) -> None:
        """The checks every network's settings share."""
        for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers)):
            if value < 1:
                raise DataError(f"{name} must be at least 1, got {value}", arguments=(name,))
        if not 0.0 <= dropout < 1.0:
            raise DataError(f"dropout must lie in [0, 1), got {dropout}", arguments=("dropout",))

    # --------------------------------------------------------------------------- training
    def _fit(self, series: list[np.ndarray]) -> None:
        self._learn(series, None)

    def _learn(self, series: list[np.ndarray], on_epoch: Callable[[EpochEnd], None] | None) -> None:
        fit_data, stop_data = self._prepare(series)
        device = training_device(self.device)
        # On the training device once for every member; the least-squares start and the
        # interval calibration read the CPU copy.
        placed = (fit_data, stop_data)
        if device.type != "cpu":
            placed = (fit_data.to(device), None if stop_data is None else stop_data.to(device))
        self.networks_: list[ForecastNet] = []
        self.histories_: list[History] = []
        for member in range(self.ensemble):
            network, history = self._train_one(fit_data, placed, member, on_epoch)
            self.networks_.append(network)
            self.histories_.append(history)
        self.network_, self.history_ = self.networks_[0], self.histories_[0]
        self.calibration_: np.ndarray | None = None
        if self.has_quantiles and self.calibrate_intervals and stop_data is not None:
            self._calibrate_intervals(stop_data)
        diverged = [h for h in self.histories_ if h.stop_reason == "diverged"]
        if diverged:
            warnings.warn(
                TrainingWarning(diverged[0].message, arguments=DIVERGENCE_ARGUMENTS), stacklevel=3
            )
        elif all(h.best_epoch == 0 and h.epochs > 0 for h in self.histories_):
            hint, named = "", tuple[str, ...]()
            if len(series) > 1 and (self.loss != "mae" or self.ensemble == 1):
                # What trained further on M3's development split (README, many series).
                hint, named = (
                    "; on many series try loss mae with ensemble 5",
                    (
                        "loss mae",
                        "ensemble 5",
                    ),
                )
            warnings.warn(
                TrainingWarning(
                    f"{self.name}: no training epoch improved on the network's start (its output "
                    "layer's least-squares fit), so that start was kept: its forecasts are "
                    f"close to the linear baseline's ({self.history_.epochs} epoch(s) run){hint}",
                    arguments=named,
                ),
                stacklevel=3,
            )

    def _train_one(
        self,
        fit_data: TrainData,
        placed: tuple[TrainData, TrainData | None],
        member: int,
        on_epoch: Callable[[EpochEnd], None] | None,
    ) -> tuple[ForecastNet, History]:
        """Trains ensemble member ``member`` (seed ``seed + member``) from its least-squares
        start on ``fit_data`` (CPU), on the training and early-stopping windows ``placed`` on
        the training device; progress counts the epochs of all members."""
        seed = self.seed + member
        torch.manual_seed(seed)  # the network's initial weights
        network = self.network(self.spec)
        network.init_linear(fit_data.window, fit_data.season, fit_data.target)
        network.to(placed[0].window.device)
        report = None
        if on_epoch is not None:
            listener, total, done = on_epoch, self.epochs * self.ensemble, self.epochs * member

            def report(epoch: int, train_loss: float, val_loss: float | None) -> None:
                listener(EpochEnd(self.name, done + epoch, total, train_loss, val_loss))

        config = replace(self.train_config(), seed=seed)
        history = train(network, *placed, config, on_epoch=report)
        return network.cpu(), history

    def lr_find(
        self, series: Sequence[np.ndarray], n_targets: int = 1, n_future: int = 0
    ) -> LRFinderResult:
        """Runs the learning-rate range finder on training series (N_i, F); fits nothing.

        The network starts from its random initialisation, without the least-squares start
        of the output layer that :meth:`fit` gives it: from that optimum every step only adds
        loss, and the sweep would show nothing of how the network learns. The sweep runs on
        an unfitted twin (``type(self)(**self.get_params())``): a fitted model keeps its
        scaling and weights.
        """
        twin = type(self)(**self.get_params())
        twin._check_hyperparameters()
        twin.n_features_ = int(series[0].shape[1])
        twin.n_targets_ = int(n_targets)
        twin.n_future_ = int(n_future)
        if any(np.isnan(s).any() for s in series) and not twin.can_pad:
            raise DataError("the training data has missing values (carry them forward first)")
        fit_data, _ = twin._prepare([np.asarray(s, dtype=np.float64) for s in series])
        torch.manual_seed(twin.seed)  # the network's initial weights
        return find_lr(twin.network(twin.spec), fit_data, twin.train_config())

    def _prepare(self, series: list[np.ndarray]) -> tuple[TrainData, TrainData | None]:
        """Fits the scaler and cuts training windows, and the latest ones for early stopping.

        Series may have gaps (NaN, ``fill`` ``mask``): the scaling is then fitted on them
        carried forward, windows read them as unobserved inputs, and no window whose targets
        hold one is trained on."""
        gapped = any(has_gaps(s) for s in series)
        if self.likelihood == "negbin":
            _check_counts(series, self.n_targets_)
        raw, series = series, [carry_forward(s) for s in series]
        power = self._power(series)
        self.scaler_ = Scaler("standard", power).fit(series)
        # A target never negative in training (counts, sales) never gets negative quantiles.
        lowest = np.min([s[:, : self.n_targets_].min(axis=0) for s in series], axis=0)
        self.floors_: np.ndarray | None = np.where(lowest >= 0, 0.0, -np.inf)
        # Targets are shifted by each window's level, so what remains is of the size of a
        # step, not of the whole series: scale them by the spread of one-step changes, which
        # keeps the recurrent units out of their linear regime.
        powered = [
            transform_power(s[:, : self.n_targets_], power[: self.n_targets_]) for s in series
        ]
        self.scaling_ = self.scaling
        if self.scaling == "auto" and self.likelihood == "negbin":
            # DeepAR's for counts: the spread the network forecasts is relative to each
            # window's size, so a series of 3 a day and one of 3,000 get their own.
            self.scaling_ = "mean"
        elif self.scaling == "auto":  # one scale where it can serve every series
            span = scale_span([x[:, : self.n_targets_] for x in powered])
            self.scaling_ = "window" if span > AUTO_SPAN else "pooled"
        if self.scaling_ == "mean":
            # Targets keep their own origin and size; each window is divided by its mean
            # absolute value, times the spread of one-step changes relative to the series' size.
            self.scaler_.shift_[: self.n_targets_] = 0.0
            self.scaler_.scale_[: self.n_targets_] = 1.0
            relative = np.concatenate(
                [np.diff(s, axis=0) / _size(s) for s in powered if len(s) > 1]
            )
            unit = relative.std() if len(relative) > 1 else 1.0
            self.mean_unit_ = float(unit) if unit > 1e-12 else 1.0
        else:
            steps = np.concatenate([np.diff(s, axis=0) for s in powered])
            step_scale = steps.std(axis=0) if len(steps) > 1 else np.ones(self.n_targets_)
            self.scaler_.scale_[: self.n_targets_] = np.where(step_scale > 1e-12, step_scale, 1.0)
        needed = self.context_length + self.horizon
        short = sum(len(s) < needed for s in series)
        if short == len(series):
            raise DataError(
                f"{self.name} needs training series of at least {needed} points (context "
                f"{self.context_length} + horizon {self.horizon}); use a shorter window or season",
                arguments=("window", "season"),
            )
        # Series shorter than a context and its horizon, beside longer ones, train from one
        # sample padded in front, its missing past flagged (not with seq2seq, whose per-step
        # targets would be missing).
        self.padded_ = bool(short or gapped) and not self.seq2seq
        spec = self.spec
        windows = [self._windows(self.scaler_.transform(s), spec) for s in raw]
        parts = [w for w in windows if w is not None]
        if short:
            unused = len(series) - len(parts)
            if self.padded_:
                what = "each is trained on once, from its past padded in front and flagged"
                if unused:
                    what += f" ({unused} shorter than the horizon + 1 are left out)"
            else:
                what = "they are left out of training (seq2seq cannot pad)"
            warnings.warn(
                SeqcastWarning(
                    f"{self.name}: {short} of {len(series)} training series are shorter than "
                    f"its context and horizon ({needed} points); {what}"
                ),
                stacklevel=4,
            )
        fit_parts, stop_parts = [], []
        for data in parts:
            n_stop = int(len(data) * EARLY_STOPPING_FRACTION) if self.patience else 0
            # A gap of T − 1 windows keeps every training target out of the held-out targets.
            n_fit = len(data) - n_stop - (self.horizon - 1 if n_stop else 0)
            if n_stop == 0 or n_fit < 1:
                fit_parts.append(data)
                continue
            fit_parts.append(data.take(slice(0, n_fit)))
            stop_parts.append(data.take(slice(len(data) - n_stop, len(data))))
        if self.sampling == "series":  # each series as likely, whatever its length
            for i, part in enumerate(fit_parts):
                fit_parts[i] = replace(part, weight=torch.full((len(part),), 1.0 / len(part)))
        return _concat(fit_parts), _concat(stop_parts) if stop_parts else None

    def _power(self, series: list[np.ndarray]) -> np.ndarray:
        """Each channel's transform exponent: chosen per channel from the training series with
        ``auto``; a fixed ``sqrt`` or ``log`` applies to the targets, not the covariates."""
        if self.transform == "auto":
            power = choose_power(series)
            if self.likelihood == "negbin":  # the distribution is of the counts as they are
                power[: self.n_targets_] = 1.0
            return power
        lam = TRANSFORMS[self.transform]
        targets = slice(0, self.n_targets_)
        if lam < 1.0 and min(float(s[:, targets].min()) for s in series) < 0:
            raise DataError(
                f"transform {self.transform} needs target values of at least 0; the training "
                "data has negative values (use transform none)",
                arguments=("transform",),
            )
        power = np.ones(series[0].shape[1])
        power[targets] = lam
        return power

    def _windows(self, scaled: np.ndarray, spec: InputSpec) -> TrainData | None:
        """Training tensors from one scaled series (N, F); None when it is too short."""
        context, horizon = spec.context_length, self.horizon
        if spec.masked and horizon < len(scaled) < context + horizon:
            padding = np.full((context + horizon - len(scaled), scaled.shape[1]), np.nan)
            scaled = np.concatenate([padding, scaled])
        views = sliding_windows(scaled, context + horizon)  # (B, C+T, F), a view
        if len(views) == 0:
            return None
        if spec.masked:  # a gap is never a target: its windows are left out
            observed = ~np.isnan(views[:, context:, : spec.n_targets]).any(axis=(1, 2))
            if not observed.all():
                views = views[observed]
                if len(views) == 0:
                    return None
        # The channels known ahead, at the forecast steps: (B, T, F_k), scaled already.
        known = views[:, context:, spec.n_features - spec.n_future :] if spec.n_future else None
        inputs = build_inputs(views[:, :context], spec, future=known)
        # (B, T, Ft), on the scale of the inputs: level-shifted, divided by the spread.
        target = (views[:, context:, : spec.n_targets] - inputs.level) / inputs.spread
        step_target = None
        if self.seq2seq:
            ahead = sliding_windows(scaled[1:, : spec.n_targets], horizon)  # (N-T, T, Ft)
            # (., T, Ft, L) -> (., L, T, Ft): the T values after each window step.
            steps = np.moveaxis(sliding_windows(ahead, self.window), -1, 1)
            first = context - self.window  # the first input step of the first window
            step_target = steps[first : first + len(views)] - inputs.level[:, :, None, :]
            step_target = step_target / inputs.spread[:, :, None, :]
            step_target = torch.from_numpy(np.ascontiguousarray(step_target, dtype=np.float32))
        unit = None
        if self.likelihood == "negbin":  # the counts are a·target + b
            unit = torch.from_numpy(self._units(inputs.level, inputs.spread))
        return TrainData(
            window=torch.from_numpy(inputs.window),
            season=torch.from_numpy(inputs.season),
            target=torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32)),
            step_target=step_target,
            unit=unit,
        )

    # --------------------------------------------------------------------------- forecasting
    def _check_context(self, context: np.ndarray) -> None:
        """Checked in :meth:`_predict`, on the values the network reads: a seasonal model
        reads a few dozen of a context's hundreds of steps, and scanning them all cost more
        than a tenth of a batch forecast."""

    def _predict(
        self, context: np.ndarray, horizon: int, future: np.ndarray | None = None
    ) -> np.ndarray:
        rows = len(context)
        if rows == 0:
            return np.empty((0, horizon, self.n_targets_))
        network = self.network_
        if not (isinstance(network, RecurrentNet) and native.compiled(cell=network.config.cell)):
            return self._predict_rows(context, 0, future)
        # The compiled recurrence runs its own threads; PyTorch's would only get in the way.
        with native.own_threads():
            workers = native.thread_count()
            if rows <= PREDICT_CHUNK or workers == 1:
                return self._predict_rows(context, 0, future)

            # Chunks side by side, each whole (inputs, network, scaling back): the input
            # preparation then runs in parallel too, not only the recurrence.
            def run(start: int) -> np.ndarray:
                chunk = slice(start, start + PREDICT_CHUNK)
                known = None if future is None else future[chunk]
                with native.one_worker():
                    return self._predict_rows(context[chunk], start, known)

            parts = list(native.pool(workers).map(run, range(0, rows, PREDICT_CHUNK)))
        return np.concatenate(parts)

    def _predict_rows(
        self, context: np.ndarray, first: int, future: np.ndarray | None = None
    ) -> np.ndarray:
        """Forecasts (B, T, Ft) for contexts (B, C, F), and (B, T, F_k) values known ahead,
        that start at window ``first`` of the caller's batch (for error messages)."""
        self._check_not_negative(context, first)
        inputs = build_inputs(context, self.spec, self.scaler_, future)
        parts = (inputs.window, inputs.season, inputs.level, inputs.spread)
        if not all(np.isfinite(part).all() for part in parts):
            rows = np.zeros(len(context), dtype=bool)
            for part in parts:
                rows |= ~np.isfinite(part.reshape(len(part), -1)).all(axis=1)
            bad = int(np.argmax(rows))
            read = context[bad][read_mask(self.spec, context.shape[1])]
            if np.isfinite(read).all():  # finite, but not once scaled
                raise DataError(
                    f"the context of window {first + bad} overflows when scaled: its values "
                    "are far outside the range the model was trained on"
                )
            raise DataError(
                "the context has missing or infinite values in the steps the model reads "
                f"(first in window {first + bad})"
            )
        if self.likelihood == "negbin":  # the median count is the point forecast
            median = np.full((len(context), self.horizon, self.n_targets_, 1), 0.5)
            return self._inverse_cdf(inputs, median)[..., 0]
        out = self.forward_scaled(inputs)  # (B, T, Ft), or (B, T, Ft, Q | 3)
        if self.likelihood == "studentt":
            out = out[..., 0]  # the location, the median, is the point forecast
        elif out.ndim == 4:
            out = out[..., self.levels.index(0.5)]  # the median is the point forecast
        point = self.scaler_.inverse_transform(out, slice(0, self.n_targets_))
        if self.has_quantiles:  # the median, floored as its quantiles are
            point = np.maximum(point, self._floors())
        return point

    # ------------------------------------------------------------------- saving, reporting
    def get_state(self) -> dict[str, np.ndarray]:
        """Member 0's weights under ``net.``, member k's under ``net{k}.``."""
        state = {
            f"{_prefix(k)}{name}": value.detach().cpu().numpy()
            for k, network in enumerate(self.networks_)
            for name, value in network.state_dict().items()
        }
        state.update({f"scaler.{k}": v for k, v in self.scaler_.state().items()})
        if self.calibration_ is not None:
            state["calibration"] = self.calibration_
        if self.floors_ is not None:
            state["floors"] = self.floors_
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.scaler_ = Scaler.from_state(
            "standard",
            {k.removeprefix("scaler."): v for k, v in state.items() if k.startswith("scaler.")},
        )
        calibration = state.get("calibration")
        if calibration is not None and (
            calibration.shape != (len(GRID), self.horizon, self.n_targets_)
            or not np.isfinite(calibration).all()
        ):
            raise ValueError(f"the interval calibration has shape {calibration.shape}")
        self.calibration_ = None if calibration is None else np.asarray(calibration, np.float64)
        floors = state.get("floors")
        if floors is not None and (
            floors.shape != (self.n_targets_,) or not np.isin(floors, (0.0, -np.inf)).all()
        ):
            raise ValueError(f"the saved floors {floors!r} are not 0 or -inf per target")
        self.floors_ = None if floors is None else np.asarray(floors, np.float64)
        # The settings' network is first built without memory, so that settings that do not
        # match the weights (an edited description asking for a huge network) are refused
        # before anything is allocated.
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in self.network(self.spec).state_dict().items()}
        self.networks_ = []
        for member in range(self.ensemble):
            prefix = _prefix(member)
            saved = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
            for name, shape in shapes.items():
                found = saved.get(name)
                if found is None or tuple(found.shape) != shape:
                    got = "missing" if found is None else f"of shape {tuple(found.shape)}"
                    raise ValueError(
                        f"the settings make weight {prefix}{name} of shape {shape}, the "
                        f"weights file holds it {got}"
                    )
            network = self.network(self.spec)
            network.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in saved.items()})
            network.eval()
            self.networks_.append(network)
        self.network_ = self.networks_[0]

    def get_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"history": self.history_.to_json(), "padded": self.padded_}
        if self.ensemble > 1:
            info["histories"] = [h.to_json() for h in self.histories_]
        info["scaling"] = self.scaling_
        if self.scaling_ == "mean":
            info["mean_unit"] = self.mean_unit_
        return info

    def set_info(self, info: dict[str, Any]) -> None:
        self.history_ = History.from_json(info.get("history", {}))
        self.histories_ = [History.from_json(h) for h in info.get("histories", [])] or [
            self.history_
        ]
        self.padded_ = bool(info.get("padded", False))  # absent before padding existed
        # Absent before scaling "auto" existed: the setting itself was the one in use.
        self.scaling_ = str(info.get("scaling", self.scaling))
        if self.scaling_ not in SCALINGS:
            raise ModelFormatError(f"unknown scaling '{self.scaling_}' in the model's info")
        if self.scaling_ == "mean":
            self.mean_unit_ = float(info["mean_unit"])

    @property
    def can_pad(self) -> bool:
        return not self.seq2seq

    @property
    def accepts_padding(self) -> bool:
        return bool(getattr(self, "padded_", False))

    @property
    def epochs_run(self) -> int | None:
        history = getattr(self, "history_", None)
        return None if history is None else history.epochs

    @property
    def n_params(self) -> int | None:
        """Parameters the forecasts use: the per-step output layer counts only with seq2seq
        (without it, it is never trained or read)."""
        networks = getattr(self, "networks_", None)
        if networks is None:
            return None
        return sum(
            int(p.numel())
            for network in networks
            for name, p in network.named_parameters()
            if self.seq2seq or not name.startswith("step_head.")
        )


def _prefix(member: int) -> str:
    """Where ensemble member ``member``'s weights are saved: ``net.``, ``net1.``, ..."""
    return "net." if member == 0 else f"net{member}."


def _size(values: np.ndarray) -> np.ndarray:
    """The mean absolute value of each channel of (N, F) values, 1 where it is 0: (F,)."""
    size = np.abs(values).mean(axis=0)
    return np.where(size > 1e-8, size, 1.0)


def _check_counts(series: list[np.ndarray], n_targets: int) -> None:
    """Refuses training targets that are not counts (non-negative integers; gaps pass),
    naming the first such value."""
    for i, values in enumerate(series):
        targets = values[:, :n_targets]
        bad = ~np.isnan(targets) & ((targets < 0) | (targets != np.round(targets)))
        if bad.any():
            row, channel = (int(k[0]) for k in np.nonzero(bad))
            raise DataError(
                f"likelihood negbin forecasts counts (integers of at least 0), but training "
                f"series {i} has {targets[row, channel]:g} in target channel {channel} at row "
                f"{row}; use likelihood studentt or quantile",
                arguments=("likelihood",),
            )


def _concat(parts: list[TrainData]) -> TrainData:
    if len(parts) == 1:
        return parts[0]
    steps = None
    if parts[0].step_target is not None:
        steps = torch.cat([p.step_target for p in parts if p.step_target is not None])
    return TrainData(
        window=torch.cat([p.window for p in parts]),
        season=torch.cat([p.season for p in parts]),
        target=torch.cat([p.target for p in parts]),
        step_target=steps,
        weight=None if parts[0].weight is None else torch.cat([p.weight for p in parts]),  # type: ignore[misc]
        unit=None if parts[0].unit is None else torch.cat([p.unit for p in parts]),  # type: ignore[misc]
    )
