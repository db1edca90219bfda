"""Review oracles: the flat optimiser, its schedules, the training loop and batched forecasting.

The oracles are ``torch.optim`` (Adam, AdamW, SGD), ``torch.optim.lr_scheduler`` (OneCycleLR,
ReduceLROnPlateau), a hand-written training loop built on them, and, for forecasting, the same
model run sequentially, one chunk at a time, on one thread.

Four bugs found here were fixed with the review: overlapping forecasts left PyTorch's thread
count changed for good, the first bad window was not always the one named, an overflow beside
an unread NaN was called a missing value, and an empty batch crashed the neural models.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import seqcast.forecasters.neural as neural_module
from seqcast._native import binding as native
from seqcast.data import synthetic_series
from seqcast.data.windows import iterate_batches
from seqcast.errors import DataError
from seqcast.forecasters.base import first_non_finite
from seqcast.forecasters.neural import NeuralForecaster
from seqcast.forecasters.registry import create_for
from seqcast.networks import RecurrentConfig, RecurrentNet
from seqcast.training import loop as loop_module
from seqcast.training.loop import TrainConfig, TrainData, loss_function, train
from seqcast.training.optimizer import FlatOptimizer, FlatParameters
from seqcast.training.schedules import OneCycle, Plateau

SEASON = 12

# Forecasts from contexts holding NaN, inf or huge values warn in numpy before they are refused.
pytestmark = pytest.mark.filterwarnings(
    "ignore:(invalid value|overflow) encountered:RuntimeWarning"
)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """PyTorch's intra-op thread count for the block (the suite runs on one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def clean_thread_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test does to native's thread bookkeeping is undone afterwards."""
    monkeypatch.setattr(native, "_workers", None)


# =============================================================================== OneCycle
def torch_peer(kind: str, lr: float, **settings: Any) -> torch.optim.Optimizer:
    params = [nn.Parameter(torch.zeros(3))]
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=settings.get("momentum", 0.9))
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=settings.get("weight_decay", 1e-2))
    return torch.optim.Adam(params, lr=lr)


def momentum_of(group: dict[str, Any]) -> float:
    return float(group["betas"][0] if "betas" in group else group["momentum"])


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("total", [1, 2, 3, 4, 5, 6, 10, 11, 1000])
def test_one_cycle_is_exactly_torch_at_every_step(kind: str, total: int) -> None:
    ours = FlatOptimizer(nn.Parameter(torch.zeros(3)), kind, 0.3, weight_decay=1e-2)
    peer = torch_peer(kind, 0.3)
    schedule = OneCycle(ours, max_lr=0.7, total_steps=total)
    oracle = torch.optim.lr_scheduler.OneCycleLR(peer, max_lr=0.7, total_steps=total)
    for step in range(total + 1):
        group, want = ours.param_groups[0], peer.param_groups[0]
        assert group["lr"] == want["lr"], step
        assert momentum_of(group) == momentum_of(want), step
        if kind != "sgd":
            assert group["betas"][1] == want["betas"][1] == 0.999
        assert math.isfinite(group["lr"]) and group["lr"] > 0
        if step < total:
            peer.step()
            schedule.step()
            oracle.step()
    # One step too many: both refuse, and ours leaves the rate alone.
    last = ours.param_groups[0]["lr"]
    with pytest.raises(ValueError):
        schedule.step()
    with pytest.raises(ValueError):
        oracle.step()
    assert ours.param_groups[0]["lr"] == last


@pytest.mark.parametrize(
    ("pct_start", "div_factor", "final_div_factor", "base", "top", "total"),
    [
        (0.1, 10.0, 100.0, 0.8, 0.9, 7),
        (0.5, 25.0, 1e4, 0.85, 0.95, 9),
        (0.45, 3.0, 1e3, 0.7, 0.99, 13),
        (0.3, 25.0, 1e4, 0.85, 0.95, 2),
    ],
)
def test_one_cycle_with_other_settings_is_exactly_torch(
    pct_start: float,
    div_factor: float,
    final_div_factor: float,
    base: float,
    top: float,
    total: int,
) -> None:
    ours = FlatOptimizer(nn.Parameter(torch.zeros(3)), "sgd", 1.0)
    peer = torch_peer("sgd", 1.0)
    settings = dict(
        pct_start=pct_start, div_factor=div_factor, final_div_factor=final_div_factor,
        base_momentum=base, max_momentum=top,
    )  # fmt: skip
    schedule = OneCycle(ours, max_lr=0.2, total_steps=total, **settings)
    oracle = torch.optim.lr_scheduler.OneCycleLR(peer, max_lr=0.2, total_steps=total, **settings)
    for step in range(total + 1):
        assert ours.param_groups[0]["lr"] == peer.param_groups[0]["lr"], step
        assert ours.param_groups[0]["momentum"] == peer.param_groups[0]["momentum"], step
        if step < total:
            peer.step()
            schedule.step()
            oracle.step()


def test_one_cycle_refuses_no_steps() -> None:
    optimizer = FlatOptimizer(nn.Parameter(torch.zeros(1)), "adam", 0.1)
    with pytest.raises(ValueError, match="total_steps must be positive"):
        OneCycle(optimizer, max_lr=0.1, total_steps=0)


# =============================================================================== Plateau
def loss_sequence(rng: np.random.Generator, length: int) -> list[float]:
    """Losses that fall, stall, tie, jump, and now and then are inf, NaN or negative."""
    values: list[float] = []
    level = 10.0
    for _ in range(length):
        roll = rng.random()
        if roll < 0.05:
            values.append(math.nan)
        elif roll < 0.08:
            values.append(math.inf)
        elif roll < 0.25 and values:
            values.append(values[-1])  # an exact tie
        elif roll < 0.35:
            values.append(level * (1 - rng.uniform(0, 2e-4)))  # about the threshold
        elif roll < 0.37:
            values.append(-float(rng.uniform(0, 1)))
        else:
            level *= float(rng.uniform(0.9, 1.05))
            values.append(level)
    return values


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("patience", [0, 1, 2, 5])
@pytest.mark.parametrize("factor", [0.5, 0.1])
def test_plateau_is_exactly_torch_on_random_losses(seed: int, patience: int, factor: float) -> None:
    rng = np.random.default_rng(1000 * seed + patience)
    lr = float(rng.choice([1e-1, 1e-3, 3e-7]))  # 3e-7: reductions soon stop at eps
    ours = FlatOptimizer(nn.Parameter(torch.zeros(2)), "adam", lr)
    peer = torch.optim.Adam([nn.Parameter(torch.zeros(2))], lr=lr)
    schedule = Plateau(ours, factor=factor, patience=patience)
    oracle = torch.optim.lr_scheduler.ReduceLROnPlateau(peer, factor=factor, patience=patience)
    changes = 0
    for epoch, loss in enumerate(loss_sequence(rng, 150)):
        before = ours.param_groups[0]["lr"]
        schedule.step(loss)
        oracle.step(loss)
        assert ours.param_groups[0]["lr"] == peer.param_groups[0]["lr"], (epoch, loss)
        changes += ours.param_groups[0]["lr"] != before
    assert changes > 0  # the sequence did exercise a reduction


def test_plateau_on_sgd_leaves_the_momentum_alone() -> None:
    ours = FlatOptimizer(nn.Parameter(torch.zeros(2)), "sgd", 0.1, momentum=0.7)
    schedule = Plateau(ours, factor=0.5, patience=0)
    for loss in [1.0, 1.0, 1.0]:
        schedule.step(loss)
    assert ours.param_groups[0]["lr"] == pytest.approx(0.025)
    assert ours.param_groups[0]["momentum"] == 0.7


# ======================================================================= FlatOptimizer
def small_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3), nn.Tanh(), nn.Linear(3, 2))


def net_loss(net: nn.Module, step: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(100 + step)
    x = torch.randn(16, 4, generator=generator)
    y = torch.randn(16, 2, generator=generator)
    return ((net(x) - y) ** 2).mean()


def peer_optimizer(kind: str, params: list[nn.Parameter], settings: dict[str, Any]) -> Any:
    lr = settings["lr"]
    decay = settings.get("weight_decay", 0.0)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=settings["momentum"], weight_decay=decay)
    cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, weight_decay=decay, betas=settings["betas"], eps=settings["eps"])


OPTIMISER_CASES = [
    ("adam", {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8}),
    ("adam", {"lr": 0.05, "betas": (0.5, 0.9), "eps": 1e-3, "weight_decay": 0.05}),
    ("adamw", {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.3}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.3}),
]


def flat_setup(kind: str, settings: dict[str, Any]) -> tuple[nn.Module, Any, FlatOptimizer]:
    net = small_net()
    flat = FlatParameters(net)
    return net, flat, FlatOptimizer(flat.flat, kind, **settings)


def flat_step(net: nn.Module, flat: FlatParameters, optimizer: FlatOptimizer, step: int) -> None:
    flat.grad.zero_()
    net_loss(net, step).backward()  # type: ignore[no-untyped-call]
    optimizer.step()


def peer_step(net: nn.Module, optimizer: Any, step: int) -> None:
    optimizer.zero_grad()
    net_loss(net, step).backward()  # type: ignore[no-untyped-call]
    optimizer.step()


def assert_same_weights(a: nn.Module, b: nn.Module, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize(("kind", "settings"), OPTIMISER_CASES)
def test_flat_optimiser_under_one_cycle_follows_torch(kind: str, settings: dict[str, Any]) -> None:
    """Rates and momenta that change every step (as OneCycle changes them) are honoured."""
    net, flat, optimizer = flat_setup(kind, settings)
    peer_net = small_net()
    peer = peer_optimizer(kind, list(peer_net.parameters()), settings)
    schedule = OneCycle(optimizer, max_lr=0.1, total_steps=25)
    oracle = torch.optim.lr_scheduler.OneCycleLR(peer, max_lr=0.1, total_steps=25)
    for step in range(25):
        flat_step(net, flat, optimizer, step)
        peer_step(peer_net, peer, step)
        schedule.step()
        oracle.step()
    flat.release()
    assert_same_weights(net, peer_net)


@pytest.mark.parametrize(("kind", "settings"), OPTIMISER_CASES)
@pytest.mark.parametrize("scheduled", [False, True])
def test_state_dict_round_trip_mid_training(
    kind: str, settings: dict[str, Any], scheduled: bool
) -> None:
    """An optimiser restored from another's state_dict continues exactly as the original would,
    and as torch.optim does, also after OneCycle has changed the rate and the betas."""
    net, flat, optimizer = flat_setup(kind, settings)
    peer_net = small_net()
    peer = peer_optimizer(kind, list(peer_net.parameters()), settings)
    if scheduled:
        OneCycle(optimizer, max_lr=0.1, total_steps=12)  # sets step 0's rate and momentum
        oracle = torch.optim.lr_scheduler.OneCycleLR(peer, max_lr=0.1, total_steps=12)
    for step in range(5):
        flat_step(net, flat, optimizer, step)
        peer_step(peer_net, peer, step)
        if scheduled:
            oracle.step()
            optimizer.param_groups[0]["lr"] = peer.param_groups[0]["lr"]
            key = "momentum" if kind == "sgd" else "betas"
            optimizer.param_groups[0][key] = peer.param_groups[0][key]

    saved = optimizer.state_dict()
    # A second model with the same weights and a fresh optimiser (different settings).
    twin = copy.deepcopy(net)
    twin_flat = FlatParameters(twin)
    with torch.no_grad():
        twin_flat.flat.copy_(flat.flat)
    fresh = {**settings, "lr": 123.0}
    if kind != "sgd":
        fresh["betas"] = (0.1, 0.2)
    else:
        fresh["momentum"] = 0.0
    restored = FlatOptimizer(twin_flat.flat, kind, **fresh)
    flat_step(twin, twin_flat, restored, 99)  # some state of its own, to be replaced
    with torch.no_grad():
        twin_flat.flat.copy_(flat.flat)
    restored.load_state_dict(saved)
    assert {k: v for k, v in restored.param_groups[0].items() if k != "params"} == {
        k: v for k, v in optimizer.param_groups[0].items() if k != "params"
    }
    for step in range(5, 12):
        flat_step(net, flat, optimizer, step)
        flat_step(twin, twin_flat, restored, step)
        peer_step(peer_net, peer, step)
        if scheduled:
            oracle.step()
            for group in (optimizer.param_groups[0], restored.param_groups[0]):
                group["lr"] = peer.param_groups[0]["lr"]
                key = "momentum" if kind == "sgd" else "betas"
                group[key] = peer.param_groups[0][key]
    assert torch.equal(flat.flat, twin_flat.flat)  # bit for bit: the same state continued
    for key, value in optimizer.state[flat.flat].items():
        other = restored.state[twin_flat.flat][key]
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, other) and value.data_ptr() != other.data_ptr()
        else:
            assert value == other
    flat.release()
    assert_same_weights(net, peer_net)


def test_load_state_dict_copies_the_running_averages() -> None:
    net, flat, optimizer = flat_setup("adam", OPTIMISER_CASES[0][1])
    flat_step(net, flat, optimizer, 0)
    saved = copy.deepcopy(optimizer.state_dict())
    other = FlatOptimizer(nn.Parameter(flat.flat.detach().clone()), "adam", 0.05)
    other.param_groups[0]["params"][0].grad = torch.ones_like(flat.flat)
    other.load_state_dict(optimizer.state_dict())
    other.step()
    for key, value in optimizer.state_dict()["state"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, saved["state"][key])  # the original is untouched
        else:
            assert value == saved["state"][key]


def test_a_missing_gradient_is_no_step() -> None:
    for kind in ("adam", "adamw", "sgd"):
        param = nn.Parameter(torch.ones(4))
        optimizer = FlatOptimizer(param, kind, 0.1, weight_decay=0.5)
        optimizer.step()
        assert torch.equal(param.detach(), torch.ones(4))


# ================================================================= the training loop
class Tiny(nn.Module):
    """A small forecaster of (B, L, F), (B, S) -> (B, T, Ft) with a layer the loss never
    reaches (as the per-step head without seq2seq)."""

    def __init__(self, window: int, features: int, season: int, horizon: int, targets: int):
        super().__init__()
        flat = window * features + season
        self.body = nn.Linear(flat, 5)
        self.head = nn.Linear(5 + flat, horizon * targets)
        self.unused = nn.Linear(3, 2)
        self.shape = (horizon, targets)

    def forward(self, window: torch.Tensor, season: torch.Tensor) -> torch.Tensor:
        flat = torch.cat([window.flatten(1), season], dim=1)
        out = self.head(torch.cat([torch.tanh(self.body(flat)), flat], dim=1))
        return out.reshape(-1, *self.shape)


def make_data(n: int, seed: int, window: int = 6, features: int = 2, season: int = 3) -> TrainData:
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(n, window, features, generator=generator)
    s = torch.randn(n, season, generator=generator)
    signal = w[:, -2:, :1].sum(dim=1, keepdim=True) * 0.7 + s[:, :1, None] * 0.3
    target = torch.cat([signal, -signal], dim=2) + 0.3 * torch.randn(n, 1, 2, generator=generator)
    return TrainData(window=w, season=s, target=target)


def reference_train(
    model: nn.Module, data: TrainData, validation: TrainData | None, config: TrainConfig
) -> tuple[list[float], list[float], int]:
    """The documented training loop written with torch.optim and torch's schedulers:
    returns the rate after each epoch, the scores, and the best epoch (its weights kept)."""
    loss_fn = loss_function(config.loss)
    params = list(model.parameters())
    decay = config.weight_decay
    if config.optimizer == "sgd":
        opt: Any = torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=decay
        )
    elif config.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=decay or 1e-2)
    else:
        opt = torch.optim.Adam(params, lr=config.lr, weight_decay=decay)
    steps = math.ceil(len(data) / config.batch_size)
    scheduler: Any = None
    if config.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=config.lr, total_steps=config.epochs * steps
        )
    elif config.schedule == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=max(3, config.patience // 4)
        )
    assert len(data) <= loop_module.SCORE_WINDOWS  # then every window is scored

    def score() -> float:
        part = validation if validation is not None else data
        model.eval()
        with torch.no_grad():
            return float(loss_fn(model(part.window, part.season), part.target))

    best, best_epoch, since = score(), 0, 0
    best_state = copy.deepcopy(model.state_dict())
    rates, scores = [], []
    for epoch in range(1, config.epochs + 1):
        model.train()
        for index in iterate_batches(len(data), config.batch_size, seed=config.seed + epoch):
            rows = torch.from_numpy(index).long()
            loss = loss_fn(model(data.window[rows], data.season[rows]), data.target[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_norm:
                nn.utils.clip_grad_norm_(
                    [p for p in params if p.grad is not None], config.clip_norm
                )
            opt.step()
            if config.schedule == "onecycle":
                scheduler.step()
        value = score()
        rates.append(float(opt.param_groups[0]["lr"]))
        scores.append(value)
        if config.schedule == "plateau":
            scheduler.step(value)
        if value < best:
            best, best_epoch, since = value, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since += 1
        if config.patience and validation is not None and since >= config.patience:
            break
    model.load_state_dict(best_state)
    return rates, scores, best_epoch


def run_both(
    model: nn.Module, data: TrainData, validation: TrainData | None, config: TrainConfig
) -> tuple[nn.Module, nn.Module, Any, tuple[list[float], list[float], int]]:
    twin = copy.deepcopy(model)
    history = train(model, data, validation, config)
    reference = reference_train(twin, data, validation, config)
    return model, twin, history, reference


TRAIN_CASES = [
    (schedule, optimizer)
    for schedule in ("onecycle", "plateau", "none")
    for optimizer in ("adam", "adamw", "sgd")
]


@pytest.mark.parametrize(("schedule", "optimizer"), TRAIN_CASES)
@pytest.mark.parametrize("clip", [None, 0.5])
def test_train_matches_a_torch_optim_reference_loop(
    schedule: str, optimizer: str, clip: float | None
) -> None:
    torch.manual_seed(3)
    model = Tiny(6, 2, 3, 1, 2)
    data, validation = make_data(70, 1), make_data(30, 2)
    config = TrainConfig(
        epochs=14 if schedule == "plateau" else 4, batch_size=16, lr=0.08, optimizer=optimizer,
        weight_decay=0.01 if optimizer != "adamw" else 0.0, patience=0, schedule=schedule,
        seed=5, clip_norm=clip, loss="mse",
    )  # fmt: skip
    unused = copy.deepcopy(model.unused.state_dict())
    ours, theirs, history, (rates, scores, best_epoch) = run_both(model, data, validation, config)
    tight = clip is None
    assert history.best_epoch == best_epoch
    assert history.stop_reason == "completed" and history.epochs == config.epochs
    np.testing.assert_allclose(history.lr, rates, rtol=1e-12 if tight else 1e-9)
    np.testing.assert_allclose(history.val_loss, scores, rtol=1e-5 if tight else 1e-4)
    assert_same_weights(ours, theirs, rtol=1e-5 if tight else 1e-4, atol=1e-6 if tight else 1e-5)
    for key, value in unused.items():  # never reached: never moved, not even by decay
        assert torch.equal(ours.unused.state_dict()[key], value)
    if schedule == "plateau":
        assert min(rates) < config.lr  # a reduction happened
    for p in ours.parameters():  # the flat buffer was released
        assert p.grad is None
    storages = {p.untyped_storage().data_ptr() for p in ours.parameters()}
    assert len(storages) == len(list(ours.parameters()))


@pytest.mark.parametrize("schedule", ["onecycle", "plateau", "none"])
def test_train_without_validation_and_with_early_stopping(schedule: str) -> None:
    torch.manual_seed(4)
    data = make_data(50, 7)
    for validation, patience in ((None, 3), (make_data(20, 8), 2)):
        model = Tiny(6, 2, 3, 1, 2)
        config = TrainConfig(
            epochs=9, batch_size=8, lr=0.2, optimizer="adam", patience=patience,
            schedule=schedule, seed=1, clip_norm=None, loss="huber",
        )  # fmt: skip
        ours, theirs, history, (rates, scores, best) = run_both(model, data, validation, config)
        assert history.best_epoch == best
        assert history.epochs == len(rates)
        if validation is None:
            assert history.val_loss == []
        else:
            np.testing.assert_allclose(history.val_loss, scores, rtol=1e-5)
            assert history.stop_reason == "early-stopped" or history.epochs == config.epochs
        np.testing.assert_allclose(history.lr, rates, rtol=1e-12)
        # 63 Adam steps at lr 0.2: torch's square root (MKL's, within 1 ulp) and the compiled
        # step's (correctly rounded) differ in the last bit now and then, and the steps carry
        # that forward.
        assert_same_weights(ours, theirs, rtol=1e-4, atol=5e-5)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("seq2seq", [False, True])
def test_train_a_recurrent_network_matches_the_reference(cell: str, seq2seq: bool) -> None:
    """The real network: its per-step head gets no gradient without seq2seq."""
    torch.manual_seed(0)
    spec = dict(input_size=2, window=6, season_size=3, horizon=1, n_targets=2)
    net = RecurrentNet(RecurrentConfig(**spec, cell=cell, hidden_size=3, num_layers=2))  # type: ignore[arg-type]
    data, validation = make_data(40, 3), make_data(16, 4)
    if seq2seq:
        generator = torch.Generator().manual_seed(9)
        data.step_target = torch.randn(40, 6, 1, 2, generator=generator)
    config = TrainConfig(
        epochs=2, batch_size=16, lr=0.05, optimizer="adam", patience=0, schedule="onecycle",
        seed=2, clip_norm=None, loss="mse", seq2seq=seq2seq,
    )  # fmt: skip
    head_before = copy.deepcopy(net.step_head.state_dict())
    twin = copy.deepcopy(net)
    train(net, data, validation, config)
    # Reference: torch.optim over every parameter, the seq2seq loss written out.
    loss_fn = loss_function("mse")
    opt = torch.optim.Adam(twin.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=6)
    best, best_state = math.inf, None
    with torch.no_grad():
        twin.eval()
        best = float(loss_fn(twin(validation.window, validation.season), validation.target))
        best_state = copy.deepcopy(twin.state_dict())
    for epoch in (1, 2):
        twin.train()
        for index in iterate_batches(40, 16, seed=2 + epoch):
            rows = torch.from_numpy(index).long()
            if seq2seq:
                forecast, steps = twin(data.window[rows], data.season[rows], steps=True)
                assert data.step_target is not None
                loss = 0.5 * (
                    loss_fn(forecast, data.target[rows]) + loss_fn(steps, data.step_target[rows])
                )
            else:
                loss = loss_fn(twin(data.window[rows], data.season[rows]), data.target[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        twin.eval()
        with torch.no_grad():
            value = float(loss_fn(twin(validation.window, validation.season), validation.target))
        if value < best:
            best, best_state = value, copy.deepcopy(twin.state_dict())
    twin.load_state_dict(best_state)
    assert_same_weights(net, twin, rtol=1e-4, atol=1e-5)
    if not seq2seq:
        for key, value in head_before.items():
            assert torch.equal(net.step_head.state_dict()[key], value)


@pytest.mark.parametrize(("n", "batch_size"), [(1, 4), (5, 2), (64, 1), (1000, 7), (4100, 64)])
def test_batches_are_the_gathers_of_iterate_batches(n: int, batch_size: int) -> None:
    data = make_data(n, 0, window=2, features=1, season=1)
    data.step_target = torch.arange(n * 2 * 3, dtype=torch.float32).reshape(n, 2, 1, 3)
    got = list(loop_module._batches(data, batch_size, seed=11))
    want = list(iterate_batches(n, batch_size, seed=11))
    assert len(got) == len(want) == math.ceil(n / batch_size)
    for batch, index in zip(got, want, strict=True):
        rows = torch.from_numpy(index).long()
        assert len(batch) == len(index)
        assert torch.equal(batch.window, data.window[rows])
        assert torch.equal(batch.season, data.season[rows])
        assert torch.equal(batch.target, data.target[rows])
        assert batch.step_target is not None and data.step_target is not None
        assert torch.equal(batch.step_target, data.step_target[rows])


def test_training_is_reproducible_and_leaves_the_rng_alone() -> None:
    data, validation = make_data(60, 5), make_data(20, 6)
    config = TrainConfig(epochs=3, batch_size=16, lr=0.05, patience=0, schedule="onecycle")
    weights = []
    for _ in range(2):
        torch.manual_seed(1)
        model = Tiny(6, 2, 3, 1, 2)
        state = torch.random.get_rng_state()
        train(model, data, validation, config)
        assert torch.equal(torch.random.get_rng_state(), state)
        weights.append(model.state_dict())
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key])


# ============================================================== batched forecasting
def series(n: int = 260, f: int = 1, seed: int = 0) -> np.ndarray:
    values = synthetic_series(
        length=n, period=SEASON, amplitude=10.0, noise_level=1.0, n_channels=f, seed=seed
    )
    return np.asarray(values, dtype=np.float64).reshape(n, f)


_FITTED: dict[tuple[Any, ...], NeuralForecaster] = {}


def fitted(name: str, horizon: int = 1, features: int = 1, targets: int = 1) -> NeuralForecaster:
    """A tiny fitted model, made once per module run."""
    key = (name, horizon, features, targets)
    if key not in _FITTED:
        options = dict(
            window=6, horizon=horizon, season=SEASON, epochs=1, batch_size=64, lr=1e-2,
            hidden_size=4, num_layers=1, patience=2, seed=0,
        )  # fmt: skip
        model = create_for(name, options)
        assert isinstance(model, NeuralForecaster)
        with torch_threads(1):
            model.fit([series(260, features)], targets)
        _FITTED[key] = model
    return _FITTED[key]


def all_contexts(model: NeuralForecaster, rows: int, extra: int = 0, seed: int = 0) -> np.ndarray:
    """(rows, C + extra, F) contexts cut from a fresh series of the model's width."""
    values = series(rows + model.context_length + extra + 5, model.n_features_, seed=seed + 1)
    steps = model.context_length + extra
    windows = np.lib.stride_tricks.sliding_window_view(values, steps, axis=0)
    return np.ascontiguousarray(np.moveaxis(windows, -1, 1)[:rows])


