"""The compiled recurrence (seqcast/_native/stack.py on recurrence.c): recurrent_stack, its
autograd function, CompiledStack, forecasts on threads, vector against plain kernels, the switch
``compiled`` between it and PyTorch, and RecurrentNet on either side of the switch.

Oracles: nn.RNN / nn.GRU / nn.LSTM in float64 (float32 where two float32 paths must agree to the
bit or nearly), the recurrences written out by hand, and finite differences.

Reviews of this code found bugs that these tests keep fixed: NaN became ±1 in the AVX2 tanh
(its clamp dropped NaN), an empty batch without gradients raised, float64 tensors were read as
float32 bits, a second derivative silently left out the recurrence's terms, a weight changed in
place between forward and backward went unnoticed, and a second backward pass through a retained
graph overwrote the gradients the first one had returned.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from kernels import (
    KERNELS,
    close,
    float64_copy,
    make_module,
    needs_library,
    one_thread_and_vector_kernels,  # noqa: F401  (a fixture)
    run_stack,
    select,
    weights_of,
)
from torch import nn

from seqcast import _native as native
from seqcast._native import binding
from seqcast._native.stack import BLOCK_ROWS
from seqcast.networks import RecurrentConfig, RecurrentNet

pytestmark = [needs_library, pytest.mark.usefixtures("one_thread_and_vector_kernels")]


def module_and_input(
    cell: str, layers: int, hidden: int, bidirectional: bool, features: int = 3, batch: int = 37
) -> tuple[nn.RNNBase, torch.Tensor]:
    """A float32 module and an input of 21 steps that asks for its gradient."""
    module = make_module(cell, features, hidden, layers, bidirectional, seed=layers * 100 + hidden)
    return module, torch.randn(batch, 21, features, requires_grad=True)


def tanh_rnn_and_input(layers: int, features: int = 3) -> tuple[nn.RNN, torch.Tensor]:
    """A float32 tanh nn.RNN of 5 units and an input (4, 6, features) that asks for its
    gradient."""
    torch.manual_seed(layers)
    rnn = nn.RNN(features, 5, layers, batch_first=True)
    return rnn, torch.randn(4, 6, features, requires_grad=True)


def assert_gradients_match(
    got: torch.Tensor,
    want: torch.Tensor,
    got_inputs: list[torch.Tensor],
    want_inputs: list[torch.Tensor],
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> None:
    """Every gradient of ``got`` (float32) and ``want`` (its float64 oracle) under one random
    upstream gradient."""
    upstream = torch.randn(want.shape, dtype=torch.float64)
    got_grads = torch.autograd.grad(got, got_inputs, upstream.to(got.dtype))
    want_grads = torch.autograd.grad(want, want_inputs, upstream.to(want.dtype))
    for a, b in zip(got_grads, want_grads, strict=True):
        assert a.shape == b.shape
        close(a, b, rtol, atol)


# ================================================================== the build and the switch
def test_it_is_built_where_a_compiler_is() -> None:
    """A silent fallback to PyTorch would hide a broken build: on x86-64 Linux with a C
    compiler (CI, the project machine) the compiled part must load."""
    if platform.machine() != "x86_64" or shutil.which("cc") is None:
        pytest.skip("no x86-64 C compiler here")
    assert importlib.util.find_spec("seqcast._native._recurrence") is not None
    if os.environ.get("SEQCAST_NATIVE", "1") != "0":
        assert native.available()


def test_it_can_be_turned_off() -> None:
    code = (
        "import torch; from seqcast import _native; "
        "print(_native.available(), _native.compiled(torch.zeros(1), cell='rnn'))"
    )
    env = {**os.environ, "SEQCAST_NATIVE": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False False", out.stderr


SWITCH_CASES: dict[str, tuple[Callable[[], list[torch.Tensor]], str | None, bool]] = {
    # tensors, cell, whether the compiled code runs them
    "float32": (lambda: [torch.zeros(2, 3), torch.zeros(3)], None, True),
    "float32_gru": (lambda: [torch.zeros(2, 3)], "gru", True),
    "float32_lstm": (lambda: [torch.zeros(2, 3)], "lstm", True),
    "unknown_cell": (lambda: [torch.zeros(2, 3)], "tanh", False),
    "float64": (lambda: [torch.zeros(2, 3, dtype=torch.float64)], "rnn", False),
    "one_float64_among_float32": (
        lambda: [torch.zeros(2), torch.zeros(2, dtype=torch.float64)],
        None,
        False,
    ),
    "bfloat16": (lambda: [torch.zeros(2, 3, dtype=torch.bfloat16)], "rnn", False),
    "meta_device": (lambda: [torch.zeros(2, 3, device="meta")], "rnn", False),
}


@pytest.mark.parametrize("case", list(SWITCH_CASES))
def test_the_switch_runs_only_float32_cpu_tensors_of_a_known_cell(case: str) -> None:
    tensors, cell, expected = SWITCH_CASES[case]
    assert native.compiled(*tensors(), cell=cell) is expected


# ====================================================== against the PyTorch modules
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize(("layers", "hidden"), [(1, 8), (2, 40), (3, 13)])
def test_outputs_and_every_gradient_match_the_pytorch_module(
    kernel: str, cell: str, bidirectional: bool, layers: int, hidden: int
) -> None:
    select(kernel)
    module, x = module_and_input(cell, layers, hidden, bidirectional)
    want, _ = module(x)
    got = native.recurrent_stack(x, weights_of(module), cell, layers, bidirectional)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-6)
    upstream = torch.randn_like(want)
    inputs = [x, *weights_of(module)]
    for a, b in zip(
        torch.autograd.grad(got, inputs, upstream),
        torch.autograd.grad(want, inputs, upstream),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5)


# cell, features, hidden, layers, bidirectional, batch, steps: hidden sizes off the multiples
# of 8 (and 1), odd feature counts, batches around the 32-row blocks and the 4-row
# micro-kernel, windows of 1 and 2 steps, 3 and 4 layers.
ODD_SHAPES = [
    ("rnn", 1, 1, 1, False, 1, 1),
    ("lstm", 1, 1, 1, False, 3, 2),
    ("rnn", 7, 7, 3, False, 33, 5),
    ("lstm", 8, 9, 3, False, 31, 4),
    ("rnn", 9, 17, 2, True, 65, 3),
    ("lstm", 33, 7, 2, True, 32, 5),
    ("rnn", 33, 1, 4, True, 3, 2),
    ("lstm", 9, 1, 4, True, 200, 3),
    ("lstm", 7, 17, 4, False, 65, 6),
    ("rnn", 8, 9, 1, True, 200, 1),
    ("lstm", 1, 9, 2, True, 1, 1),
    ("rnn", 1, 24, 3, False, 200, 7),
    ("lstm", 3, 24, 1, True, 5, 2),
]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(
    ("cell", "features", "hidden", "layers", "bidirectional", "batch", "steps"), ODD_SHAPES
)
def test_odd_shapes_match_the_float64_module_with_every_gradient(
    kernel: str,
    cell: str,
    features: int,
    hidden: int,
    layers: int,
    bidirectional: bool,
    batch: int,
    steps: int,
) -> None:
    select(kernel)
    module = make_module(cell, features, hidden, layers, bidirectional, seed=features * 31 + hidden)
    oracle = float64_copy(module)
    x = torch.randn(batch, steps, features, requires_grad=True)
    x64 = x.detach().double().requires_grad_()
    got = run_stack(module, x)
    want, _ = oracle(x64)
    assert got.shape == (batch, steps, hidden * (2 if bidirectional else 1))
    assert got.dtype == torch.float32
    rtol, atol = (3e-4, 3e-5) if layers >= 4 else (1e-4, 1e-5)
    close(got, want, rtol, atol)
    assert_gradients_match(
        got, want, [x, *weights_of(module)], [x64, *weights_of(oracle)], rtol, atol
    )


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


@pytest.mark.parametrize("kernel", KERNELS)
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
    module = make_module(
        "gru", features, hidden, layers, bidirectional, seed=features * 31 + hidden
    )
    oracle = float64_copy(module)
    source = torch.randn(batch, steps, 2 * features + 1, requires_grad=True)
    source64 = source.detach().double().requires_grad_()
    x, x64 = source[:, :, 1::2], source64[:, :, 1::2]  # channels with stride 2
    got = native.recurrent_stack(x, weights_of(module), "gru", layers, bidirectional)
    want, _ = oracle(x64)
    close(got, want)
    assert_gradients_match(
        got, want, [source, *weights_of(module)], [source64, *weights_of(oracle)]
    )
    with torch.no_grad():  # the forecasting path gives the training path's bits
        again = native.recurrent_stack(x, weights_of(module), "gru", layers, bidirectional)
    assert torch.equal(again, got.detach())


@pytest.mark.parametrize("kernel", KERNELS)
def test_lstm_matches_the_recurrence_written_out_by_hand(kernel: str) -> None:
    """The oracle is the LSTM's defining equations in float64, step by step."""
    select(kernel)
    module, x = module_and_input("lstm", 1, 6, False, batch=4)
    w_ih, w_hh, b_ih, b_hh = (w.detach().double() for w in weights_of(module))
    h = c = torch.zeros(4, 6, dtype=torch.float64)
    outputs = []
    for t in range(x.shape[1]):
        gates = x[:, t].detach().double() @ w_ih.T + h @ w_hh.T + b_ih + b_hh
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    with torch.no_grad():
        got = native.recurrent_stack(x, weights_of(module), "lstm", 1)
    torch.testing.assert_close(got.double(), torch.stack(outputs, 1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", KERNELS)
def test_gru_matches_the_recurrence_written_out_by_hand(kernel: str) -> None:
    """The oracle is the GRU's defining equations (PyTorch's) in float64, step by step."""
    select(kernel)
    module, x = module_and_input("gru", 1, 6, False, batch=4)
    w_ih, w_hh, b_ih, b_hh = (w.detach().double() for w in weights_of(module))
    h = torch.zeros(4, 6, dtype=torch.float64)
    outputs = []
    for t in range(x.shape[1]):
        x_r, x_z, x_n = (x[:, t].detach().double() @ w_ih.T + b_ih).chunk(3, dim=1)
        h_r, h_z, h_n = (h @ w_hh.T + b_hh).chunk(3, dim=1)
        reset, update = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        fresh = torch.tanh(x_n + reset * h_n)
        h = (1 - update) * fresh + update * h
        outputs.append(h)
    with torch.no_grad():
        got = native.recurrent_stack(x, weights_of(module), "gru", 1)
    torch.testing.assert_close(got.double(), torch.stack(outputs, 1), rtol=1e-5, atol=1e-6)


def test_the_tanh_recurrence_written_out_by_hand_agrees_in_float32() -> None:
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
    with torch.no_grad():
        got = run_stack(rnn, x)[:, -1]
    torch.testing.assert_close(got, h[1].detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("last_step", [False, True])
def test_tanh_stack_matches_float64_nn_rnn(layers: int, last_step: bool) -> None:
    """All steps, or the last step alone (what the output layer reads), and their gradients."""
    rnn, x = tanh_rnn_and_input(layers)
    oracle = float64_copy(rnn)
    x64 = x.detach().double().requires_grad_()
    got, want = run_stack(rnn, x), oracle(x64)[0]
    if last_step:
        got, want = got[:, -1:], want[:, -1:]
    assert got.shape == want.shape == (4, 1 if last_step else 6, 5)
    close(got, want)
    assert_gradients_match(got, want, [x, *weights_of(rnn)], [x64, *weights_of(oracle)])


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("last_step", [False, True])
def test_wide_inputs_match_float64_nn_rnn(layers: int, last_step: bool) -> None:
    """Six input channels: more than one 4-wide block of the input product."""
    rnn, x = tanh_rnn_and_input(layers, features=6)
    oracle = float64_copy(rnn)
    x64 = x.detach().double().requires_grad_()
    got, want = run_stack(rnn, x), oracle(x64)[0]
    if last_step:
        got, want = got[:, -1:], want[:, -1:]
    close(got, want)
    assert_gradients_match(got, want, [x, *weights_of(rnn)], [x64, *weights_of(oracle)])
    with torch.no_grad():
        forecast = run_stack(rnn, x)
    close(forecast[:, -1:] if last_step else forecast, want)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_tanh_stack_gradients_match_finite_differences(layers: int) -> None:
    """Each input's and weight's gradient along a random direction against central
    differences of float64 nn.RNN (no autograd in the oracle)."""
    rnn, x = tanh_rnn_and_input(layers, features=2)
    generator = torch.Generator().manual_seed(layers)
    upstream = torch.randn(4, 6, 5, generator=generator, dtype=torch.float64)
    got = run_stack(rnn, x)
    grads = torch.autograd.grad(got, [x, *weights_of(rnn)], upstream.float())
    oracle = float64_copy(rnn)
    x64 = x.detach().double()

    def value() -> float:
        with torch.no_grad():
            return float((oracle(x64)[0] * upstream).sum())

    eps = 1e-6
    for tensor, grad in zip([x64, *weights_of(oracle)], grads, strict=True):
        direction = torch.randn(tensor.shape, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            start = tensor.clone()
            tensor.add_(eps * direction)
            plus = value()
            tensor.copy_(start - eps * direction)
            minus = value()
            tensor.copy_(start)
        numeric = (plus - minus) / (2 * eps)
        assert float((grad.double() * direction).sum()) == pytest.approx(
            numeric, rel=1e-4, abs=1e-5
        )


@pytest.mark.parametrize("last_step", [False, True])
def test_tanh_stack_without_gradients_matches_nn_rnn(last_step: bool) -> None:
    rnn, x = tanh_rnn_and_input(2)
    with torch.no_grad():
        got = run_stack(rnn, x)
        want, want32 = float64_copy(rnn)(x.double())[0], rnn(x)[0]
    assert not got.requires_grad
    if last_step:
        got, want, want32 = got[:, -1:], want[:, -1:], want32[:, -1:]
    close(got, want)
    torch.testing.assert_close(got, want32, rtol=1e-5, atol=2e-6)


# ============================================================== the last step alone
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("features", [1, 9])
@pytest.mark.parametrize("batch", [1, 5, 70])  # below, at and above the 32-row blocks
def test_the_last_step_alone_and_its_gradients(kernel: str, features: int, batch: int) -> None:
    select(kernel)
    module, x = module_and_input("rnn", 2, 40, False, features=features, batch=batch)
    want = module(x)[0][:, -1:]
    got = native.recurrent_stack(x, weights_of(module), "rnn", 2)[:, -1:]
    assert got.shape == (batch, 1, 40)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-6)
    inputs = [x, *weights_of(module)]
    for a, b in zip(
        torch.autograd.grad(got.sum(), inputs), torch.autograd.grad(want.sum(), inputs), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5)
    with torch.no_grad():  # a forecast's last step: the same bits
        forecast = native.recurrent_stack(x, weights_of(module), "rnn", 2)[:, -1:]
    assert torch.equal(forecast, got.detach())


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize(
    ("batch", "steps", "features", "hidden", "layers"),
    [(1, 1, 1, 1, 1), (33, 2, 7, 9, 3), (65, 5, 8, 17, 2)],
)
def test_the_last_step_matches_the_float64_module(
    cell: str, grad: bool, batch: int, steps: int, features: int, hidden: int, layers: int
) -> None:
    module = make_module(cell, features, hidden, layers, False, seed=steps)
    oracle = float64_copy(module)
    x = torch.randn(batch, steps, features, requires_grad=grad)
    x64 = x.detach().double().requires_grad_()
    with torch.set_grad_enabled(grad):  # without: a forecast, in row blocks
        got = run_stack(module, x)[:, -1:]
    want = oracle(x64)[0][:, -1:]
    assert got.shape == (batch, 1, hidden)
    assert got.requires_grad == grad
    close(got, want)
    if grad:
        got_grads = torch.autograd.grad(got.sum(), [x, *weights_of(module)])
        want_grads = torch.autograd.grad(want.sum(), [x64, *weights_of(oracle)])
        for a, b in zip(got_grads, want_grads, strict=True):
            close(a, b)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("grad", [False, True])
def test_a_bidirectional_stack_ends_in_the_modules_final_states(cell: str, grad: bool) -> None:
    """The forward direction's last step and the backward direction's first (what
    RecurrentNet's output layer reads) are the module's final states of the top layer."""
    module = make_module(cell, 3, 5, 2, True, seed=6)
    x = torch.randn(4, 3, 3, requires_grad=grad)
    with torch.set_grad_enabled(grad):
        got = run_stack(module, x)
    assert got.shape == (4, 3, 10)
    assert got.requires_grad == grad
    want, final = float64_copy(module)(x.detach().double())
    states = final[0] if cell == "lstm" else final  # (layers · 2, B, H)
    close(got, want)
    close(got[:, -1, :5], states[-2])
    close(got[:, 0, 5:], states[-1])


# ============================================================== gradients into the input
def _view(
    kind: str, batch: int, steps: int, features: int
) -> tuple[tuple[int, ...], Callable[[torch.Tensor], torch.Tensor]]:
    """A source tensor's shape and the map from it to a (batch, steps, features) input."""
    shapes = {
        "linear": (batch, steps, features + 2),
        "transposed": (steps, batch, features),
        "steps_sliced": (batch, 2 * steps, features),
        "features_sliced": (batch, steps, features + 3),
        "last_stride": (batch, features, steps),
        "rows_expanded": (1, steps, features),
        "rows_strided": (2 * batch, steps, features),
    }
    torch.manual_seed(7)
    projection = torch.randn(features + 2, features)

    def apply(source: torch.Tensor) -> torch.Tensor:
        if kind == "linear":  # the output of another layer
            return torch.tanh(source @ projection.to(source.dtype))
        if kind == "transposed":
            return source.transpose(0, 1)
        if kind == "steps_sliced":
            return source[:, ::2]
        if kind == "features_sliced":
            return source[:, :, 1 : features + 1]
        if kind == "last_stride":
            return source.transpose(1, 2)
        if kind == "rows_expanded":
            return source.expand(batch, steps, features)
        return source[::2]

    return shapes[kind], apply


VIEWS = [
    "linear",
    "transposed",
    "steps_sliced",
    "features_sliced",
    "last_stride",
    "rows_expanded",
    "rows_strided",
]


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize(
    ("cell", "bidirectional"), [("rnn", False), ("rnn", True), ("lstm", False), ("lstm", True)]
)
def test_input_gradient_through_views_and_other_layers(
    view: str, cell: str, bidirectional: bool
) -> None:
    batch, steps, features, hidden = 5, 4, 3, 5
    module = make_module(cell, features, hidden, 2, bidirectional, seed=3)
    oracle = float64_copy(module)
    shape, apply = _view(view, batch, steps, features)
    source = torch.randn(shape, requires_grad=True)
    source64 = source.detach().double().requires_grad_()
    x = apply(source)
    assert x.shape == (batch, steps, features)
    got = run_stack(module, x)
    want, _ = oracle(apply(source64))
    close(got, want)
    assert_gradients_match(
        got, want, [source, *weights_of(module)], [source64, *weights_of(oracle)]
    )


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 3])
def test_input_gradient_with_frozen_weights(cell: str, bidirectional: bool, layers: int) -> None:
    module = make_module(cell, 4, 7, layers, bidirectional, seed=11)
    for w in module.parameters():
        w.requires_grad_(False)
    oracle = float64_copy(module)
    x = torch.randn(9, 5, 4, requires_grad=True)
    x64 = x.detach().double().requires_grad_()
    got = run_stack(module, x)
    want, _ = oracle(x64)
    close(got, want)
    assert_gradients_match(got, want, [x], [x64])


def _upstream(kind: str, out: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(target, grad_outputs) for torch.autograd.grad from the stack's output ``out``."""
    generator = torch.Generator().manual_seed(seed)
    batch, steps, width = out.shape

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(out.dtype)

    if kind == "loss_every_other_step":
        return (out[:, ::2] * rand(*out[:, ::2].shape)).sum(), None
    if kind == "loss_last_step":
        return (out[:, -1] * rand(batch, width)).sum(), None
    if kind == "loss_first_step_columns":
        return (out[:, 0, 1::3] ** 2).sum(), None
    if kind == "loss_sum":  # an all-zero-stride gradient
        return out.sum(), None
    if kind == "loss_batch_mean":  # a gradient with row stride 0
        return (out.mean(0) * rand(steps, width)).sum(), None
    if kind == "steps_first":
        return out, rand(steps, batch, width).transpose(0, 1)
    if kind == "last_stride":
        return out, rand(batch, width, steps).transpose(1, 2)
    if kind == "rows_expanded":
        return out, rand(1, steps, width).expand(batch, steps, width)
    if kind == "columns_strided":
        return out, rand(batch, steps, 2 * width)[:, :, ::2]
    assert kind == "steps_strided"
    return out, rand(batch, 3 * steps, width)[:, 1::3]


UPSTREAMS = [
    "loss_every_other_step",
    "loss_last_step",
    "loss_first_step_columns",
    "loss_sum",
    "loss_batch_mean",
    "steps_first",
    "last_stride",
    "rows_expanded",
    "columns_strided",
    "steps_strided",
]


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize(
    ("cell", "bidirectional"), [("rnn", True), ("lstm", False), ("lstm", True)]
)
def test_non_contiguous_upstream_gradients(upstream: str, cell: str, bidirectional: bool) -> None:
    batch, steps, features, hidden = 6, 5, 3, 7
    module = make_module(cell, features, hidden, 2, bidirectional, seed=5)
    oracle = float64_copy(module)
    x = torch.randn(batch, steps, features, requires_grad=True)
    x64 = x.detach().double().requires_grad_()
    got_target, got_seed = _upstream(upstream, run_stack(module, x), seed=1)
    want_target, want_seed = _upstream(upstream, oracle(x64)[0], seed=1)
    got_grads = torch.autograd.grad(got_target, [x, *weights_of(module)], got_seed)
    want_grads = torch.autograd.grad(want_target, [x64, *weights_of(oracle)], want_seed)
    for a, b in zip(got_grads, want_grads, strict=True):
        close(a, b)


# ================================================= the autograd function's bookkeeping
@pytest.mark.parametrize(("cell", "bidirectional"), [("rnn", False), ("lstm", True)])
def test_gradients_accumulate_over_two_backward_passes(cell: str, bidirectional: bool) -> None:
    module = make_module(cell, 3, 9, 2, bidirectional, seed=2)
    oracle = float64_copy(module)
    x = torch.randn(7, 4, 3, requires_grad=True)  # used by both passes: x.grad accumulates too
    x64 = x.detach().double().requires_grad_()
    for part in (slice(0, 4), slice(2, 7)):
        (run_stack(module, x[part]) ** 2).sum().backward()  # type: ignore[no-untyped-call]
        (oracle(x64[part])[0] ** 2).sum().backward()  # type: ignore[no-untyped-call]
        if part.start == 0:  # the two biases get the same gradient: not one buffer
            names = [n for n in module._flat_weights_names if n.startswith("bias_ih")]
            for name in names:
                ih, hh = getattr(module, name), getattr(module, name.replace("_ih", "_hh"))
                assert ih.grad is not None and hh.grad is not None
                assert ih.grad.data_ptr() != hh.grad.data_ptr()
    assert x.grad is not None and x64.grad is not None
    close(x.grad, x64.grad)
    for name in module._flat_weights_names:
        got, want = getattr(module, name).grad, getattr(oracle, name).grad
        assert got is not None and want is not None
        close(got, want)


@pytest.mark.parametrize(
    ("cell", "bidirectional", "input_grad"),
    [("rnn", False, True), ("gru", True, True), ("lstm", False, False)],
)
def test_a_retained_graph_gives_each_backward_pass_its_own_gradients(
    cell: str, bidirectional: bool, input_grad: bool
) -> None:
    """Gradients returned by one backward pass stay as they are through the next one over
    the same graph (retain_graph=True), as with the module."""
    module = make_module(cell, 3, 6, 2, bidirectional, seed=4)
    oracle = float64_copy(module)
    x = torch.randn(5, 4, 3, requires_grad=input_grad)
    x64 = x.detach().double().requires_grad_(input_grad)
    inputs = [x, *weights_of(module)] if input_grad else weights_of(module)
    oracle_inputs = [x64, *weights_of(oracle)] if input_grad else weights_of(oracle)
    got, want = run_stack(module, x), oracle(x64)[0]
    passes = []
    for scale in (1.0, -2.0, 3.0):
        passes.append(torch.autograd.grad(scale * got.sum(), inputs, retain_graph=True))
    for scale, grads in zip((1.0, -2.0, 3.0), passes, strict=True):
        wanted = torch.autograd.grad(scale * want.sum(), oracle_inputs, retain_graph=True)
        for a, b in zip(grads, wanted, strict=True):
            close(a, b, atol=3e-5)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_a_weight_changed_in_place_before_backward_is_refused_like_the_module(cell: str) -> None:
    module = make_module(cell, 3, 4, 2, False, seed=1)
    x = torch.randn(2, 3, 3)
    for run in (lambda: module(x)[0], lambda: run_stack(module, x)):
        out = run()
        with torch.no_grad():
            module.weight_hh_l1.mul_(0.5)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            torch.autograd.grad(out.sum(), weights_of(module))


def test_non_contiguous_weights_give_gradients_of_their_shape() -> None:
    module = make_module("lstm", 5, 6, 2, True, seed=4)
    oracle = float64_copy(module)
    weights = [
        w.detach().t().contiguous().t().requires_grad_() if w.dim() == 2 else w
        for w in weights_of(module)
    ]
    assert not weights[0].is_contiguous()
    x = torch.randn(4, 3, 5)
    got = run_stack(module, x, weights=weights)
    want, _ = oracle(x.double())
    close(got, want)
    got_grads = torch.autograd.grad(got.sum(), weights)
    want_grads = torch.autograd.grad(want.sum(), weights_of(oracle))
    for a, b in zip(got_grads, want_grads, strict=True):
        close(a, b)


def test_the_same_input_gives_the_same_bits() -> None:
    module, x = module_and_input("lstm", 2, 13, True)
    first = native.recurrent_stack(x, weights_of(module), "lstm", 2, True)
    grads = torch.autograd.grad(first.sum(), weights_of(module))
    second = native.recurrent_stack(x, weights_of(module), "lstm", 2, True)
    again = torch.autograd.grad(second.sum(), weights_of(module))
    assert torch.equal(first, second)
    assert all(torch.equal(a, b) for a, b in zip(grads, again, strict=True))


def test_a_second_derivative_is_refused() -> None:
    """nn.LSTM differentiates its backward pass; the compiled one has first derivatives only
    and says so instead of silently dropping the recurrence's terms."""
    module = make_module("lstm", 3, 4, 1, False, seed=3)
    x = torch.randn(3, 4, 3, requires_grad=True)
    out = run_stack(module, x)
    with pytest.raises(RuntimeError, match="first derivatives only"):
        torch.autograd.grad(out.sum(), x, create_graph=True)


# ============================================================ vector and plain kernels
@pytest.mark.parametrize(
    ("cell", "features", "hidden", "layers", "bidirectional", "batch"),
    [
        ("rnn", 7, 9, 3, True, 33),
        ("lstm", 9, 7, 2, True, 65),
        ("lstm", 1, 1, 3, False, 31),
        ("rnn", 33, 17, 2, False, 3),
    ],
)
def test_plain_and_vector_kernels_agree(
    cell: str, features: int, hidden: int, layers: int, bidirectional: bool, batch: int
) -> None:
    select("vector")
    module = make_module(cell, features, hidden, layers, bidirectional, seed=hidden)
    x = torch.randn(batch, 6, features) * 2
    upstream = torch.randn(batch, 6, hidden * (2 if bidirectional else 1))
    results = []
    for kernel in KERNELS:
        select(kernel)
        xr = x.clone().requires_grad_()
        out = run_stack(module, xr)
        grads = torch.autograd.grad(out, [xr, *weights_of(module)], upstream)
        with torch.no_grad():
            forecast = run_stack(module, x)
        results.append([out, forecast, forecast[:, -1], *grads])
    for a, b in zip(*results, strict=True):
        close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("cell", "bidirectional"), [("rnn", False), ("lstm", True)])
def test_a_row_gives_the_same_bits_whatever_batch_it_is_in(
    kernel: str, cell: str, bidirectional: bool
) -> None:
    """Rows never mix: the 4-row micro-kernel, its remainder loop and the 32-row blocks must
    all give a row the same bits (the thread split relies on it)."""
    select(kernel)
    module = make_module(cell, 5, 11, 2, bidirectional, seed=14)
    x = torch.randn(70, 4, 5)
    with torch.no_grad():
        whole = run_stack(module, x)
        start = 0
        for size in (1, 3, 4, 5, 33, 24):
            part = run_stack(module, x[start : start + size])
            assert torch.equal(part, whole[start : start + size]), (start, size)
            start += size
        assert start == 70
        for row in (0, 31, 32, 66, 69):
            assert torch.equal(run_stack(module, x[row : row + 1]), whole[row : row + 1])
    xr = x.clone().requires_grad_()
    with_grad = run_stack(module, xr)
    assert torch.equal(with_grad.detach(), whole)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_large_inputs_saturate_like_the_module(kernel: str, cell: str, bidirectional: bool) -> None:
    select(kernel)
    module = make_module(cell, 4, 9, 2, bidirectional, seed=8)
    with torch.no_grad():  # large recurrent weights too: saturated states feed back
        for name in module._flat_weights_names:
            if name.startswith("weight_hh"):
                getattr(module, name).mul_(6.0)
    oracle = float64_copy(module)
    torch.manual_seed(12)
    x = torch.rand(33, 7, 4) * 100 - 50
    x[:, :, 0].clamp_(-1, 1)  # a mix of saturated and unsaturated units
    x.requires_grad_()
    x64 = x.detach().double().requires_grad_()
    got = run_stack(module, x)
    want = oracle(x64)[0]
    close(got, want, rtol=1e-4, atol=5e-5)
    with torch.no_grad():
        close(run_stack(module, x.detach()), want, rtol=1e-4, atol=5e-5)
    upstream = torch.randn(want.shape, dtype=torch.float64)
    got_grads = torch.autograd.grad(got, [x, *weights_of(module)], upstream.float())
    want_grads = torch.autograd.grad(want, [x64, *weights_of(oracle)], upstream)
    for a, b in zip(got_grads, want_grads, strict=True):
        # float32 rounding of pre-activations near ±50 is ~4e-6; derivatives amplify it
        scale = float(b.abs().max()) + 1.0
        close(a, b, rtol=1e-3, atol=2e-4 * scale)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(
    ("cell", "path"),
    [("rnn", "grad"), ("rnn", "no_grad"), ("rnn", "no_grad_last_step"), ("lstm", "grad")],
)
def test_nan_input_propagates(kernel: str, cell: str, path: str) -> None:
    select(kernel)
    module = make_module(cell, 3, 9, 2, False, seed=13)
    oracle = float64_copy(module)
    x = torch.randn(5, 6, 3)
    x[0, 2, 1] = float("nan")
    x.requires_grad_(path == "grad")
    x64 = x.detach().double().requires_grad_()
    with torch.set_grad_enabled(path == "grad"):
        got = run_stack(module, x)
    want = oracle(x64)[0]
    if path == "no_grad_last_step":
        got, want = got[:, -1:], want[:, -1:]
    assert got.requires_grad == (path == "grad")
    assert torch.isnan(want[0, -1]).all()
    assert torch.isnan(got[0, -1]).all(), f"row 0, last step: {got[0, -1]}"
    if path != "no_grad_last_step":
        assert torch.isnan(got[0, 2:]).all()
        close(got[0, :2], want[0, :2])
    close(got[1:], want[1:])
    if path == "grad":  # backward runs and the other rows' input gradients stay right
        (got_x,) = torch.autograd.grad(got[1:].sum() + got[0, :2].sum(), x)
        (want_x,) = torch.autograd.grad(want[1:].sum() + want[0, :2].sum(), x64)
        close(got_x[1:], want_x[1:])


# ========================================================== forecasts without gradients
@pytest.mark.parametrize(("cell", "bidirectional"), [("rnn", False), ("gru", True), ("lstm", True)])
def test_forecasting_without_gradients_is_exact_whatever_the_threads(
    cell: str, bidirectional: bool
) -> None:
    """Rows are independent: splitting them over threads or blocks changes no bit."""
    module, x = module_and_input(cell, 2, 40, bidirectional, batch=1000)
    weights = weights_of(module)
    results = []
    for count in (1, 2):
        torch.set_num_threads(count)
        with torch.no_grad():
            results.append(native.recurrent_stack(x, weights, cell, 2, bidirectional))
    assert torch.equal(results[0], results[1])
    with_grad = native.recurrent_stack(x, weights, cell, 2, bidirectional)
    torch.testing.assert_close(results[0], with_grad.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(results[0], module(x)[0].detach(), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize(
    ("cell", "bidirectional", "last_step", "batch"),
    [
        ("rnn", False, True, 531),
        ("rnn", False, False, 512),
        ("lstm", False, True, 600),
        ("lstm", True, False, 513),
        ("rnn", True, True, 777),
    ],
)
def test_no_grad_bits_do_not_depend_on_threads_and_match_the_grad_path(
    cell: str, bidirectional: bool, last_step: bool, batch: int
) -> None:
    module = make_module(cell, 3, 9, 2, bidirectional, seed=batch)
    x = torch.randn(batch, 12, 3)[:, 1::2]  # a strided view: step stride 6

    def forecast() -> torch.Tensor:
        out = run_stack(module, x)
        return out[:, -1:] if last_step else out

    results = []
    for threads, own in ((1, False), (2, False), (2, True)):
        torch.set_num_threads(threads)
        with torch.no_grad():
            if own:
                with native.own_threads():
                    results.append(forecast())
                assert torch.get_num_threads() == 2
            else:
                results.append(forecast())
        with torch.inference_mode():
            results.append(forecast())
    torch.set_num_threads(1)
    for other in results[1:]:
        assert torch.equal(results[0], other)
    x.requires_grad_()
    with_grad = forecast()
    assert with_grad.requires_grad
    assert with_grad.shape == results[0].shape
    torch.testing.assert_close(with_grad.detach(), results[0], rtol=0, atol=1e-6)
    want = float64_copy(module)(x.detach().double())[0]
    close(results[0], want[:, -1:] if last_step else want)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_more_rows_than_one_no_grad_block(cell: str) -> None:
    rows = BLOCK_ROWS + 33
    module = make_module(cell, 1, 1, 2, False, seed=9)
    x = torch.randn(rows, 2, 1)
    with torch.no_grad():
        got = run_stack(module, x)
    want = float64_copy(module)(x.double())[0]
    close(got, want)
    close(got[:, -1:], want[:, -1:])


@pytest.mark.parametrize(
    ("rows", "most", "threads"),
    [(0, 8, 2), (1, 8, 2), (255, 100, 1), (513, 1000, 2), (1000, 100, 2), (1000, 1000, 4)],
)
def test_row_blocks_cover_every_row_once_in_order(rows: int, most: int, threads: int) -> None:
    torch.set_num_threads(threads)
    blocks = binding.over_rows(rows, most, lambda start, stop: (start, min(stop, rows)))
    assert [r for start, stop in blocks for r in range(start, stop)] == list(range(rows))
    assert all(0 < stop - start <= most for start, stop in blocks)
    assert torch.get_num_threads() == threads  # own_threads gave torch its threads back


def test_a_strided_input_is_read_correctly() -> None:
    module = make_module("rnn", 2, 8, 2, False, seed=208)
    wide = torch.randn(37, 21, 5)
    view = wide[:, :, 1:3]  # last stride 1, row stride 5
    other = wide[:, :, ::2][:, :, :2]  # last stride 2
    for part in (view, other):
        with torch.no_grad():
            got = run_stack(module, part)
            torch.testing.assert_close(got, module(part.contiguous())[0], rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize(
    ("cell", "bidirectional", "last_step", "grad"),
    [
        ("lstm", False, False, False),
        ("rnn", True, False, False),
        ("rnn", False, True, False),
        ("lstm", True, False, True),
    ],
)
def test_an_empty_batch_gives_an_empty_output(
    cell: str, bidirectional: bool, last_step: bool, grad: bool
) -> None:
    module = make_module(cell, 3, 5, 2, bidirectional, seed=0)
    x = torch.randn(0, 4, 3, requires_grad=grad)
    want = module(x)[0]  # nn.RNN / nn.LSTM accept an empty batch
    with torch.set_grad_enabled(grad):
        got = run_stack(module, x)
    if last_step:
        got, want = got[:, -1:], want[:, -1:]
    assert got.shape == want.shape
    assert got.requires_grad == grad


def test_gru_empty_batch_with_gradients() -> None:
    module = make_module("gru", 3, 5, 2, True)
    x = torch.randn(0, 4, 3, requires_grad=True)
    got = native.recurrent_stack(x, weights_of(module), "gru", 2, True)
    assert got.shape == module(x)[0].shape == (0, 4, 10)
    grads = torch.autograd.grad(got.sum(), [x, *weights_of(module)])
    assert all(
        g.shape == t.shape and not g.any()
        for g, t in zip(grads, [x, *weights_of(module)], strict=True)
    )


@pytest.mark.parametrize(("cell", "last_step"), [("rnn", True), ("rnn", False), ("lstm", True)])
def test_seventeen_layers_without_gradients(cell: str, last_step: bool) -> None:
    module = make_module(cell, 2, 3, 17, False, seed=1)
    x = torch.randn(3, 2, 2)
    with torch.no_grad():
        got = run_stack(module, x)
    want = float64_copy(module)(x.double())[0]
    if last_step:
        got, want = got[:, -1:], want[:, -1:]
    close(got, want)


def test_own_threads_gives_torch_one_thread_and_restores_it() -> None:
    torch.set_num_threads(2)
    with native.own_threads():
        assert torch.get_num_threads() == 1
        assert binding._worker_count(10_000) == 2
        with native.own_threads():  # nested: the outer count stays
            assert binding._worker_count(10_000) == 2
        assert binding._worker_count(300) == 1  # at least 256 rows a thread
    assert torch.get_num_threads() == 2
    assert binding._workers is None


# ========================================================================= CompiledStack
@pytest.mark.parametrize("bidirectional", [False, True])
def test_gru_compiled_stack_by_hand(bidirectional: bool) -> None:
    """The prepared stack of the compiled training step: a strided dL/d(top), every weight's
    gradient including the GRU's two bias gradients, which differ (unlike the tanh RNN's and
    the LSTM's), and dL/dx when asked for it."""
    torch.manual_seed(2)
    features, hidden, layers, batch, steps = 3, 5, 2, 34, 6
    module = nn.GRU(features, hidden, num_layers=layers, bidirectional=bidirectional)  # (L, B, F)
    oracle = float64_copy(module)
    directions = 2 if bidirectional else 1
    x = torch.randn(steps, batch, features)
    weights = [w.detach() for w in weights_of(module)]
    x64 = x.double().requires_grad_()
    want, _ = oracle(x64)
    upstream = torch.randn(steps, batch, 2 * directions * hidden, dtype=torch.float64)[:, :, ::2]
    want_grads = torch.autograd.grad(want, [x64, *weights_of(oracle)], upstream)
    for input_grad in (False, True):
        grads = [torch.full_like(w, float("nan")) for w in weights]
        stack = native.CompiledStack(
            weights, "gru", layers, directions, steps, batch, features, grads, input_grad
        )
        top = stack.forward(x.transpose(0, 1))
        close(top, want)
        stack.grad_top.copy_(upstream)
        grad_x = stack.backward()
        for a, b in zip(grads, want_grads[1:], strict=True):
            close(a, b)
        assert not torch.allclose(grads[2], grads[3])  # b_ih and b_hh gradients differ
        if input_grad:
            assert grad_x is not None
            close(grad_x, want_grads[0])
        else:
            assert grad_x is None
    source = x.transpose(0, 1).requires_grad_()  # (B, L, F): through the autograd function
    got = native.recurrent_stack(source, weights, "gru", layers, bidirectional)
    (grad_source,) = torch.autograd.grad(got, [source], upstream.float().transpose(0, 1))
    close(grad_source.transpose(0, 1), want_grads[0])


def test_a_forecast_only_stack_runs_forward_and_refuses_backward() -> None:
    module = make_module("lstm", 2, 4, 2, True, seed=5)
    stack = native.CompiledStack(weights_of(module), "lstm", 2, 2, steps=3, rows=5, features=2)
    window = torch.randn(5, 3, 2)
    close(stack.forward(window).transpose(0, 1), float64_copy(module)(window.double())[0])
    with pytest.raises(RuntimeError, match="forecasts only"):
        stack.backward()
    with pytest.raises(ValueError, match=r"runs windows of shape \(5, 3, 2\), got \(5, 4, 2\)"):
        stack.forward(torch.randn(5, 4, 2))


def test_weights_that_do_not_fit_the_input_are_refused() -> None:
    hidden = 4
    # The weights of a GRU on 2 channels, as contiguous views into larger buffers, so that an
    # unchecked call reads memory that belongs to the test.
    buffers = [torch.randn(200) for _ in range(4)]
    shapes = [(3 * hidden, 2), (3 * hidden, hidden), (3 * hidden,), (3 * hidden,)]
    weights = tuple(b[: math.prod(s)].view(s) for b, s in zip(buffers, shapes, strict=True))
    x = torch.randn(5, 3, 3)  # 3 channels
    with pytest.raises(ValueError, match="do not fit a gru stack of 1 layer"):
        native.recurrent_stack(x.transpose(0, 1), list(weights), "gru", 1)
    with pytest.raises(ValueError, match="do not fit a gru stack of 1 layer"):
        native.CompiledStack(list(weights), "gru", 1, 1, 5, 3, 3, [w.clone() for w in weights])


def test_wrong_weight_count_is_refused() -> None:
    rnn, _ = tanh_rnn_and_input(2)
    with pytest.raises(ValueError, match="4 tensors per layer and direction"):
        native.CompiledStack(weights_of(rnn)[:4], "rnn", 2, 1, 6, 4, 3)


COMPILED_STACK_REFUSALS = {
    # change to the weights of a 1-layer tanh stack, what the message says
    "unknown_cell": ("cell", "known cell"),
    "float64_weights": ("float64", "float32 tensors on the CPU"),
    "float64_gradients": ("float64_grads", "float32 tensors on the CPU"),
    "non_contiguous_weight": ("transposed", "contiguous weights and gradients"),
}


@pytest.mark.parametrize("case", list(COMPILED_STACK_REFUSALS))
def test_the_compiled_stack_refuses_what_it_cannot_run(case: str) -> None:
    change, message = COMPILED_STACK_REFUSALS[case]
    weights = [w.detach() for w in weights_of(make_module("rnn", 4, 4, 1, False))]
    grads = [torch.zeros_like(w) for w in weights]
    cell = "tanh" if change == "cell" else "rnn"
    if change == "float64":
        weights = [w.double() for w in weights]
    elif change == "float64_grads":
        grads = [g.double() for g in grads]
    elif change == "transposed":
        weights[1] = weights[1].t()  # square, so only its strides are wrong
    with pytest.raises(ValueError, match=message):
        native.CompiledStack(weights, cell, 1, 1, 3, 2, 4, grads)


# ======================================================================= refusals
def test_bad_arguments_are_refused() -> None:
    module, x = module_and_input("rnn", 2, 8, False)
    with pytest.raises(ValueError, match="4 tensors per layer"):
        native.recurrent_stack(x, weights_of(module)[:4], "rnn", 2)
    with pytest.raises(ValueError, match="known cell"):
        native.recurrent_stack(x, weights_of(module), "tanh", 2)
    for cell in ("gru", "lstm"):  # an RNN's weights are too small for these cells
        with pytest.raises(ValueError, match=f"do not fit a {cell} stack"):
            native.recurrent_stack(x, weights_of(module), cell, 2)
    with pytest.raises(ValueError, match="on 4 input channel"):
        native.recurrent_stack(torch.randn(5, 21, 4), weights_of(module), "rnn", 2)


def test_float64_is_refused_and_the_switch_leaves_it_to_pytorch() -> None:
    module = make_module("rnn", 3, 5, 1, False).double()
    x = torch.randn(4, 3, 3, dtype=torch.float64)
    assert not native.compiled(x, *weights_of(module), cell="rnn")
    with torch.no_grad(), pytest.raises(ValueError, match="float32 tensors on the CPU"):
        run_stack(module, x)


# ================================================================= RecurrentNet
def path_of(net: RecurrentNet, window: torch.Tensor) -> str:
    """Which recurrence ``net.sequence`` runs on ``window``: ``compiled`` (recurrent_stack)
    or ``module`` (nn.RNN/nn.GRU/nn.LSTM)."""
    ran: list[str] = []
    hook = net.rnn.register_forward_hook(lambda *_: ran.append("module"))
    stack = native.recurrent_stack

    def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
        ran.append("compiled")
        return stack(*args, **kwargs)

    try:
        with pytest.MonkeyPatch.context() as patch, torch.no_grad():
            patch.setattr(native, "recurrent_stack", spy)
            net.sequence(window)
    finally:
        hook.remove()
    assert len(ran) == 1, ran
    return ran[0]


@contextmanager
def module_path() -> Iterator[None]:
    """RecurrentNet runs nn.RNN/nn.GRU/nn.LSTM in float32 too: the switch says no meanwhile."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(native, "compiled", lambda *tensors, cell=None: False)
        yield


def loss_and_grads(
    net: RecurrentNet, window: torch.Tensor, season: torch.Tensor, steps: bool
) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """The network's outputs and every parameter's gradient of a loss over all of them."""
    net.zero_grad(set_to_none=True)
    out = net(window, season, steps=steps)
    parts = list(out) if isinstance(out, tuple) else [out]
    weights = torch.linspace(-1, 2, parts[0].shape[-1], dtype=parts[0].dtype)
    loss = sum(((o * weights) ** 2).sum() for o in parts)
    assert isinstance(loss, torch.Tensor)
    loss.backward()  # type: ignore[no-untyped-call]
    grads = [None if p.grad is None else p.grad.clone() for p in net.parameters()]
    return [o.detach() for o in parts], grads


def assert_same_gradients(
    net: RecurrentNet, got: list[torch.Tensor | None], want: list[torch.Tensor | None]
) -> None:
    names = [name for name, _ in net.named_parameters()]
    for name, a, b in zip(names, got, want, strict=True):
        assert (a is None) == (b is None), name
        if a is not None and b is not None:
            scale = float(b.abs().max()) + 1.0
            torch.testing.assert_close(
                a.double(), b.double(), rtol=1e-4, atol=1e-5 * scale, msg=name
            )


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("conv_channels", [0, 4])
@pytest.mark.parametrize("steps", [False, True])
def test_recurrent_net_compiled_matches_its_module_path(
    cell: str, bidirectional: bool, conv_channels: int, steps: bool
) -> None:
    config = RecurrentConfig(
        input_size=3, window=6, season_size=2, horizon=2, n_targets=2, cell=cell,
        hidden_size=7, num_layers=2, bidirectional=bidirectional,
        conv_channels=conv_channels, conv_kernel=3,
    )  # fmt: skip
    torch.manual_seed(21)
    net = RecurrentNet(config).train()
    window, season = torch.randn(9, 6, 3), torch.randn(9, 2)
    twin = copy.deepcopy(net)
    assert path_of(net, window) == "compiled"
    got_out, got_grads = loss_and_grads(net, window, season, steps)
    with module_path():
        assert path_of(twin, window) == "module"
        want_out, want_grads = loss_and_grads(twin, window, season, steps)
    for a, b in zip(got_out, want_out, strict=True):
        close(a, b)
    assert_same_gradients(net, got_grads, want_grads)
    net.eval()
    twin.eval()
    with torch.no_grad():
        got = net(window, season)
        with module_path():
            want = twin(window, season)
    close(got, want)


def network_config(**changes: object) -> RecurrentConfig:
    settings: dict[str, object] = dict(
        input_size=2, window=7, season_size=0, horizon=1, n_targets=1
    )
    settings.update(changes)
    return RecurrentConfig(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "in_training"),
    [
        ({}, "compiled"),
        ({"conv_channels": 4}, "compiled"),
        ({"bidirectional": True}, "compiled"),
        ({"cell": "lstm"}, "compiled"),
        ({"cell": "gru"}, "compiled"),
        ({"dropout": 0.2}, "module"),  # in eval mode dropout is off and it is compiled
    ],
)
def test_the_network_runs_the_compiled_stack_where_the_switch_allows_and_computes_the_same(
    changes: dict[str, object], in_training: str
) -> None:
    torch.manual_seed(0)
    net = RecurrentNet(network_config(**changes))
    window = torch.randn(5, 7, 2)
    net.train()
    assert path_of(net, window) == in_training
    assert path_of(copy.deepcopy(net).double(), window.double()) == "module"  # float64
    net.eval()
    assert path_of(net, window) == "compiled"
    window = torch.randn(5, 7, 2)
    with torch.no_grad():
        got = net.sequence(window)
        x = window
        if net.conv is not None:
            x = torch.relu(net.conv(nn.functional.pad(window.transpose(1, 2), (4, 0))))
            x = x.transpose(1, 2)
        want = net.rnn(x)[0]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("changes", "batch", "steps"),
    [
        ({"input_size": 6, "num_layers": 3, "horizon": 3}, 1, True),  # batch of 1, seq2seq
        ({"window": 1, "num_layers": 2, "horizon": 2}, 1, True),  # window of length 1
        ({"input_size": 7, "conv_channels": 3, "conv_kernel": 3}, 2, True),  # conv front end
        ({"conv_channels": 6, "conv_kernel": 2, "horizon": 2}, 4, False),  # conv, six channels
        ({"input_size": 1, "num_layers": 3, "window": 1}, 1, False),
    ],
)
def test_the_whole_network_matches_its_float64_nn_rnn_path(
    changes: dict[str, Any], batch: int, steps: bool
) -> None:
    """Forward and every parameter's gradient of RecurrentNet on the compiled stack against
    a float64 copy, which the switch leaves to nn.RNN."""
    settings: dict[str, Any] = dict(
        input_size=2, window=5, season_size=3, horizon=1, n_targets=2, hidden_size=4,
        num_layers=2,
    )  # fmt: skip
    settings.update(changes)
    torch.manual_seed(0)
    net = RecurrentNet(RecurrentConfig(**settings)).train()
    net64 = copy.deepcopy(net).double()
    window = torch.randn(batch, settings["window"], settings["input_size"])
    season = torch.randn(batch, 3)
    assert path_of(net, window) == "compiled"
    assert path_of(net64, window.double()) == "module"
    got_out, got_grads = loss_and_grads(net, window, season, steps)
    want_out, want_grads = loss_and_grads(net64, window.double(), season.double(), steps)
    for a, b in zip(got_out, want_out, strict=True):
        close(a, b)
    assert_same_gradients(net, got_grads, want_grads)


def test_dropout_network_is_compiled_only_in_eval_and_then_equals_nn_rnn() -> None:
    torch.manual_seed(1)
    config = RecurrentConfig(
        input_size=2, window=6, season_size=0, horizon=1, n_targets=1, hidden_size=4,
        num_layers=2, dropout=0.5,
    )  # fmt: skip
    net = RecurrentNet(config)
    window = torch.randn(3, 6, 2)
    net.train()
    assert path_of(net, window) == "module"
    net.eval()
    assert path_of(net, window) == "compiled"
    with torch.no_grad():
        got = net(window, torch.zeros(3, 0))
        with module_path():
            assert path_of(net, window) == "module"
            want = net(window, torch.zeros(3, 0))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
