"""Parametric outputs on any network: a Student-t distribution per target and step, or a
negative binomial for counts (:class:`NegativeBinomialNet`).

The wrapped network forecasts Ft·3 channels, read as (B, T, Ft, 3) raw values: the location as
it is, the scale softplus(r) + 10⁻⁴ and the degrees of freedom 2 + softplus(r) (a finite
variance). Trained by negative log-likelihood (:class:`StudentTLoss`); its location is the
median and the point forecast.
"""

from __future__ import annotations

import torch
from torch import nn

from seqcast.networks.quantile import softplus_inverse, start_outputs

__all__ = [
    "NegativeBinomialLoss",
    "NegativeBinomialNet",
    "StudentTLoss",
    "StudentTNet",
    "negative_binomial_log_prob",
    "negative_binomial_moments",
    "unpack_counts",
]

#: The degrees of freedom a network starts from (fairly heavy tails).
START_DF = 10.0


class _ParametricNet(nn.Module):
    """A network whose K outputs per target and step are a distribution's parameters, the
    first its location.

    Args:
        base: a network built for ``n_targets`` = Ft·K.
    """

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    @property
    def config(self) -> object:
        return self.base.config

    def _start_location(
        self, window: torch.Tensor, season: torch.Tensor, target: torch.Tensor, count: int
    ) -> torch.Tensor:
        """The base network's least-squares start for the location of ``count`` outputs;
        returns the standard deviation of its residuals (T, Ft), at least 10⁻³. Shapes:
        (N, L, F_in), (N, S), (N, T, Ft)."""
        self.base.init_linear(window, season, target.repeat_interleave(count, dim=2))  # type: ignore[operator]
        with torch.no_grad():
            sample = slice(0, min(len(window), 20_000))
            fitted = self.base(window[sample], season[sample])[:, :, 0::count]  # (n, T, Ft)
            spread = (target[sample] - fitted).std(dim=0)  # (T, Ft)
            return torch.clamp(torch.nan_to_num(spread, nan=1.0), min=1e-3)


class StudentTNet(_ParametricNet):
    """Student-t parameters (B, T, Ft, 3): location, scale, degrees of freedom.

    Args:
        base: a network built for ``n_targets`` = Ft·3.
    """

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
        spread = self._start_location(window, season, target, 3)
        with torch.no_grad():
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


#: The least dispersion α of a negative binomial (variance μ + αμ²): beyond it the
#: distribution is a Poisson's to within rounding, and lgamma(y + 1/α) − lgamma(1/α) keeps its
#: precision.
LEAST_DISPERSION = 1e-8


class NegativeBinomialNet(_ParametricNet):
    """Negative binomial parameters (B, T, Ft, 2) for count series: a location in each
    window's own units, as it is, and a spread in those units, softplus(r) + 10⁻⁴.

    The distribution lives on the counts: a window's units map to counts as y = a·z + b (its
    ``unit`` (B, 2, Ft), from its level and spread and the series' scaling), its mean is
    μ = softplus(a·location + b) and its variance μ + (a·spread)², the Poisson's plus what the
    network adds (dispersion α = (a·spread / μ)²). So the network forecasts in its own units,
    as every other output does, and the same weights serve series of any size.

    Args:
        base: a network built for ``n_targets`` = Ft·2.
    """

    def forward(self, window: torch.Tensor, season: torch.Tensor) -> torch.Tensor:
        """(B, L, F_in), (B, S) -> (B, T, Ft, 2)."""
        raw = self.base(window, season)  # (B, T, Ft·2)
        raw = raw.reshape(*raw.shape[:2], -1, 2)  # (B, T, Ft, 2)
        spread = nn.functional.softplus(raw[..., 1]) + 1e-4
        return torch.stack([raw[..., 0], spread], dim=-1)

    def init_linear(self, window: torch.Tensor, season: torch.Tensor, target: torch.Tensor) -> None:
        """The base network's least-squares start for the location and the spread of its
        residuals, in window units. Shapes: (N, L, F_in), (N, S), (N, T, Ft)."""
        spread = self._start_location(window, season, target, 2)
        with torch.no_grad():
            start_outputs(self.base, 2, {1: softplus_inverse(spread)})


def negative_binomial_moments(
    params: torch.Tensor, unit: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean μ and the number of successes r = 1/α of each count distribution.

    Args:
        params: (..., 2) network outputs (location, spread) in window units.
        unit: (..., 2) the size a of a window unit in counts and the count b at its 0.

    Returns:
        μ (...) and r (...), float64.
    """
    params, unit = params.double(), unit.double()
    size, origin = unit[..., 0], unit[..., 1]
    mean = nn.functional.softplus(size * params[..., 0] + origin) + 1e-8
    extra = (size * params[..., 1]) ** 2  # the variance above the Poisson's
    dispersion = torch.clamp(extra / mean**2, min=LEAST_DISPERSION)
    return mean, 1.0 / dispersion


def negative_binomial_log_prob(
    counts: torch.Tensor, mean: torch.Tensor, successes: torch.Tensor
) -> torch.Tensor:
    """The log-probability of each count (...) under negative binomials of mean μ and
    ``successes`` r (...) (:func:`negative_binomial_moments`): float64 (...)."""
    counts = counts.double()
    log_total = torch.log(successes + mean)
    return (
        torch.lgamma(counts + successes) - torch.lgamma(successes) - torch.lgamma(counts + 1.0)
        + successes * (torch.log(successes) - log_total)
        + counts * (torch.log(mean) - log_total)
    )  # fmt: skip


def unpack_counts(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets packed with their windows' units (..., 3) (``TrainData.loss_target``) -> the
    counts round(a·z + b) (...) and the units (..., 2), float64."""
    unit = target[..., 1:].double()
    return torch.round(unit[..., 0] * target[..., 0].double() + unit[..., 1]), unit


class NegativeBinomialLoss(nn.Module):
    """Mean negative log-likelihood of count targets under negative binomial parameters
    (B, T, Ft, 2). The targets come as (B, T, Ft, 3): each value in window units, then its
    window's unit (a, b); the count is round(a·z + b)."""

    def forward(self, params: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        counts, unit = unpack_counts(target)
        mean, successes = negative_binomial_moments(params, unit)
        return -negative_binomial_log_prob(counts, mean, successes).mean().to(params.dtype)
