"""A review of the compiled recurrence (seqcast/_native/recurrence.c, seqcast/models/native.py).

Independent oracles: nn.RNN / nn.LSTM run in float64 (and in float32 where the comparison is
between two float32 paths). Aimed at what tests/test_native.py does not reach: hidden sizes
that are not a multiple of 8 (and 1), odd feature counts, batches around the 32-row blocks
and the 4-row micro-kernel, windows of 1 and 2 steps, 3 and 4 layers, gradients with respect
to a non-contiguous input and from non-contiguous upstream gradients, accumulation over two
backward passes, plain C against AVX2, threads, saturation, NaN, and RecurrentNet end to end.

The review found five bugs, fixed with it: NaN became ±1 in the AVX2 tanh (its clamp dropped
NaN), an empty batch without gradients raised, a fused stack of more than 16 layers reported
"out of memory", float64 tensors were read as float32 bits, and a second derivative silently
left out the recurrence's terms.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from kernels import close, one_thread_and_vector_kernels, select  # noqa: F401
from torch import nn

from seqcast._native import binding as native
from seqcast.networks import RecurrentConfig, RecurrentNet

pytestmark = [
    pytest.mark.skipif(not native.available(), reason="compiled recurrence not built"),
    pytest.mark.usefixtures("one_thread_and_vector_kernels"),
]

MODULES: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
KERNELS = ["vector", "plain"]


def make(
    cell: str, features: int, hidden: int, layers: int, bidirectional: bool, seed: int = 0
) -> nn.RNNBase:
    torch.manual_seed(seed)
    return MODULES[cell](
        features, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional
    )


def weights_of(module: nn.RNNBase) -> list[torch.Tensor]:
    return list(module._flat_weights)


def run_native(
    module: nn.RNNBase, x: torch.Tensor, last_only: bool = False, weights: Any = None
) -> torch.Tensor:
    cell = next(name for name, kind in MODULES.items() if isinstance(module, kind))
    return native.recurrent_stack(
        x,
        weights_of(module) if weights is None else weights,
        cell,
        module.num_layers,
        module.bidirectional,
        last_only,
    )


# ------------------------------------------------------------------- odd shapes, all grads
# cell, features, hidden, layers, bidirectional, batch, steps
SHAPES = [
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
    ("cell", "features", "hidden", "layers", "bidirectional", "batch", "steps"), SHAPES
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
    module = make(cell, features, hidden, layers, bidirectional, seed=features * 31 + hidden)
    oracle = copy.deepcopy(module).double()
    x = torch.randn(batch, steps, features, requires_grad=True)
    x64 = x.detach().double().requires_grad_()
    got = run_native(module, x)
    want, _ = oracle(x64)
    assert got.shape == (batch, steps, hidden * (2 if bidirectional else 1))
    assert got.dtype == torch.float32
    rtol, atol = (3e-4, 3e-5) if layers >= 4 else (1e-4, 1e-5)
    close(got, want, rtol, atol)
    upstream = torch.randn(want.shape, dtype=torch.float64)
    got_grads = torch.autograd.grad(got, [x, *weights_of(module)], upstream.float())
    want_grads = torch.autograd.grad(want, [x64, *weights_of(oracle)], upstream)
    for a, b in zip(got_grads, want_grads, strict=True):
        assert a.shape == b.shape
        close(a, b, rtol, atol)


# ---------------------------------------------------------- gradients w.r.t. the input
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
    module = make(cell, features, hidden, 2, bidirectional, seed=3)
    oracle = copy.deepcopy(module).double()
    shape, apply = _view(view, batch, steps, features)
    source = torch.randn(shape, requires_grad=True)
    source64 = source.detach().double().requires_grad_()
    x = apply(source)
    assert x.shape == (batch, steps, features)
    got = run_native(module, x)
    want, _ = oracle(apply(source64))
    close(got, want)
    upstream = torch.randn(want.shape, dtype=torch.float64)
    got_grads = torch.autograd.grad(got, [source, *weights_of(module)], upstream.float())
    want_grads = torch.autograd.grad(want, [source64, *weights_of(oracle)], upstream)
    for a, b in zip(got_grads, want_grads, strict=True):
        close(a, b)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 3])
def test_input_gradient_with_frozen_weights(cell: str, bidirectional: bool, layers: int) -> None:
    module = make(cell, 4, 7, layers, bidirectional, seed=11)
    for w in module.parameters():
        w.requires_grad_(False)
    oracle = copy.deepcopy(module).double()
    x = torch.randn(9, 5, 4, requires_grad=True)
    x64 = x.detach().double().requires_grad_()
    got = run_native(module, x)
    want, _ = oracle(x64)
    close(got, want)
    upstream = torch.randn(want.shape, dtype=torch.float64)
    (got_grad,) = torch.autograd.grad(got, x, upstream.float())
    (want_grad,) = torch.autograd.grad(want, x64, upstream)
    close(got_grad, want_grad)


# ------------------------------------------------------ non-contiguous upstream gradients
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
    module = make(cell, features, hidden, 2, bidirectional, seed=5)
    oracle = copy.deepcopy(module).double()
    x = torch.randn(batch, steps, features, requires_grad=True)
    x64 = x.detach().double().requires_grad_()
    got_target, got_seed = _upstream(upstream, run_native(module, x), seed=1)
    want_target, want_seed = _upstream(upstream, oracle(x64)[0], seed=1)
    got_grads = torch.autograd.grad(got_target, [x, *weights_of(module)], got_seed)
    want_grads = torch.autograd.grad(want_target, [x64, *weights_of(oracle)], want_seed)
    for a, b in zip(got_grads, want_grads, strict=True):
        close(a, b)


# ------------------------------------------------------------------ accumulation
@pytest.mark.parametrize(("cell", "bidirectional"), [("rnn", False), ("lstm", True)])
def test_gradients_accumulate_over_two_backward_passes(cell: str, bidirectional: bool) -> None:
    module = make(cell, 3, 9, 2, bidirectional, seed=2)
    oracle = copy.deepcopy(module).double()
    x = torch.randn(7, 4, 3, requires_grad=True)  # used by both passes: x.grad accumulates too
    x64 = x.detach().double().requires_grad_()
    for part in (slice(0, 4), slice(2, 7)):
        (run_native(module, x[part]) ** 2).sum().backward()  # type: ignore[no-untyped-call]
        (oracle(x64[part])[0] ** 2).sum().backward()  # type: ignore[no-untyped-call]
        if part.start == 0:  # the two biases share one gradient in native: not one buffer
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


def test_non_contiguous_weights_give_gradients_of_their_shape() -> None:
    module = make("lstm", 5, 6, 2, True, seed=4)
    oracle = copy.deepcopy(module).double()
    weights = [
        w.detach().t().contiguous().t().requires_grad_() if w.dim() == 2 else w
        for w in weights_of(module)
    ]
    assert not weights[0].is_contiguous()
    x = torch.randn(4, 3, 5)
    got = run_native(module, x, weights=weights)
    want, _ = oracle(x.double())
    close(got, want)
    got_grads = torch.autograd.grad(got.sum(), weights)
    want_grads = torch.autograd.grad(want.sum(), weights_of(oracle))
    for a, b in zip(got_grads, want_grads, strict=True):
        close(a, b)


# ------------------------------------------------------------- plain C against AVX2
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
    module = make(cell, features, hidden, layers, bidirectional, seed=hidden)
    x = torch.randn(batch, 6, features) * 2
    upstream = torch.randn(batch, 6, hidden * (2 if bidirectional else 1))
    results = []
    for kernel in KERNELS:
        select(kernel)
        xr = x.clone().requires_grad_()
        out = run_native(module, xr)
        grads = torch.autograd.grad(out, [xr, *weights_of(module)], upstream)
        with torch.no_grad():
            no_grad = run_native(module, x)
            last = run_native(module, x, last_only=True)
        results.append([out, no_grad, last, *grads])
    for a, b in zip(*results, strict=True):
        close(a, b, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------ threads, no-grad path
@pytest.mark.parametrize(
    ("cell", "bidirectional", "last_only", "batch"),
    [
        ("rnn", False, True, 531),  # the fused tanh stack, split over threads
        ("rnn", False, False, 512),
        ("lstm", False, True, 600),
        ("lstm", True, False, 513),
        ("rnn", True, True, 777),  # last_only ignored when bidirectional
    ],
)
def test_no_grad_bits_do_not_depend_on_threads_and_match_the_grad_path(
    cell: str, bidirectional: bool, last_only: bool, batch: int
) -> None:
    module = make(cell, 3, 9, 2, bidirectional, seed=batch)
    x = torch.randn(batch, 12, 3)[:, 1::2]  # a strided view: step stride 6
    results = []
    for threads, own in ((1, False), (2, False), (2, True)):
        torch.set_num_threads(threads)
        with torch.no_grad():
            if own:
                with native.own_threads():
                    results.append(run_native(module, x, last_only))
                assert torch.get_num_threads() == 2
            else:
                results.append(run_native(module, x, last_only))
        with torch.inference_mode():
            results.append(run_native(module, x, last_only))
    torch.set_num_threads(1)
    for other in results[1:]:
        assert torch.equal(results[0], other)
    with_grad = run_native(module, x.requires_grad_(), last_only)
    assert with_grad.requires_grad
    assert with_grad.shape == results[0].shape
    torch.testing.assert_close(with_grad.detach(), results[0], rtol=0, atol=1e-6)
    want = copy.deepcopy(module).double()(x.detach().double())[0]
    if last_only and not bidirectional:
        want = want[:, -1:]
    close(results[0], want)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_more_rows_than_one_no_grad_block(cell: str) -> None:
    rows = native.BLOCK_ROWS + 33
    module = make(cell, 1, 1, 2, False, seed=9)
    x = torch.randn(rows, 2, 1)
    with torch.no_grad():
        got = run_native(module, x)
        last = run_native(module, x, last_only=True)
    want = copy.deepcopy(module).double()(x.double())[0]
    close(got, want)
    close(last, want[:, -1:])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("cell", "bidirectional"), [("rnn", False), ("lstm", True)])
def test_a_row_gives_the_same_bits_whatever_batch_it_is_in(
    kernel: str, cell: str, bidirectional: bool
) -> None:
    """Rows never mix: the 4-row micro-kernel, its remainder loop and the 32-row blocks must
    all give a row the same bits (the thread split relies on it)."""
    select(kernel)
    module = make(cell, 5, 11, 2, bidirectional, seed=14)
    x = torch.randn(70, 4, 5)
    with torch.no_grad():
        whole = run_native(module, x)
        start = 0
        for size in (1, 3, 4, 5, 33, 24):
            part = run_native(module, x[start : start + size])
            assert torch.equal(part, whole[start : start + size]), (start, size)
            start += size
        assert start == 70
        for row in (0, 31, 32, 66, 69):
            assert torch.equal(run_native(module, x[row : row + 1]), whole[row : row + 1])
    xr = x.clone().requires_grad_()
    with_grad = run_native(module, xr)
    assert torch.equal(with_grad.detach(), whole)


# -------------------------------------------------------------------- last_only
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize(
    ("batch", "steps", "features", "hidden", "layers"),
    [(1, 1, 1, 1, 1), (33, 2, 7, 9, 3), (65, 5, 8, 17, 2)],
)
def test_last_only_is_the_last_step(
    cell: str, grad: bool, batch: int, steps: int, features: int, hidden: int, layers: int
) -> None:
    module = make(cell, features, hidden, layers, False, seed=steps)
    oracle = copy.deepcopy(module).double()
    x = torch.randn(batch, steps, features, requires_grad=grad)
    x64 = x.detach().double().requires_grad_()
    with torch.set_grad_enabled(grad):  # without: the fused tanh stack for the rnn
        got = run_native(module, x, last_only=True)
    want = oracle(x64)[0][:, -1:]
    assert got.shape == (batch, 1, hidden)
    assert got.requires_grad == grad
    close(got, want)
    with torch.no_grad():
        close(run_native(module, x)[:, -1:], want)
    if grad:
        got_grads = torch.autograd.grad(got.sum(), [x, *weights_of(module)])
        want_grads = torch.autograd.grad(want.sum(), [x64, *weights_of(oracle)])
        for a, b in zip(got_grads, want_grads, strict=True):
            close(a, b)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("grad", [False, True])
def test_last_only_is_ignored_when_bidirectional(cell: str, grad: bool) -> None:
    module = make(cell, 3, 5, 2, True, seed=6)
    x = torch.randn(4, 3, 3, requires_grad=grad)
    with torch.set_grad_enabled(grad):
        got = run_native(module, x, last_only=True)
    assert got.shape == (4, 3, 10)
    close(got, copy.deepcopy(module).double()(x.detach().double())[0])
    assert got.requires_grad == grad


# ------------------------------------------------------------------- saturation
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_large_inputs_saturate_like_the_module(kernel: str, cell: str, bidirectional: bool) -> None:
    select(kernel)
    module = make(cell, 4, 9, 2, bidirectional, seed=8)
    with torch.no_grad():  # large recurrent weights too: saturated states feed back
        for name in module._flat_weights_names:
            if name.startswith("weight_hh"):
                getattr(module, name).mul_(6.0)
    oracle = copy.deepcopy(module).double()
    torch.manual_seed(12)
    x = torch.rand(33, 7, 4) * 100 - 50
    x[:, :, 0].clamp_(-1, 1)  # a mix of saturated and unsaturated units
    x.requires_grad_()
    x64 = x.detach().double().requires_grad_()
    got = run_native(module, x)
    want = oracle(x64)[0]
    close(got, want, rtol=1e-4, atol=5e-5)
    with torch.no_grad():
        close(run_native(module, x.detach()), want, rtol=1e-4, atol=5e-5)
    upstream = torch.randn(want.shape, dtype=torch.float64)
    got_grads = torch.autograd.grad(got, [x, *weights_of(module)], upstream.float())
    want_grads = torch.autograd.grad(want, [x64, *weights_of(oracle)], upstream)
    for a, b in zip(got_grads, want_grads, strict=True):
        # float32 rounding of pre-activations near ±50 is ~4e-6; derivatives amplify it
        scale = float(b.abs().max()) + 1.0
        close(a, b, rtol=1e-3, atol=2e-4 * scale)


# --------------------------------------------------------------------------- NaN
@pytest.mark.parametrize("kernel", ["plain", "vector"])
@pytest.mark.parametrize(
    ("cell", "path"),
    [("rnn", "grad"), ("rnn", "no_grad"), ("rnn", "no_grad_last"), ("lstm", "grad")],
)
def test_nan_input_propagates(kernel: str, cell: str, path: str) -> None:
    select(kernel)
    module = make(cell, 3, 9, 2, False, seed=13)
    oracle = copy.deepcopy(module).double()
    x = torch.randn(5, 6, 3)
    x[0, 2, 1] = float("nan")
    x.requires_grad_(path == "grad")
    x64 = x.detach().double().requires_grad_()
    with torch.set_grad_enabled(path == "grad"):
        got = run_native(module, x, last_only=path == "no_grad_last")
    want = oracle(x64)[0]
    if path == "no_grad_last":
        want = want[:, -1:]
    assert got.requires_grad == (path == "grad")
    assert torch.isnan(want[0, -1]).all()
    assert torch.isnan(got[0, -1]).all(), f"row 0, last step: {got[0, -1]}"
    if path != "no_grad_last":
        assert torch.isnan(got[0, 2:]).all()
        close(got[0, :2], want[0, :2])
    close(got[1:], want[1:])
    if path == "grad":  # backward runs and the other rows' input gradients stay right
        (got_x,) = torch.autograd.grad(got[1:].sum() + got[0, :2].sum(), x)
        (want_x,) = torch.autograd.grad(want[1:].sum() + want[0, :2].sum(), x64)
        close(got_x[1:], want_x[1:])


# ---------------------------------------------------------------- other edge cases
@pytest.mark.parametrize(
    ("cell", "bidirectional", "last_only", "grad"),
    [
        ("lstm", False, False, False),
        ("rnn", True, False, False),
        ("rnn", False, True, False),
        ("lstm", True, False, True),
    ],
)
def test_an_empty_batch_gives_an_empty_output(
    cell: str, bidirectional: bool, last_only: bool, grad: bool
) -> None:
    module = make(cell, 3, 5, 2, bidirectional, seed=0)
    x = torch.randn(0, 4, 3, requires_grad=grad)
    want = module(x)[0]  # nn.RNN / nn.LSTM accept an empty batch
    if last_only:
        want = want[:, -1:]
    with torch.set_grad_enabled(grad):
        got = run_native(module, x, last_only)
    assert got.shape == want.shape


@pytest.mark.parametrize(
    ("cell", "last_only"),
    [
        ("rnn", True),  # beyond the fused stack's 16 layers: layer by layer
        ("rnn", False),
        ("lstm", True),
    ],
)
def test_seventeen_layers_without_gradients(cell: str, last_only: bool) -> None:
    module = make(cell, 2, 3, 17, False, seed=1)
    x = torch.randn(3, 2, 2)
    with torch.no_grad():
        got = run_native(module, x, last_only)
    want = copy.deepcopy(module).double()(x.double())[0]
    close(got, want[:, -1:] if last_only else want)


def test_float64_is_refused() -> None:
    module = make("rnn", 3, 5, 1, False).double()
    x = torch.randn(4, 3, 3, dtype=torch.float64)
    with torch.no_grad(), pytest.raises(ValueError, match="float32 tensors on the CPU"):
        run_native(module, x)


def test_a_second_derivative_is_refused() -> None:
    """nn.LSTM differentiates its backward pass; the compiled one has first derivatives only
    and says so instead of silently dropping the recurrence's terms."""
    module = make("lstm", 3, 4, 1, False, seed=3)
    x = torch.randn(3, 4, 3, requires_grad=True)
    out = run_native(module, x)
    with pytest.raises(RuntimeError, match="first derivatives only"):
        torch.autograd.grad(out.sum(), x, create_graph=True)


