"""The compiled training step (seqcast/training/compiled_step.py) against autograd's gradients.

Oracles: autograd over the same float32 network, and a float64 copy of the network, which the
switch leaves to nn.RNN / nn.GRU / nn.LSTM and torch.nn's losses (never the compiled code).
Where CompiledStep.create says no (an output layer over HEAD_IN_C weights, another loss or
network), training goes through autograd: those cases are held to the float64 oracle too.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

import pytest
import torch
from kernels import (
    close,
    needs_library,
    one_thread_and_vector_kernels,  # noqa: F401  (a fixture)
    select,
)
from torch import nn

import seqcast.training.compiled_step as compiled_step
from seqcast import _native as native
from seqcast._native import binding
from seqcast.networks import RecurrentConfig, RecurrentNet
from seqcast.training import loop
from seqcast.training.compiled_step import HEAD_IN_C, CompiledStep
from seqcast.training.loop import (
    History,
    TrainConfig,
    TrainData,
    batch_loss,
    loss_function,
    train,
)
from seqcast.training.optimizer import FlatOptimizer, FlatParameters

pytestmark = [needs_library, pytest.mark.usefixtures("one_thread_and_vector_kernels")]

LOSS_NAMES = ["huber", "mse", "mae"]
#: ``compiled``: the compiled step with its compiled output layer; ``autograd``: an output
#: layer over HEAD_IN_C weights, which leaves the whole step to autograd.
HEADS = ["compiled", "autograd"]


def net_and_batch(batch: int = 7, **changes: Any) -> tuple[RecurrentNet, TrainData]:
    settings: dict[str, Any] = dict(
        input_size=2, window=6, season_size=3, horizon=2, n_targets=2, hidden_size=5
    )
    settings.update(changes)
    config = RecurrentConfig(**settings)
    torch.manual_seed(0)
    net = RecurrentNet(config)
    generator = torch.Generator().manual_seed(1)
    data = TrainData(
        window=torch.randn(batch, config.window, config.input_size, generator=generator),
        season=torch.randn(batch, config.season_size, generator=generator),
        target=2 * torch.randn(batch, config.horizon, config.n_targets, generator=generator),
    )
    return net, data


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


def trained_tensors(net: RecurrentNet) -> list[torch.Tensor]:
    return [getattr(net.rnn, name) for name in net.weight_names] + [
        net.head.weight,
        net.head.bias,
    ]


def autograd_gradients(
    net: RecurrentNet, data: TrainData, loss: str
) -> tuple[float, list[torch.Tensor]]:
    """The batch's loss and gradients through autograd on the float32 network."""
    net.zero_grad()
    value = batch_loss(net, data, loss_function(loss), seq2seq=False)
    value.backward()  # type: ignore[no-untyped-call]
    return float(value.detach()), [t.grad.clone() for t in trained_tensors(net)]  # type: ignore[union-attr]


def float64_gradients(
    net: RecurrentNet, data: TrainData, loss: str
) -> tuple[float, list[torch.Tensor]]:
    """The batch's loss and gradients from a float64 copy of the network: the switch leaves
    it to nn.RNN, nn.GRU and nn.LSTM; torch.nn's losses."""
    net64 = copy.deepcopy(net).double()
    net64.train()
    batch = TrainData(data.window.double(), data.season.double(), data.target.double())
    assert not native.compiled(batch.window, *trained_tensors(net64))
    losses = {"huber": nn.HuberLoss(delta=1.0), "mse": nn.MSELoss(), "mae": nn.L1Loss()}
    value = batch_loss(net64, batch, losses[loss], seq2seq=False)
    return float(value.detach()), list(torch.autograd.grad(value, trained_tensors(net64)))


def step_gradients(
    net: RecurrentNet, batches: list[TrainData], loss: str, head: str, repeat: int = 1
) -> list[tuple[float, list[torch.Tensor]]]:
    """The training step's (loss, gradients) for each batch in turn, as train() takes them:
    one CompiledStep for all batches (``compiled``), or, for an output layer over HEAD_IN_C
    weights (``autograd``), the training loop's autograd step."""
    parameters = FlatParameters(net, trained_tensors(net))
    limit = 10**9 if head == "compiled" else 0
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(compiled_step, "HEAD_IN_C", limit)
            step = CompiledStep.create(net, parameters, loss, seq2seq=False)
        assert (step is not None) == (head == "compiled")
        results = []
        for batch in batches:
            parameters.grad.fill_(float("nan"))  # every gradient must be written
            for _ in range(repeat):
                if step is not None:
                    value = step(batch.window, batch.season, batch.target)
                else:
                    value = loop._autograd_step(net, batch, loss_function(loss), False, parameters)
            results.append((value, [t.grad.clone() for t in trained_tensors(net)]))  # type: ignore[union-attr]
        if step is not None:
            assert step.plan is not None and type(step.plan[2]) is native.HeadLoss
        return results
    finally:
        parameters.release()


