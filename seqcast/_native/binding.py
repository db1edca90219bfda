"""Recurrent stacks (tanh RNN, GRU and LSTM, one or both directions) on the compiled recurrence.

At a batch of 32 windows every PyTorch operation costs more in overhead than in arithmetic,
and a recurrent layer is a chain of tiny (B, H) products that must run one step after another.
:mod:`seqcast._native._recurrence` (C, built at install) runs a layer and direction in one call:
forward (input products, recurrence, activations) or backward (the recurrence in reverse, every
weight gradient, the gradient into the layer below). This module passes it tensors by pointer
and strides, wraps forward and backward in an autograd function, and runs forecasts without
gradients on all cores (:func:`own_threads`, :func:`one_worker`, :func:`pool`).

Same weights, same layout and the same function as ``nn.RNN(nonlinearity='tanh')``,
``nn.GRU`` and ``nn.LSTM`` (tested against them), in float32 on the CPU. :func:`available`
says whether the compiled part loaded; set ``SEQCAST_NATIVE=0`` to turn it off.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import torch

__all__ = [
    "CELLS",
    "HeadPlan",
    "Kept",
    "StackPlan",
    "adam_step",
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
CELLS = {"rnn": 1, "gru": 3, "lstm": 4}
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
        from seqcast._native import _recurrence  # type: ignore[attr-defined]
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
        _P,
        *_SEQ,
        _I,
    ]
    library.seq_tanh_stack_forward.argtypes = [*[_I] * 5, *_SEQ, _P, _P, _P, _P, _P]
    library.seq_head_loss.argtypes = [*[_I] * 3, *[_P] * 6, _N, _I, *[_P] * 5]
    library.seq_head_loss.restype = ctypes.c_double
    library.seq_adam.argtypes = [_N, _P, _P, _P, _P, *[ctypes.c_float] * 8, _I]
    library.seq_adam.restype = None
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


#: A prepared call of the compiled recurrence: the function, its arguments, and the tensors
#: whose memory the arguments point into (kept alive with the call).
_Call = tuple[Any, tuple[Any, ...], tuple[torch.Tensor, ...]]


def _run(calls: list[_Call]) -> None:
    for function, arguments, _ in calls:
        _check(function(*arguments))


def _forward_calls(
    x: torch.Tensor,
    cell: str,
    num_layers: int,
    directions: int,
    weights: tuple[torch.Tensor, ...],
    keep: bool,
) -> tuple[Kept, list[_Call]]:
    """Allocates the stack's outputs for input ``x`` (L, B, F) (any strides with the last one
    1) and prepares the calls that compute them: every layer's input and the top output
    (L, B, D·H), and (``keep``) the LSTM gates (L, B, 4H) and cells (L, B, H) that the
    backward pass needs."""
    steps, rows, _ = x.shape
    hidden = weights[1].shape[1]
    function = _lib().seq_layer_forward
    inputs: list[torch.Tensor] = []
    kept_gates: list[torch.Tensor | None] = []
    kept_cells: list[torch.Tensor | None] = []
    calls: list[_Call] = []
    layer_in = x
    for layer in range(num_layers):
        inputs.append(layer_in)
        out = x.new_empty(steps, rows, directions * hidden)
        for direction in range(directions):
            index = layer * directions + direction
            act = cells = None
            if keep and cell != "rnn":  # the LSTM's and GRU's gates, the LSTM's cells
                act = x.new_empty(steps, rows, 4 * hidden)
                cells = x.new_empty(steps, rows, hidden) if cell == "lstm" else None
            half = out[:, :, direction * hidden : (direction + 1) * hidden]
            w_ih, w_hh, b_ih, b_hh = (w.contiguous() for w in weights[4 * index : 4 * index + 4])
            reverse = direction == 1
            arguments = (
                CELLS[cell], steps, rows, layer_in.shape[2], hidden, *_seq(layer_in, reverse),
                w_ih.data_ptr(), w_hh.data_ptr(), b_ih.data_ptr(), b_hh.data_ptr(),
                *_seq(half, reverse), *_seq(act, reverse), *_seq(cells, reverse),
            )  # fmt: skip
            calls.append((function, arguments, (w_ih, w_hh, b_ih, b_hh)))
            kept_gates.append(act)
            kept_cells.append(cells)
        layer_in = out
    return Kept(cell, num_layers, directions, layer_in, inputs, kept_gates, kept_cells), calls


def _forward(
    x: torch.Tensor,
    cell: str,
    num_layers: int,
    directions: int,
    weights: tuple[torch.Tensor, ...],
    keep: bool,
) -> Kept:
    """The stack on input (L, B, F) (any strides with the last one 1); see
    :func:`_forward_calls` for what it returns."""
    kept, calls = _forward_calls(x, cell, num_layers, directions, weights, keep)
    _run(calls)
    return kept


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
        kept = _forward(steps_first, cell, num_layers, directions, weights, keep=True)
        ctx.save_for_backward(kept.top, *kept.inputs, *weights)
        ctx.gates_and_cells = (kept.gates, kept.cells)
        ctx.cell, ctx.num_layers, ctx.directions = cell, num_layers, directions
        return kept.top.transpose(0, 1)  # (B, L, D·H)

    @staticmethod
    def backward(ctx: Any, grad_top: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if torch.is_grad_enabled():  # create_graph=True: the C code has no second derivative
            raise RuntimeError(
                "seqcast's compiled recurrence has first derivatives only; for a second one "
                "run with SEQCAST_NATIVE=0"
            )
        num_layers: int = ctx.num_layers
        saved = ctx.saved_tensors
        top, inputs, weights = saved[0], saved[1 : 1 + num_layers], saved[1 + num_layers :]
        gates, cells = ctx.gates_and_cells
        kept = Kept(ctx.cell, num_layers, ctx.directions, top, list(inputs), gates, cells)
        grads = [w.new_empty(w.shape) for w in weights]
        grad_x, calls = _backward_calls(
            kept, weights, grad_top.transpose(0, 1), grads, ctx.needs_input_grad[0]
        )
        _run(calls)
        return (
            None if grad_x is None else grad_x.transpose(0, 1),
            None,
            None,
            None,
            *grads,
        )


@dataclass
class Kept:
    """What the stack's forward pass keeps for its backward pass: the configuration, the top
    layer's output (L, B, D·H), every layer's input (L, B, F or D·H), and each layer and
    direction's activated gates (L, B, 4H) (LSTM and GRU) and cells (L, B, H) (LSTM), None
    where the cell has none."""

    cell: str
    num_layers: int
    directions: int
    top: torch.Tensor
    inputs: list[torch.Tensor]
    gates: list[torch.Tensor | None]
    cells: list[torch.Tensor | None]


def _backward_calls(
    kept: Kept,
    weights: tuple[torch.Tensor, ...] | list[torch.Tensor],
    grad_top: torch.Tensor,
    grads: list[torch.Tensor],
    want_input: bool,
) -> tuple[torch.Tensor | None, list[_Call]]:
    """Prepares the stack's backward pass from ``grad_top`` = dL/d(top output), (L, B, D·H)
    (any strides): the calls, top layer first, write (not add) every weight's gradient into
    ``grads`` (contiguous float32 tensors shaped like ``weights``; both biases of a tanh or
    LSTM layer get the same, a GRU's differ). Returns dL/dx, (L, B, F) (allocated here,
    written by the calls; None unless ``want_input``), and the calls."""
    cell, num_layers, directions = kept.cell, kept.num_layers, kept.directions
    hidden = weights[1].shape[1]
    function = _lib().seq_layer_backward
    grad_out = grad_top if grad_top.stride(2) == 1 else grad_top.contiguous()
    calls: list[_Call] = []
    for layer in range(num_layers - 1, -1, -1):
        layer_in = kept.inputs[layer]
        out = kept.inputs[layer + 1] if layer + 1 < num_layers else kept.top
        grad_in = torch.empty_like(layer_in) if layer > 0 or want_input else None
        for direction in range(directions):
            index = layer * directions + direction
            w_ih, w_hh = (w.contiguous() for w in weights[4 * index : 4 * index + 2])
            grad_ih, grad_hh, grad_b, grad_b_hh = grads[4 * index : 4 * index + 4]
            columns = slice(direction * hidden, (direction + 1) * hidden)
            reverse = direction == 1
            arguments = (
                CELLS[cell], *out.shape[:2], layer_in.shape[2], hidden,
                *_seq(layer_in, reverse), *_seq(out[:, :, columns], reverse),
                *_seq(kept.gates[index], reverse), *_seq(kept.cells[index], reverse),
                *_seq(grad_out[:, :, columns], reverse), w_ih.data_ptr(), w_hh.data_ptr(),
                grad_ih.data_ptr(), grad_hh.data_ptr(), grad_b.data_ptr(), grad_b_hh.data_ptr(),
                *_seq(grad_in, reverse), direction,
            )  # fmt: skip
            refs = (w_ih, w_hh, grad_out) if grad_in is None else (w_ih, w_hh, grad_out, grad_in)
            calls.append((function, arguments, refs))
        if grad_in is not None:
            grad_out = grad_in
    return (grad_out if want_input else None), calls


class StackPlan:
    """The stack's training forward and backward on batches of one shape, prepared once and
    run step after step: fixed buffers, the compiled calls' arguments built once. Training a
    small model takes thousands of identical steps, where rebuilding the buffers and arguments
    cost as much as a third of the compiled work.

    The weights and gradient tensors must keep their memory (contiguous views into a flat
    buffer, updated in place) while the plan is used.
    """

    def __init__(
        self,
        weights: list[torch.Tensor],
        grads: list[torch.Tensor],
        cell: str,
        num_layers: int,
        directions: int,
        steps: int,
        rows: int,
        features: int,
    ) -> None:
        if not all(t.is_contiguous() for t in (*weights, *grads)):
            raise ValueError("a StackPlan needs contiguous weights and gradients")
        _check_shapes(features, weights, cell, num_layers, directions)
        self.x = weights[0].new_empty(steps, rows, features)  # (L, B, F)
        self.kept, self._forward = _forward_calls(
            self.x, cell, num_layers, directions, tuple(weights), keep=True
        )
        #: dL/d(top output), (L, B, D·H): the caller writes it before :meth:`backward`.
        self.grad_top = torch.zeros_like(self.kept.top)
        _, self._backward = _backward_calls(self.kept, weights, self.grad_top, grads, False)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """Runs the stack on ``window`` (B, L, F): the top layer's output, (L, B, D·H) (this
        plan's buffer, overwritten by the next call)."""
        if window.shape != self.x.transpose(0, 1).shape:
            raise ValueError(
                f"this plan runs windows of shape {tuple(self.x.transpose(0, 1).shape)}, "
                f"got {tuple(window.shape)}"
            )
        self.x.copy_(window.transpose(0, 1))
        _run(self._forward)
        return self.kept.top

    def backward(self) -> None:
        """Writes the weights' gradients from :attr:`grad_top` and the last forward."""
        _run(self._backward)


