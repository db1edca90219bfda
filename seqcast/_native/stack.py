"""The recurrent stack (tanh RNN, GRU and LSTM layers, one or both directions) on the compiled
recurrence: the one implementation behind every compiled forward and backward pass.

At a batch of 32 windows every PyTorch operation costs more in overhead than in arithmetic,
and a recurrent layer is a chain of tiny (B, H) products that must run one step after another.
The compiled code runs a whole layer and direction in one call: forward (input products,
recurrence, activations) or backward (the recurrence in reverse, every weight gradient, the
gradient into the layer below).

* :class:`CompiledStack` prepares those calls for batches of one shape (buffers and arguments
  built once): the training step of :mod:`seqcast.training.compiled_step` runs one thousands of
  times.
* :func:`recurrent_stack` is the stack as PyTorch sees it: with gradients, one autograd
  function over a :class:`CompiledStack`; without, forecasts split into blocks of rows over the
  threads of :mod:`seqcast._native.binding`.

Same weights, same layout and the same function as ``nn.RNN(nonlinearity='tanh')``,
``nn.GRU`` and ``nn.LSTM`` (tested against them), in float32 on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from seqcast._native import binding
from seqcast._native.binding import seq

__all__ = ["BLOCK_ROWS", "CELLS", "CompiledStack", "Kept", "recurrent_stack"]

#: The cells the compiled recurrence runs, with their number of gates.
CELLS = {"rnn": 1, "gru": 3, "lstm": 4}
#: Rows per block when forecasting without gradients: bounds the memory of a huge batch, and
#: keeps a block's layer outputs in cache between layers (100,000 forecasts of the default rnn
#: on 2 threads: 205,000/s with blocks of 8,192 rows, 390,000/s with 1,024).
BLOCK_ROWS = 1024


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


def _forward_calls(
    x: torch.Tensor,
    cell: str,
    num_layers: int,
    directions: int,
    weights: tuple[torch.Tensor, ...],
    keep: bool,
) -> tuple[Kept, list[binding.Call]]:
    """Allocates the stack's outputs for input ``x`` (L, B, F) (any strides with the last one
    1) and prepares the calls that compute them: every layer's input and the top output
    (L, B, D·H), and (``keep``) the LSTM gates (L, B, 4H) and cells (L, B, H) that the
    backward pass needs."""
    steps, rows, _ = x.shape
    hidden = weights[1].shape[1]
    function = binding.lib().seq_layer_forward
    inputs: list[torch.Tensor] = []
    kept_gates: list[torch.Tensor | None] = []
    kept_cells: list[torch.Tensor | None] = []
    calls: list[binding.Call] = []
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
                CELLS[cell], steps, rows, layer_in.shape[2], hidden, *seq(layer_in, reverse),
                w_ih.data_ptr(), w_hh.data_ptr(), b_ih.data_ptr(), b_hh.data_ptr(),
                *seq(half, reverse), *seq(act, reverse), *seq(cells, reverse),
            )  # fmt: skip
            calls.append((function, arguments, (w_ih, w_hh, b_ih, b_hh)))
            kept_gates.append(act)
            kept_cells.append(cells)
        layer_in = out
    return Kept(cell, num_layers, directions, layer_in, inputs, kept_gates, kept_cells), calls


def _backward_calls(
    kept: Kept,
    weights: tuple[torch.Tensor, ...] | list[torch.Tensor],
    grad_top: torch.Tensor,
    grads: list[torch.Tensor],
    want_input: bool,
) -> tuple[torch.Tensor | None, list[binding.Call]]:
    """Prepares the stack's backward pass from ``grad_top`` = dL/d(top output), (L, B, D·H)
    (any strides): the calls, top layer first, write (not add) every weight's gradient into
    ``grads`` (contiguous float32 tensors shaped like ``weights``; both biases of a tanh or
    LSTM layer get the same, a GRU's differ). Returns dL/dx, (L, B, F) (allocated here,
    written by the calls; None unless ``want_input``), and the calls."""
    cell, num_layers, directions = kept.cell, kept.num_layers, kept.directions
    hidden = weights[1].shape[1]
    function = binding.lib().seq_layer_backward
    grad_out = grad_top if grad_top.stride(2) == 1 else grad_top.contiguous()
    calls: list[binding.Call] = []
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
                *seq(layer_in, reverse), *seq(out[:, :, columns], reverse),
                *seq(kept.gates[index], reverse), *seq(kept.cells[index], reverse),
                *seq(grad_out[:, :, columns], reverse), w_ih.data_ptr(), w_hh.data_ptr(),
                grad_ih.data_ptr(), grad_hh.data_ptr(), grad_b.data_ptr(), grad_b_hh.data_ptr(),
                *seq(grad_in, reverse), direction,
            )  # fmt: skip
            refs = (w_ih, w_hh, grad_out) if grad_in is None else (w_ih, w_hh, grad_out, grad_in)
            calls.append((function, arguments, refs))
        if grad_in is not None:
            grad_out = grad_in
    return (grad_out if want_input else None), calls


class CompiledStack:
    """The stack's forward (and, with ``grads``, backward) pass on batches of one shape,
    prepared once and run as often as needed: fixed buffers, the compiled calls' arguments
    built once. Training a small model takes thousands of identical steps, where rebuilding the
    buffers and arguments cost as much as a third of the compiled work.

    Args:
        weights: the module's flat weights in ``nn.RNN``/``nn.GRU``/``nn.LSTM`` order
            (``weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0``, then ``..._reverse`` when
            bidirectional, layer by layer), contiguous float32 on the CPU.
        cell: ``rnn`` (tanh), ``gru`` or ``lstm``.
        num_layers: stacked layers.
        directions: 1, or 2 when bidirectional.
        steps, rows, features: the batch shape (B = rows, L = steps, F = features).
        grads: tensors shaped like ``weights`` that :meth:`backward` writes (not adds) the
            weight gradients into; None for a forward-only stack (forecasts).
        input_grad: whether :meth:`backward` also computes dL/dx.

    The weights and gradient tensors must keep their memory (updated in place) while the stack
    is used.
    """

    def __init__(
        self,
        weights: list[torch.Tensor] | tuple[torch.Tensor, ...],
        cell: str,
        num_layers: int,
        directions: int,
        steps: int,
        rows: int,
        features: int,
        grads: list[torch.Tensor] | None = None,
        input_grad: bool = False,
    ) -> None:
        if cell not in CELLS or len(weights) != 4 * num_layers * directions:
            raise ValueError(
                "the compiled stack needs a known cell and 4 tensors per layer and direction"
            )
        tensors = (*weights, *(grads or ()))
        if any(t.dtype != torch.float32 or t.device.type != "cpu" for t in tensors):
            raise ValueError("the compiled stack runs float32 tensors on the CPU")
        if not all(t.is_contiguous() for t in tensors):
            raise ValueError("the compiled stack needs contiguous weights and gradients")
        _check_shapes(features, list(weights), cell, num_layers, directions)
        self.weights = tuple(weights)
        self.x = self.weights[0].new_empty(steps, rows, features)  # (L, B, F)
        self.kept, self._forward = _forward_calls(
            self.x, cell, num_layers, directions, self.weights, keep=grads is not None
        )
        self._backward: list[binding.Call] = []
        self.grads = grads
        self.grad_x: torch.Tensor | None = None
        if grads is not None:
            #: dL/d(top output), (L, B, D·H): written before :meth:`backward`.
            self.grad_top = torch.zeros_like(self.kept.top)
            self.grad_x, self._backward = _backward_calls(
                self.kept, self.weights, self.grad_top, grads, input_grad
            )

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """Runs the stack on ``window`` (B, L, F): the top layer's output, (L, B, D·H) (this
        stack's buffer, overwritten by the next call)."""
        if window.shape != self.x.transpose(0, 1).shape:
            raise ValueError(
                f"this stack runs windows of shape {tuple(self.x.transpose(0, 1).shape)}, "
                f"got {tuple(window.shape)}"
            )
        self.x.copy_(window.transpose(0, 1))
        binding.run(self._forward)
        return self.kept.top

    def backward(self) -> torch.Tensor | None:
        """Writes the weights' gradients from :attr:`grad_top` and the last forward; returns
        dL/dx, (L, B, F), when the stack was made with ``input_grad``."""
        if self.grads is None:
            raise RuntimeError("this stack was prepared for forecasts only")
        binding.run(self._backward)
        return self.grad_x


