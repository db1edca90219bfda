"""The compiled recurrence against nn.RNN, nn.LSTM and a hand-written loop."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from seqcast._native import binding as native

needs_native = pytest.mark.skipif(not native.available(), reason="compiled recurrence not built")
MODULES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def test_it_is_built_where_a_compiler_is() -> None:
    """A silent fallback to PyTorch would hide a broken build: on x86-64 Linux with a C
    compiler (CI, the project machine) the compiled part must load."""
    if platform.machine() != "x86_64" or shutil.which("cc") is None:
        pytest.skip("no x86-64 C compiler here")
    assert importlib.util.find_spec("seqcast._native._recurrence") is not None
    if os.environ.get("SEQCAST_NATIVE", "1") != "0":
        assert native.available()


@pytest.fixture(params=["vector", "plain"])
def kernels(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test with the AVX2 kernels and again with the plain C ones."""
    if not native.available():
        pytest.skip("compiled recurrence not built")
    vector = native.use_vector_kernels(request.param == "vector")
    if request.param == "vector" and not vector:
        pytest.skip("this CPU has no AVX2/FMA")
    yield request.param
    native.use_vector_kernels(True)


def module_and_input(
    cell: str, layers: int, hidden: int, bidirectional: bool, features: int = 3, batch: int = 37
) -> tuple[nn.RNNBase, torch.Tensor]:
    torch.manual_seed(layers * 100 + hidden)
    module = MODULES[cell](
        features, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional
    )
    x = torch.randn(batch, 21, features, requires_grad=True)
    return module, x


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize(("layers", "hidden"), [(1, 8), (2, 40), (3, 13)])
def test_outputs_and_every_gradient_match_the_pytorch_module(
    kernels: str, cell: str, bidirectional: bool, layers: int, hidden: int
) -> None:
    module, x = module_and_input(cell, layers, hidden, bidirectional)
    want, _ = module(x)
    got = native.recurrent_stack(x, list(module._flat_weights), cell, layers, bidirectional)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-6)
    upstream = torch.randn_like(want)
    inputs = [x, *module._flat_weights]
    for a, b in zip(
        torch.autograd.grad(got, inputs, upstream),
        torch.autograd.grad(want, inputs, upstream),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("features", [1, 9])
@pytest.mark.parametrize("batch", [1, 5, 70])  # below, at and above the 32-row blocks
def test_the_last_step_alone_and_its_gradients(kernels: str, features: int, batch: int) -> None:
    module, x = module_and_input("rnn", 2, 40, False, features=features, batch=batch)
    want = module(x)[0][:, -1:]
    got = native.recurrent_stack(x, list(module._flat_weights), "rnn", 2, last_only=True)
    assert got.shape == (batch, 1, 40)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-6)
    inputs = [x, *module._flat_weights]
    for a, b in zip(
        torch.autograd.grad(got.sum(), inputs), torch.autograd.grad(want.sum(), inputs), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5)


def test_lstm_matches_the_recurrence_written_out_by_hand(kernels: str) -> None:
    """The oracle is the LSTM's defining equations in float64, step by step."""
    module, x = module_and_input("lstm", 1, 6, False, batch=4)
    w_ih, w_hh, b_ih, b_hh = (w.detach().double() for w in module._flat_weights)
    h = c = torch.zeros(4, 6, dtype=torch.float64)
    outputs = []
    for t in range(x.shape[1]):
        gates = x[:, t].detach().double() @ w_ih.T + h @ w_hh.T + b_ih + b_hh
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    with torch.no_grad():
        got = native.recurrent_stack(x, list(module._flat_weights), "lstm", 1)
    torch.testing.assert_close(got.double(), torch.stack(outputs, 1), rtol=1e-5, atol=1e-6)


