"""Model inputs built from a past context: the window, the season, and the level.

Seasonality is part of the model. For a seasonal period P every window step s also carries
the target's value one period earlier, y[s − P], so the network sees how this season differs
from the last; and the output layer sees, for each forecast step t + h, the 2K + 1 values
centred on the same phase in the most recent period that lies entirely in the past. Every
target-valued input is shifted by the window's mean level (a per-window normalisation), so the
network learns shapes, not levels, and a trend that leaves the training range does no harm.
With ``window_scaling`` each window's target-valued inputs (and its targets) are also divided by
the window's own spread, the mean absolute one-step change of its targets: series of very
different sizes then look alike to one network (the pooled scaling of many series lets the
large ones set the scale of the small ones).
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
        window_scaling: divide target-valued inputs by each window's spread.
    """

    window: int
    horizon: int
    season: int
    radius: int
    n_features: int
    n_targets: int
    window_scaling: bool = False

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
        """Channels per window step: F, plus F_target seasonal channels."""
        return self.n_features + (self.n_targets if self.seasonal else 0)

    @property
    def season_size(self) -> int:
        """Length of the flat seasonal vector of the output layer: T·(2K+1)·F_target."""
        if not self.seasonal:
            return 0
        return self.horizon * (2 * self.radius + 1) * self.n_targets


@dataclass(frozen=True)
class ModelInputs:
    """A batch of model inputs.

    Attributes:
        window: (B, L, F_in) window values (targets level-shifted) and seasonal channels.
        season: (B, S) seasonal neighbourhood of every forecast step, level-shifted (S may be 0).
        level: (B, 1, F_target) the window's mean target level, added back to forecasts.
        spread: (B, 1, F_target) what target-valued inputs were divided by (ones without
            ``window_scaling``); forecasts are multiplied by it before the level is added.
    """

    window: np.ndarray
    season: np.ndarray
    level: np.ndarray
    spread: np.ndarray


def read_mask(spec: InputSpec, length: int) -> np.ndarray:
    """Which values of a (C, F) context :func:`build_inputs` reads, C = ``length``: (C, F) bool."""
    mask = np.zeros((length, spec.n_features), dtype=bool)
    mask[length - spec.window :] = True
    if spec.seasonal:
        start = length - spec.window - spec.season + spec.lead
        mask[start : start + spec.window, : spec.n_targets] = True
        mask[length + spec.head_offsets.ravel(), : spec.n_targets] = True
    return mask


def build_inputs(
    contexts: np.ndarray, spec: InputSpec, scaler: Scaler | None = None
) -> ModelInputs:
    """Cuts model inputs from contexts.

    Args:
        contexts: (B, C, F) past values ending just before each origin, C ≥
            ``spec.context_length`` (a strided view is fine: only the needed slices are copied).
        spec: the input layout.
        scaler: applied to the slices that are used (contexts are then on the original
            scale); None when the contexts are scaled already. Scaling only the slices saves
            transforming all C steps of every context.

    Returns:
        float32 inputs for the network.
    """
    length = contexts.shape[1]
    targets = slice(0, spec.n_targets)

    def scaled(values: np.ndarray, channels: slice = slice(None)) -> np.ndarray:
        return values if scaler is None else scaler.transform(values, channels)

    window = scaled(contexts[:, length - spec.window :])  # (B, L, F)
    level = window[:, :, targets].mean(axis=1, keepdims=True)  # (B, 1, Ft)
    spread = window_spread(window[:, :, targets], spec.window_scaling)  # (B, 1, Ft)
    if not spec.seasonal:
        shifted = np.array(window, dtype=np.float32)
        shifted[:, :, targets] -= level
        shifted[:, :, targets] /= spread
        empty = np.zeros((contexts.shape[0], 0), dtype=np.float32)
        return ModelInputs(
            window=shifted,
            season=empty,
            level=level.astype(np.float32),
            spread=spread.astype(np.float32),
        )
    # (B, L, F + Ft): the window, then the targets one period earlier, written in place.
    inputs = np.empty((*window.shape[:2], spec.input_size), dtype=np.float32)
    inputs[:, :, : spec.n_features] = window
    inputs[:, :, targets] -= level
    inputs[:, :, targets] /= spread
    start = length - spec.window - spec.season + spec.lead
    lagged = scaled(contexts[:, start : start + spec.window, targets], targets) - level
    inputs[:, :, spec.n_features :] = lagged / spread
    positions = length + spec.head_offsets.ravel()  # (T·(2K+1),)
    season = (
        scaled(contexts[:, positions, targets], targets) - level
    ) / spread  # (B, T·(2K+1), Ft)
    return ModelInputs(
        window=inputs,
        season=season.reshape(contexts.shape[0], -1).astype(np.float32),
        level=level.astype(np.float32),
        spread=spread.astype(np.float32),
    )


def window_spread(targets: np.ndarray, enabled: bool) -> np.ndarray:
    """Each window's spread: the mean absolute one-step change of its targets (B, L, Ft) ->
    (B, 1, Ft); ones where ``enabled`` is off, and where a window does not change (a flat
    window keeps the pooled scale instead of dividing by zero)."""
    if not enabled or targets.shape[1] < 2:
        return np.ones((targets.shape[0], 1, targets.shape[2]))
    spread = np.abs(np.diff(targets, axis=1)).mean(axis=1, keepdims=True)
    return np.where(spread > 1e-8, spread, 1.0)
