"""The flat parameter buffer and its optimiser (seqcast/training/optimizer.py), against
torch.optim and per-tensor gradients as the oracles."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from module_weights import assert_same_weights
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


# ------------------------------------------------------- schedules and state_dict round trips
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


# ------------------------------------------------------- unused parameters and resuming
class _WithUnused(nn.Module):
    """A used layer and one that never gets a gradient (like step_head without seq2seq)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.used = nn.Linear(3, 2)
        self.unused = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.used(x)


def _batch(step: int) -> torch.Tensor:
    return torch.randn(8, 3, generator=torch.Generator().manual_seed(step))


@pytest.mark.parametrize(
    ("kind", "settings", "reference"),
    [
        ("adamw", {"weight_decay": 0.1}, lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1)),
        ("adam", {"weight_decay": 0.1}, lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.1)),
        (
            "sgd",
            {"momentum": 0.9, "weight_decay": 0.1},
            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.1),
        ),
    ],
)
def test_parameters_without_gradients_are_left_alone_like_torch_optim(
    kind: str, settings: dict[str, Any], reference: Any
) -> None:
    """torch.optim skips parameters whose grad is None; the flat buffer holds only the used ones
    (train() finds them with used_parameters), so weight decay never reaches the others."""
    ours, theirs = _WithUnused(), _WithUnused()
    flat = FlatParameters(ours, list(ours.used.parameters()))
    optimizer = FlatOptimizer(flat.flat, kind, 0.05, **settings)
    peer = reference(list(theirs.parameters()))
    for step in range(5):
        flat.grad.zero_()
        (ours(_batch(step)) ** 2).mean().backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        peer.zero_grad(set_to_none=True)
        (theirs(_batch(step)) ** 2).mean().backward()  # type: ignore[no-untyped-call]
        peer.step()
    flat.release()
    torch.testing.assert_close(ours.used.weight, theirs.used.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.unused.weight, theirs.unused.weight)


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
def test_resuming_from_a_state_dict_continues_exactly(kind: str) -> None:
    def steps(net: nn.Module, optimizer: FlatOptimizer, flat: FlatParameters, r: range) -> None:
        for step in r:
            flat.grad.zero_()
            (net(_batch(step)) ** 2).mean().backward()
            optimizer.step()

    torch.manual_seed(0)
    whole = nn.Linear(3, 2)
    flat = FlatParameters(whole)
    optimizer = FlatOptimizer(flat.flat, kind, 0.05, weight_decay=0.01)
    steps(whole, optimizer, flat, range(6))
    state = copy.deepcopy(optimizer.state_dict())  # state_dict() holds live tensors
    halfway = copy.deepcopy(whole.state_dict())
    steps(whole, optimizer, flat, range(6, 12))

    resumed = nn.Linear(3, 2)
    resumed.load_state_dict(halfway)
    flat2 = FlatParameters(resumed)
    optimizer2 = FlatOptimizer(flat2.flat, kind, 0.05, weight_decay=0.01)
    optimizer2.load_state_dict(state)
    steps(resumed, optimizer2, flat2, range(6, 12))
    torch.testing.assert_close(flat2.flat, flat.flat, rtol=0, atol=0)
    if kind != "sgd":
        assert optimizer2.state[flat2.flat]["step"] == 12


def test_sgd_momentum_with_weight_decay_and_one_cycle_follows_torch_optim() -> None:
    ours, theirs = nn.Linear(3, 2), nn.Linear(3, 2)
    theirs.load_state_dict(ours.state_dict())
    flat = FlatParameters(ours)
    optimizer = FlatOptimizer(flat.flat, "sgd", 0.1, weight_decay=0.05, momentum=0.9)
    peer = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=0.05)
    schedules = [
        OneCycle(optimizer, max_lr=0.1, total_steps=10),
        torch.optim.lr_scheduler.OneCycleLR(peer, max_lr=0.1, total_steps=10),
    ]
    for step in range(10):
        flat.grad.zero_()
        (ours(_batch(step)) ** 2).mean().backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        peer.zero_grad()
        (theirs(_batch(step)) ** 2).mean().backward()  # type: ignore[no-untyped-call]
        peer.step()
        for schedule in schedules:
            schedule.step()
    flat.release()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
