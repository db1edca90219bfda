"""A training step for the recurrent network without autograd: loss and gradients by hand.

With a batch of 32 windows, a step of a small recurrent forecaster spends about as long in
autograd's graph, its per-node bookkeeping and the Python around it as in arithmetic (measured
on the bidirectional LSTM: 2.7 ms of 8.4 ms per step). The network is a fixed chain, the
compiled recurrence followed by one linear layer and a mean loss, so its gradients are short
to write out: the output layer and the loss with their derivatives in one compiled call
(:class:`seqcast._native.binding.HeadPlan`), then the recurrence's own backward pass
(:class:`seqcast._native.binding.StackPlan`), both writing straight into the flat gradient
buffer.

:meth:`FusedStep.create` returns None whenever the network is outside that chain (a
convolution in front, dropout, sequence-to-sequence training, no compiled recurrence); the
training loop then uses autograd. Tested against autograd's gradients for every supported
configuration.
"""

from __future__ import annotations

import torch

from seqcast._native import binding as native
from seqcast.networks import RecurrentNet
from seqcast.training.optimizer import FlatParameters

__all__ = ["FusedStep", "TorchHead"]

#: Largest output layer (weights) whose products run in the compiled call. Its plain loops beat
#: PyTorch's per-operation cost on small layers; MKL's matrix products win on large ones
#: (measured per step at batch 32: 0.80 against 1.06 ms with 63 weights, even at 11,664, and
#: 27.7 against 7.4 ms for ETTh1's 492,576).
HEAD_IN_C = 8192


class FusedStep:
    """Loss and gradients of a :class:`RecurrentNet` batch, written into the gradients of a
    :class:`FlatParameters` (every trained tensor's gradient is overwritten)."""

    def __init__(self, net: RecurrentNet, parameters: FlatParameters, loss: str) -> None:
        self.net = net
        self.loss = loss
        self.weights = [getattr(net.rnn, name) for name in net.weight_names]
        self.grads: list[torch.Tensor] = [w.grad for w in self.weights]
        #: The stack and output layer prepared for the first batch shape (the full batches);
        #: another shape (an epoch's smaller last batch) gets a plan of its own for one step,
        #: so that large batches do not hold two sets of buffers.
        self.plan: tuple[tuple[int, ...], native.StackPlan, native.HeadPlan | TorchHead] | None
        self.plan = None

    @classmethod
    def create(
        cls, model: torch.nn.Module, parameters: FlatParameters, loss: str, seq2seq: bool
    ) -> FusedStep | None:
        """The fused step for ``model``, or None where training must use autograd."""
        if not isinstance(model, RecurrentNet) or seq2seq or model.conv is not None:
            return None
        config = model.config
        if config.cell not in native.CELLS or not native.available():
            return None
        if config.dropout and config.num_layers > 1:
            return None
        if loss not in ("huber", "mse", "mae"):
            return None
        weights = [getattr(model.rnn, name) for name in model.weight_names]
        trained = {id(t) for t in parameters.tensors}
        expected = {id(t) for t in (*weights, model.head.weight, model.head.bias)}
        if trained != expected:  # something else is trained (or frozen): leave it to autograd
            return None
        if any(t.dtype != torch.float32 or t.device.type != "cpu" for t in parameters.tensors):
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
    ) -> tuple[native.StackPlan, native.HeadPlan | TorchHead]:
        """The stack and output layer prepared for batches of shape (rows, steps, features)."""
        config = self.net.config
        directions = 2 if config.bidirectional else 1
        stack = native.StackPlan(
            self.weights, self.grads, config.cell, config.num_layers, directions, steps, rows,
            features,
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
        weight, bias = self.net.head.weight, self.net.head.bias
        kind = native.HeadPlan if weight.numel() <= HEAD_IN_C else TorchHead
        return stack, kind(weight, bias, self.loss, fixed, widths)


def _rows(matrix: torch.Tensor) -> torch.Tensor:
    """``matrix`` (B, W) with each row's values next to each other, as the compiled call reads
    them (a copy only when they are not)."""
    return matrix if matrix.stride(1) == 1 or matrix.shape[1] <= 1 else matrix.contiguous()


class TorchHead:
    """:class:`seqcast._native.binding.HeadPlan`'s computation in PyTorch operations, for output
    layers too large for its plain loops: same arguments, same results."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        loss: str,
        fixed: list[tuple[torch.Tensor, torch.Tensor | None]],
        batch_widths: list[int],
    ) -> None:
        del batch_widths  # the pieces bring their own
        self.weight, self.bias, self.loss, self.fixed = weight, bias, loss, fixed

    def __call__(self, pieces: list[torch.Tensor], target: torch.Tensor) -> float:
        """The batch's mean loss from pieces (B, w_k) and targets (B, O); writes the gradients."""
        weight, bias = self.weight, self.bias
        assert weight.grad is not None and bias.grad is not None
        with torch.no_grad():
            head_in = torch.cat([view for view, _ in self.fixed] + pieces, dim=1)  # (B, D)
            error = torch.addmm(bias, head_in, weight.t()) - target  # (B, O)
            scale = 1.0 / error.numel()
            if self.loss == "huber":
                size = error.abs()
                value = torch.where(size < 1.0, 0.5 * error * error, size - 0.5).mean()
                grad = error.clamp(-1.0, 1.0) * scale
            elif self.loss == "mse":
                value, grad = (error * error).mean(), error * (2.0 * scale)
            else:
                value, grad = error.abs().mean(), error.sign() * scale
            torch.mm(grad.t(), head_in, out=weight.grad)
            torch.sum(grad, dim=0, out=bias.grad)
            start = 0
            for view, view_grad in self.fixed:
                width = view.shape[1]
                if view_grad is not None:
                    view_grad.copy_(grad @ weight[:, start : start + width])
                start += width
        return float(value)
