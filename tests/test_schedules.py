"""The learning-rate schedules against torch.optim.lr_scheduler as the oracle."""

from __future__ import annotations

import subprocess
import sys

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