# ============================================================ the same gradients as autograd
@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"cell": "lstm"},
        {"cell": "gru", "bidirectional": True},
        {"bidirectional": True},
        {"cell": "lstm", "bidirectional": True, "num_layers": 3},
        {"num_layers": 1, "skip": False, "season_size": 0},
        {"cell": "lstm", "hidden_size": 8, "input_size": 1, "horizon": 1, "n_targets": 1},
        {"cell": "lstm", "num_layers": 1, "dropout": 0.5},  # dropout needs two layers
    ],
)
@pytest.mark.parametrize("head", HEADS)
def test_loss_and_every_gradient_match_autograd(
    loss: str, changes: dict[str, Any], head: str
) -> None:
    net, data = net_and_batch(**changes)
    if head == "compiled":  # against autograd on the same float32 network
        want_value, want = autograd_gradients(net, data, loss)
        rel, rtol, atol = 1e-6, 1e-5, 1e-6
    else:  # the autograd step itself: against the float64 network
        want_value, want = float64_gradients(net, data, loss)
        rel, rtol, atol = 1e-5, 1e-4, 1e-5
    [(value, got)] = step_gradients(net, [data], loss, head)
    assert value == pytest.approx(want_value, rel=rel)
    for ours, theirs in zip(got, want, strict=True):
        close(ours, theirs, rtol, atol)