# ----------------------------------------------------------------- RecurrentNet
def _loss_and_grads(
    net: RecurrentNet, window: torch.Tensor, season: torch.Tensor, steps: bool
) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    net.zero_grad(set_to_none=True)
    out = net(window, season, steps=steps)
    parts = list(out) if isinstance(out, tuple) else [out]
    loss = sum(((o * torch.linspace(-1, 2, o.shape[-1])) ** 2).sum() for o in parts)
    assert isinstance(loss, torch.Tensor)
    loss.backward()  # type: ignore[no-untyped-call]
    grads = [None if p.grad is None else p.grad.clone() for p in net.parameters()]
    return [o.detach() for o in parts], grads


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("conv_channels", [0, 4])
@pytest.mark.parametrize("steps", [False, True])
def test_recurrent_net_native_matches_its_module_path(
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
    assert net.recurrence(window) == "native"
    twin = copy.deepcopy(net)
    twin.recurrence = lambda x: "module"  # type: ignore[method-assign]
    got_out, got_grads = _loss_and_grads(net, window, season, steps)
    want_out, want_grads = _loss_and_grads(twin, window, season, steps)
    for a, b in zip(got_out, want_out, strict=True):
        close(a, b)
    names = [name for name, _ in net.named_parameters()]
    for name, a, b in zip(names, got_grads, want_grads, strict=True):
        assert (a is None) == (b is None), name
        if a is not None and b is not None:
            scale = float(b.abs().max()) + 1.0
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * scale, msg=name)
    net.eval()
    twin.eval()
    with torch.no_grad():
        close(net(window, season), twin(window, season))
