"""What a fitted network forecasts, read back on the original scale: its outputs for many
windows at once, the quantiles of a network trained for them, sampled paths past its horizon,
and the calibration of its intervals.

:class:`NetworkOutputs` is the part of :class:`~seqcast.forecasters.neural.NeuralForecaster`
that reads the trained networks; the subclass trains them and sets the attributes declared here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from seqcast.data.scaling import Scaler
from seqcast.errors import DataError
from seqcast.forecasters.base import Forecaster, block_starts
from seqcast.forecasters.inputs import InputSpec, ModelInputs, build_inputs
from seqcast.forecasters.levels import GRID, conformal_levels, on_grid
from seqcast.networks import ForecastNet
from seqcast.networks.distribution import negative_binomial_moments
from seqcast.training.loop import TrainData

__all__ = ["CALIBRATION_WINDOWS", "SAMPLE_PATHS", "NetworkOutputs"]

#: Early-stopping windows (evenly spread) an interval calibration reads at most: ample for
#: the conformal quantiles of 101 levels, and a Student-t's quantile function is slow.
CALIBRATION_WINDOWS = 2000

#: Negative binomial quantiles an interval calibration computes at most (about 1 s: scipy's
#: discrete quantile function takes 3 to 9 µs apiece), and the windows it reads at least,
#: however long the horizon.
CALIBRATION_COUNTS = 300_000
CALIBRATION_LEAST = 100

#: Paths rolled out to give quantiles past the trained horizon.
SAMPLE_PATHS = 200


class NetworkOutputs(Forecaster):
    """Forecasts, quantiles and sampled paths of trained networks (the fitted state below)."""

    seed: int
    likelihood: str
    networks_: list[ForecastNet]
    scaler_: Scaler
    floors_: np.ndarray | None
    calibration_: np.ndarray | None

    @property
    def spec(self) -> InputSpec:
        """The input layout the networks read (the subclass's)."""
        raise NotImplementedError

    @property
    def levels(self) -> tuple[float, ...]:
        """The quantile levels the networks forecast (empty for a point network)."""
        raise NotImplementedError

    def predict_quantiles(
        self,
        context: np.ndarray,
        quantiles: Sequence[float],
        horizon: int | None = None,
        future: np.ndarray | None = None,
    ) -> np.ndarray:
        """Quantile forecasts of a network trained for them (``likelihood`` quantile,
        studentt or negbin).

        Up to the trained horizon they are the network's own (a quantile network's levels it
        was not trained for are linear between the nearest trained ones, the outermost beyond;
        a Student-t's and a negative binomial's come from their quantile functions). Past it,
        :data:`SAMPLE_PATHS` paths are rolled out, each step drawn from the forecast
        distribution and fed back, and the later steps' quantiles are those of the paths: their
        spread grows with the step.

        Args:
            context: (B, C, F) past values ending just before each origin.
            quantiles: Q levels in (0, 1).
            horizon: T (default: the trained horizon); past it only for a model whose input
                features are all known ahead (the others' future values are unknown).
            future: (B, max(T, T0), F_k) values known ahead, for a model fitted with
                ``n_future``; the sampled paths past the trained horizon T0 read them too.

        Returns:
            (B, T, F_target, Q) forecasts, non-decreasing along the last axis.
        """
        context = self.ready_context(context)
        if not self.has_quantiles:
            raise DataError(
                f"{self.name} forecasts points; fit it with likelihood quantile for quantiles",
                arguments=("likelihood",),
            )
        steps = self.horizon if horizon is None else horizon
        if steps < 1:
            raise DataError(f"horizon must be at least 1, got {steps}", arguments=("horizon",))
        if steps > self.horizon and not self.can_roll_out:
            raise DataError(
                f"cannot forecast quantiles {steps} steps ahead with a model trained for "
                f"{self.horizon}: its input features have no future values; refit with "
                f"horizon {steps}",
                arguments=("horizon",),
            )
        self._check_not_negative(context, 0)
        known = self.check_future(future, len(context), max(steps, self.horizon))
        inputs = self._checked_inputs(context, None if known is None else known[:, : self.horizon])
        levels = np.asarray(quantiles, dtype=np.float64)
        shape = (len(context), min(steps, self.horizon), self.n_targets_, len(levels))
        own = self._inverse_cdf(inputs, np.broadcast_to(levels, shape))
        if steps <= self.horizon:
            return own
        paths = self.sample_paths(context, steps, future=known)  # (B, P, T, Ft)
        later = np.moveaxis(np.quantile(paths[:, :, self.horizon :], levels, axis=1), 0, -1)
        return np.concatenate([own, later], axis=1)

    def sample_paths(
        self,
        context: np.ndarray,
        horizon: int,
        n_paths: int = 0,
        seed: int | None = None,
        future: np.ndarray | None = None,
    ) -> np.ndarray:
        """Sample paths of a model trained for quantiles: each block of T steps drawn from the
        forecast distribution (by its inverse CDF at uniform levels) and fed back as the next
        block's past.

        Args:
            context: (B, C, F) past values: the targets, then the inputs known ahead.
            horizon: steps per path.
            n_paths: P (default :data:`SAMPLE_PATHS`).
            seed: of the draws (default: the model's seed): the same seed, the same paths.
            future: (B, ≥horizon, F_k) values known ahead, for a model that reads them: fed
                with each block's draws (the last block ends at ``horizon``, as in a point
                roll-out).

        Returns:
            (B, P, horizon, F_target) paths.
        """
        paths = n_paths or SAMPLE_PATHS
        rng = np.random.default_rng(self.seed if seed is None else seed)
        context = np.repeat(self.ready_context(context), paths, axis=0)  # (B·P, C, F)
        if future is not None and self.n_known:
            known = np.repeat(future, paths, axis=0)  # (B·P, ≥horizon, F_k)
            return self._known_paths(context, known, horizon, rng).reshape(
                -1, paths, horizon, self.n_targets_
            )
        pieces, done = [], 0
        while done < horizon:
            inputs = self._checked_inputs(context)
            shape = (len(context), self.horizon, self.n_targets_, 1)
            draws = self._inverse_cdf(inputs, rng.uniform(size=shape))[..., 0]
            pieces.append(draws)  # (B·P, T, Ft)
            done += draws.shape[1]
            context = np.concatenate([context, draws], axis=1)[:, draws.shape[1] :]
        stacked = np.concatenate(pieces, axis=1)[:, :horizon]
        return stacked.reshape(-1, paths, horizon, self.n_targets_)

    def _known_paths(
        self, context: np.ndarray, known: np.ndarray, horizon: int, rng: np.random.Generator
    ) -> np.ndarray:
        """(B·P, horizon, Ft) sampled paths fed the values ``known`` ahead: blocks from 0, T,
        2T, … and a last one ending at ``horizon``, each drawn from the C steps before it."""
        steps, length = self.horizon, context.shape[1]
        starts = block_starts(horizon, steps)
        out = np.empty((len(context), horizon, self.n_targets_))
        history = context
        for start in starts:
            block = known[:, start : start + steps]  # (B·P, T, F_k)
            inputs = self._checked_inputs(history[:, start : length + start], block)
            shape = (len(context), steps, self.n_targets_, 1)
            draws = self._inverse_cdf(inputs, rng.uniform(size=shape))[..., 0]  # (B·P, T, Ft)
            out[:, start : start + steps] = draws
            rows = np.concatenate([draws, block], axis=2)
            history = np.concatenate([history[:, : length + start], rows], axis=1)
        return out

    def _checked_inputs(self, context: np.ndarray, future: np.ndarray | None = None) -> ModelInputs:
        """The inputs of each (B, C, F) context (and (B, T, F_k) values known ahead), checked:
        what :meth:`_inverse_cdf` reads."""
        inputs = build_inputs(context, self.spec, self.scaler_, future)
        if not all(np.isfinite(part).all() for part in (inputs.window, inputs.season)):
            raise DataError("the context has missing or infinite values in the steps read")
        return inputs

    def _inverse_cdf(self, inputs: ModelInputs, levels: np.ndarray) -> np.ndarray:
        """Values of the forecast distributions at ``levels`` (B, T, Ft, Q) on the original
        scale, each interval's bounds moved by its calibration: (B, T, Ft, Q)."""
        params = self._outputs(inputs.window, inputs.season)  # (B, T, Ft, K)
        steps = levels.shape[1]
        unit = self._units(inputs.level, inputs.spread) if self.likelihood == "negbin" else None
        values = self._normalized_quantiles(params[:, :steps], levels, unit)
        calibration = self.calibration_
        if calibration is not None:
            # q < 0.5 moves down by the adjustment of the interval 1 − 2q, q > 0.5 up.
            move = on_grid(calibration, np.abs(2.0 * levels - 1.0))
            values = values + np.sign(levels - 0.5) * move
        spread = inputs.spread.astype(np.float64)[..., None]  # (B, 1, Ft, 1)
        scaled = values * spread + inputs.level.astype(np.float64)[..., None]
        rows, _, targets, count = scaled.shape
        # (B, T, Ft, Q) -> (B, T·Q, Ft): the inverse transform works on the channel axis.
        flat = np.moveaxis(scaled, 3, 2).reshape(rows, steps * count, targets)
        back = self.scaler_.inverse_transform(flat, slice(0, targets))
        values = np.moveaxis(back.reshape(rows, steps, count, targets), 2, 3)
        if self.likelihood == "negbin":  # whole counts, calibrated or not
            values = np.round(values)
        return np.maximum(values, self._floors()[:, None])  # type: ignore[no-any-return]  # (Ft, 1): per target

    def _floors(self) -> np.ndarray:
        """Each target's least value: 0 where training never saw a negative one, else −∞."""
        return np.full(self.n_targets_, -np.inf) if self.floors_ is None else self.floors_

    def _units(self, level: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """What one unit of each window's targets is in the original values, and the original
        value at its 0, from the windows' level and spread (B, 1, Ft): (B, 2, Ft) float64.
        Only for targets fitted without a transform (``likelihood`` negbin)."""
        targets = slice(0, self.n_targets_)
        if not (self.scaler_.power_[targets] == 1.0).all():
            raise ValueError("window units map linearly to the original values only untransformed")
        scale, shift = self.scaler_.scale_[targets], self.scaler_.shift_[targets]
        size = spread[:, 0].astype(np.float64) * scale  # (B, Ft)
        origin = level[:, 0].astype(np.float64) * scale + shift
        return np.stack([size, origin], axis=1)

    def _normalized_quantiles(
        self, params: np.ndarray, levels: np.ndarray, unit: np.ndarray | None = None
    ) -> np.ndarray:
        """Quantiles at ``levels`` (B, T, Ft, Q) of network outputs ``params`` (B, T, Ft, K)
        in each window's own units; a count distribution also reads each window's ``unit``
        (B, 2, Ft) (:meth:`_units`)."""
        if self.likelihood == "negbin":
            assert unit is not None
            return _negative_binomial_quantiles(params, levels, unit)
        if self.likelihood == "studentt":
            from scipy.special import stdtrit  # the Student-t quantile function

            loc, scale, df = (params[..., k, None] for k in range(3))  # (B, T, Ft, 1) each
            return loc + scale * stdtrit(df, levels)  # type: ignore[no-any-return]
        return _interpolate_each(params, self.levels, levels)

    def _calibrate_intervals(self, held: TrainData) -> None:
        """Conformalised quantile regression on the early-stopping windows (never trained
        on): for each interval level of the grid and each step, the conformal quantile of
        how far the targets fall outside the network's interval, max(low − y, y − high), in
        each window's own units; :meth:`_inverse_cdf` moves the bounds by it."""
        count = CALIBRATION_WINDOWS
        if self.likelihood == "negbin":  # each bound a discrete quantile: a few µs apiece
            values = 2 * len(GRID) * held.target[0].numel()  # per window
            count = min(count, max(CALIBRATION_LEAST, CALIBRATION_COUNTS // values))
        rows = np.unique(np.linspace(0, len(held) - 1, count).astype(np.int64))
        params = self._outputs(
            held.window[rows].numpy(), held.season[rows].numpy()
        )  # (N, T, Ft, K)
        target = held.target[rows].numpy().astype(np.float64)  # (N, T, Ft)
        unit = None if held.unit is None else held.unit[rows].numpy().astype(np.float64)
        at = conformal_levels(len(target))
        calibration = np.empty((len(GRID), *target.shape[1:]))
        for g, level in enumerate(GRID):  # one level at a time: (N, T, Ft, 2) at most
            wanted = np.broadcast_to([0.5 - level / 2, 0.5 + level / 2], (*target.shape, 2))
            bounds = self._normalized_quantiles(params, wanted, unit)
            outside = np.maximum(bounds[..., 0] - target, target - bounds[..., 1])
            calibration[g] = np.quantile(outside, at[g], axis=0, method="inverted_cdf")
        self.calibration_ = calibration

    def _check_not_negative(self, context: np.ndarray, first: int) -> None:
        """Refuses negative values in a target channel fitted after a square root or a log
        (they would be read as 0: a silent wrong forecast); channels without one cost nothing."""
        for channel, power in enumerate(self.scaler_.power_[: self.n_targets_]):
            if power == 1.0:
                continue
            values = context[:, :, channel]
            if np.nanmin(values, initial=0.0) < 0:
                row = int(np.argmax((values < 0).any(axis=1)))
                name = "square root" if power == 0.5 else "log"
                raise DataError(
                    f"the context of window {first + row} has negative values in target "
                    f"channel {channel}, which the model takes the {name} of (it was fitted on "
                    "values of at least 0)"
                )

    def forward_scaled(self, inputs: ModelInputs, batch_size: int = 8192) -> np.ndarray:
        """Network forecasts in the scaled space (the ensemble's mean), spread and level put
        back: (B, T, Ft) float64, or (B, T, Ft, Q) quantiles from a quantile network."""
        total = self._outputs(inputs.window, inputs.season, batch_size)
        spread, level = inputs.spread.astype(np.float64), inputs.level.astype(np.float64)
        if self.likelihood in ("studentt", "negbin"):  # location, spread[, freedom]
            total[..., 0] = total[..., 0] * spread + level
            total[..., 1] *= spread
            return total
        if total.ndim == 4:  # quantiles (B, T, Ft, Q)
            spread, level = spread[..., None], level[..., None]
        return total * spread + level

    def _outputs(
        self, window: np.ndarray, season: np.ndarray, batch_size: int = 8192
    ) -> np.ndarray:
        """The ensemble's mean network output for inputs (B, L, F_in), (B, S), in each
        window's own units (shifted by its level, divided by its spread): float64."""
        total: np.ndarray | None = None
        for network in self.networks_:
            network.eval()
            pieces = []
            with torch.inference_mode():
                for start in range(0, window.shape[0], batch_size):
                    part = slice(start, start + batch_size)
                    out = network(torch.from_numpy(window[part]), torch.from_numpy(season[part]))
                    pieces.append(out.numpy().astype(np.float64))
            forecast = np.concatenate(pieces)
            total = forecast if total is None else total + forecast
        assert total is not None
        return total / len(self.networks_)


def _negative_binomial_quantiles(
    params: np.ndarray, levels: np.ndarray, unit: np.ndarray
) -> np.ndarray:
    """Quantiles at ``levels`` (B, T, Ft, Q) of the counts' negative binomials of network
    outputs ``params`` (B, T, Ft, 2), in window units (count = a·value + b, ``unit``
    (B, 2, Ft)): (B, T, Ft, Q), each an integer count mapped to its window's units."""
    from scipy.stats import nbinom

    steps = params.shape[1]
    window_unit = np.broadcast_to(
        np.moveaxis(unit, 1, 2)[:, None], (len(unit), steps, unit.shape[2], 2)
    )
    mean, successes = (
        t.numpy()[..., None]
        for t in negative_binomial_moments(
            torch.from_numpy(np.ascontiguousarray(params)), torch.from_numpy(window_unit.copy())
        )
    )  # (B, T, Ft, 1) each
    counts = nbinom.ppf(levels, successes, successes / (successes + mean))
    return (counts - window_unit[..., 1:2]) / window_unit[..., 0:1]  # type: ignore[no-any-return]


def _interpolate_each(
    values: np.ndarray, trained: Sequence[float], wanted: np.ndarray
) -> np.ndarray:
    """Quantiles (..., Qn) at the ``trained`` levels -> (..., Q) at the levels ``wanted``
    (..., Q), each element its own: linear in the level between the nearest trained ones, the
    outermost trained beyond them."""
    levels = np.asarray(trained)
    clipped = np.clip(wanted, levels[0], levels[-1])
    upper = np.clip(np.searchsorted(levels, clipped), 1, len(levels) - 1)  # (..., Q)
    low_level, high_level = levels[upper - 1], levels[upper]
    share = (clipped - low_level) / (high_level - low_level)
    low = np.take_along_axis(values, upper - 1, axis=-1)
    high = np.take_along_axis(values, upper, axis=-1)
    return low + share * (high - low)  # type: ignore[no-any-return]