def step_configs() -> list[dict[str, Any]]:
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
                head=HEADS[(index // 6) % 2],
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


@pytest.mark.parametrize("case", step_configs(), ids=_config_id)
def test_the_training_step_matches_the_float64_network(case: dict[str, Any]) -> None:
    """Hidden sizes 1/3/9/17, batches 1/2/33/65, every cell, loss and kernel."""
    case = dict(case)
    batch, loss, head, kernel, seed = (
        case.pop(k) for k in ("batch", "loss", "head", "kernel", "seed")
    )
    select(kernel)
    net = make_net(seed, **case)
    data = make_data(net.config, batch, seed)
    want_value, want = float64_gradients(net, data, loss)
    [(value, got)] = step_gradients(net, [data], loss, head)
    assert value == pytest.approx(want_value, rel=1e-5, abs=1e-6)
    for name, a, b in zip([*net.weight_names, "head.weight", "head.bias"], got, want, strict=True):
        assert torch.isfinite(a).all(), name
        close(a, b)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("loss", ["huber", "mae"])
@pytest.mark.parametrize(
    ("cell", "bidirectional"), [("rnn", True), ("gru", False), ("gru", True), ("lstm", True)]
)
def test_the_training_step_at_errors_of_exactly_zero_and_one(
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
    [(value, got)] = step_gradients(net, [data], loss, head)
    assert value == pytest.approx(want_value, rel=1e-6, abs=1e-7)
    for a, b in zip(got, want, strict=True):
        close(a, b, rtol=1e-5, atol=1e-6)
    assert any(bool(a.abs().sum() > 0) for a in got[:-2])  # the stack got a gradient


def test_an_output_layer_over_head_in_c_weights_trains_through_autograd() -> None:
    """No patched limit: a long window makes the output layer itself too large to compile."""
    net = make_net(
        2, input_size=2, window=200, season_size=3, horizon=24, n_targets=1, cell="gru",
        hidden_size=5, num_layers=1,
    )  # fmt: skip
    assert net.head.weight.numel() > HEAD_IN_C
    data = make_data(net.config, 5, 3)
    parameters = FlatParameters(net, trained_tensors(net))
    try:
        assert CompiledStep.create(net, parameters, "huber", seq2seq=False) is None
        value = loop._autograd_step(net, data, loss_function("huber"), False, parameters)
        got = [t.grad.clone() for t in trained_tensors(net)]  # type: ignore[union-attr]
    finally:
        parameters.release()
    want_value, want = float64_gradients(net, data, "huber")
    assert value == pytest.approx(want_value, rel=1e-5)
    for a, b in zip(got, want, strict=True):
        close(a, b)


# ========================================================= batches, views and the plans
def test_a_repeated_step_on_strided_batches_gives_the_same_gradients() -> None:
    net, data = net_and_batch(batch=9, cell="lstm", bidirectional=True)
    rows = torch.arange(0, 9, 2)  # a gathered view, as the training loop slices its batches
    batch = data.take(rows)
    wide = torch.randn(5, 6, 4)
    wide[:, :, ::2] = batch.window
    wide_target = torch.randn(5, 2, 4)
    wide_target[:, :, ::2] = batch.target
    wide_season = torch.randn(5, 3, 2)
    wide_season[:, :, 0] = batch.season
    strided = TrainData(wide[:, :, ::2], wide_season[:, :, 0], wide_target[:, :, ::2])
    _, expected = autograd_gradients(net, batch, "huber")
    [(_, got)] = step_gradients(net, [strided], "huber", "compiled", repeat=3)
    for ours, theirs in zip(got, expected, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_the_training_step_on_strided_batch_views(loss: str) -> None:
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
    [(value, got)] = step_gradients(net, [data], loss, "compiled")
    assert value == pytest.approx(want_value, rel=1e-5, abs=1e-6)
    for a, b in zip(got, want, strict=True):
        close(a, b)


def test_a_smaller_last_batch_is_right_and_leaves_the_full_batches_plan() -> None:
    net, data = net_and_batch(batch=10, cell="lstm")
    full, last = data.take(slice(0, 7)), data.take(slice(7, 10))
    parameters = FlatParameters(net, loop.used_parameters(net, data, TrainConfig()))
    try:
        step = CompiledStep.create(net, parameters, "huber", seq2seq=False)
        assert step is not None
        for batch in (full, last, full):
            step(batch.window, batch.season, batch.target)
            got = parameters.grad.clone()
            parameters.grad.zero_()
            batch_loss(net, batch, loss_function("huber"), seq2seq=False).backward()  # type: ignore[no-untyped-call]
            torch.testing.assert_close(got, parameters.grad, rtol=1e-5, atol=1e-6)
        assert step.plan is not None and step.plan[0] == tuple(full.window.shape)
    finally:
        parameters.release()


def test_the_training_step_reads_weights_changed_in_place_between_steps() -> None:
    """The plan keeps pointers into the flat buffers: an optimiser's in-place update must be
    seen by the next step, and a smaller batch in between must not disturb the plan."""
    net = make_net(
        0, input_size=3, window=5, season_size=2, horizon=2, n_targets=1, cell="gru",
        hidden_size=9, num_layers=2, bidirectional=True,
    )  # fmt: skip
    full, small = make_data(net.config, 33, 1), make_data(net.config, 2, 2)
    parameters = FlatParameters(net, trained_tensors(net))
    try:
        step = CompiledStep.create(net, parameters, "huber", seq2seq=False)
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


# ===================================================================== refusals
def small_gru() -> tuple[RecurrentNet, TrainData]:
    """One GRU layer of 5 on windows of 4 steps × 2 channels, and a batch of 6 for it."""
    net = make_net(
        0, input_size=2, window=4, season_size=3, horizon=2, n_targets=1, cell="gru",
        hidden_size=5, num_layers=1,
    )  # fmt: skip
    return net, make_data(net.config, 6, 1)


def record_compiled_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Records the compiled stack's and output layer's calls instead of running them, so that
    an unchecked call corrupts nothing."""
    ran: list[Any] = []
    monkeypatch.setattr(binding, "run", lambda calls: ran.extend(calls))
    monkeypatch.setattr(native.HeadLoss, "__call__", lambda self, *args: ran.append(args))
    return ran


def test_a_float64_target_is_refused() -> None:
    net, data = small_gru()
    target64 = data.target.double()
    parameters = FlatParameters(net, trained_tensors(net))
    try:
        step = CompiledStep.create(net, parameters, "mse", seq2seq=False)
        assert step is not None
        with pytest.raises(ValueError, match="takes float32 pieces and targets"):
            step(data.window, data.season, target64)
    finally:
        parameters.release()


def test_a_window_whose_channels_do_not_fit_is_refused_before_any_compiled_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net, data = small_gru()
    wrong = torch.randn(6, 4, 3)
    with pytest.raises(ValueError, match="do not fit"):  # the autograd path refuses it
        batch_loss(net, TrainData(wrong, data.season, data.target), loss_function("mse"), False)
    parameters = FlatParameters(net, trained_tensors(net))
    try:
        step = CompiledStep.create(net, parameters, "mse", seq2seq=False)
        assert step is not None
        ran = record_compiled_calls(monkeypatch)
        with pytest.raises(ValueError, match="do not fit a gru stack of 1 layer"):
            step(wrong, data.season, data.target)
        assert not ran, "the compiled code was called with weights that do not fit"
    finally:
        parameters.release()


@pytest.mark.parametrize("first", ["right_length", "too_long"])
def test_a_window_of_the_wrong_length_is_refused_before_any_compiled_call(
    first: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    net, data = small_gru()
    longer = torch.randn(6, 5, 2)
    with pytest.raises(RuntimeError):  # the autograd path refuses it
        batch_loss(net, TrainData(longer, data.season, data.target), loss_function("mse"), False)
    parameters = FlatParameters(net, trained_tensors(net))
    try:
        step = CompiledStep.create(net, parameters, "mse", seq2seq=False)
        assert step is not None
        if first == "right_length":  # the plan made for the right shape, then another shape
            step(data.window, data.season, data.target)
        ran = record_compiled_calls(monkeypatch)
        with pytest.raises(ValueError, match="add up to its weight's columns"):
            step(longer, data.season, data.target)
        assert not ran, "the compiled code was called with an output layer that does not fit"
        step(data.window, data.season, data.target)
        assert ran  # the probe does see the calls of a step that fits
    finally:
        parameters.release()


@pytest.mark.parametrize(
    ("changes", "seq2seq"),
    [
        ({"conv_channels": 3}, False),
        ({"num_layers": 2, "dropout": 0.2}, False),
        ({}, True),
    ],
)
def test_outside_the_fixed_chain_training_uses_autograd(
    changes: dict[str, Any], seq2seq: bool
) -> None:
    net, data = net_and_batch(**changes)
    parameters = FlatParameters(net, loop.used_parameters(net, data, TrainConfig()))
    try:
        assert CompiledStep.create(net, parameters, "huber", seq2seq) is None
    finally:
        parameters.release()


def test_a_frozen_or_extra_tensor_leaves_training_to_autograd() -> None:
    net, _ = net_and_batch()
    net.head.bias.requires_grad_(False)
    parameters = FlatParameters(net)
    try:
        assert CompiledStep.create(net, parameters, "huber", False) is None
    finally:
        parameters.release()


def test_without_the_compiled_recurrence_training_uses_autograd(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net, data = net_and_batch()
    monkeypatch.setattr(native, "available", lambda: False)
    assert not native.compiled(data.window, *trained_tensors(net), cell="rnn")
    parameters = FlatParameters(net)
    try:
        assert CompiledStep.create(net, parameters, "huber", False) is None
    finally:
        parameters.release()


# ========================================================== whole training runs
Run = tuple[History, dict[str, torch.Tensor]]


def train_both_ways(
    make: Callable[[], tuple[RecurrentNet, TrainData]],
    config: TrainConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Run, Run]:
    """(history, final weights) of training with the compiled step (checked to run), then
    with CompiledStep.create refusing, so that every step goes through autograd."""

    def run() -> Run:
        net, data = make()
        history = train(net, data, None, config)
        assert history.epochs == config.epochs
        return history, {k: v.clone() for k, v in net.state_dict().items()}

    created: list[Any] = []
    original = CompiledStep.create.__func__  # type: ignore[attr-defined]

    def spy(cls: Any, *args: Any) -> Any:
        created.append(original(cls, *args))
        return created[-1]

    with monkeypatch.context() as patch:
        patch.setattr(CompiledStep, "create", classmethod(spy))
        compiled = run()
    assert created and all(step is not None for step in created)  # the compiled step ran
    with monkeypatch.context() as patch:
        patch.setattr(CompiledStep, "create", classmethod(lambda *args: None))
        plain = run()
    return compiled, plain


@pytest.mark.parametrize("changes", [{"cell": "lstm", "bidirectional": True}, {"cell": "gru"}, {}])
def test_training_follows_the_autograd_path(
    changes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole training runs (Adam, clipping, a last batch of another size) agree."""
    config = TrainConfig(epochs=4, batch_size=8, patience=0, seed=3)
    (history, state), (plain, plain_state) = train_both_ways(
        lambda: net_and_batch(batch=45, **changes), config, monkeypatch
    )
    assert history.train_loss == pytest.approx(plain.train_loss, rel=1e-4)
    assert history.best_epoch == plain.best_epoch
    for key, value in plain_state.items():
        torch.testing.assert_close(state[key], value, rtol=1e-4, atol=1e-5)


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
def test_training_with_and_without_the_compiled_step_agrees(
    changes: dict[str, Any], windows: int, settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    base: dict[str, Any] = dict(input_size=2, window=5, season_size=3, horizon=2, n_targets=2)
    base.update(changes)
    config = TrainConfig(epochs=4, patience=0, seed=5, **settings)

    def make() -> tuple[RecurrentNet, TrainData]:
        net = make_net(1, **base)
        return net, make_data(net.config, windows, 9)

    (history, state), (plain, plain_state) = train_both_ways(make, config, monkeypatch)
    assert history.train_loss == pytest.approx(plain.train_loss, rel=1e-4, abs=1e-6)
    for key, value in plain_state.items():
        torch.testing.assert_close(state[key], value, rtol=1e-4, atol=1e-5)
