"""Learning-rate schedules for :class:`~seqcast.training.optimizer.FlatOptimizer`.

The rules of ``torch.optim.lr_scheduler.ReduceLROnPlateau`` and ``OneCycleLR`` with the
settings seqcast uses, tested step by step against them; written here because those classes
need a ``torch.optim.Optimizer``, and constructing one imports ``torch._dynamo`` (1.9 s).
"""

from __future__ import annotations

import math

from seqcast.training.optimizer import FlatOptimizer

__all__ = ["OneCycle", "Plateau"]


class Plateau:
    """Halves (``factor``) the learning rate after more than ``patience`` epochs without a
    relative improvement of ``threshold`` in the monitored loss (mode ``min``)."""

    def __init__(
        self,
        optimizer: FlatOptimizer,
        factor: float = 0.5,
        patience: int = 10,
        threshold: float = 1e-4,
        eps: float = 1e-8,
    ) -> None:
        self.optimizer = optimizer
        self.factor, self.patience, self.threshold, self.eps = factor, patience, threshold, eps
        self.best = math.inf
        self.bad_epochs = 0

    def step(self, loss: float) -> None:
        """Records one epoch's loss; lowers the rate when the loss has stalled."""
        if loss < self.best * (1.0 - self.threshold):
            self.best, self.bad_epochs = loss, 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            group = self.optimizer.param_groups[0]
            lower = group["lr"] * self.factor
            if group["lr"] - lower > self.eps:
                group["lr"] = lower
            self.bad_epochs = 0


class OneCycle:
    """One cycle over ``total_steps`` optimiser steps: the rate rises from ``max_lr /
    div_factor`` to ``max_lr`` over the first ``pct_start`` of the steps and falls to
    ``max_lr / div_factor / final_div_factor`` (cosine both ways), while the momentum (SGD's
    ``momentum``, Adam's first beta) falls from ``max_momentum`` to ``base_momentum`` and back.
    Call :meth:`step` after each optimiser step."""

    def __init__(
        self,
        optimizer: FlatOptimizer,
        max_lr: float,
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
    ) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be positive, got {total_steps}")
        self.optimizer = optimizer
        self.total_steps = total_steps
        start = max_lr / div_factor
        # (last step of the phase, rate at its start and end, momentum at its start and end)
        self.phases = [
            (pct_start * total_steps - 1, start, max_lr, max_momentum, base_momentum),
            (total_steps - 1, max_lr, start / final_div_factor, base_momentum, max_momentum),
        ]
        self.steps = 0
        self._apply()

    def step(self) -> None:
        """Moves to the next step's rate and momentum."""
        if self.steps + 1 > self.total_steps:
            raise ValueError(f"the one-cycle schedule has only {self.total_steps} steps")
        self.steps += 1
        self._apply()

    def _apply(self) -> None:
        begin = 0.0
        for index, (end, lr_from, lr_to, momentum_from, momentum_to) in enumerate(self.phases):
            if self.steps <= end or index == len(self.phases) - 1:
                fraction = (self.steps - begin) / (end - begin)
                lr = _cosine(lr_from, lr_to, fraction)
                momentum = _cosine(momentum_from, momentum_to, fraction)
                break
            begin = end
        group = self.optimizer.param_groups[0]
        group["lr"] = lr
        if "betas" in group:
            group["betas"] = (momentum, group["betas"][1])
        else:
            group["momentum"] = momentum


def _cosine(start: float, end: float, fraction: float) -> float:
    """From ``start`` at fraction 0 to ``end`` at 1 along half a cosine."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1.0)
