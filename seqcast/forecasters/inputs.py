"""Model inputs built from a past context: the window, the season, and the level.

Seasonality is part of the model. For a seasonal period P every window step s also carries
the target's value one period earlier, y[s − P], so the network sees how this season differs
from the last; and the output layer sees, for each forecast step t + h, the 2K + 1 values
centred on the same phase in the most recent period that lies entirely in the past. Every
target-valued input is shifted by the window's mean level (a per-window normalisation), so the
network learns shapes, not levels, and a trend that leaves the training range does no harm.
With ``window_scaling`` (the default of the neural models) every target-valued input (and the
targets) is also divided by the context's own spread: the mean absolute one-step change of its
targets over the whole context the model reads (window and seasonal lags, C steps). Series of
very different sizes then look alike to one network (the pooled scaling of many series lets the
large ones set the scale of the small ones), and a long context keeps the spread of one series
nearly constant from window to window.

With ``masked`` a context may have unobserved values (NaN): the padding in front of a series
shorter than the context, or a gap. They count for nothing: the level and spread are taken over
the observed values, an unobserved input is given as the level itself (0 once shifted), and one
more channel per target (two with a season: the value and its seasonal lag) tells the network
which inputs were observed (1) and which were not (0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqcast.data.scaling import Scaler

__all__ = ["InputSpec", "ModelInputs", "build_inputs", "read_mask", "window_spread"]


@dataclass(frozen=True)
class InputSpec:
    """How a context becomes model inputs.

    Attributes:
        window: input length L.
        horizon: forecast length T.
        season: seasonal period P (1: no seasonal inputs).
        radius: K, half-width of the seasonal neighbourhood given to the output layer.
        n_features: input channels F of the data.
        n_targets: target channels F_target (the first ones).
        window_scaling: divide target-valued inputs by each context's spread.
        masked: contexts may hold unobserved values (NaN), flagged in extra channels.
        mean_unit: when above 0, target-valued inputs are divided by each window's mean
            absolute target value times ``mean_unit`` (DeepAR's scale: values relative to the
            window's size), instead of the context's spread.
        n_future: the last F_k input channels are known ahead: their values at the T forecast
            steps are given to the output layer too (T·F_k more values in the flat vector).
    """

    window: int
    horizon: int
    season: int
    radius: int
    n_features: int
    n_targets: int
    window_scaling: bool = False
    masked: bool = False
    mean_unit: float = 0.0
    n_future: int = 0

    @property
    def seasonal(self) -> bool:
        return self.season > 1

    @property
    def periods_back(self) -> np.ndarray:
        """For each step h, the periods m_h to go back so that the neighbourhood is past: (T,)."""
        steps = np.arange(self.horizon)
        return np.ceil((steps + 1 + self.radius) / self.season).astype(np.int64)

    @property
    def head_offsets(self) -> np.ndarray:
        """Offsets from the origin of every seasonal value given to the output layer: (T, 2K+1)."""
        steps = np.arange(self.horizon)[:, None]
        around = np.arange(-self.radius, self.radius + 1)[None, :]
        return steps - self.periods_back[:, None] * self.season + around  # type: ignore[no-any-return]

    @property
    def lead(self) -> int:
        """D: the seasonal channel at window step s holds y[s + D − P]; D = K + T when that is
        still in the past (P ≥ K + T), so the last steps show the recurrent layers the season
        around the forecast steps, jumps included; else 0."""
        if not self.seasonal:
            return 0
        return self.radius + self.horizon if self.radius + self.horizon <= self.season else 0

    @property
    def context_length(self) -> int:
        """Past steps C needed before an origin."""
        if not self.seasonal:
            return self.window
        return int(max(self.window + self.season - self.lead, -self.head_offsets.min()))

    @property
    def input_size(self) -> int:
        """Channels per window step: F, plus F_target seasonal channels, plus (``masked``) the
        observed flags of the target-valued channels."""
        valued = self.n_targets * (2 if self.seasonal else 1)  # targets, and their lags
        return self.n_features + valued - self.n_targets + (valued if self.masked else 0)

    @property
    def season_size(self) -> int:
        """Length S of the flat vector given to the output layer beside the recurrent state:
        the seasonal neighbourhoods, T·(2K+1)·F_target, then the values known ahead, T·F_k."""
        seasonal = self.horizon * (2 * self.radius + 1) * self.n_targets if self.seasonal else 0
        return seasonal + self.horizon * self.n_future


@dataclass(frozen=True)
class ModelInputs:
    """A batch of model inputs.

    Attributes:
        window: (B, L, F_in) window values (targets level-shifted) and seasonal channels.
        season: (B, S) seasonal neighbourhood of every forecast step, level-shifted (S may be 0).
        level: (B, 1, F_target) the window's mean target level, added back to forecasts.
        spread: (B, 1, F_target) what target-valued inputs were divided by (ones without
            ``window_scaling`` or ``mean_unit``); forecasts are multiplied by it before the
            level is added.
    """

    window: np.ndarray
    season: np.ndarray
    level: np.ndarray
    spread: np.ndarray


def read_mask(spec: InputSpec, length: int) -> np.ndarray:
    """Which values of a (C, F) context :func:`build_inputs` reads, C = ``length``: (C, F) bool."""
    mask = np.zeros((length, spec.n_features), dtype=bool)
    mask[length - spec.window :] = True
    if spec.window_scaling:  # the spread: every target value of the context
        mask[length - spec.context_length :, : spec.n_targets] = True
    if spec.seasonal:
        start = length - spec.window - spec.season + spec.lead
        mask[start : start + spec.window, : spec.n_targets] = True
        mask[length + spec.head_offsets.ravel(), : spec.n_targets] = True
    return mask


def build_inputs(
    contexts: np.ndarray,
    spec: InputSpec,
    scaler: Scaler | None = None,
    future: np.ndarray | None = None,
) -> ModelInputs:
    """Cuts model inputs from contexts.

    Args:
        contexts: (B, C, F) past values ending just before each origin, C ≥
            ``spec.context_length`` (a strided view is fine: only the needed slices are copied).
            With ``spec.masked``, NaN marks an unobserved value.
        spec: the input layout.
        scaler: applied to the slices that are used (contexts are then on the original
            scale); None when the contexts are scaled already. Scaling only the slices saves
            transforming all C steps of every context.
        future: (B, T, F_k) values of the channels known ahead at the forecast steps, on the
            scale of ``contexts``; needed when ``spec.n_future`` is above 0.

    Returns:
        float32 inputs for the network; with ``spec.masked`` every value is finite.
    """
    length = contexts.shape[1]
    rows = contexts.shape[0]
    targets = slice(0, spec.n_targets)

    def scaled(values: np.ndarray, channels: slice = slice(None)) -> np.ndarray:
        return values if scaler is None else scaler.transform(values, channels)

    window = scaled(contexts[:, length - spec.window :])  # (B, L, F)
    # Target-valued slices: the window's targets, their values one period earlier (B, L, Ft)
    # and the seasonal neighbourhoods of the forecast steps (B, T·(2K+1), Ft).
    valued = [window[:, :, targets]]
    if spec.seasonal:
        start = length - spec.window - spec.season + spec.lead
        valued.append(scaled(contexts[:, start : start + spec.window, targets], targets))
        positions = length + spec.head_offsets.ravel()  # (T·(2K+1),)
        valued.append(scaled(contexts[:, positions, targets], targets))
    observed = [~np.isnan(v) for v in valued] if spec.masked else []
    if spec.masked:
        level = _observed_mean(valued[0], observed[0])  # (B, 1, Ft)
    else:
        level = valued[0].mean(axis=1, keepdims=True)  # (B, 1, Ft)
    spread = np.ones_like(level)
    if spec.window_scaling:  # every target value of the context: C steps, scaled only here
        whole = scaled(contexts[:, length - spec.context_length :, targets], targets)
        spread = window_spread(whole, True, ~np.isnan(whole) if spec.masked else None)
    if spec.mean_unit > 0:
        absolute = np.abs(valued[0])
        size = (
            _observed_mean(absolute, observed[0])
            if spec.masked
            else absolute.mean(axis=1, keepdims=True)
        )
        spread = np.where(size <= 1e-8, 1.0, size) * spec.mean_unit  # NaN stays NaN
    shifted = [v - level for v in valued]
    if spec.window_scaling or spec.mean_unit > 0:
        shifted = [v / spread for v in shifted]
    if spec.masked:
        shifted = [np.where(seen, v, 0.0) for v, seen in zip(shifted, observed, strict=True)]
    # (B, L, F_in): the window (targets shifted), the lagged targets, the observed flags.
    inputs = np.empty((rows, spec.window, spec.input_size), dtype=np.float32)
    inputs[:, :, : spec.n_features] = window
    if spec.masked:  # covariates: unobserved ones at their training mean
        np.nan_to_num(inputs[:, :, : spec.n_features], copy=False, nan=0.0)
    inputs[:, :, targets] = shifted[0]
    channel = spec.n_features
    if spec.seasonal:
        inputs[:, :, channel : channel + spec.n_targets] = shifted[1]
        channel += spec.n_targets
    if spec.masked:
        for seen in observed[: 2 if spec.seasonal else 1]:
            inputs[:, :, channel : channel + spec.n_targets] = seen
            channel += spec.n_targets
    season = (
        shifted[2].reshape(rows, -1).astype(np.float32)
        if spec.seasonal
        else np.zeros((rows, 0), dtype=np.float32)
    )
    if spec.n_future:
        if future is None or future.shape[1:] != (spec.horizon, spec.n_future):
            got = None if future is None else future.shape
            raise ValueError(f"future must be (B, {spec.horizon}, {spec.n_future}), got {got}")
        known = slice(spec.n_features - spec.n_future, spec.n_features)
        ahead = scaled(future, known).reshape(rows, -1).astype(np.float32)  # (B, T·F_k)
        season = np.concatenate([season, ahead], axis=1)
    return ModelInputs(
        window=inputs,
        season=season,
        level=level.astype(np.float32),
        spread=spread.astype(np.float32),
    )


def _observed_mean(values: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Mean over steps of the observed values of (B, L, Ft): (B, 1, Ft), 0 where none is."""
    count = observed.sum(axis=1, keepdims=True)
    total = np.where(observed, values, 0.0).sum(axis=1, keepdims=True)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def window_spread(
    targets: np.ndarray, enabled: bool, observed: np.ndarray | None = None
) -> np.ndarray:
    """Each context's spread: the mean absolute one-step change of its targets (B, C, Ft) ->
    (B, 1, Ft), over the changes between two observed steps when ``observed`` (B, L, Ft) is
    given; ones where ``enabled`` is off, and where a window does not change (a flat window,
    or one with no observed change, keeps the pooled scale instead of dividing by zero)."""
    if not enabled or targets.shape[1] < 2:
        return np.ones((targets.shape[0], 1, targets.shape[2]))
    changes = np.abs(np.diff(targets, axis=1))
    if observed is None:
        spread = changes.mean(axis=1, keepdims=True)
    else:
        both = observed[:, 1:] & observed[:, :-1]
        spread = _observed_mean(np.where(both, changes, 0.0), both)
    return np.where(spread <= 1e-8, 1.0, spread)  # NaN stays NaN: a missing value is refused
