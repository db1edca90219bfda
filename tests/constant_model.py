"""A model with one learned constant, whose gradient descent can be worked out by hand."""

from __future__ import annotations

import torch
from torch import nn


class Constant(nn.Module):
    """Forecasts one learned constant b for every window: (B, L, F), (B, S) -> (B, 1, 1)."""

    def __init__(self, start: float = 0.0) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.tensor([start]))

    def forward(self, window: torch.Tensor, season: torch.Tensor) -> torch.Tensor:
        return self.b.expand(window.shape[0]).reshape(-1, 1, 1)
