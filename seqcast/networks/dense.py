"""A dense network on the flat window and seasonal vector (the course's 10-10-1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqcast.networks.ridge import ridge_fit

__all__ = ["DenseConfig", "DenseNet"]


@dataclass(frozen=True)
class DenseConfig:
    """Hyperparameters of :class:`DenseNet`: the flat window and seasonal vector in, ReLU layers.

    Attributes:
        input_size: channels per step F_in.
        window: input length L.
        season_size: seasonal vector length S.
        horizon: forecast length T.
        n_targets: target channels Ft.
        hidden_sizes: units of each hidden layer (the course's 10-10-1 is (10, 10)).
        dropout: dropout after each hidden layer.
    """

    input_size: int
    window: int
    season_size: int
    horizon: int
    n_targets: int
    hidden_sizes: tuple[int, ...] = (10, 10)
    dropout: float = 0.0


class DenseNet(nn.Module):
    """Flat window ⊕ seasonal vector → ReLU layers → linear output, plus a linear shortcut."""

    def __init__(self, config: DenseConfig) -> None:
        super().__init__()
        self.config = config
        inputs = config.window * config.input_size + config.season_size
        layers: list[nn.Module] = []
        width = inputs
        for size in config.hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if config.dropout:
                layers.append(nn.Dropout(config.dropout))
            width = size
        outputs = config.horizon * config.n_targets
        self.body = nn.Sequential(*layers, nn.Linear(width, outputs))
        self.shortcut = nn.Linear(inputs, outputs)

    def init_linear(self, window: torch.Tensor, season: torch.Tensor, target: torch.Tensor) -> None:
        """Starts the shortcut at the ridge least-squares fit and the body's output at zero."""
        flat = torch.cat([window.flatten(1), season], dim=1)
        weight, bias = ridge_fit(flat, target.flatten(1))
        last = self.body[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            self.shortcut.weight[:] = weight
            self.shortcut.bias[:] = bias
            last.weight.zero_()
            last.bias.zero_()

    def forward(self, window: torch.Tensor, season: torch.Tensor) -> torch.Tensor:
        """(B, L, F_in), (B, S) -> (B, T, Ft)."""
        flat = torch.cat([window.flatten(1), season], dim=1)  # (B, L·F_in + S)
        out: torch.Tensor = self.body(flat) + self.shortcut(flat)
        return out.reshape(-1, self.config.horizon, self.config.n_targets)
