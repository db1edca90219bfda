"""Review of the fused training step, the compiled GRU, HeadPlan and the compiled Adam step.

Every comparison is against an independent oracle: float64 autograd (a float64 copy of the
network runs nn.GRU / nn.LSTM / the PyTorch tanh stack, never the compiled code), the loss
functions of torch.nn, and torch.optim.Adam / AdamW. Aimed at what tests/test_fused.py,
tests/test_native.py, tests/test_native_review.py and tests/test_flat.py do not reach:
HeadPlan on its own (pieces of width 0 and 1, strided rows, rows around the 32-row blocks),
errors of exactly 0 and ±1 for Huber and MAE, hidden sizes 1/3/9/17 with batches 1/2/33/65
in the fused step, the GRU at odd shapes against nn.GRU in float64, Adam at sizes 1..17.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import pytest
import torch
from kernels import close, one_thread_and_vector_kernels, select  # noqa: F401
from torch import nn

import seqcast.training.compiled_step as fused_module
from seqcast._native import binding as native
from seqcast.networks import RecurrentConfig, RecurrentNet
from seqcast.training.compiled_step import FusedStep, TorchHead
from seqcast.training.loop import TrainConfig, TrainData, batch_loss, train
from seqcast.training.optimizer import FlatOptimizer, FlatParameters

pytestmark = [
    pytest.mark.skipif(not native.available(), reason="compiled recurrence not built"),
    pytest.mark.usefixtures("one_thread_and_vector_kernels"),
]

LOSS_NAMES = ["huber", "mse", "mae"]


def torch_loss(name: str) -> nn.Module:
    """torch.nn's own losses (the oracle, not seqcast's mapping)."""
    return {"huber": nn.HuberLoss(delta=1.0), "mse": nn.MSELoss(), "mae": nn.L1Loss()}[name]


# ====================================================================== HeadPlan / TorchHead
def head_oracle(
    weight: torch.Tensor,
    bias: torch.Tensor,
    pieces: list[torch.Tensor],
    target: torch.Tensor,
    loss: str,
) -> tuple[float, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Loss and gradients of bias + cat(pieces)·Wᵀ in float64 autograd."""
    w = weight.detach().double().requires_grad_()
    b = bias.detach().double().requires_grad_()
    parts = [p.detach().double().requires_grad_() for p in pieces]
    forecast = torch.cat(parts, dim=1) @ w.T + b
    value = torch_loss(loss)(forecast, target.detach().double())
    grads = torch.autograd.grad(value, [w, b, *parts])
    return float(value.detach()), grads[0], grads[1], list(grads[2:])


