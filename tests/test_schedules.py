"""The learning-rate schedules against torch.optim.lr_scheduler as the oracle: every step of
OneCycle with the flat optimiser's rates and momenta, and Plateau on random losses."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from seqcast.training.optimizer import FlatOptimizer
from seqcast.training.schedules import OneCycle, Plateau


@pytest.mark.parametrize("kind", ["adam", "sgd"])
@pytest.mark.parametrize("total", [1, 7, 40])
def test_one_cycle_follows_torch_step_by_step(kind: str, total: int) -> None:
    ours = FlatOptimizer(nn.Parameter(torch.zeros(2)), kind, 0.3)
    peer_class = torch.optim.Adam if kind == "adam" else torch.optim.SGD
    options = {"momentum": 0.9} if kind == "sgd" else {}
    peer = peer_class([nn.Parameter(torch.zeros(2))], lr=0.3, **options)
    schedule = OneCycle(ours, max_lr=0.3, total_steps=total)
    oracle = torch.optim.lr_scheduler.OneCycleLR(peer, max_lr=0.3, total_steps=total)
    key = "betas" if kind == "adam" else "momentum"
    for step in range(total + 1):
        assert ours.param_groups[0]["lr"] == pytest.approx(peer.param_groups[0]["lr"], rel=1e-12)
        assert ours.param_groups[0][key] == pytest.approx(peer.param_groups[0][key], rel=1e-12)
        if step < total:
            peer.step()
            schedule.step()
            oracle.step()
    with pytest.raises(ValueError, match=f"only {total} steps"):
        schedule.step()


def test_plateau_follows_torch_epoch_by_epoch() -> None:
    ours = FlatOptimizer(nn.Parameter(torch.zeros(2)), "adam", 0.1)
    peer = torch.optim.Adam([nn.Parameter(torch.zeros(2))], lr=0.1)
    schedule = Plateau(ours, factor=0.5, patience=3)
    oracle = torch.optim.lr_scheduler.ReduceLROnPlateau(peer, factor=0.5, patience=3)
    # Improvements, stalls, a relative change below the threshold, a NaN, and long plateaus
    # that push the rate below the smallest change that still counts (eps).
    losses = [5, 4, 4, 4, 4, 4, 3.9999, 3.99999, 3, float("nan"), 3, 3, 3, 3, 2] + [2] * 200
    for loss in losses:
        schedule.step(loss)
        oracle.step(loss)
        assert ours.param_groups[0]["lr"] == pytest.approx(peer.param_groups[0]["lr"], rel=1e-12)
    assert ours.param_groups[0]["lr"] < 1e-7


def test_training_does_not_import_torch_dynamo() -> None:
    """torch.optim.Optimizer imports torch._dynamo (about 2 s) on first use; training avoids
    it in every schedule."""
    code = (
        "import sys; import numpy as np; from seqcast.forecasters.registry import create_for;"
        "x = np.sin(np.arange(200.0))[:, None];"
        "[create_for('rnn', dict(window=8, epochs=2, schedule=s)).fit([x], 1)"
        " for s in ('plateau', 'onecycle', 'none')];"
        "print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------- OneCycle
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


# ------------------------------------------------------------------------------- Plateau
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
