"""The flat parameter buffer and its optimiser (seqcast/training/optimizer.py), against
torch.optim and per-tensor gradients as the oracles."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from seqcast import _native as native
from seqcast.networks import RecurrentConfig, RecurrentNet
from seqcast.training.optimizer import FlatOptimizer, FlatParameters
from seqcast.training.schedules import OneCycle


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))


def loss_of(net: nn.Module, step: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(step)
    x = torch.randn(8, 3, generator=generator).to(next(net.parameters()).dtype)
    return (net(x) ** 2).mean()


@pytest.mark.parametrize(
    ("kind", "settings", "reference", "adam"),
    [
        ("adam", {}, lambda p: torch.optim.Adam(p, lr=0.05), "compiled"),
        ("adam", {}, lambda p: torch.optim.Adam(p, lr=0.05), "torch"),
        (
            "adam",
            {"weight_decay": 0.1},
            lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.1),
            "compiled",
        ),
        (
            "adam",
            {"weight_decay": 0.1},
            lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.1),
            "torch",
        ),
        (
            "adamw",
            {"weight_decay": 0.1},
            lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1),
            "compiled",
        ),
        (
            "adamw",
            {"weight_decay": 0.1},
            lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1),
            "torch",
        ),
        ("sgd", {"momentum": 0.9}, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), None),
        (
            "sgd",
            {"momentum": 0.0, "weight_decay": 0.1},
            lambda p: torch.optim.SGD(p, lr=0.05, weight_decay=0.1),
            None,
        ),
    ],
)
def test_flat_optimiser_follows_torch_optim(
    kind: str,
    settings: dict[str, Any],
    reference: Any,
    adam: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Adam's step in one compiled pass, or in torch operations where the switch says no."""
    if adam == "compiled" and not native.available():
        pytest.skip("compiled code not built")
    if adam == "torch":
        monkeypatch.setattr(native, "compiled", lambda *tensors, cell=None: False)
    compiled_steps: list[int] = []
    adam_step = native.adam_step

    def spy(*args: Any) -> None:
        compiled_steps.append(1)
        adam_step(*args)

    monkeypatch.setattr(native, "adam_step", spy)
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
    assert len(compiled_steps) == (12 if adam == "compiled" else 0)
    for mine, want in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(mine, want, rtol=1e-5, atol=1e-6)
        assert mine.grad is None  # released


@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_a_float64_buffer_takes_torch_operations_and_follows_torch_optim(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The switch leaves float64 to PyTorch: no compiled pass, torch.optim's numbers."""
    compiled_steps: list[int] = []
    monkeypatch.setattr(native, "adam_step", lambda *args: compiled_steps.append(1))
    ours, theirs = model().double(), model().double()
    flat = FlatParameters(ours)
    assert not native.compiled(flat.flat)
    optimizer = FlatOptimizer(flat.flat, kind, 0.05, weight_decay=0.1)
    cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
    peer = cls(list(theirs.parameters()), lr=0.05, weight_decay=0.1)
    for step in range(6):
        flat.grad.zero_()
        loss_of(ours, step).backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        peer.zero_grad()
        loss_of(theirs, step).backward()  # type: ignore[no-untyped-call]
        peer.step()
    flat.release()
    assert not compiled_steps
    for mine, want in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(mine, want, rtol=1e-12, atol=1e-14)


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


def test_gradients_of_a_recurrent_net_accumulate_into_the_flat_buffer_over_two_passes() -> None:
    """The compiled recurrence's autograd function writes into views of the flat gradient;
    the oracle is a float64 copy of the network (nn.RNN), its gradients accumulated per
    tensor."""
    torch.manual_seed(0)
    config = RecurrentConfig(
        input_size=1, window=4, season_size=0, horizon=1, n_targets=1, hidden_size=3,
        num_layers=1,
    )  # fmt: skip
    net = RecurrentNet(config)
    twin = copy.deepcopy(net).double()
    flat = FlatParameters(net)
    window = torch.randn(8, 4, 1, generator=torch.Generator().manual_seed(0))
    season = torch.zeros(8, 0)
    for part in (slice(0, 4), slice(4, 8)):  # accumulate, no zeroing between
        (net(window[part], season[part]) ** 2).sum().backward()  # type: ignore[no-untyped-call]
        (twin(window[part].double(), season[part].double()) ** 2).sum().backward()  # type: ignore[no-untyped-call]
    want = torch.cat([p.grad.reshape(-1) for p in twin.parameters() if p.grad is not None])
    assert want.numel() < flat.grad.numel()  # step_head gets no gradient: zero in the buffer
    by_param = torch.cat(
        [
            (p.grad if q.grad is not None else torch.zeros(0)).reshape(-1)
            for p, q in zip(net.parameters(), twin.parameters(), strict=True)
        ]
    )
    torch.testing.assert_close(by_param.double(), want, rtol=1e-4, atol=1e-5)
    assert float(net.step_head.weight.grad.abs().sum()) == 0.0  # type: ignore[union-attr]
    flat.release()


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
