"""The learning-rate range finder: the course's exponential sweep.

The rate starts tiny and grows tenfold every ``steps_per_decade`` mini-batches (the course grows
it tenfold every 20 epochs); the loss is recorded at each step until it explodes. The suggested
rate is a tenth of the rate at the lowest smoothed loss, where the loss still falls steadily.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from seqcast.data.windows import iterate_batches
from seqcast.training.loop import (
    TrainConfig,
    TrainData,
    batch_loss,
    loss_function,
    make_optimizer,
    used_parameters,
)
from seqcast.training.optimizer import FlatParameters

__all__ = ["LRFinderResult", "find_lr"]


@dataclass
class LRFinderResult:
    """Loss against learning rate.

    Attributes:
        lrs: the rate of each step.
        losses: the raw mini-batch loss of each step.
        smoothed: exponentially smoothed, bias-corrected losses.
        suggestion: the suggested learning rate.
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float


def find_lr(
    model: nn.Module,
    data: TrainData,
    config: TrainConfig,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps_per_decade: int = 20,
    stop_factor: float = 4.0,
    smoothing: float = 0.9,
) -> LRFinderResult:
    """Sweeps the learning rate exponentially and records the loss; ``model`` is left unchanged.

    Args:
        model: the network, freshly initialised.
        data: training tensors.
        config: loss, optimiser, batch size and seed are used; the rate is swept.
        start_lr: first rate.
        end_lr: last rate.
        steps_per_decade: mini-batches per tenfold increase.
        stop_factor: stop once the smoothed loss exceeds this multiple of its minimum.
        smoothing: weight of the running average of the loss.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    config.check()  # before the model is bound to the flat buffer
    saved = copy.deepcopy(model.state_dict())
    loss_fn = loss_function(config.loss, config.quantiles, config.distribution)
    parameters = FlatParameters(model, used_parameters(model, data, config))
    optimizer = make_optimizer(parameters.flat, config, start_lr)
    total_steps = math.floor(math.log10(end_lr / start_lr) * steps_per_decade + 1e-9) + 1
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    average = 0.0
    best = math.inf
    model.train()
    epoch = 0
    try:
        while len(lrs) < total_steps:
            epoch += 1
            for index in iterate_batches(len(data), config.batch_size, seed=config.seed + epoch):
                if len(lrs) >= total_steps:
                    break
                lr = start_lr * 10 ** (len(lrs) / steps_per_decade)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss = batch_loss(
                    model, data.take(torch.from_numpy(index)), loss_fn, config.seq2seq
                )
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise StopIteration
                average = smoothing * average + (1 - smoothing) * value
                corrected = average / (1 - smoothing ** (len(lrs) + 1))
                lrs.append(lr)
                losses.append(value)
                smoothed.append(corrected)
                best = min(best, corrected)
                if corrected > stop_factor * best:
                    raise StopIteration
                parameters.grad.zero_()
                loss.backward()  # type: ignore[no-untyped-call]
                if config.clip_norm:
                    parameters.clip_(config.clip_norm)
                optimizer.step()
    except StopIteration:
        pass
    finally:
        parameters.release()
        model.load_state_dict(saved)
    if not lrs:
        raise ValueError("the learning-rate sweep recorded no finite loss")
    return LRFinderResult(
        lrs=lrs, losses=losses, smoothed=smoothed, suggestion=suggest(lrs, smoothed)
    )


def suggest(lrs: list[float], smoothed: list[float]) -> float:
    """A tenth of the rate at the lowest smoothed loss (ignoring the noisy first steps)."""
    skip = min(10, len(smoothed) // 5)
    position = int(np.argmin(smoothed[skip:])) + skip
    return lrs[position] / 10.0
