"""The fused training step against autograd: the same loss and the same gradients."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import seqcast.training.compiled_step as fused_module
import seqcast.training.loop as loop
from seqcast._native import binding as native
from seqcast.networks import RecurrentConfig, RecurrentNet
from seqcast.training.compiled_step import FusedStep
from seqcast.training.loop import TrainConfig, TrainData, batch_loss, loss_function, train
from seqcast.training.optimizer import FlatParameters

pytestmark = pytest.mark.skipif(not native.available(), reason="no compiled recurrence")


def make(batch: int = 7, **changes: Any) -> tuple[RecurrentNet, TrainData]:
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


def autograd_gradients(net: RecurrentNet, data: TrainData, loss: str) -> tuple[float, list[Any]]:
    net.zero_grad()
    value = batch_loss(net, data, loss_function(loss), seq2seq=False)
    value.backward()  # type: ignore[no-untyped-call]
    tensors = [getattr(net.rnn, name) for name in net.weight_names] + [
        net.head.weight,
        net.head.bias,
    ]
    return float(value.detach()), [t.grad.clone() for t in tensors]


def fused_gradients(
    net: RecurrentNet, data: TrainData, loss: str, repeat: int = 1
) -> tuple[float, list[Any]]:
    parameters = FlatParameters(net, loop.used_parameters(net, data, TrainConfig()))
    try:
        step = FusedStep.create(net, parameters, loss, seq2seq=False)
        assert step is not None
        parameters.grad.fill_(float("nan"))  # every gradient must be written, not added to
        for _ in range(repeat):
            value = step(data.window, data.season, data.target)
        tensors = [getattr(net.rnn, name) for name in net.weight_names] + [
            net.head.weight,
            net.head.bias,
        ]
        return value, [t.grad.clone() for t in tensors]  # type: ignore[union-attr]
    finally:
        parameters.release()


@pytest.mark.parametrize("loss", ["huber", "mse", "mae"])
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
@pytest.mark.parametrize("head", ["compiled", "torch"])
def test_loss_and_every_gradient_match_autograd(
    loss: str, changes: dict[str, Any], head: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if head == "torch":  # the output layer in PyTorch operations, as for large layers
        monkeypatch.setattr(fused_module, "HEAD_IN_C", 0)
    net, data = make(**changes)
    expected_loss, expected = autograd_gradients(net, data, loss)
    got_loss, got = fused_gradients(net, data, loss)
    assert got_loss == pytest.approx(expected_loss, rel=1e-6)
    for ours, theirs in zip(got, expected, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_a_repeated_step_on_strided_batches_gives_the_same_gradients() -> None:
    net, data = make(batch=9, cell="lstm", bidirectional=True)
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
    _, got = fused_gradients(net, strided, "huber", repeat=3)
    for ours, theirs in zip(got, expected, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


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
    net, data = make(**changes)
    parameters = FlatParameters(net, loop.used_parameters(net, data, TrainConfig()))
    try:
        assert FusedStep.create(net, parameters, "huber", seq2seq) is None
    finally:
        parameters.release()


def test_a_frozen_or_extra_tensor_leaves_training_to_autograd() -> None:
    net, _ = make()
    net.head.bias.requires_grad_(False)
    parameters = FlatParameters(net)
    try:
        assert FusedStep.create(net, parameters, "huber", False) is None
    finally:
        parameters.release()


def test_without_the_compiled_recurrence_training_uses_autograd(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net, _ = make()
    monkeypatch.setattr(native, "available", lambda: False)
    parameters = FlatParameters(net)
    try:
        assert FusedStep.create(net, parameters, "huber", False) is None
    finally:
        parameters.release()


@pytest.mark.parametrize("changes", [{"cell": "lstm", "bidirectional": True}, {"cell": "gru"}, {}])
def test_training_follows_the_autograd_path(
    changes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole training runs (Adam, clipping, a last batch of another size) agree."""
    net, data = make(batch=45, **changes)
    config = TrainConfig(epochs=4, batch_size=8, patience=0, seed=3)
    fused = train(net, data, None, config)
    fused_state = {k: v.clone() for k, v in net.state_dict().items()}
    net, data = make(batch=45, **changes)
    monkeypatch.setattr(FusedStep, "create", classmethod(lambda *args: None))
    plain = train(net, data, None, config)
    assert fused.train_loss == pytest.approx(plain.train_loss, rel=1e-4)
    assert fused.best_epoch == plain.best_epoch
    for key, value in net.state_dict().items():
        torch.testing.assert_close(fused_state[key], value, rtol=1e-4, atol=1e-5)


def test_a_smaller_last_batch_is_right_and_leaves_the_full_batches_plan() -> None:
    net, data = make(batch=10, cell="lstm")
    full, last = data.take(slice(0, 7)), data.take(slice(7, 10))
    parameters = FlatParameters(net, loop.used_parameters(net, data, TrainConfig()))
    try:
        step = FusedStep.create(net, parameters, "huber", seq2seq=False)
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


def test_the_compiled_output_layer_refuses_pieces_it_was_not_prepared_for() -> None:
    weight = torch.zeros(2, 5, requires_grad=True)
    bias = torch.zeros(2, requires_grad=True)
    weight.grad, bias.grad = torch.zeros(2, 5), torch.zeros(2)
    state = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="add up"):
        native.HeadPlan(weight, bias, "huber", [(state, None)], [3])  # 3 + 3 columns, not 5
    head = native.HeadPlan(weight, bias, "huber", [(state, None)], [2])
    assert head([torch.zeros(4, 2)], torch.zeros(4, 2)) == 0.0
    with pytest.raises(ValueError, match="takes pieces"):
        head([torch.zeros(4, 3)], torch.zeros(4, 2))
    with pytest.raises(ValueError, match="takes pieces"):
        head([torch.zeros(4, 2)], torch.zeros(5, 2))
    with pytest.raises(ValueError, match="float32"):
        head([torch.zeros(4, 2, dtype=torch.float64)], torch.zeros(4, 2))


def test_the_compiled_adam_step_refuses_tensors_of_different_sizes() -> None:
    a, b = torch.zeros(8), torch.zeros(7)
    with pytest.raises(ValueError, match="one size"):
        native.adam_step(a, a, a, b, (0.1, 0.999, 0.001, 1e-8, -1.0, 1.0, 0.0, 1.0), False)
