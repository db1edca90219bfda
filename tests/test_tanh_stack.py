"""The wavefront tanh stack against nn.RNN (the oracle) and finite differences."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqcast._native import binding as native
from seqcast._native.tanh_stack_tmp import tanh_stack
from seqcast.networks import RecurrentConfig, RecurrentNet


def rnn_and_input(
    layers: int, features: int = 3
) -> tuple[nn.RNN, torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(layers)
    rnn = nn.RNN(features, 5, layers, batch_first=True).double()
    x = torch.randn(4, 6, features, dtype=torch.double, requires_grad=True)
    weights = [getattr(rnn, n) for n in rnn._flat_weights_names]
    return rnn, x, weights


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("last_only", [False, True])
def test_outputs_and_gradients_match_nn_rnn(layers: int, last_only: bool) -> None:
    rnn, x, weights = rnn_and_input(layers)
    want, _ = rnn(x)
    if last_only:
        want = want[:, -1:]
    got = tanh_stack(x, weights, layers, last_only=last_only)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(want)
    grads_want = torch.autograd.grad(want, [x, *weights], upstream)
    grads_got = torch.autograd.grad(got, [x, *weights], upstream)
    for a, b in zip(grads_got, grads_want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_gradcheck(layers: int) -> None:
    _, x, weights = rnn_and_input(layers, features=2)
    assert torch.autograd.gradcheck(
        lambda x, *w: tanh_stack(x, list(w), layers), (x, *weights), eps=1e-6, atol=1e-5
    )


@pytest.mark.parametrize("last_only", [False, True])
def test_without_gradients_it_keeps_two_buffers_and_gives_the_same(last_only: bool) -> None:
    rnn, x, weights = rnn_and_input(2)
    with torch.no_grad():
        want, _ = rnn(x)
        got = tanh_stack(x, weights, 2, last_only=last_only)
    torch.testing.assert_close(got, want[:, -1:] if last_only else want, rtol=1e-12, atol=1e-12)


def test_a_slow_loop_agrees_in_float32() -> None:
    torch.manual_seed(3)
    rnn = nn.RNN(1, 40, 2, batch_first=True)
    x = torch.randn(32, 20, 1)
    h = [torch.zeros(32, 40), torch.zeros(32, 40)]
    for t in range(20):  # the recurrence by hand
        inp = x[:, t]
        for layer in range(2):
            w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
            b = getattr(rnn, f"bias_ih_l{layer}") + getattr(rnn, f"bias_hh_l{layer}")
            h[layer] = torch.tanh(inp @ w_ih.T + h[layer] @ w_hh.T + b)
            inp = h[layer]
    weights = [getattr(rnn, n) for n in rnn._flat_weights_names]
    with torch.no_grad():
        got = tanh_stack(x, weights, 2, last_only=True)[:, 0]
    torch.testing.assert_close(got, h[1].detach(), rtol=1e-5, atol=1e-5)


def test_wrong_weight_count_is_refused() -> None:
    _, x, weights = rnn_and_input(2)
    with pytest.raises(ValueError, match="every layer"):
        tanh_stack(x, weights[:4], 2)


def config(**changes: object) -> RecurrentConfig:
    settings: dict[str, object] = dict(
        input_size=2, window=7, season_size=0, horizon=1, n_targets=1
    )
    settings.update(changes)
    return RecurrentConfig(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "in_training"),
    [
        ({}, "fast"),
        ({"conv_channels": 4}, "fast"),
        ({"bidirectional": True}, "fast"),
        ({"cell": "lstm"}, "fast"),
        ({"cell": "gru"}, "fast"),
        ({"dropout": 0.2}, "module"),  # in eval mode dropout is off and it is fast
    ],
)
def test_the_network_uses_a_fast_path_where_it_computes_the_same(
    changes: dict[str, object], in_training: str
) -> None:
    torch.manual_seed(0)
    net = RecurrentNet(config(**changes))
    window = torch.randn(5, 7, 2)
    tanh_only = changes.get("cell", "rnn") == "rnn" and "bidirectional" not in changes
    fast = "native" if native.available() else "tanh_stack"
    if fast == "tanh_stack" and not tanh_only:
        fast = "module"
    net.train()
    assert net.recurrence(window) == (fast if in_training == "fast" else "module")
    fast_double = tanh_only and in_training == "fast"
    assert net.recurrence(window.double()) == ("tanh_stack" if fast_double else "module")
    net.eval()
    assert net.recurrence(window) == fast
    window = torch.randn(5, 7, 2)
    with torch.no_grad():
        got = net.sequence(window)
        want = net.rnn(
            window
            if net.conv is None
            else torch.relu(net.conv(nn.functional.pad(window.transpose(1, 2), (4, 0)))).transpose(
                1, 2
            )
        )[0]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
