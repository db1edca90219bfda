"""Recurrent stacks (tanh RNN and LSTM, one or both directions) on the compiled recurrence.

At a batch of 32 windows every PyTorch operation costs more in overhead than in arithmetic,
and a recurrent layer is a chain of tiny (B, H) products that must run one step after another.
:mod:`seqcast._recurrence` (C, built at install) runs a whole layer and direction in one call:
forward (input products, recurrence, activations) or backward (the recurrence in reverse, every
weight gradient, the gradient into the layer below). This module passes it tensors by pointer
and strides, wraps forward and backward in an autograd function, and runs forecasts without
gradients on all cores (:func:`own_threads`, :func:`one_worker`, :func:`pool`).

Same weights, same layout and the same function as ``nn.RNN(nonlinearity='tanh')`` and
``nn.LSTM`` (tested against them), in float32 on the CPU. :func:`available` says whether the
compiled part loaded; set ``SEQCAST_NATIVE=0`` to turn it off.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

import torch

__all__ = [
    "CELLS",
    "available",
    "one_worker",
    "own_threads",
    "pool",
    "recurrent_stack",
    "thread_count",
    "use_vector_kernels",
]

T = TypeVar("T")

#: The cells the compiled recurrence runs, with their number of gates.
CELLS = {"rnn": 1, "lstm": 4}
#: Rows per block when forecasting without gradients: bounds the memory of a huge batch.
BLOCK_ROWS = 8192

_P = ctypes.c_void_p
_I = ctypes.c_int
_N = ctypes.c_longlong
#: Threads that split the rows of a forecast without gradients; None: torch's thread count.
_workers: int | None = None
_local = threading.local()
#: Guards :func:`own_threads`' shared state: how many are inside it, and the count to restore.
_state_lock = threading.Lock()
_entered = 0
_saved_threads = 1
_SEQ: list[Any] = [_P, _N, _N]  # pointer to time 0 of row 0, step stride, row stride (in floats)


@cache
def _library() -> ctypes.CDLL | None:
    if os.environ.get("SEQCAST_NATIVE", "1") == "0":
        return None
    try:
        from seqcast import _recurrence  # type: ignore[attr-defined]
    except ImportError:
        return None
    library = ctypes.CDLL(_recurrence.__file__)
    library.seq_select.argtypes = [_I]
    library.seq_select(1)
    library.seq_layer_forward.argtypes = [*[_I] * 5, *_SEQ, _P, _P, _P, _P, *_SEQ, *_SEQ, *_SEQ]
    library.seq_layer_backward.argtypes = [
        *[_I] * 5,
        *_SEQ,
        *_SEQ,
        *_SEQ,
        *_SEQ,
        *_SEQ,
        _P,
        _P,
        _P,
        _P,
        _P,
        *_SEQ,
    ]
    library.seq_tanh_stack_forward.argtypes = [*[_I] * 5, *_SEQ, _P, _P, _P, _P, _P]
    return library


def available() -> bool:
    """Whether the compiled recurrence is built and enabled."""
    return _library() is not None


@contextmanager
def own_threads() -> Iterator[None]:
    """Runs PyTorch on one thread while forecasts without gradients split their rows over the
    threads PyTorch had. PyTorch's idle OpenMP workers spin for a while after each operation
    and would take the cores from the recurrence's threads (measured: 8,192 windows of the
    default rnn in 40 ms with both, 33 ms without). Nested and overlapping uses (two threads
    forecasting at once) share one setting: the first in saves PyTorch's count, the last out
    restores it. Does nothing inside :func:`one_worker`."""
    global _workers, _entered, _saved_threads
    if getattr(_local, "one_worker", False):
        yield
        return
    with _state_lock:
        if _entered == 0:
            _saved_threads = torch.get_num_threads()
            _workers = _saved_threads
            torch.set_num_threads(1)
        _entered += 1
    try:
        yield
    finally:
        with _state_lock:
            _entered -= 1
            if _entered == 0:
                torch.set_num_threads(_saved_threads)
                _workers = None


@contextmanager
def one_worker() -> Iterator[None]:
    """Keeps this thread's forecasts on this thread: for callers that already run several
    forecasts side by side on the threads of :func:`own_threads`."""
    _local.one_worker = True
    try:
        yield
    finally:
        _local.one_worker = False


def thread_count() -> int:
    """The threads forecasts without gradients use here: 1 inside :func:`one_worker`, else
    PyTorch's count (from before :func:`own_threads`)."""
    if getattr(_local, "one_worker", False):
        return 1
    return _workers or torch.get_num_threads()