class HeadCase:
    """Random inputs of an output layer: fixed pieces as strided-row views (some without a
    gradient destination), batch pieces as strided-row views, sentinel-filled buffers."""

    def __init__(
        self,
        rows: int,
        outs: int,
        fixed_widths: list[int],
        batch_widths: list[int],
        no_grad: set[int],
        seed: int,
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        width = sum(fixed_widths) + sum(batch_widths)
        self.weight = torch.randn(outs, width, generator=g)
        self.bias = torch.randn(outs, generator=g)
        self.weight.grad = torch.full_like(self.weight, 7.0)  # must be overwritten
        self.bias.grad = torch.full_like(self.bias, 7.0)
        self.fixed: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        self.grad_buffers: list[torch.Tensor] = []
        self.fixed_widths = fixed_widths
        for k, w in enumerate(fixed_widths):
            buffer = torch.randn(rows, w + 3, generator=g)
            grad_buffer = torch.full((rows, w + 5), 9.0)  # columns 2..2+w are the gradient
            self.grad_buffers.append(grad_buffer)
            view = buffer[:, 1 : 1 + w]
            self.fixed.append((view, None if k in no_grad else grad_buffer[:, 2 : 2 + w]))
        self.batch_widths = batch_widths
        self.pieces = [
            (torch.randn(rows, w + 2, generator=g) * 2)[:, 1 : 1 + w] for w in batch_widths
        ]
        # Errors of all sizes: both sides of Huber's |e| = 1.
        self.target = (torch.randn(rows, outs + 1, generator=g) * 3)[:, :outs]

    def run(self, kind: str, loss: str) -> float:
        cls: Any = native.HeadPlan if kind == "compiled" else TorchHead
        plan = cls(self.weight, self.bias, loss, self.fixed, self.batch_widths)
        pieces = [p if p.shape[1] <= 1 else p.contiguous() for p in self.pieces]
        target = self.target.contiguous()
        return float(plan(pieces, target))


HEAD_LAYOUTS = {
    # fixed piece widths, batch piece widths, fixed pieces without a gradient destination
    "state_season_window": ([5], [3, 8], set()),
    "bidirectional_empty_season": ([3, 3], [0, 4], set()),
    "width_one_and_zero": ([1, 0, 2], [1, 0], {1}),
    "state_without_grad": ([4, 1], [2], {0}),
}


@pytest.mark.parametrize("kind", ["compiled", "torch"])
@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("rows", [1, 31, 33, 64])
@pytest.mark.parametrize("layout", list(HEAD_LAYOUTS))
def test_head_matches_float64_autograd_and_overwrites_its_gradients(
    kind: str, loss: str, rows: int, layout: str
) -> None:
    fixed_widths, batch_widths, no_grad = HEAD_LAYOUTS[layout]
    case = HeadCase(rows, 3, fixed_widths, batch_widths, no_grad, seed=rows)
    before = [p.clone() for p in case.pieces] + [case.target.clone()]
    value = case.run(kind, loss)
    pieces = [view for view, _ in case.fixed] + case.pieces
    want, grad_w, grad_b, grad_pieces = head_oracle(
        case.weight, case.bias, pieces, case.target, loss
    )
    assert value == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert case.weight.grad is not None and case.bias.grad is not None
    close(case.weight.grad, grad_w)
    close(case.bias.grad, grad_b)
    for k, (_, grad_view) in enumerate(case.fixed):
        buffer = case.grad_buffers[k].clone()
        if grad_view is not None:
            close(grad_view, grad_pieces[k])
            buffer[:, 2 : 2 + case.fixed_widths[k]] = 9.0
        assert torch.equal(buffer, torch.full_like(buffer, 9.0)), "wrote outside its view"
    for old, new in zip(before, [*case.pieces, case.target], strict=True):
        assert torch.equal(old, new)


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("rows", [1, 33])
def test_torch_head_gives_the_compiled_heads_results(loss: str, rows: int) -> None:
    fixed_widths, batch_widths, no_grad = HEAD_LAYOUTS["bidirectional_empty_season"]
    results = []
    for kind in ("compiled", "torch"):
        case = HeadCase(rows, 4, fixed_widths, batch_widths, no_grad, seed=5)
        value = case.run(kind, loss)
        assert case.weight.grad is not None and case.bias.grad is not None
        grads = [case.weight.grad, case.bias.grad]
        grads += [g for _, g in case.fixed if g is not None]
        results.append((value, [g.clone() for g in grads]))
    (value_c, grads_c), (value_t, grads_t) = results
    assert value_c == pytest.approx(value_t, rel=1e-6, abs=1e-7)
    for a, b in zip(grads_c, grads_t, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["compiled", "torch"])
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_head_at_errors_of_exactly_zero_and_one(kind: str, loss: str) -> None:
    """Dyadic inputs and weights: every forecast is exact, so the errors are exactly
    0, ±0.5, ±1 and ±2. torch's L1 gradient at 0 is sign(0) = 0; its Huber gradient at
    |e| = 1 is ±1."""
    g = torch.Generator().manual_seed(3)
    rows, outs = 35, 5
    weight = torch.randint(-2, 3, (outs, 6), generator=g) * 0.25
    bias = torch.randint(-2, 3, (outs,), generator=g) * 0.5
    state = torch.randint(-3, 4, (rows, 4), generator=g).float()
    season = torch.randint(-3, 4, (rows, 2), generator=g).float()
    forecast = torch.cat([state, season], 1).double() @ weight.double().T + bias.double()
    errors = torch.tensor([0.0, 1.0, -1.0, 0.5, -2.0, 0.0])
    error = errors[torch.randint(0, len(errors), (rows, outs), generator=g)]
    target = (forecast + error).float()
    assert torch.equal(target.double() - forecast, error.double())  # exact in float32
    weight.grad, bias.grad = torch.zeros_like(weight), torch.zeros_like(bias)
    grad_state = torch.full((rows, 4), 5.0)
    cls: Any = native.HeadPlan if kind == "compiled" else TorchHead
    plan = cls(weight, bias, loss, [(state, grad_state)], [2])
    value = plan([season], target)
    want, grad_w, grad_b, grad_parts = head_oracle(weight, bias, [state, season], target, loss)
    assert value == pytest.approx(want, rel=1e-6, abs=1e-7)
    close(weight.grad, grad_w, rtol=1e-6, atol=1e-7)
    close(bias.grad, grad_b, rtol=1e-6, atol=1e-7)
    close(grad_state, grad_parts[0], rtol=1e-6, atol=1e-7)
    # And the defining values, independently of autograd.
    scale, error = 1.0 / (rows * outs), -error  # forecast − target
    if loss == "mae":
        d_forecast = torch.sign(error) * scale
    elif loss == "huber":
        d_forecast = error.clamp(-1, 1) * scale
    else:
        d_forecast = 2 * error * scale
    close(bias.grad, d_forecast.sum(0), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["compiled", "torch"])
def test_mae_head_with_every_error_zero_has_zero_gradients(kind: str) -> None:
    g = torch.Generator().manual_seed(4)
    weight = torch.randint(-2, 3, (3, 5), generator=g) * 0.5
    bias = torch.randint(-2, 3, (3,), generator=g) * 0.25
    x = torch.randint(-3, 4, (33, 5), generator=g).float()
    target = (x.double() @ weight.double().T + bias.double()).float()
    weight.grad, bias.grad = torch.full_like(weight, 1.0), torch.full_like(bias, 1.0)
    grad_x = torch.full((33, 2), 1.0)
    cls: Any = native.HeadPlan if kind == "compiled" else TorchHead
    plan = cls(weight, bias, "mae", [(x[:, :2], grad_x)], [3])
    assert plan([x[:, 2:].contiguous()], target) == 0.0
    assert not weight.grad.any() and not bias.grad.any() and not grad_x.any()


# ====================================================================== FusedStep
def float64_gradients(
    net: RecurrentNet, data: TrainData, loss: str
) -> tuple[float, list[torch.Tensor]]:
    """The batch's loss and gradients from a float64 copy of the network: nn.GRU, nn.LSTM and
    the PyTorch tanh stack (never the compiled recurrence), torch.nn's losses."""
    net64 = copy.deepcopy(net).double()
    net64.train()
    batch = TrainData(data.window.double(), data.season.double(), data.target.double())
    value = batch_loss(net64, batch, torch_loss(loss), seq2seq=False)
    tensors = [getattr(net64.rnn, name) for name in net.weight_names]
    tensors += [net64.head.weight, net64.head.bias]
    return float(value.detach()), list(torch.autograd.grad(value, tensors))


def trained_tensors(net: RecurrentNet) -> list[torch.Tensor]:
    return [getattr(net.rnn, name) for name in net.weight_names] + [
        net.head.weight,
        net.head.bias,
    ]


def fused_gradients(
    net: RecurrentNet, batches: list[TrainData], loss: str, head: str
) -> list[tuple[float, list[torch.Tensor]]]:
    """The fused step's (loss, gradients) for each batch in turn, on one FusedStep, with the
    output layer compiled or in PyTorch (the plans are made at the first call, so the choice
    holds through the calls)."""
    parameters = FlatParameters(net, trained_tensors(net))
    old = fused_module.HEAD_IN_C
    fused_module.HEAD_IN_C = 10**9 if head == "compiled" else 0
    try:
        step = FusedStep.create(net, parameters, loss, seq2seq=False)
        assert step is not None
        results = []
        for batch in batches:
            parameters.grad.fill_(float("nan"))  # every gradient must be written
            value = step(batch.window, batch.season, batch.target)
            results.append((value, [t.grad.clone() for t in trained_tensors(net)]))  # type: ignore[union-attr]
        assert step.plan is not None
        expected = native.HeadPlan if head == "compiled" else TorchHead
        assert type(step.plan[2]) is expected
        return results
    finally:
        fused_module.HEAD_IN_C = old
        parameters.release()


def make_net(seed: int = 0, **settings: Any) -> RecurrentNet:
    torch.manual_seed(seed)
    net = RecurrentNet(RecurrentConfig(**settings))
    with torch.no_grad():  # the state's weight large enough that the stack's gradients count
        net.head.weight.mul_(3.0)
    return net


def make_data(config: RecurrentConfig, batch: int, seed: int) -> TrainData:
    g = torch.Generator().manual_seed(seed)
    return TrainData(
        window=torch.randn(batch, config.window, config.input_size, generator=g),
        season=torch.randn(batch, config.season_size, generator=g),
        target=2 * torch.randn(batch, config.horizon, config.n_targets, generator=g),
    )


def fused_configs() -> list[dict[str, Any]]:
    rng = random.Random(2024)
    cases = []
    for index in range(36):
        cases.append(
            dict(
                cell=["rnn", "gru", "lstm"][index % 3],
                bidirectional=index % 2 == 1,
                num_layers=1 + index % 3 if index % 4 else rng.randint(1, 3),
                hidden_size=[1, 3, 9, 17][(index // 3) % 4],
                input_size=rng.randint(1, 5),
                window=rng.choice([1, 2, 5, 9]),
                season_size=rng.choice([0, 0, 3]),
                horizon=rng.randint(1, 3),
                n_targets=rng.randint(1, 2),
                skip=rng.random() < 0.5,
                batch=[1, 2, 33, 65][index % 4],
                loss=LOSS_NAMES[(index // 2) % 3],
                head=["compiled", "torch"][(index // 6) % 2],
                kernel=["vector", "plain"][(index // 12) % 2],
                seed=index,
            )
        )
    return cases


def _config_id(case: dict[str, Any]) -> str:
    return (
        f"{case['cell']}-{'bi' if case['bidirectional'] else 'uni'}-L{case['num_layers']}"
        f"-H{case['hidden_size']}-F{case['input_size']}-W{case['window']}-S{case['season_size']}"
        f"-T{case['horizon']}x{case['n_targets']}-{'skip' if case['skip'] else 'noskip'}"
        f"-B{case['batch']}-{case['loss']}-{case['head']}-{case['kernel']}"
    )


@pytest.mark.parametrize("case", fused_configs(), ids=_config_id)
def test_fused_step_matches_the_float64_network(case: dict[str, Any]) -> None:
    case = dict(case)
    batch, loss, head, kernel, seed = (
        case.pop(k) for k in ("batch", "loss", "head", "kernel", "seed")
    )
    select(kernel)
    net = make_net(seed, **case)
    data = make_data(net.config, batch, seed)
    want_value, want = float64_gradients(net, data, loss)
    [(value, got)] = fused_gradients(net, [data], loss, head)
    assert value == pytest.approx(want_value, rel=1e-5, abs=1e-6)
    for name, a, b in zip([*net.weight_names, "head.weight", "head.bias"], got, want, strict=True):
        assert torch.isfinite(a).all(), name
        close(a, b)


@pytest.mark.parametrize("head", ["compiled", "torch"])
@pytest.mark.parametrize("loss", ["huber", "mae"])
@pytest.mark.parametrize(
    ("cell", "bidirectional"), [("rnn", True), ("gru", False), ("gru", True), ("lstm", True)]
)
def test_fused_step_at_errors_of_exactly_zero_and_one(
    head: str, loss: str, cell: str, bidirectional: bool
) -> None:
    """Zero recurrent weights give a state of exactly 0 (tanh(0), σ(0)·tanh(0)); with dyadic
    output weights and inputs the forecast is exact, and the targets put the errors at
    exactly 0 and ±1, where MAE's and Huber's gradients have their corners. The stack's
    gradients are still not zero (dL/dh flows through the output layer's state weights)."""
    net = make_net(
        0, input_size=2, window=3, season_size=2, horizon=4, n_targets=2, cell=cell,
        hidden_size=3, num_layers=2, bidirectional=bidirectional,
    )  # fmt: skip
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name in net.weight_names:
            getattr(net.rnn, name).zero_()
        net.head.weight.copy_(torch.randint(-2, 3, net.head.weight.shape, generator=g) * 0.25)
        net.head.bias.copy_(torch.randint(-2, 3, net.head.bias.shape, generator=g) * 0.5)
    rows = 34
    window = torch.randint(-2, 3, (rows, 3, 2), generator=g).float()
    season = torch.randint(-2, 3, (rows, 2), generator=g).float()
    with torch.no_grad():
        forecast = net(window, season)
    errors = torch.tensor([0.0, 0.0, 1.0, -1.0, 0.5, -2.0])
    error = errors[torch.randint(0, len(errors), forecast.shape, generator=g)]
    data = TrainData(window, season, forecast + error)
    assert torch.equal(data.target - forecast, error)
    want_value, want = float64_gradients(net, data, loss)
    [(value, got)] = fused_gradients(net, [data], loss, head)
    assert value == pytest.approx(want_value, rel=1e-6, abs=1e-7)
    for a, b in zip(got, want, strict=True):
        close(a, b, rtol=1e-5, atol=1e-6)
    assert any(bool(a.abs().sum() > 0) for a in got[:-2])  # the stack got a gradient


def test_fused_step_reads_weights_changed_in_place_between_steps() -> None:
    """The plan keeps pointers into the flat buffers: an optimiser's in-place update must be
    seen by the next step, and a smaller batch in between must not disturb the plan."""
    net = make_net(
        0, input_size=3, window=5, season_size=2, horizon=2, n_targets=1, cell="gru",
        hidden_size=9, num_layers=2, bidirectional=True,
    )  # fmt: skip
    full, small = make_data(net.config, 33, 1), make_data(net.config, 2, 2)
    parameters = FlatParameters(net, trained_tensors(net))
    try:
        step = FusedStep.create(net, parameters, "huber", seq2seq=False)
        assert step is not None
        optimizer = FlatOptimizer(parameters.flat, "adam", lr=0.05)
        for batch in (full, small, full, full, small):
            value = step(batch.window, batch.season, batch.target)
            got = parameters.grad.clone()
            want_value, want = float64_gradients(net, batch, "huber")
            assert value == pytest.approx(want_value, rel=1e-5, abs=1e-6)
            close(got, torch.cat([w.reshape(-1) for w in want]))
            optimizer.step()  # changes the weights in place for the next step
    finally:
        parameters.release()


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_fused_step_on_strided_batch_views(loss: str) -> None:
    """Season as a column of a wider tensor, a target whose rows are not contiguous, and a
    window with a step stride, all as views (as a gather-then-slice would not give)."""
    net = make_net(
        3, input_size=1, window=4, season_size=2, horizon=3, n_targets=1, cell="lstm",
        hidden_size=3, num_layers=1, bidirectional=True,
    )  # fmt: skip
    g = torch.Generator().manual_seed(7)
    rows = 33
    window = torch.randn(rows, 8, 2, generator=g)[:, ::2, 1:]  # (33, 4, 1), strides (16, 4, 1)
    season = torch.randn(rows, 2, 3, generator=g)[:, :, 2]  # (33, 2), stride(1) = 3
    target = torch.randn(rows, 1, 6, generator=g).transpose(1, 2)[:, ::2]  # (33, 3, 1)
    data = TrainData(window, season, target)
    want_value, want = float64_gradients(net, data, loss)
    [(value, got)] = fused_gradients(net, [data], loss, "compiled")
    assert value == pytest.approx(want_value, rel=1e-5, abs=1e-6)
    for a, b in zip(got, want, strict=True):
        close(a, b)


def small_gru() -> tuple[RecurrentNet, TrainData]:
    """One GRU layer of 5 on windows of 4 steps × 2 channels, and a batch of 6 for it."""
    net = make_net(
        0, input_size=2, window=4, season_size=3, horizon=2, n_targets=1, cell="gru",
        hidden_size=5, num_layers=1,
    )  # fmt: skip
    return net, make_data(net.config, 6, 1)


def test_fused_step_refuses_or_handles_a_float64_target() -> None:
    net, data = small_gru()
    target64 = data.target.double()
    want = float(
        batch_loss(
            net, TrainData(data.window, data.season, target64), torch_loss("mse"), False
        ).detach()
    )
    parameters = FlatParameters(net, trained_tensors(net))
    try:
        step = FusedStep.create(net, parameters, "mse", seq2seq=False)
        assert step is not None
        try:
            value = step(data.window, data.season, target64)
        except (TypeError, ValueError):
            return  # refused, as for a float64 window: fine
        assert value == pytest.approx(want, rel=1e-5)
    finally:
        parameters.release()


def test_fused_step_refuses_a_window_whose_channels_do_not_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net, data = small_gru()
    wrong = torch.randn(6, 4, 3)
    with pytest.raises(ValueError):  # the autograd path refuses it
        batch_loss(net, TrainData(wrong, data.season, data.target), torch_loss("mse"), False)
    # Memory-safe probe: the compiled calls are recorded, not run, and the output layer is
    # PyTorch's, so an unchecked call corrupts nothing.
    ran: list[Any] = []
    monkeypatch.setattr(native, "_run", lambda calls: ran.extend(calls))
    monkeypatch.setattr(fused_module, "HEAD_IN_C", 0)
    parameters = FlatParameters(net, trained_tensors(net))
    try:
        step = FusedStep.create(net, parameters, "mse", seq2seq=False)
        assert step is not None
        with pytest.raises(ValueError):
            step(wrong, data.season, data.target)
        assert not ran, "the compiled recurrence was called with weights that do not fit"
    finally:
        parameters.release()


def test_fused_step_refuses_a_window_of_the_wrong_length() -> None:
    net, data = small_gru()
    longer = torch.randn(6, 5, 2)
    with pytest.raises(RuntimeError):  # the autograd path refuses it
        batch_loss(net, TrainData(longer, data.season, data.target), torch_loss("mse"), False)
    # Memory-safe probe: the output layer first in the flat buffers, so the too-wide rows the
    # compiled call reads and writes stay inside them (create() accepts any order).
    tensors = trained_tensors(net)
    parameters = FlatParameters(net, tensors[-2:] + tensors[:-2])
    try:
        step = FusedStep.create(net, parameters, "mse", seq2seq=False)
        assert step is not None
        with pytest.raises((ValueError, RuntimeError)):
            step(longer, data.season, data.target)
    finally:
        parameters.release()


# ====================================================================== whole training runs
@pytest.mark.parametrize(
    ("changes", "windows", "settings"),
    [
        (
            {"cell": "gru", "bidirectional": True, "num_layers": 2, "hidden_size": 9},
            41,  # batches of 8 and a last batch of 1
            {"loss": "mae", "optimizer": "adamw", "schedule": "onecycle", "batch_size": 8},
        ),
        (
            {"cell": "gru", "hidden_size": 17, "season_size": 0, "skip": False},
            70,  # 33, 33 and 4
            {"loss": "mse", "optimizer": "adam", "weight_decay": 0.01, "batch_size": 33},
        ),
    ],
)
def test_training_with_and_without_the_fused_step_agrees(
    changes: dict[str, Any], windows: int, settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    base: dict[str, Any] = dict(input_size=2, window=5, season_size=3, horizon=2, n_targets=2)
    base.update(changes)
    config = TrainConfig(epochs=4, patience=0, seed=5, **settings)

    def run() -> tuple[list[float], dict[str, torch.Tensor]]:
        net = make_net(1, **base)
        history = train(net, make_data(net.config, windows, 9), None, config)
        assert history.epochs == 4
        return history.train_loss, {k: v.clone() for k, v in net.state_dict().items()}

    created: list[Any] = []
    original = FusedStep.create.__func__  # type: ignore[attr-defined]

    def spy(cls: Any, *args: Any) -> Any:
        created.append(original(cls, *args))
        return created[-1]

    monkeypatch.setattr(FusedStep, "create", classmethod(spy))
    fused_loss, fused_state = run()
    assert created and created[0] is not None  # the fused step did run
    monkeypatch.setattr(FusedStep, "create", classmethod(lambda *args: None))
    plain_loss, plain_state = run()
    assert fused_loss == pytest.approx(plain_loss, rel=1e-4, abs=1e-6)
    for key, value in plain_state.items():
        torch.testing.assert_close(fused_state[key], value, rtol=1e-4, atol=1e-5)


# ====================================================================== compiled GRU
# features, hidden, layers, bidirectional, batch, steps
GRU_SHAPES = [
    (1, 1, 1, False, 1, 1),
    (1, 1, 1, True, 3, 2),
    (7, 7, 3, False, 33, 5),
    (8, 9, 3, True, 31, 4),
    (9, 17, 2, True, 65, 3),
    (3, 24, 1, True, 5, 9),
    (2, 9, 4, False, 97, 6),
    (5, 3, 2, True, 70, 7),
]


@pytest.mark.parametrize("kernel", ["vector", "plain"])
@pytest.mark.parametrize(
    ("features", "hidden", "layers", "bidirectional", "batch", "steps"), GRU_SHAPES
)
def test_gru_matches_float64_nn_gru_with_every_gradient(
    kernel: str,
    features: int,
    hidden: int,
    layers: int,
    bidirectional: bool,
    batch: int,
    steps: int,
) -> None:
    select(kernel)
    torch.manual_seed(features * 31 + hidden)
    module = nn.GRU(
        features, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional
    )
    oracle = copy.deepcopy(module).double()
    source = torch.randn(batch, steps, 2 * features + 1, requires_grad=True)
    source64 = source.detach().double().requires_grad_()
    x, x64 = source[:, :, 1::2], source64[:, :, 1::2]  # channels with stride 2
    got = native.recurrent_stack(x, list(module._flat_weights), "gru", layers, bidirectional)
    want, _ = oracle(x64)
    close(got, want)
    upstream = torch.randn(want.shape, dtype=torch.float64)
    got_grads = torch.autograd.grad(got, [source, *module._flat_weights], upstream.float())
    want_grads = torch.autograd.grad(want, [source64, *oracle._flat_weights], upstream)
    for a, b in zip(got_grads, want_grads, strict=True):
        close(a, b)
    with torch.no_grad():  # the forecasting path gives the training path's bits
        again = native.recurrent_stack(x, list(module._flat_weights), "gru", layers, bidirectional)
    assert torch.equal(again, got.detach())


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gru_stack_plan_by_hand(bidirectional: bool) -> None:
    """The prepared training stack (the fused step's hand differentiation): a strided
    dL/d(top), every weight's gradient including the GRU's two bias gradients, which differ
    (unlike the tanh RNN's and the LSTM's); dL/dx through the autograd function."""
    torch.manual_seed(2)
    features, hidden, layers, batch, steps = 3, 5, 2, 34, 6
    module = nn.GRU(features, hidden, num_layers=layers, bidirectional=bidirectional)  # (L, B, F)
    oracle = copy.deepcopy(module).double()
    directions = 2 if bidirectional else 1
    x = torch.randn(steps, batch, features)
    weights = [w.detach() for w in module._flat_weights]
    grads = [torch.full_like(w, float("nan")) for w in weights]
    plan = native.StackPlan(weights, grads, "gru", layers, directions, steps, batch, features)
    top = plan.forward(x.transpose(0, 1))
    x64 = x.double().requires_grad_()
    want, _ = oracle(x64)
    close(top, want)
    upstream = torch.randn(steps, batch, 2 * directions * hidden, dtype=torch.float64)[:, :, ::2]
    plan.grad_top.copy_(upstream)
    plan.backward()
    want_grads = torch.autograd.grad(want, [x64, *oracle._flat_weights], upstream)
    for a, b in zip(grads, want_grads[1:], strict=True):
        close(a, b)
    assert not torch.allclose(grads[2], grads[3])  # b_ih and b_hh gradients differ
    source = x.transpose(0, 1).requires_grad_()  # (B, L, F)
    got = native.recurrent_stack(source, weights, "gru", layers, bidirectional)
    (grad_x,) = torch.autograd.grad(got, [source], upstream.float().transpose(0, 1))
    close(grad_x.transpose(0, 1), want_grads[0])


def test_gru_empty_batch_with_gradients() -> None:
    module = nn.GRU(3, 5, num_layers=2, batch_first=True, bidirectional=True)
    x = torch.randn(0, 4, 3, requires_grad=True)
    got = native.recurrent_stack(x, list(module._flat_weights), "gru", 2, True)
    assert got.shape == module(x)[0].shape == (0, 4, 10)
    grads = torch.autograd.grad(got.sum(), [x, *module._flat_weights])
    assert all(
        g.shape == t.shape and not g.any()
        for g, t in zip(grads, [x, *module._flat_weights], strict=True)
    )


def test_weights_that_do_not_fit_the_input_are_refused() -> None:
    hidden = 4
    # The weights of a GRU on 2 channels, as contiguous views into larger buffers, so that the
    # unchecked call reads memory that belongs to the test.
    buffers = [torch.randn(200) for _ in range(4)]
    shapes = [(3 * hidden, 2), (3 * hidden, hidden), (3 * hidden,), (3 * hidden,)]
    weights = tuple(b[: math.prod(s)].view(s) for b, s in zip(buffers, shapes, strict=True))
    x = torch.randn(5, 3, 3)  # 3 channels
    with pytest.raises(ValueError):
        native.recurrent_stack(x.transpose(0, 1), list(weights), "gru", 1)  # checked here
    with pytest.raises(ValueError):  # and by the prepared training stack
        native.StackPlan(list(weights), [w.clone() for w in weights], "gru", 1, 1, 5, 3, 3)


# ====================================================================== Adam
@pytest.mark.parametrize("kernel", ["vector", "plain"])
@pytest.mark.parametrize(
    ("kind", "decay", "betas"),
    [
        ("adam", 0.0, (0.9, 0.999)),
        ("adam", 0.1, (0.9, 0.999)),
        ("adamw", 0.1, (0.9, 0.999)),
        ("adamw", 0.0, (0.3, 0.5)),  # lerp's other branch (weight >= 0.5)
        ("adam", 0.05, (0.3, 0.5)),
    ],
)
def test_flat_adam_follows_torch_optim_at_sizes_1_to_17(
    kernel: str, kind: str, decay: float, betas: tuple[float, float]
) -> None:
    select(kernel)
    for size in range(1, 18):  # the vector loop's tail and sizes below one vector
        g = torch.Generator().manual_seed(size)
        start = torch.randn(size, generator=g)
        ours, theirs = nn.Parameter(start.clone()), nn.Parameter(start.clone())
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        reference = cls([theirs], lr=0.05, betas=betas, weight_decay=decay)
        optimizer = FlatOptimizer(ours, kind, 0.05, weight_decay=decay, betas=betas)
        for step in range(6):
            grad = torch.randn(size, generator=g)
            if step == 2:
                grad.zero_()  # a zero gradient: only the moments' decay moves the weights
            elif step == 3:
                grad[::2] = 0.0
            ours.grad, theirs.grad = grad.clone(), grad.clone()
            reference.step()
            optimizer.step()
            assert torch.equal(ours.grad, grad), "the step changed the gradient"
            # Rounding-level differences only (fma against torch's add, lerp's other branch).
            torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=2e-6, atol=1e-7)
            state, their_state = optimizer.state[ours], reference.state[theirs]
            torch.testing.assert_close(
                state["exp_avg"], their_state["exp_avg"], rtol=1e-5, atol=2e-7
            )
            torch.testing.assert_close(
                state["exp_avg_sq"], their_state["exp_avg_sq"], rtol=1e-5, atol=1e-8
            )


@pytest.mark.parametrize("size", [1, 7, 8, 9, 17])
def test_adam_step_updates_every_element_including_the_tail(size: int) -> None:
    """First step from zero moments: each element moves by about -lr·sign(g)."""
    param = torch.zeros(size)
    grad = torch.linspace(-1.0, 1.0, size) + 0.01
    exp_avg, exp_avg_sq = torch.zeros(size), torch.zeros(size)
    lr, beta1, beta2 = 0.1, 0.9, 0.999
    settings = (
        1 - beta1,
        beta2,
        1 - beta2,
        1e-8,
        -lr / (1 - beta1),
        math.sqrt(1 - beta2),
        0.0,
        1.0,
    )
    assert native.adam_step(param, grad, exp_avg, exp_avg_sq, settings, False)
    torch.testing.assert_close(param, -lr * torch.sign(grad), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(exp_avg, (1 - beta1) * grad)
    torch.testing.assert_close(exp_avg_sq, (1 - beta2) * grad * grad)