def chunked_oracle(model: NeuralForecaster, context: np.ndarray, chunk: int, **kw: Any) -> Any:
    """Each chunk forecast on its own, one after another, on one thread."""
    with torch_threads(1):
        return np.concatenate(
            [model.predict(context[s : s + chunk], **kw) for s in range(0, len(context), chunk)]
        )


NAMES = ["rnn", "lstm", "gru", "dnn"]
#: Whether a batch forecast runs in chunks side by side (recurrent models on the compiled
#: recurrence with more than one thread); otherwise it is one piece.
CHUNKED = native.available()
SHAPES = [(1, 1, 1), (3, 1, 1), (2, 3, 2), (1, 2, 2)]  # (horizon, features, targets)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("horizon", "features", "targets"), SHAPES)
def test_chunked_forecasts_equal_the_chunks_run_one_by_one(
    monkeypatch: pytest.MonkeyPatch, name: str, horizon: int, features: int, targets: int
) -> None:
    model = fitted(name, horizon, features, targets)
    context = all_contexts(model, 150)
    with torch_threads(1):
        whole = model.predict(context)
    assert whole.shape == (150, horizon, targets)
    long = 2 * horizon + 1
    rolls = features == targets
    if rolls:
        with torch_threads(1):
            rolled_whole = model.predict(context, long)
    for chunk in (1, 7, 64):
        monkeypatch.setattr(neural_module, "PREDICT_CHUNK", chunk)
        for threads in (1, 2):
            with torch_threads(threads):
                got = model.predict(context)
                assert torch.get_num_threads() == threads
            np.testing.assert_allclose(got, whole, rtol=1e-6, atol=1e-9)
            if threads == 1 or name == "dnn" or not CHUNKED:
                np.testing.assert_array_equal(got, whole)  # one piece
            else:
                np.testing.assert_array_equal(got, chunked_oracle(model, context, chunk))
            if rolls:
                with torch_threads(threads):
                    rolled = model.predict(context, long)
                assert rolled.shape == (150, long, targets)
                np.testing.assert_allclose(rolled, rolled_whole, rtol=1e-5, atol=1e-7)
                if threads == 2 and name != "dnn" and CHUNKED:
                    oracle = chunked_oracle(model, context, chunk, horizon=long)
                    np.testing.assert_array_equal(rolled, oracle)
                np.testing.assert_array_equal(rolled[:, :horizon], got)
    if not rolls:
        with pytest.raises(DataError, match=f"refit with horizon {long}"):
            model.predict(context, long)


