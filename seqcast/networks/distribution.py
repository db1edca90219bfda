"""A parametric output on any network: a Student-t distribution per target and step.

The wrapped network forecasts Ft·3 channels, read as (B, T, Ft, 3) raw values: the location as
it is, the scale softplus(r) + 10⁻⁴ and the degrees of freedom 2 + softplus(r) (a finite
variance). Trained by negative log-likelihood (:class:`StudentTLoss`); its location is the
median and the point forecast.
"""

from __future__ import annotations

import torch
from torch import nn

from seqcast.networks.quantile import softplus_inverse, start_outputs

__all__ = ["StudentTLoss", "StudentTNet"]

#: The degrees of freedom a network starts from (fairly heavy tails).
START_DF = 10.0


class StudentTNet(nn.Module):
    """Student-t parameters (B, T, Ft, 3): location, scale, degrees of freedom.

    Args:
        base: a network built for ``n_targets`` = Ft·3.
    """

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    @property
    def config(self) -> object:
        return self.base.config

    def forward(self, window: torch.Tensor, season: torch.Tensor) -> torch.Tensor:
        """(B, L, F_in), (B, S) -> (B, T, Ft, 3)."""
        raw = self.base(window, season)  # (B, T, Ft·3)
        raw = raw.reshape(*raw.shape[:2], -1, 3)  # (B, T, Ft, 3)
        scale = nn.functional.softplus(raw[..., 1]) + 1e-4
        df = 2.0 + nn.functional.softplus(raw[..., 2])
        return torch.stack([raw[..., 0], scale, df], dim=-1)

    def init_linear(self, window: torch.Tensor, season: torch.Tensor, target: torch.Tensor) -> None:
        """The base network's least-squares start for the location, the scale of its
        residuals and :data:`START_DF` degrees of freedom. Shapes: (N, L, F_in), (N, S),
        (N, T, Ft)."""
        self.base.init_linear(window, season, target.repeat_interleave(3, dim=2))  # type: ignore[operator]
        with torch.no_grad():
            sample = slice(0, min(len(window), 20_000))
            fitted = self.base(window[sample], season[sample])[:, :, 0::3]  # (n, T, Ft)
            spread = (target[sample] - fitted).std(dim=0)  # (T, Ft)
            spread = torch.clamp(torch.nan_to_num(spread, nan=1.0), min=1e-3)
            # A Student-t's scale is below its standard deviation: σ = s·√((ν − 2)/ν).
            scale = spread * ((START_DF - 2.0) / START_DF) ** 0.5
            freedom = torch.full_like(scale, START_DF - 2.0)
            start_outputs(self.base, 3, {1: softplus_inverse(scale), 2: softplus_inverse(freedom)})


class StudentTLoss(nn.Module):
    """Mean negative log-likelihood of targets (B, T, Ft) under Student-t parameters
    (B, T, Ft, 3)."""

    def forward(self, params: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loc, scale, df = params.unbind(-1)
        law = torch.distributions.StudentT(df, loc, scale, validate_args=False)
        density: torch.Tensor = law.log_prob(target)  # type: ignore[no-untyped-call]
        return -density.mean()
