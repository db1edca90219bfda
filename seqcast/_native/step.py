"""The compiled pieces of a training step, for where the speed figures need them: the output
layer with its mean loss (forward and backward in one call), and Adam in one pass.

Measured on the course settings (2 × SimpleRNN(40), batch 32, one thread): the training step
with both at 11.9 ms per epoch; its output layer and loss in PyTorch operations 14.6 ms, with
PyTorch's Adam as well 15.6 ms, through autograd 26-34 ms. Anything else (another head or loss)
trains through autograd over :func:`seqcast._native.stack.recurrent_stack`.
"""

from __future__ import annotations

import ctypes

import torch

from seqcast._native import binding

__all__ = ["LOSSES", "HeadLoss", "adam_step"]


def adam_step(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    settings: tuple[float, ...],
    decoupled: bool,
) -> None:
    """One Adam (AdamW when ``decoupled``) step in one compiled pass over flat float32 CPU
    tensors of one size; ``settings`` = (1 − β1, β2, 1 − β2, eps, −lr / (1 − β1^t),
    √(1 − β2^t), weight decay, 1 − lr · weight decay), computed in double precision as
    torch.optim does."""
    tensors = (param, grad, exp_avg, exp_avg_sq)
    if any(t.numel() != param.numel() for t in tensors):
        raise ValueError("adam_step needs four tensors of one size")
    if not all(
        t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous() for t in tensors
    ):
        raise ValueError("adam_step needs contiguous float32 tensors on the CPU")
    binding.lib().seq_adam(
        param.numel(), *(t.data_ptr() for t in tensors), *settings, int(decoupled)
    )
    torch.autograd.graph.increment_version(param)  # as an in-place operation would


#: The losses :class:`HeadLoss` computes, with their codes in the compiled part.
LOSSES = {"huber": 0, "mse": 1, "mae": 2}


class HeadLoss:
    """The output layer and the mean loss of a training batch, forward and backward, in one
    compiled call: forecast = bias + [part_1 | part_2 | ...] · Wᵀ over (B, width) input pieces,
    the mean Huber (δ = 1), squared or absolute error against the targets, and the gradients
    of the weight, the bias and the pieces that ask for one.

    ``fixed`` pieces are (B, w_k) views whose memory does not move (the compiled stack's top
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
            raise ValueError("a HeadLoss writes into existing gradients")
        tensors = (weight, bias, weight.grad, bias.grad)
        if not all(t.is_contiguous() and t.dtype == torch.float32 for t in tensors):
            raise ValueError("a HeadLoss needs contiguous float32 weights and gradients")
        rows = fixed[0][0].shape[0]
        count = len(fixed) + len(batch_widths)
        self._function = binding.lib().seq_head_loss
        self._tensors = (tensors, fixed)  # the memory the pointers below point into
        self._pointers = (ctypes.c_void_p * count)(*(view.data_ptr() for view, _ in fixed))
        self._strides = (ctypes.c_longlong * count)(*(view.stride(0) for view, _ in fixed))
        widths = [view.shape[1] for view, _ in fixed] + batch_widths
        grads = [None if g is None else g.data_ptr() for _, g in fixed] + [None] * len(batch_widths)
        grad_strides = [0 if g is None else g.stride(0) for _, g in fixed] + [0] * len(batch_widths)
        if any(view.stride(1) != 1 for view, _ in fixed) or any(
            g is not None and g.stride(1) != 1 for _, g in fixed
        ):
            raise ValueError("a HeadLoss needs pieces with contiguous rows")
        if sum(widths) != weight.shape[1] or bias.shape != (weight.shape[0],):
            raise ValueError("a HeadLoss's pieces must add up to its weight's columns")
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
            raise ValueError(f"this HeadLoss takes pieces {shapes} and targets {target_shape}")
        if any(t.dtype != torch.float32 or (t.shape[1] > 1 and t.stride(1) != 1)
               for t in (*pieces, target)):  # fmt: skip
            raise ValueError("a HeadLoss takes float32 pieces and targets with contiguous rows")
        for k, piece in enumerate(pieces, self._first_batch):
            self._pointers[k] = piece.data_ptr()
            self._strides[k] = piece.stride(0) if piece.shape[1] else 0
        return float(self._function(*self._arguments, target.data_ptr(), target.stride(0),
                                    *self._rest))  # fmt: skip