@pytest.mark.parametrize("name", NAMES)
def test_longer_contexts_use_only_their_last_steps(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    model = fitted(name, 1, 3, 1)
    steps = model.context_length
    context = all_contexts(model, 40, extra=25)
    monkeypatch.setattr(neural_module, "PREDICT_CHUNK", 7)
    for threads in (1, 2):
        with torch_threads(threads):
            want = model.predict(np.ascontiguousarray(context[:, -steps:]))
            got = model.predict(context)
            np.testing.assert_array_equal(got, want)
            spoiled = context.copy()
            spoiled[:, :25] = np.nan  # before the last context_length steps: never read
            spoiled[5, 3, 1] = np.inf
            np.testing.assert_array_equal(model.predict(spoiled), want)


def read_steps(model: NeuralForecaster) -> tuple[set[int], set[int]]:
    """Steps of a (C,) context that the model reads: in every channel, and in the targets only."""
    spec = model.spec
    steps = model.context_length
    every = set(range(steps - spec.window, steps))
    targets: set[int] = set()
    if spec.seasonal:
        start = steps - spec.window - spec.season + spec.lead
        targets |= set(range(start, start + spec.window))
        targets |= {steps + int(o) for o in spec.head_offsets.ravel()}
    return every, targets - every


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_bad_value_the_model_reads_is_named_by_its_window(
    monkeypatch: pytest.MonkeyPatch, name: str, bad: float
) -> None:
    model = fitted(name, 1, 3, 1)
    every, targets_only = read_steps(model)
    assert targets_only  # the seasonal steps: targets read one period back
    unread = set(range(model.context_length)) - every - targets_only
    assert unread  # a seasonal model skips some steps
    context = all_contexts(model, 40)
    rng = np.random.default_rng(0)
    cases = [(step, 0) for step in sorted(targets_only)]
    cases += [(step, int(rng.integers(0, 3))) for step in sorted(every)]
    for chunk, threads in ((8192, 1), (7, 2), (1, 2)):
        monkeypatch.setattr(neural_module, "PREDICT_CHUNK", chunk)
        with torch_threads(threads):
            base = model.predict(context)
            for row, (step, channel) in zip(rng.integers(0, 40, len(cases)), cases, strict=True):
                spoiled = context.copy()
                spoiled[row, step, channel] = bad
                with pytest.raises(DataError, match=rf"\(first in window {row}\)$"):
                    model.predict(spoiled)
                assert torch.get_num_threads() == threads  # restored after the error
                assert native.thread_count() == threads
            # Values the model never reads: the covariates one period back, unread steps.
            spoiled = context.copy()
            for step in targets_only:
                spoiled[:, step, 1:] = bad
            for step in unread:
                spoiled[:, step, :] = bad
            np.testing.assert_array_equal(model.predict(spoiled), base)
            # Two bad windows in different chunks: the first one is named.
            spoiled = context.copy()
            spoiled[33, -1, 0] = bad
            spoiled[9, -2, 2] = bad
            with pytest.raises(DataError, match=r"\(first in window 9\)$"):
                model.predict(spoiled)


@pytest.mark.parametrize("name", ["rnn", "dnn"])
def test_a_value_that_overflows_when_scaled_is_named_by_its_window(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    model = fitted(name)
    context = all_contexts(model, 30)
    monkeypatch.setattr(neural_module, "PREDICT_CHUNK", 4)
    for threads in (1, 2):
        with torch_threads(threads):
            spoiled = context.copy()
            spoiled[22, -1, 0] = 1e300
            with pytest.raises(DataError, match="context of window 22 overflows when scaled"):
                model.predict(spoiled)


def test_the_first_bad_window_is_named_when_the_earlier_one_is_bad_in_the_season_only() -> None:
    model = fitted("rnn")
    _, targets_only = read_steps(model)
    season_only = min(targets_only)  # read by the seasonal vector of the output layer only
    context = all_contexts(model, 20)
    context[10, season_only, 0] = np.nan
    context[12, -1, 0] = np.nan
    with pytest.raises(DataError, match=r"first in window 10\)"):
        model.predict(context)


def test_an_overflow_is_reported_as_such_whatever_the_unread_steps_hold() -> None:
    model = fitted("rnn")
    every, targets_only = read_steps(model)
    unread = min(set(range(model.context_length)) - every - targets_only)
    context = all_contexts(model, 20)
    context[4, unread, 0] = np.nan  # never read: predict accepts it on its own
    with torch_threads(1):
        model.predict(context)
    context[4, -1, 0] = 1e300
    with pytest.raises(DataError, match="context of window 4 overflows when scaled"):
        model.predict(context)


def test_first_non_finite() -> None:
    assert first_non_finite(np.zeros((0, 3))) is None
    assert first_non_finite(np.ones((2, 3, 4))) is None
    values = np.ones((3, 4, 2))
    values[2, 0, 0] = np.nan
    values[1, 3, 1] = -np.inf
    values[1, 2, 1] = np.inf
    assert first_non_finite(values) == (1, 2, 1)
    assert first_non_finite(values.astype(np.float32)) == (1, 2, 1)
    assert first_non_finite(np.array([1.0, np.nan])) == (1,)


# ======================================================================== threads
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("chunk", [8192, 16])
def test_concurrent_predicts_equal_sequential_ones(
    monkeypatch: pytest.MonkeyPatch, name: str, chunk: int
) -> None:
    model = fitted(name, 3, 2, 2)
    monkeypatch.setattr(neural_module, "PREDICT_CHUNK", chunk)
    batches = [all_contexts(model, 60, seed=s) for s in range(2)]
    with torch_threads(2):
        want = [model.predict(b) for b in batches] + [model.predict(b, 7) for b in batches]
        results: dict[int, list[np.ndarray]] = {0: [], 1: []}
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def work(i: int) -> None:
            try:
                barrier.wait(10)
                for _ in range(6):
                    results[i].append(model.predict(batches[i]))
                    results[i].append(model.predict(batches[i], 7))
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        for i in range(2):
            for k, got in enumerate(results[i]):
                np.testing.assert_array_equal(got, want[i + 2 * (k % 2)])
        assert torch.get_num_threads() == 2


def interleave_predicts(model: NeuralForecaster, context: np.ndarray) -> dict[str, np.ndarray]:
    """Two threads predict at once: the second starts its forecast while the first is inside
    its own, and finishes after the first (a schedule any two requests may get)."""
    first_inside, second_inside, first_done = (threading.Event() for _ in range(3))
    network = model.network_
    forward = network.forward

    def held(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == "first":
            first_inside.set()
            assert second_inside.wait(10)
        else:
            second_inside.set()
            assert first_done.wait(10)
        return forward(*args, **kwargs)

    results: dict[str, np.ndarray] = {}

    def run(name: str) -> None:
        results[name] = model.predict(context)
        if name == "first":
            first_done.set()

    network.forward = held  # type: ignore[method-assign]
    try:
        first = threading.Thread(target=run, args=("first",), name="first")
        first.start()
        assert first_inside.wait(10)
        second = threading.Thread(target=run, args=("second",), name="second")
        second.start()
        first.join(10)
        second.join(10)
    finally:
        del network.forward
    return results


def test_interleaved_predicts_give_the_same_forecasts() -> None:
    model = fitted("lstm")
    context = all_contexts(model, 10)
    with torch_threads(2):
        want = model.predict(context)
        results = interleave_predicts(model, context)
    assert sorted(results) == ["first", "second"]
    for got in results.values():
        np.testing.assert_array_equal(got, want)


def test_overlapping_predicts_leave_the_thread_count_as_torch_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = fitted("rnn")
    context = all_contexts(model, 10)
    with torch_threads(2):
        interleave_predicts(model, context)
        assert torch.get_num_threads() == 2
        seen: list[int] = []
        fresh = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        fresh.start()
        fresh.join()
        assert seen == [2]  # a thread started now runs torch on the count set
    # torch now runs on 1 thread (the suite's setting); forecasts must follow it.
    assert torch.get_num_threads() == 1
    assert native.thread_count() == 1
    pools = counting_pool(monkeypatch)
    monkeypatch.setattr(neural_module, "PREDICT_CHUNK", 4)
    model.predict(context)
    assert pools == []  # one thread: no chunks side by side


@pytest.mark.parametrize("name", ["rnn", "dnn"])
def test_an_empty_batch_gives_an_empty_forecast(name: str) -> None:
    model = fitted(name, 2, 1, 1)
    forecast = model.predict(np.zeros((0, model.context_length, 1)))
    assert forecast.shape == (0, 2, 1)


@pytest.mark.parametrize("name", NAMES)
def test_the_thread_count_is_restored_after_predict_and_after_an_error(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    model = fitted(name)
    context = all_contexts(model, 30)
    spoiled = context.copy()
    spoiled[17, -1, 0] = np.nan
    for chunk in (8192, 4):
        monkeypatch.setattr(neural_module, "PREDICT_CHUNK", chunk)
        for threads in (1, 2, 3):
            with torch_threads(threads):
                model.predict(context)
                assert torch.get_num_threads() == threads
                with pytest.raises(DataError, match="first in window 17"):
                    model.predict(spoiled)
                assert torch.get_num_threads() == threads
                assert native.thread_count() == threads
                assert native._workers is None


def counting_pool(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the worker counts _predict asks native.pool for."""
    seen: list[int] = []
    original: Callable[[int], Any] = native.pool

    def pool(workers: int) -> Any:
        seen.append(workers)
        return original(workers)

    monkeypatch.setattr(neural_module.native, "pool", pool)
    return seen


def test_chunks_use_torch_thread_count_and_only_for_recurrent_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = counting_pool(monkeypatch)
    monkeypatch.setattr(neural_module, "PREDICT_CHUNK", 5)
    for name in NAMES:
        model = fitted(name)
        context = all_contexts(model, 12)
        for threads in (1, 2, 3):
            seen.clear()
            with torch_threads(threads):
                model.predict(context)
            if name == "dnn" or threads == 1 or not CHUNKED:
                assert seen == []
            else:
                assert seen == [threads]
