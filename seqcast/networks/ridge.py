"""The least-squares start of an output layer."""

from __future__ import annotations

import torch

__all__ = ["ridge_fit"]


def ridge_fit(
    inputs: torch.Tensor, targets: torch.Tensor, strength: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge regression with an unpenalised intercept: (N, D), (N, O) -> weight (O, D), bias (O,).

    The penalty is ``strength`` · N, so it weighs the same whatever the number of windows.
    """
    x = inputs.double()
    y = targets.double()
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ xc + strength * len(x) * torch.eye(x.shape[1], dtype=torch.float64)
    weight = torch.linalg.solve(gram, xc.T @ yc).T  # (O, D)
    bias = y_mean - weight @ x_mean
    return weight.float(), bias.float()