def adam_step(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    settings: tuple[float, ...],
    decoupled: bool,
) -> bool:
    """One Adam (AdamW when ``decoupled``) step in one compiled pass over flat float32 CPU
    tensors of one size; ``settings`` = (1 − β1, β2, 1 − β2, eps, −lr / (1 − β1^t),
    √(1 − β2^t), weight decay, 1 − lr · weight decay), computed in double precision as
    torch.optim does. Returns False (nothing done) where the compiled part or the tensors do
    not allow it."""
    tensors = (param, grad, exp_avg, exp_avg_sq)
    if any(t.numel() != param.numel() for t in tensors):
        raise ValueError("adam_step needs four tensors of one size")
    if _library() is None or not all(
        t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous() for t in tensors
    ):
        return False
    _lib().seq_adam(param.numel(), *(t.data_ptr() for t in tensors), *settings, int(decoupled))
    torch.autograd.graph.increment_version(param)  # as an in-place operation would
    return True


#: The losses :class:`HeadPlan` computes, with their codes in the compiled part.
LOSSES = {"huber": 0, "mse": 1, "mae": 2}


class HeadPlan:
    """The output layer and the mean loss of a training batch, forward and backward, in one
    compiled call: forecast = bias + [part_1 | part_2 | ...] · Wᵀ over (B, width) input pieces,
    the mean Huber (δ = 1), squared or absolute error against the targets, and the gradients
    of the weight, the bias and the pieces that ask for one.

    ``fixed`` pieces are (B, w_k) views whose memory does not move (the stack plan's top
    output, each with the view of dL/d(that output) to write, or None); ``batch_widths`` are
    the widths of the pieces given to each call (seasonal vector, flat window).
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        loss: str,
        fixed: list[tuple[torch.Tensor, torch.Tensor | None]],
        batch_widths: list[int],
    ) -> None:
        if weight.grad is None or bias.grad is None:
            raise ValueError("a HeadPlan writes into existing gradients")
        tensors = (weight, bias, weight.grad, bias.grad)
        if not all(t.is_contiguous() and t.dtype == torch.float32 for t in tensors):
            raise ValueError("a HeadPlan needs contiguous float32 weights and gradients")
        rows = fixed[0][0].shape[0]
        count = len(fixed) + len(batch_widths)
        self._function = _lib().seq_head_loss
        self._tensors = (tensors, fixed)  # the memory the pointers below point into
        self._pointers = (ctypes.c_void_p * count)(*(view.data_ptr() for view, _ in fixed))
        self._strides = (ctypes.c_longlong * count)(*(view.stride(0) for view, _ in fixed))
        widths = [view.shape[1] for view, _ in fixed] + batch_widths
        grads = [None if g is None else g.data_ptr() for _, g in fixed] + [None] * len(batch_widths)
        grad_strides = [0 if g is None else g.stride(0) for _, g in fixed] + [0] * len(batch_widths)
        if any(view.stride(1) != 1 for view, _ in fixed) or any(
            g is not None and g.stride(1) != 1 for _, g in fixed
        ):
            raise ValueError("a HeadPlan needs pieces with contiguous rows")
        if sum(widths) != weight.shape[1] or bias.shape != (weight.shape[0],):
            raise ValueError("a HeadPlan's pieces must add up to its weight's columns")
        self._shapes = [(rows, width) for width in batch_widths], (rows, weight.shape[0])
        self._forecast = weight.new_empty(rows * weight.shape[0])
        self._first_batch = len(fixed)
        self._arguments = (
            rows, weight.shape[0], count, self._pointers, self._strides,
            (ctypes.c_int * count)(*widths), weight.data_ptr(), bias.data_ptr(),
        )  # fmt: skip
        self._rest = (
            LOSSES[loss], self._forecast.data_ptr(), weight.grad.data_ptr(), bias.grad.data_ptr(),
            (ctypes.c_void_p * count)(*grads), (ctypes.c_longlong * count)(*grad_strides),
        )  # fmt: skip

    def __call__(self, pieces: list[torch.Tensor], target: torch.Tensor) -> float:
        """The batch's mean loss, from the batch's pieces ((B, w_k) float32, rows contiguous)
        and targets (B, O) (rows contiguous); writes the gradients."""
        shapes, target_shape = self._shapes
        if [tuple(p.shape) for p in pieces] != shapes or tuple(target.shape) != target_shape:
            raise ValueError(f"this HeadPlan takes pieces {shapes} and targets {target_shape}")
        if any(t.dtype != torch.float32 or (t.shape[1] > 1 and t.stride(1) != 1)
               for t in (*pieces, target)):  # fmt: skip
            raise ValueError("a HeadPlan takes float32 pieces and targets with contiguous rows")
        for k, piece in enumerate(pieces, self._first_batch):
            self._pointers[k] = piece.data_ptr()
            self._strides[k] = piece.stride(0) if piece.shape[1] else 0
        return float(self._function(*self._arguments, target.data_ptr(), target.stride(0),
                                    *self._rest))  # fmt: skip


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
        return _forward(part, cell, num_layers, directions, weights, keep=False).top

    return torch.cat(_over_rows(x.shape[0], BLOCK_ROWS, run), dim=1).transpose(0, 1)


def _check_shapes(
    features: int, weights: list[torch.Tensor], cell: str, num_layers: int, directions: int
) -> None:
    """Raises ValueError unless ``weights`` have the shapes of a ``cell`` stack on inputs of
    ``features`` channels (the compiled code trusts them)."""
    hidden = weights[1].shape[-1]
    rows = CELLS[cell] * hidden
    for index in range(num_layers * directions):
        w_ih, w_hh, b_ih, b_hh = weights[4 * index : 4 * index + 4]
        width = features if index < directions else directions * hidden
        if (
            tuple(w_ih.shape) != (rows, width)
            or tuple(w_hh.shape) != (rows, hidden)
            or tuple(b_ih.shape) != (rows,)
            or tuple(b_hh.shape) != (rows,)
        ):
            raise ValueError(
                f"recurrent_stack: the weights do not fit a {cell} stack of {num_layers} "
                f"layer(s) on {features} input channel(s)"
            )


def recurrent_stack(
    x: torch.Tensor,
    weights: list[torch.Tensor],
    cell: str,
    num_layers: int,
    bidirectional: bool = False,
    last_only: bool = False,
) -> torch.Tensor:
    """Runs a stack of ``rnn`` (tanh), ``gru`` or ``lstm`` layers from a zero state:
    (B, L, F) -> the top layer's output at every step, (B, L, D·H), D = 2 when bidirectional;
    with ``last_only`` (unidirectional) the last step alone, (B, 1, H).

    ``weights`` are the module's flat weights in ``nn.RNN``/``nn.GRU``/``nn.LSTM`` order
    (``weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0``, then ``..._reverse`` when
    bidirectional, layer by layer). Inputs and weights must be float32 on the CPU.
    """
    directions = 2 if bidirectional else 1
    if cell not in CELLS or len(weights) != 4 * num_layers * directions:
        raise ValueError("recurrent_stack needs a known cell and 4 tensors per layer and direction")
    if any(t.dtype != torch.float32 or t.device.type != "cpu" for t in (x, *weights)):
        raise ValueError("recurrent_stack runs float32 tensors on the CPU")
    _check_shapes(x.shape[2], weights, cell, num_layers, directions)
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