def test_gru_matches_the_recurrence_written_out_by_hand(kernels: str) -> None:
    """The oracle is the GRU's defining equations (PyTorch's) in float64, step by step."""
    module, x = module_and_input("gru", 1, 6, False, batch=4)
    w_ih, w_hh, b_ih, b_hh = (w.detach().double() for w in module._flat_weights)
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
        got = native.recurrent_stack(x, list(module._flat_weights), "gru", 1)
    torch.testing.assert_close(got.double(), torch.stack(outputs, 1), rtol=1e-5, atol=1e-6)


@needs_native
@pytest.mark.parametrize(("cell", "bidirectional"), [("rnn", False), ("gru", True), ("lstm", True)])
def test_forecasting_without_gradients_is_exact_whatever_the_threads(
    cell: str, bidirectional: bool
) -> None:
    """Rows are independent: splitting them over threads or blocks changes no bit."""
    module, x = module_and_input(cell, 2, 40, bidirectional, batch=1000)
    weights = list(module._flat_weights)
    last = cell == "rnn"
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            with torch.no_grad():
                results.append(native.recurrent_stack(x, weights, cell, 2, bidirectional, last))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0], results[1])
    with_grad = native.recurrent_stack(x, weights, cell, 2, bidirectional, last)
    torch.testing.assert_close(results[0], with_grad.detach(), rtol=0, atol=1e-6)
    want = module(x)[0][:, -1:] if last else module(x)[0]
    torch.testing.assert_close(results[0], want.detach(), rtol=1e-5, atol=2e-6)


@needs_native
def test_the_same_input_gives_the_same_bits() -> None:
    module, x = module_and_input("lstm", 2, 13, True)
    first = native.recurrent_stack(x, list(module._flat_weights), "lstm", 2, True)
    grads = torch.autograd.grad(first.sum(), list(module._flat_weights))
    second = native.recurrent_stack(x, list(module._flat_weights), "lstm", 2, True)
    again = torch.autograd.grad(second.sum(), list(module._flat_weights))
    assert torch.equal(first, second)
    assert all(torch.equal(a, b) for a, b in zip(grads, again, strict=True))


@needs_native
def test_a_strided_input_is_read_correctly() -> None:
    module, _ = module_and_input("rnn", 2, 8, False, features=2)
    wide = torch.randn(37, 21, 5)
    view = wide[:, :, 1:3]  # last stride 1, row stride 5
    other = wide[:, :, ::2][:, :, :2]  # last stride 2: copied first
    for part in (view, other):
        with torch.no_grad():
            got = native.recurrent_stack(part, list(module._flat_weights), "rnn", 2)
            torch.testing.assert_close(got, module(part.contiguous())[0], rtol=1e-5, atol=2e-6)


def test_bad_arguments_are_refused() -> None:
    module, x = module_and_input("rnn", 2, 8, False)
    with pytest.raises(ValueError, match="4 tensors per layer"):
        native.recurrent_stack(x, list(module._flat_weights)[:4], "rnn", 2)
    with pytest.raises(ValueError, match="known cell"):
        native.recurrent_stack(x, list(module._flat_weights), "tanh", 2)
    for cell in ("gru", "lstm"):  # an RNN's weights are too small for these cells
        with pytest.raises(ValueError, match=f"do not fit a {cell} stack"):
            native.recurrent_stack(x, list(module._flat_weights), cell, 2)
    with pytest.raises(ValueError, match="on 4 input channel"):
        native.recurrent_stack(torch.randn(5, 21, 4), list(module._flat_weights), "rnn", 2)


def test_it_can_be_turned_off() -> None:
    code = "from seqcast._native import binding as native; print(native.available())"
    env = {**os.environ, "SEQCAST_NATIVE": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False"


def test_own_threads_gives_torch_one_thread_and_restores_it() -> None:
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with native.own_threads():
            assert torch.get_num_threads() == 1
            assert native._worker_count(10_000) == 2
            with native.own_threads():  # nested: the outer count stays
                assert native._worker_count(10_000) == 2
            assert native._worker_count(300) == 1  # at least 256 rows a thread
        assert torch.get_num_threads() == 2
        assert native._workers is None
    finally:
        torch.set_num_threads(threads)
