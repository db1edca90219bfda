"""The training step of the standard recurrent network without autograd, where the speed
figures need it.

With a batch of 32 windows, a step of a small recurrent forecaster spends about as long in
autograd's graph, its per-node bookkeeping and the Python around it as in arithmetic. The
standard network is a fixed chain, the compiled recurrence followed by one linear layer and a
mean Huber, squared or absolute loss, so its gradients are short to write out: the output layer
and the loss with their derivatives in one compiled call (:class:`seqcast._native.HeadLoss`),
then the recurrence's backward pass (:class:`seqcast._native.CompiledStack`, the same prepared
calls that the autograd function runs), both writing straight into the flat gradient buffer.
Measured per epoch on the course settings (2 × SimpleRNN(40), batch 32, one thread): 11.9 ms
here against 26-34 ms through autograd over the same compiled recurrence.

:meth:`CompiledStep.create` returns None whenever the network is outside that chain (another
head or loss, a convolution in front, dropout, sequence-to-sequence training, an output layer
of more than :data:`HEAD_IN_C` weights, or where :func:`seqcast._native.compiled` says no); the
training loop then uses autograd, so a new head or loss needs no C. Tested against autograd's
gradients for every supported configuration.
"""

from __future__ import annotations

import torch

from seqcast import _native as native
from seqcast.networks import RecurrentNet
from seqcast.training.optimizer import FlatParameters

__all__ = ["HEAD_IN_C", "CompiledStep"]

#: Largest output layer (weights) whose products run in the compiled call. Its plain loops beat
#: PyTorch's per-operation cost on small layers; MKL's matrix products win on large ones
#: (measured per step at batch 32: 0.80 against 1.06 ms with 63 weights, even at 11,664, and
#: 27.7 against 7.4 ms for ETTh1's 492,576); larger layers train through autograd.
HEAD_IN_C = 8192


class CompiledStep:
    """Loss and gradients of a :class:`RecurrentNet` batch, written into the gradients of a
    :class:`FlatParameters` (every trained tensor's gradient is overwritten)."""

    def __init__(self, net: RecurrentNet, parameters: FlatParameters, loss: str) -> None:
        self.net = net
        self.loss = loss
        self.weights = [getattr(net.rnn, name) for name in net.weight_names]
        self.grads: list[torch.Tensor] = [w.grad for w in self.weights]
        #: The stack and output layer prepared for the first batch shape (the full batches);
        #: another shape (an epoch's smaller last batch) gets a stack of its own for one step,
        #: so that large batches do not hold two sets of buffers.
        self.plan: tuple[tuple[int, ...], native.CompiledStack, native.HeadLoss] | None = None

    @classmethod
    def create(
        cls, model: torch.nn.Module, parameters: FlatParameters, loss: str, seq2seq: bool
    ) -> CompiledStep | None:
        """The compiled step for ``model``, or None where training must use autograd."""
        if not isinstance(model, RecurrentNet) or seq2seq or model.conv is not None:
            return None
        config = model.config
        if config.dropout and config.num_layers > 1:
            return None
        if loss not in native.LOSSES or model.head.weight.numel() > HEAD_IN_C:
            return None
        weights = [getattr(model.rnn, name) for name in model.weight_names]
        trained = {id(t) for t in parameters.tensors}
        expected = {id(t) for t in (*weights, model.head.weight, model.head.bias)}
        if trained != expected:  # something else is trained (or frozen): leave it to autograd
            return None
        if not native.compiled(*parameters.tensors, cell=config.cell):
            return None
        return cls(model, parameters, loss)

    def __call__(self, window: torch.Tensor, season: torch.Tensor, target: torch.Tensor) -> float:
        """The batch's mean loss; its gradients are left in the trained tensors' ``.grad``.

        Shapes: window (B, L, F_in), season (B, S), target (B, T, Ft), all float32; the
        prepared stack and output layer refuse anything else before the compiled code runs.
        """
        if self.plan is None:
            self.plan = (tuple(window.shape), *self._prepare(*window.shape))
        if self.plan[0] == tuple(window.shape):
            stack, head = self.plan[1:]
        else:
            stack, head = self._prepare(*window.shape)
        config = self.net.config
        stack.forward(window)
        # The output layer's inputs after the state: (B, S) and (B, L, F_in) -> (B, L·F_in).
        pieces = [season, window.flatten(1)] if config.skip else [season]
        flat_target = _rows(target.reshape(target.shape[0], -1))  # (B, T, Ft) -> (B, T·Ft)
        pieces = [_rows(piece) for piece in pieces]
        value = head(pieces, flat_target)
        stack.backward()
        return value

    def _prepare(
        self, rows: int, steps: int, features: int
    ) -> tuple[native.CompiledStack, native.HeadLoss]:
        """The stack and output layer prepared for batches of shape (rows, steps, features)."""
        config = self.net.config
        directions = 2 if config.bidirectional else 1
        stack = native.CompiledStack(
            self.weights, config.cell, config.num_layers, directions, steps, rows, features,
            self.grads,
        )  # fmt: skip
        hidden, top, grad_top = config.hidden_size, stack.kept.top, stack.grad_top
        # The output layer reads the forward direction's last step and the backward
        # direction's first (both saw the whole window), as RecurrentNet.forward does.
        fixed: list[tuple[torch.Tensor, torch.Tensor | None]] = [
            (top[-1, :, :hidden], grad_top[-1, :, :hidden])
        ]
        if config.bidirectional:
            fixed.append((top[0, :, hidden:], grad_top[0, :, hidden:]))
        widths = [config.season_size] + ([steps * features] if config.skip else [])
        head = native.HeadLoss(self.net.head.weight, self.net.head.bias, self.loss, fixed, widths)
        return stack, head


def _rows(matrix: torch.Tensor) -> torch.Tensor:
    """``matrix`` (B, W) with each row's values next to each other, as the compiled call reads
    them (a copy only when they are not)."""
    return matrix if matrix.stride(1) == 1 or matrix.shape[1] <= 1 else matrix.contiguous()
