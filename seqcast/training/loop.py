"""The training loop: mini-batches, early stopping, divergence detection, progress.

Everything random is drawn from the seed, so the same seed gives the same weights on CPU.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from seqcast.data.windows import iterate_batches
from seqcast.errors import SeqcastError
from seqcast.networks.distribution import NegativeBinomialLoss, StudentTLoss
from seqcast.networks.quantile import PinballLoss
from seqcast.training.compiled_step import CompiledStep
from seqcast.training.optimizer import FlatOptimizer, FlatParameters
from seqcast.training.parallel import DataParallel, active
from seqcast.training.schedules import OneCycle, Plateau

__all__ = ["LOSSES", "OPTIMIZERS", "History", "TrainConfig", "TrainData", "TrainingError", "train"]

LOSSES = ("huber", "mse", "mae")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("plateau", "onecycle", "none")
#: What a probabilistic network's negative log-likelihood is of ("": no distribution).
DISTRIBUTIONS = ("", "studentt", "negbin")
#: A loss this many times the untrained model's (at least 1e-3) counts as divergence.
EXPLOSION_FACTOR = 1e3
#: Without a validation slice, each epoch's weights are scored on at most this many training
#: windows, evenly spaced: the score costs a fraction of an epoch however long the series.
SCORE_WINDOWS = 256


class TrainingError(SeqcastError):
    """Training could not produce a usable model (it diverged from the start)."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and loop settings (the model's own hyperparameters live in its config).

    Attributes:
        epochs: maximum passes over the training windows; 0 keeps the untrained start (for a
            network, its output layer's least-squares fit: the reference training must beat).
        batch_size: windows per step.
        lr: learning rate (peak rate for one-cycle).
        loss: ``huber`` (δ = 1 on scaled data), ``mse`` or ``mae``.
        optimizer: ``adam``, ``adamw`` or ``sgd`` (momentum ``momentum``).
        weight_decay: L2 penalty (AdamW's decoupled decay).
        momentum: SGD momentum.
        clip_norm: gradient norm clipping (None: off).
        patience: epochs without improvement of the validation loss before stopping;
            0 turns early stopping off.
        schedule: ``plateau`` (halve the rate when the monitored loss stalls), ``onecycle``
            or ``none``.
        seed: seed of the shuffling.
        seq2seq: add a loss on the forecasts made from every step.
        quantiles: the levels of a quantile network's outputs (B, T, Ft, Q); when given, the
            loss is their mean pinball loss instead of ``loss``.
        distribution: ``studentt`` for a network forecasting Student-t parameters
            (B, T, Ft, 3), or ``negbin`` for one forecasting negative binomial parameters
            (B, T, Ft, 2) of counts (its data carry each window's ``unit``), trained by
            negative log-likelihood instead of ``loss``; else empty.
    """

    epochs: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    loss: str = "huber"
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    clip_norm: float | None = 1.0
    patience: int = 20
    schedule: str = "plateau"
    seed: int = 0
    seq2seq: bool = False
    quantiles: tuple[float, ...] = ()
    distribution: str = ""

    def check(self) -> None:
        """Raises a clear error, naming the setting, for impossible settings."""
        for name, least in (("epochs", 0), ("batch_size", 1), ("patience", 0)):
            value = getattr(self, name)
            if value < least:
                raise SeqcastError(
                    f"{name} must be at least {least}, got {value}", arguments=(name,)
                )
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise SeqcastError(f"lr must be a positive number, got {self.lr}", arguments=("lr",))
        for name, choices in (
            ("loss", LOSSES),
            ("optimizer", OPTIMIZERS),
            ("schedule", SCHEDULES),
            ("distribution", DISTRIBUTIONS),
        ):
            value = getattr(self, name)
            if value not in choices:
                raise SeqcastError(
                    f"unknown {name} '{value}'; choose from {', '.join(choices)}",
                    arguments=(name,),
                )


@dataclass
class TrainData:
    """Training tensors.

    Attributes:
        window: (N, L, F_in) windows.
        season: (N, S) seasonal vectors.
        target: (N, T, Ft) targets.
        step_target: (N, L, T, Ft) targets after every step (sequence-to-sequence), or None.
        weight: (N,) how often each window is drawn, relative to the others (None: each once
            per epoch, in a shuffled order); an epoch then draws N windows with replacement.
        unit: (N, 2, Ft) float64: what one unit of each window's targets is in the original
            values, and the original value at its 0 (original = a·target + b), for a loss on
            the original scale (a count distribution); None otherwise.
    """

    window: torch.Tensor
    season: torch.Tensor
    target: torch.Tensor
    step_target: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    unit: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.window.shape[0])

    def to(self, device: torch.device) -> TrainData:
        """The same tensors on ``device`` (the drawing weights stay with the sampler's numpy)."""
        step = None if self.step_target is None else self.step_target.to(device)
        unit = None if self.unit is None else self.unit.to(device)
        return TrainData(
            self.window.to(device), self.season.to(device), self.target.to(device), step,
            self.weight, unit,
        )  # fmt: skip

    def take(self, index: torch.Tensor | slice) -> TrainData:
        step = None if self.step_target is None else self.step_target[index]
        weight = None if self.weight is None else self.weight[index]
        unit = None if self.unit is None else self.unit[index]
        return TrainData(
            self.window[index], self.season[index], self.target[index], step, weight, unit
        )

    @property
    def loss_target(self) -> torch.Tensor:
        """What the loss reads: the targets (N, T, Ft), or, with a ``unit``, each target
        beside its window's unit (N, T, Ft, 3)."""
        if self.unit is None:
            return self.target
        unit = self.unit.transpose(1, 2)[:, None].expand(-1, self.target.shape[1], -1, -1)
        return torch.cat([self.target[..., None].double(), unit.double()], dim=-1)


@dataclass
class History:
    """What happened during training, saved with the model.

    Attributes:
        train_loss: mean training loss per epoch.
        val_loss: validation loss per epoch (empty without a validation slice).
        lr: learning rate at the end of each epoch.
        epoch_seconds: wall time of each epoch (training steps and validation).
        best_epoch: 1-based epoch whose weights were kept.
        stop_reason: ``completed``, ``early-stopped`` or ``diverged``.
        message: explanation when training stopped abnormally.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stop_reason: str = "completed"
    message: str = ""

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def to_json(self) -> dict[str, Any]:
        return {
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "lr": self.lr,
            "epoch_seconds": self.epoch_seconds,
            "best_epoch": self.best_epoch,
            "stop_reason": self.stop_reason,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> History:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def loss_function(
    name: str, quantiles: tuple[float, ...] = (), distribution: str = ""
) -> nn.Module:
    """The loss module for a loss name, or the pinball loss of ``quantiles``, or the negative
    log-likelihood of a ``distribution``, when given."""
    if distribution == "studentt":
        return StudentTLoss()
    if distribution == "negbin":
        return NegativeBinomialLoss()
    if quantiles:
        return PinballLoss(quantiles)
    return {"huber": nn.HuberLoss(delta=1.0), "mse": nn.MSELoss(), "mae": nn.L1Loss()}[name]


def make_optimizer(flat: torch.Tensor, config: TrainConfig, lr: float) -> FlatOptimizer:
    """The optimiser for ``config.optimizer`` at rate ``lr`` over a flat parameter tensor
    (AdamW's decoupled weight decay defaults to 1e-2)."""
    decay = config.weight_decay
    if config.optimizer == "adamw":
        decay = decay or 1e-2
    return FlatOptimizer(flat, config.optimizer, lr, weight_decay=decay, momentum=config.momentum)


def batch_loss(
    model: nn.Module, batch: TrainData, loss_fn: nn.Module, seq2seq: bool
) -> torch.Tensor:
    """Loss of one batch; with ``seq2seq`` the mean of the final and every-step losses."""
    if seq2seq and batch.step_target is not None:
        forecast, per_step = model(batch.window, batch.season, steps=True)
        return 0.5 * (loss_fn(forecast, batch.target) + loss_fn(per_step, batch.step_target))  # type: ignore[no-any-return]
    return loss_fn(model(batch.window, batch.season), batch.loss_target)  # type: ignore[no-any-return]


def evaluate(
    model: nn.Module,
    data: TrainData,
    loss_fn: nn.Module,
    batch_size: int = 4096,
    parallel: DataParallel | None = None,
) -> float:
    """Mean loss of the final forecasts over ``data``, without gradients; in data-parallel
    training each rank scores its share and every rank gets the same total."""
    model.eval()
    total = 0.0
    rows = slice(0, len(data)) if parallel is None else parallel.shard(len(data))
    mine = data.take(rows)
    with torch.no_grad():
        for start in range(0, len(mine), batch_size):
            part = mine.take(slice(start, start + batch_size))
            total += float(loss_fn(model(part.window, part.season), part.loss_target)) * len(part)
    if parallel is not None:
        summed = torch.tensor([total], dtype=torch.float64, device=data.window.device)
        total = float(parallel.sum_(summed)[0])
    return total / max(len(data), 1)


#: Hears of each finished epoch: (epoch, training loss, validation loss or None).
EpochListener = Callable[[int, float, float | None], None]


def train(
    model: nn.Module,
    data: TrainData,
    validation: TrainData | None,
    config: TrainConfig,
    on_epoch: EpochListener | None = None,
) -> History:
    """Trains ``model`` in place and keeps the weights of the best epoch.

    The best epoch is the one with the lowest validation loss (without a validation slice, the
    lowest training loss measured after the epoch, on up to :data:`SCORE_WINDOWS` evenly spaced
    training windows); the untrained weights count as epoch 0. A
    non-finite loss, or one a thousand times the untrained model's, stops training: the best
    weights so far are kept and :attr:`History.message` says what to try.

    Raises:
        TrainingError: training diverged in the first epoch, or the untrained model's loss is
            not finite.
    """
    config.check()
    parallel = active()
    if parallel is not None and len(data) < parallel.world_size:
        raise TrainingError(
            f"{len(data)} training window(s) cannot be shared by {parallel.world_size} ranks; "
            "use fewer processes (--nproc-per-node) or more data",
            arguments=("nproc_per_node",),
        )
    if parallel is not None and config.batch_size < parallel.world_size:
        raise TrainingError(
            f"batch_size {config.batch_size} cannot be shared by {parallel.world_size} ranks; "
            "each needs a window of every batch",
            arguments=("batch_size", "nproc_per_node"),
        )
    # On the model's device (a quantile loss holds its levels).
    loss_fn = loss_function(config.loss, config.quantiles, config.distribution)
    loss_fn.to(data.window.device)
    parameters = FlatParameters(model, used_parameters(model, data, config))
    try:
        if parallel is not None:  # every rank starts from rank 0's weights
            parallel.from_first_(parameters.flat.data)
        return _train(model, parameters, data, validation, config, loss_fn, on_epoch, parallel)
    finally:
        parameters.release()


def used_parameters(model: nn.Module, data: TrainData, config: TrainConfig) -> list[nn.Parameter]:
    """The trainable parameters that the training forecasts depend on, found by differentiating
    them on the first mini-batch (random state restored, so training is unchanged).

    A layer they never reach (a per-step output layer without ``seq2seq``) is left out of the
    optimiser, as ``torch.optim`` leaves a tensor whose gradient is None.
    """
    tensors = [p for p in model.parameters() if p.requires_grad]
    rng = torch.random.get_rng_state()
    model.train()
    batch = data.take(slice(0, config.batch_size))
    if config.seq2seq and batch.step_target is not None:
        outputs = model(batch.window, batch.season, steps=True)
    else:
        outputs = (model(batch.window, batch.season),)
    total = sum(out.sum() for out in outputs)
    grads = torch.autograd.grad(total, tensors, allow_unused=True)
    torch.random.set_rng_state(rng)
    return [p for p, g in zip(tensors, grads, strict=True) if g is not None]


def _train(
    model: nn.Module,
    parameters: FlatParameters,
    data: TrainData,
    validation: TrainData | None,
    config: TrainConfig,
    loss_fn: nn.Module,
    on_epoch: EpochListener | None,
    parallel: DataParallel | None = None,
) -> History:
    """:func:`train` with the parameters in one flat buffer (released by the caller)."""
    optimizer = make_optimizer(parameters.flat, config, config.lr)
    steps_per_epoch = math.ceil(len(data) / config.batch_size)
    scheduler: OneCycle | Plateau | None = None
    if config.schedule == "onecycle" and config.epochs:
        scheduler = OneCycle(
            optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch
        )
    elif config.schedule == "plateau":
        scheduler = Plateau(optimizer, factor=0.5, patience=max(3, config.patience // 4))
    history = History()
    # The untrained model is the reference: its loss scales the explosion test, and its
    # weights are the best so far until an epoch does better.
    count = min(len(data), SCORE_WINDOWS)
    scored = data.take(torch.arange(count) * (len(data) - 1) // max(count - 1, 1))
    reference = evaluate(model, scored, loss_fn, parallel=parallel)
    if not math.isfinite(reference):
        raise TrainingError("the untrained model already gives a non-finite loss; check the data")
    limit = EXPLOSION_FACTOR * max(reference, 1e-3)
    best_score = (
        evaluate(model, validation, loss_fn, parallel=parallel) if validation else reference
    )
    best_state = copy.deepcopy(model.state_dict())
    since_best = 0
    compiled = CompiledStep.create(
        model,
        parameters,
        config.distribution or ("pinball" if config.quantiles else config.loss),
        config.seq2seq,
    )
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        total = 0.0
        exploded: float | None = None
        for part, rows in _batches(data, config.batch_size, config.seed + epoch, parallel):
            # The batch's loss, its gradients left in parameters.grad (in data-parallel
            # training, those of this rank's share of its ``rows``, then summed over the ranks).
            if compiled is not None:  # by hand: the same numbers, faster
                value = compiled(part.window, part.season, part.loss_target)
            else:
                value = _autograd_step(model, part, loss_fn, config.seq2seq, parameters)
            if parallel is not None:
                value = _sum_shares(parallel, parameters, value, len(part) / rows)
            if not math.isfinite(value) or value > limit:
                exploded = value
                break
            if config.clip_norm:
                parameters.clip_(config.clip_norm)
            optimizer.step()
            if isinstance(scheduler, OneCycle):
                scheduler.step()
            total += value * rows
        # Without a validation slice, score the weights as they stand after the epoch.
        after = math.nan
        if exploded is None and validation is None:
            after = evaluate(model, scored, loss_fn, parallel=parallel)
            if not (math.isfinite(after) and after <= limit):
                exploded = after
        if exploded is not None:
            history.stop_reason = "diverged"
            history.message = _divergence_message(epoch, optimizer, exploded, config.loss)
            if epoch == 1:
                raise TrainingError(
                    history.message.replace("kept the best weights so far", "no epoch finished"),
                    arguments=DIVERGENCE_ARGUMENTS,
                )
            break
        train_loss = total / len(data)
        val_loss = evaluate(model, validation, loss_fn, parallel=parallel) if validation else None
        history.train_loss.append(train_loss)
        if val_loss is not None:
            history.val_loss.append(val_loss)
        history.lr.append(float(optimizer.param_groups[0]["lr"]))
        history.epoch_seconds.append(time.perf_counter() - started)
        score = val_loss if val_loss is not None else after
        if isinstance(scheduler, Plateau):
            scheduler.step(score)
        if score < best_score:
            best_score, since_best, history.best_epoch = score, 0, epoch
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
        if on_epoch is not None:
            on_epoch(epoch, train_loss, val_loss)
        if config.patience and validation is not None and since_best >= config.patience:
            history.stop_reason = "early-stopped"
            break
    model.load_state_dict(best_state)
    model.eval()
    return history


def _autograd_step(
    model: nn.Module,
    batch: TrainData,
    loss_fn: nn.Module,
    seq2seq: bool,
    parameters: FlatParameters,
) -> float:
    """The batch's loss through autograd, its gradients written into ``parameters.grad``."""
    loss = batch_loss(model, batch, loss_fn, seq2seq)
    parameters.grad.zero_()
    loss.backward()  # type: ignore[no-untyped-call]
    return float(loss.detach())


#: Mini-batches gathered with one indexing operation per tensor (then sliced as views): a
#: gather per step cost as much as a fifth of a small model's training step.
GATHER_BATCHES = 64


def _sum_shares(
    parallel: DataParallel, parameters: FlatParameters, value: float, share: float
) -> float:
    """The batch's loss and gradients from each rank's (weighted by its share of the rows),
    summed over the ranks into ``parameters.grad`` in one exchange; returns the batch's loss."""
    grad = parameters.grad
    loss = torch.tensor([value * share], dtype=grad.dtype, device=grad.device)
    packed = parallel.sum_(torch.cat([grad.mul_(share), loss]))  # (P + 1,)
    grad.copy_(packed[:-1])
    return float(packed[-1])


def _batches(
    data: TrainData, batch_size: int, seed: int, parallel: DataParallel | None = None
) -> Iterator[tuple[TrainData, int]]:
    """The shuffled mini-batches of :func:`iterate_batches` (or, with weights, ``len(data)``
    windows drawn with replacement in proportion to them), gathered a few dozen at a time,
    each with its number of rows.

    In data-parallel training each rank gathers only its share of every batch, and a last
    batch of fewer windows than ranks (each of which needs one) joins the batch before it;
    without it nothing changes."""
    order: Iterator[np.ndarray]
    if data.weight is None:
        order = iterate_batches(len(data), batch_size, seed=seed)
    else:
        chance = data.weight.numpy().astype(np.float64)
        drawn = np.random.default_rng(seed).choice(len(data), len(data), p=chance / chance.sum())
        order = (drawn[i : i + batch_size] for i in range(0, len(drawn), batch_size))
    if parallel is not None:
        order = _merge_short_tail(order, parallel.world_size)
    while chunk := list(itertools.islice(order, GATHER_BATCHES)):
        rows = [len(index) for index in chunk]
        if parallel is not None:  # this rank's share of each batch
            chunk = [index[parallel.shard(len(index))] for index in chunk]
        block = data.take(torch.from_numpy(np.concatenate(chunk)))
        start = 0
        for index, count in zip(chunk, rows, strict=True):
            yield block.take(slice(start, start + len(index))), count
            start += len(index)


def _merge_short_tail(order: Iterator[np.ndarray], least: int) -> Iterator[np.ndarray]:
    """The batches of ``order``, a last one shorter than ``least`` joined to the one before."""
    held: np.ndarray | None = None
    for index in order:
        if held is not None:
            if len(index) < least:
                index = np.concatenate([held, index])
            else:
                yield held
        held = index
    if held is not None:
        yield held


#: What the divergence message names: the rate, and the loss where it suggests another.
DIVERGENCE_ARGUMENTS = ("lr", "lr_find", "loss huber")


def _divergence_message(epoch: int, optimizer: FlatOptimizer, loss: float, loss_name: str) -> str:
    lr = float(optimizer.param_groups[0]["lr"])
    what = f"an exploding loss ({loss:.3g})" if math.isfinite(loss) else "a non-finite loss"
    other = "" if loss_name == "huber" else ", or use loss huber"
    return (
        f"training diverged at epoch {epoch} with {what} at learning rate {lr:.3g}; kept the "
        f"best weights so far. Try a lower lr (e.g. {lr / 10:.3g}) or the learning-rate finder "
        f"(lr_find){other}"
    )
