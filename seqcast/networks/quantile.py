"""A multi-quantile output on any network: quantiles that never cross.

The wrapped network forecasts Ft·Q channels, read as (B, T, Ft, Q) raw values r. The median's
channel is the median; each level above it adds softplus(r) to the level below, each level
below subtracts softplus(r) from the level above: q_1 ≤ … ≤ q_Q by construction. Trained with
the pinball loss (:class:`PinballLoss`), its median is the point forecast.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import torch
from torch import nn

__all__ = [
    "PinballLoss",
    "QuantileNet",
    "ordered",
    "output_layers",
    "softplus_inverse",
    "start_outputs",
]


class QuantileNet(nn.Module):
    """Quantile forecasts (B, T, Ft, Q) from a network that forecasts (B, T, Ft·Q).

    Args:
        base: a network (:class:`~seqcast.networks.RecurrentNet` or
            :class:`~seqcast.networks.DenseNet`) built for ``n_targets`` = Ft·Q.
        levels: the Q sorted quantile levels; 0.5 must be one of them.
    """

    def __init__(self, base: nn.Module, levels: Sequence[float]) -> None:
        super().__init__()
        if 0.5 not in levels or list(levels) != sorted(levels):
            raise ValueError(f"levels must be sorted and hold 0.5, got {list(levels)}")
        self.base = base
        self.levels = tuple(float(q) for q in levels)
        self.median = self.levels.index(0.5)

    @property
    def config(self) -> Any:
        return self.base.config

    def forward(self, window: torch.Tensor, season: torch.Tensor) -> torch.Tensor:
        """(B, L, F_in), (B, S) -> (B, T, Ft, Q), non-decreasing along the last axis."""
        raw = self.base(window, season)  # (B, T, Ft·Q)
        raw = raw.reshape(*raw.shape[:2], -1, len(self.levels))  # (B, T, Ft, Q)
        return ordered(raw, self.median)

    def init_linear(self, window: torch.Tensor, season: torch.Tensor, target: torch.Tensor) -> None:
        """The base network's least-squares start for every channel on the target, then the
        gaps between levels set from the start's residuals as if they were Gaussian: the
        quantiles start as the least-squares forecast ± the normal quantiles of its error.
        Shapes: (N, L, F_in), (N, S), (N, T, Ft)."""
        n_levels = len(self.levels)
        repeated = target.repeat_interleave(n_levels, dim=2)  # (N, T, Ft·Q)
        self.base.init_linear(window, season, repeated)  # type: ignore[operator]
        with torch.no_grad():
            sample = slice(0, min(len(window), 20_000))
            fitted = self.base(window[sample], season[sample])  # (n, T, Ft·Q)
            spread = (target[sample] - fitted[:, :, self.median :: n_levels]).std(dim=0)  # (T, Ft)
            spread = torch.clamp(torch.nan_to_num(spread, nan=1.0), min=1e-3)
            normal = NormalDist()
            z = torch.tensor([normal.inv_cdf(q) for q in self.levels])  # (Q,)
            gaps = torch.zeros(n_levels)
            gaps[1:] = z[1:] - z[:-1]  # above the median: the gap to the level below
            gaps[: self.median] = z[1 : self.median + 1] - z[: self.median]  # below: to above
            # (T, Ft, Q) gap sizes -> the raw value whose softplus gives them.
            raw = softplus_inverse(spread[:, :, None] * gaps[None, None, :])
            others = {k: raw[:, :, k] for k in range(n_levels) if k != self.median}
            start_outputs(self.base, n_levels, others)


def output_layers(base: nn.Module) -> list[nn.Linear]:
    """The linear layers whose outputs sum to a network's forecasts (B, T·O): the recurrent
    network's output layer, or the dense network's shortcut and last layer; the first carries
    the least-squares start."""
    net: Any = base
    return [net.head] if hasattr(net, "head") else [net.shortcut, net.body[-1]]


def softplus_inverse(value: torch.Tensor) -> torch.Tensor:
    """The raw value whose softplus is ``value`` (at least 10⁻⁴)."""
    return torch.where(value > 20, value, torch.log(torch.expm1(value.clamp(min=1e-4))))


def start_outputs(base: nn.Module, count: int, starts: dict[int, torch.Tensor]) -> None:
    """Makes output ``k`` of every step and target of a network forecasting (B, T, Ft·count)
    start at the constant ``starts[k]`` (T, Ft): the bias of its first output layer, no weight
    on any input."""
    for n, layer in enumerate(output_layers(base)):
        steps = layer.bias.shape[0] // count  # T·Ft
        bias = layer.bias.view(steps, count)
        weight = layer.weight.view(steps, count, layer.in_features)
        for k, value in starts.items():
            bias[:, k] = value.reshape(-1) if n == 0 else 0.0
            weight[:, k] = 0.0


def ordered(raw: torch.Tensor, median: int) -> torch.Tensor:
    """Non-crossing quantiles from raw values (..., Q): the median channel as it is, the others
    cumulative softplus steps away from it."""
    centre = raw[..., median : median + 1]
    steps = nn.functional.softplus(raw)
    above = centre + torch.cumsum(steps[..., median + 1 :], dim=-1)
    below = centre - torch.flip(torch.cumsum(torch.flip(steps[..., :median], [-1]), dim=-1), [-1])
    return torch.cat([below, centre, above], dim=-1)


class PinballLoss(nn.Module):
    """Mean pinball loss of quantile forecasts (B, T, Ft, Q) against targets (B, T, Ft)."""

    def __init__(self, levels: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("levels", torch.tensor([float(q) for q in levels]))

    def forward(self, forecast: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        error = target.unsqueeze(-1) - forecast  # (B, T, Ft, Q)
        levels: torch.Tensor = self.levels  # type: ignore[assignment]
        return torch.maximum(levels * error, (levels - 1.0) * error).mean()