def _worker_count(rows: int) -> int:
    """Threads for a forecast of ``rows`` rows without gradients: at least 256 rows each."""
    return max(1, min(thread_count(), rows // 256))


def use_vector_kernels(enabled: bool) -> bool:
    """Chooses the AVX2/FMA kernels (the default where the CPU has them) or the plain C ones;
    returns whether the vector kernels are in use now. For tests and comparisons."""
    return bool(_lib().seq_select(int(enabled)))


def _lib() -> ctypes.CDLL:
    library = _library()
    if library is None:
        raise RuntimeError("seqcast's compiled recurrence is not available")
    return library


def _seq(tensor: torch.Tensor | None, reverse: bool = False) -> list[int]:
    """Pointer and strides of a (L, rows, W) float32 view, as the C functions take them;
    ``reverse`` points at the last step with a negative step stride."""
    if tensor is None:
        return [0, 0, 0]
    steps_stride, row_stride = tensor.stride(0), tensor.stride(1)
    pointer = tensor.data_ptr()
    if reverse:
        pointer += (tensor.shape[0] - 1) * steps_stride * tensor.element_size()
        steps_stride = -steps_stride
    return [pointer, steps_stride, row_stride]


#: Most layers the fused tanh stack (forecasts without gradients) takes; deeper stacks run
#: layer by layer.
MAX_FUSED_LAYERS = 16


def _check(code: int) -> None:
    if code == -1:
        raise MemoryError("seqcast's compiled recurrence ran out of memory")
    if code != 0:
        raise ValueError(f"seqcast's compiled recurrence refused its arguments (code {code})")


def _layer_forward(
    cell: str,
    layer_in: torch.Tensor,
    weights: tuple[torch.Tensor, ...],
    out: torch.Tensor,
    reverse: bool,
    act: torch.Tensor | None = None,
    cell_state: torch.Tensor | None = None,
) -> None:
    """One layer and direction: input (L, B, F) view into ``out`` (L, B, H) view; an LSTM in
    training also keeps its activated gates ``act`` (L, B, 4H) and cells (L, B, H)."""
    steps, rows, hidden = out.shape
    w_ih, w_hh, b_ih, b_hh = (w.contiguous() for w in weights)
    code = _lib().seq_layer_forward(
        CELLS[cell], steps, rows, layer_in.shape[2], hidden, *_seq(layer_in, reverse),
        w_ih.data_ptr(), w_hh.data_ptr(), b_ih.data_ptr(), b_hh.data_ptr(),
        *_seq(out, reverse), *_seq(act, reverse), *_seq(cell_state, reverse),
    )  # fmt: skip
    _check(code)


def _forward(
    x: torch.Tensor,
    cell: str,
    num_layers: int,
    directions: int,
    weights: tuple[torch.Tensor, ...],
    keep: bool,
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor | None], list[torch.Tensor | None]]:
    """The stack on input (L, B, F) (any strides with the last one 1): top output (L, B, D·H),
    every layer's input, and (``keep``) the LSTM gates and cells the backward pass needs."""
    steps, rows, _ = x.shape
    hidden = weights[1].shape[1]
    inputs, kept_gates, kept_cells = [], [], []
    layer_in = x
    for layer in range(num_layers):
        inputs.append(layer_in)
        out = x.new_empty(steps, rows, directions * hidden)
        for direction in range(directions):
            index = layer * directions + direction
            act = cells = None
            if keep and cell == "lstm":
                act = x.new_empty(steps, rows, 4 * hidden)
                cells = x.new_empty(steps, rows, hidden)
            half = out[:, :, direction * hidden : (direction + 1) * hidden]
            part = weights[4 * index : 4 * index + 4]
            _layer_forward(cell, layer_in, part, half, direction == 1, act, cells)
            kept_gates.append(act)
            kept_cells.append(cells)
        layer_in = out
    return layer_in, inputs, kept_gates, kept_cells


class _Stack(torch.autograd.Function):
    """The stack with its hand-written backward pass (first derivatives only: a second
    backward raises instead of silently dropping terms)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        cell: str,
        num_layers: int,
        directions: int,
        *weights: torch.Tensor,
    ) -> torch.Tensor:
        steps_first = x.transpose(0, 1)  # (B, L, F) -> (L, B, F), a view
        if steps_first.stride(2) != 1:
            steps_first = steps_first.contiguous()
        top, inputs, gates, cells = _forward(
            steps_first, cell, num_layers, directions, weights, keep=True
        )
        ctx.save_for_backward(top, *inputs, *weights)
        ctx.lstm_state = (gates, cells)
        ctx.cell, ctx.num_layers, ctx.directions = cell, num_layers, directions
        return top.transpose(0, 1)  # (B, L, D·H)

    @staticmethod
    def backward(ctx: Any, grad_top: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if torch.is_grad_enabled():  # create_graph=True: the C code has no second derivative
            raise RuntimeError(
                "seqcast's compiled recurrence has first derivatives only; for a second one "
                "run with SEQCAST_NATIVE=0"
            )
        cell: str = ctx.cell
        num_layers: int = ctx.num_layers
        directions: int = ctx.directions
        saved = ctx.saved_tensors
        top, inputs, weights = saved[0], saved[1 : 1 + num_layers], saved[1 + num_layers :]
        gates, cells = ctx.lstm_state
        hidden = weights[1].shape[1]
        grad_out = grad_top.transpose(0, 1)  # (L, B, D·H), a view
        if grad_out.stride(2) != 1:
            grad_out = grad_out.contiguous()
        grads: list[torch.Tensor | None] = [None] * len(weights)
        for layer in range(num_layers - 1, -1, -1):
            layer_in = inputs[layer]
            out = inputs[layer + 1] if layer + 1 < num_layers else top
            wants_input = layer > 0 or ctx.needs_input_grad[0]
            grad_in = torch.empty_like(layer_in) if wants_input else None
            for direction in range(directions):
                index = layer * directions + direction
                w_ih, w_hh = (w.contiguous() for w in weights[4 * index : 4 * index + 2])
                grad_ih, grad_hh = torch.empty_like(w_ih), torch.empty_like(w_hh)
                grad_b = w_ih.new_empty(w_ih.shape[0])
                columns = slice(direction * hidden, (direction + 1) * hidden)
                reverse = direction == 1
                code = _lib().seq_layer_backward(
                    CELLS[cell], *out.shape[:2], layer_in.shape[2], hidden,
                    *_seq(layer_in, reverse), *_seq(out[:, :, columns], reverse),
                    *_seq(gates[index], reverse), *_seq(cells[index], reverse),
                    *_seq(grad_out[:, :, columns], reverse), w_ih.data_ptr(), w_hh.data_ptr(),
                    grad_ih.data_ptr(), grad_hh.data_ptr(), grad_b.data_ptr(),
                    *_seq(grad_in, reverse), direction,
                )  # fmt: skip
                _check(code)
                grads[4 * index : 4 * index + 4] = [grad_ih, grad_hh, grad_b, grad_b]
            if grad_in is not None:
                grad_out = grad_in
        grad_x = grad_out.transpose(0, 1) if ctx.needs_input_grad[0] else None
        return (grad_x, None, None, None, *grads)


def _pointers(tensors: list[torch.Tensor]) -> Any:
    """A C array of the tensors' data pointers (each must be contiguous)."""
    return (ctypes.c_void_p * len(tensors))(*(t.data_ptr() for t in tensors))


def _tanh_last(x: torch.Tensor, weights: tuple[torch.Tensor, ...], num_layers: int) -> torch.Tensor:
    """The top layer's last output without gradients, (B, L, F) -> (B, 1, H), from the fused
    stack (all layers on 32-row blocks that stay in cache)."""
    x = x if x.stride(2) == 1 else x.contiguous()
    last = x.new_empty(x.shape[0], weights[1].shape[0])
    parts = [w.contiguous() for w in weights]

    def run(start: int, stop: int) -> None:
        rows = x[start:stop]
        code = _lib().seq_tanh_stack_forward(
            rows.shape[1], rows.shape[0], rows.shape[2], last.shape[1], num_layers,
            rows.data_ptr(), rows.stride(1), rows.stride(0), _pointers(parts[0::4]),
            _pointers(parts[1::4]), _pointers(parts[2::4]), _pointers(parts[3::4]),
            last[start:].data_ptr(),
        )  # fmt: skip
        _check(code)

    _over_rows(x.shape[0], x.shape[0], run)
    return last[:, None]


def _over_rows(rows: int, most: int, run: Callable[[int, int], T]) -> list[T]:
    """``run(start, stop)`` over consecutive blocks of at most ``most`` rows, split over
    :func:`thread_count` threads when there are enough rows (PyTorch on one thread meanwhile);
    the results in row order."""
    workers = _worker_count(rows)
    block = max(1, min(most, -(-rows // workers)))
    starts = range(0, rows, block)
    if workers == 1:
        return [run(start, start + block) for start in starts]
    with own_threads():
        return list(pool(workers).map(lambda start: run(start, start + block), starts))


@cache
def pool(workers: int) -> ThreadPoolExecutor:
    """A shared pool of ``workers`` threads (made once per count)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seqcast-recurrence")


def _forward_only(
    x: torch.Tensor, cell: str, num_layers: int, directions: int, weights: tuple[torch.Tensor, ...]
) -> torch.Tensor:
    """The stack without gradients, in blocks of rows on the threads of :func:`_over_rows`
    (the compiled recurrence releases the GIL). (B, L, F) -> (B, L, D·H)."""
    if x.shape[0] == 0:
        return x.new_empty(0, x.shape[1], directions * weights[1].shape[1])

    def run(start: int, stop: int) -> torch.Tensor:
        part = x[start:stop].transpose(0, 1).contiguous()  # (L, b, F)
        return _forward(part, cell, num_layers, directions, weights, keep=False)[0]

    return torch.cat(_over_rows(x.shape[0], BLOCK_ROWS, run), dim=1).transpose(0, 1)


def recurrent_stack(
    x: torch.Tensor,
    weights: list[torch.Tensor],
    cell: str,
    num_layers: int,
    bidirectional: bool = False,
    last_only: bool = False,
) -> torch.Tensor:
    """Runs a stack of ``rnn`` (tanh) or ``lstm`` layers from a zero state:
    (B, L, F) -> the top layer's output at every step, (B, L, D·H), D = 2 when bidirectional;
    with ``last_only`` (unidirectional) the last step alone, (B, 1, H).

    ``weights`` are the module's flat weights in ``nn.RNN``/``nn.LSTM`` order (``weight_ih_l0,
    weight_hh_l0, bias_ih_l0, bias_hh_l0``, then ``..._reverse`` when bidirectional, layer by
    layer). Inputs and weights must be float32 on the CPU.
    """
    directions = 2 if bidirectional else 1
    if cell not in CELLS or len(weights) != 4 * num_layers * directions:
        raise ValueError("recurrent_stack needs a known cell and 4 tensors per layer and direction")
    if any(t.dtype != torch.float32 or t.device.type != "cpu" for t in (x, *weights)):
        raise ValueError("recurrent_stack runs float32 tensors on the CPU")
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or any(w.requires_grad for w in weights)
    )
    last_only = last_only and not bidirectional
    if cell == "rnn" and last_only and not needs_grad and num_layers <= MAX_FUSED_LAYERS:
        with torch.no_grad():
            return _tanh_last(x, tuple(weights), num_layers)
    if not needs_grad:
        with torch.no_grad():
            out = _forward_only(x, cell, num_layers, directions, tuple(weights))
    else:
        out = _Stack.apply(x, cell, num_layers, directions, *weights)  # type: ignore[no-untyped-call]
    return out[:, -1:] if last_only else out