class _Recurrence(torch.autograd.Function):
    """The stack as one autograd function over a :class:`CompiledStack` (first derivatives
    only: a second backward raises instead of silently dropping terms)."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, cell: str, num_layers: int, directions: int,
        *weights: torch.Tensor,
    ) -> torch.Tensor:  # fmt: skip
        rows, steps, features = x.shape
        # Saved for autograd's version check only: a weight changed in place before backward
        # raises there, as with nn.RNN, instead of differentiating weights that never ran.
        ctx.save_for_backward(*weights)
        weights = tuple(w.contiguous() for w in weights)
        grads = [w.new_empty(w.shape) for w in weights]
        stack = CompiledStack(
            weights, cell, num_layers, directions, steps, rows, features, grads, x.requires_grad
        )
        ctx.stack = stack
        return stack.forward(x).transpose(0, 1)  # (L, B, D·H) -> (B, L, D·H)

    @staticmethod
    def backward(ctx: Any, grad_top: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if torch.is_grad_enabled():  # create_graph=True: the C code has no second derivative
            raise RuntimeError(
                "seqcast's compiled recurrence has first derivatives only; for a second one "
                "run with SEQCAST_NATIVE=0"
            )
        _ = ctx.saved_tensors  # raises where a weight was changed in place since forward
        stack: CompiledStack = ctx.stack
        assert stack.grads is not None
        stack.grad_top.copy_(grad_top.transpose(0, 1))
        if getattr(ctx, "handed_out", False):
            # Another backward through a retained graph: the stack's buffers hold the gradients
            # the last one returned, which are the caller's now; write new ones.
            grads = [torch.empty_like(g) for g in stack.grads]
            grad_x, calls = _backward_calls(
                stack.kept, stack.weights, stack.grad_top, grads, stack.grad_x is not None
            )
            binding.run(calls)
        else:
            grad_x, grads = stack.backward(), stack.grads
        ctx.handed_out = True
        return (
            None if grad_x is None else grad_x.transpose(0, 1),
            None,
            None,
            None,
            *grads,
        )


def _forecast(
    x: torch.Tensor,
    cell: str,
    num_layers: int,
    directions: int,
    weights: tuple[torch.Tensor, ...],
    last_only: bool,
) -> torch.Tensor:
    """The stack without gradients, in blocks of rows on the threads of
    :func:`binding.over_rows` (the compiled code releases the GIL). (B, L, F) -> (B, L, D·H),
    or the last step alone, (B, 1, D·H), with ``last_only``: a batch forecast then never
    gathers every step's output (100,000 forecasts of the default rnn: 325,000/s with, 480,000/s
    without)."""
    rows, steps, features = x.shape
    if rows == 0:
        return x.new_empty(0, 1 if last_only else steps, directions * weights[1].shape[1])

    def run(start: int, stop: int) -> torch.Tensor:
        part = x[start:stop]
        stack = CompiledStack(weights, cell, num_layers, directions, steps, len(part), features)
        top = stack.forward(part)  # (L, b, D·H)
        return top[-1:].clone() if last_only else top

    return torch.cat(binding.over_rows(rows, BLOCK_ROWS, run), dim=1).transpose(0, 1)


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
                f"the weights do not fit a {cell} stack of {num_layers} "
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
    with ``last_only`` the last step alone, (B, 1, D·H) (without gradients, the other steps'
    outputs are then never gathered).

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
    if torch.is_grad_enabled() and (x.requires_grad or any(w.requires_grad for w in weights)):
        out: torch.Tensor = _Recurrence.apply(x, cell, num_layers, directions, *weights)  # type: ignore[no-untyped-call]
        return out[:, -1:] if last_only else out
    with torch.no_grad():
        contiguous = tuple(w.contiguous() for w in weights)
        return _forecast(x, cell, num_layers, directions, contiguous, last_only)
