"""The flat parameter buffer and its optimiser, against torch.optim as the oracle."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from seqcast._native import binding as native
from seqcast.training.optimizer import FlatOptimizer, FlatParameters
from seqcast.training.schedules import OneCycle


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))


def loss_of(net: nn.Module, step: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(step)
    x = torch.randn(8, 3, generator=generator)
    return (net(x) ** 2).mean()


@pytest.mark.parametrize(
    ("kind", "settings", "reference"),
    [
        ("adam", {}, lambda p: torch.optim.Adam(p, lr=0.05)),
        ("adam", {"weight_decay": 0.1}, lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.1)),
        ("adamw", {"weight_decay": 0.1}, lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1)),
        ("sgd", {"momentum": 0.9}, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
        (
            "sgd",
            {"momentum": 0.0, "weight_decay": 0.1},
            lambda p: torch.optim.SGD(p, lr=0.05, weight_decay=0.1),
        ),
    ],
)
def test_flat_optimiser_follows_torch_optim(
    kind: str, settings: dict[str, Any], reference: Any
) -> None:
    ours, theirs = model(), model()
    flat = FlatParameters(ours)
    optimizer = FlatOptimizer(flat.flat, kind, 0.05, **settings)
    peer = reference(list(theirs.parameters()))
    for step in range(12):
        flat.grad.zero_()
        loss_of(ours, step).backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        peer.zero_grad()
        loss_of(theirs, step).backward()  # type: ignore[no-untyped-call]
        peer.step()
    flat.release()
    for mine, want in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(mine, want, rtol=1e-5, atol=1e-6)
        assert mine.grad is None  # released


def test_parameters_are_views_and_gradients_accumulate_into_the_flat_buffer() -> None:
    net = model()
    before = [p.detach().clone() for p in net.parameters()]
    flat = FlatParameters(net)
    assert flat.flat.numel() == sum(p.numel() for p in net.parameters())
    for p, b in zip(net.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), b)  # same values, now in the buffer
    loss_of(net, 0).backward()  # type: ignore[no-untyped-call]
    by_hand = torch.cat([p.grad.reshape(-1) for p in net.parameters() if p.grad is not None])
    torch.testing.assert_close(flat.grad, by_hand)
    assert flat.grad.abs().sum() > 0
    with torch.no_grad():
        flat.flat.add_(1.0)  # an update of the buffer is an update of the model
    for p, b in zip(net.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), b + 1.0)
    flat.release()
    with torch.no_grad():
        flat.flat.add_(1.0)  # released: the model no longer shares the buffer
    for p, b in zip(net.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), b + 1.0)


def test_clip_scales_the_whole_gradient_to_the_norm() -> None:
    net = model()
    flat = FlatParameters(net)
    (100 * loss_of(net, 1)).backward()  # type: ignore[no-untyped-call]
    peer = nn.Parameter(torch.zeros_like(flat.flat))
    peer.grad = flat.grad.clone()
    torch.nn.utils.clip_grad_norm_([peer], 0.5)
    flat.clip_(0.5)
    torch.testing.assert_close(flat.grad, peer.grad)
    assert float(flat.grad.norm()) == pytest.approx(0.5, rel=1e-4)
    small = flat.grad.clone()
    flat.clip_(10.0)  # under the norm: unchanged
    torch.testing.assert_close(flat.grad, small)


def test_one_cycle_schedule_drives_the_flat_optimiser() -> None:
    flat = nn.Parameter(torch.zeros(2))
    optimizer = FlatOptimizer(flat, "adam", 0.1)
    scheduler = OneCycle(optimizer, max_lr=0.1, total_steps=10)
    rates, betas = [], []
    for _ in range(9):
        flat.grad = torch.ones(2)
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
        betas.append(optimizer.param_groups[0]["betas"][0])
    assert max(rates) == pytest.approx(0.1, rel=0.05) and rates[-1] < 0.01
    assert min(betas) == pytest.approx(0.85, abs=0.01) and betas[-1] > 0.9  # momentum cycles too


def test_unknown_kind_and_mixed_dtypes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown optimiser"):
        FlatOptimizer(nn.Parameter(torch.zeros(1)), "lbfgs", 0.1)
    net = nn.Linear(2, 2)
    net.bias.data = net.bias.data.double()
    with pytest.raises(ValueError, match="one dtype"):
        FlatParameters(net)


@pytest.mark.skipif(not native.available(), reason="no compiled recurrence")
@pytest.mark.parametrize("vector", [True, False])
@pytest.mark.parametrize(("decay", "decoupled"), [(0.0, False), (0.1, False), (0.1, True)])
def test_the_compiled_adam_step_is_torch_optims_to_the_last_bit_of_the_square_root(
    vector: bool, decay: float, decoupled: bool
) -> None:
    """The moments match bit for bit; the parameters within what torch's own square root
    (MKL's, accurate to 1 ulp) makes of them. 1,003 values: the vector loop and its tail."""
    generator = torch.Generator().manual_seed(1)
    n = 1003
    param = torch.randn(n, generator=generator)
    grad = torch.randn(n, generator=generator) * 0.01
    exp_avg = torch.randn(n, generator=generator) * 0.01
    exp_avg_sq = torch.rand(n, generator=generator) * 1e-4
    lr, beta1, beta2, eps, step = 0.2, 0.9, 0.999, 1e-8, 5
    ours = [t.clone() for t in (param, grad, exp_avg, exp_avg_sq)]
    settings = (1 - beta1, beta2, 1 - beta2, eps, -lr / (1 - beta1**step),
                math.sqrt(1 - beta2**step), decay, 1 - lr * decay)  # fmt: skip
    previous = native.use_vector_kernels(vector)
    try:
        assert native.adam_step(*ours, settings, decoupled)
    finally:
        native.use_vector_kernels(previous)
    # torch.optim.Adam's single-tensor step, written out.
    if decoupled:
        param.mul_(1 - lr * decay)
    elif decay:
        grad = grad.add(param, alpha=decay)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = exp_avg_sq.sqrt().div_(math.sqrt(1 - beta2**step)).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1**step))
    if vector:
        assert torch.equal(ours[2], exp_avg) and torch.equal(ours[3], exp_avg_sq)
    else:  # libm's fmaf and plain arithmetic: the same rounding rules, not always the same bits
        torch.testing.assert_close(ours[2], exp_avg, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(ours[3], exp_avg_sq, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(ours[0], param, rtol=2e-6, atol=1e-7)


def test_the_compiled_adam_step_declines_what_it_cannot_run() -> None:
    x = torch.zeros(8, dtype=torch.float64)
    assert not native.adam_step(x, x, x, x, (0.1, 0.999, 0.001, 1e-8, -1.0, 1.0, 0.0, 1.0), False)
    y = torch.zeros(8, 2)[:, 0]  # not contiguous
    assert not native.adam_step(y, y, y, y, (0.1, 0.999, 0.001, 1e-8, -1.0, 1.0, 0.0, 1.0), False)
