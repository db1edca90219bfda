"""A training step for the recurrent network without autograd: loss and gradients by hand.

With a batch of 32 windows, a step of a small recurrent forecaster spends about as long in
autograd's graph, its per-node bookkeeping and the Python around it as in arithmetic (measured
on the bidirectional LSTM: 2.7 ms of 8.4 ms per step). The network is a fixed chain, the
compiled recurrence followed by one linear layer and a mean loss, so its gradients are short
to write out: the loss's derivative, the linear layer's two products, and the recurrence's own
backward pass (:func:`seqcast.models.native.backward`), which writes straight into the flat
gradient buffer.

:meth:`FusedStep.create` returns None whenever the network is outside that chain (a
convolution in front, dropout, sequence-to-sequence training, no compiled recurrence); the
training loop then uses autograd. Tested against autograd's gradients for every supported
configuration.
"""

from __future__ import annotations

import torch

from seqcast.models import native
from seqcast.models.networks import RecurrentNet
from seqcast.training.flat import FlatParameters

__all__ = ["FusedStep"]


class FusedStep:
    """Loss and gradients of a :class:`RecurrentNet` batch, written into the gradients of a
    :class:`FlatParameters` (every trained tensor's gradient is overwritten)."""

    def __init__(self, net: RecurrentNet, parameters: FlatParameters, loss: str) -> None:
        self.net = net
        self.loss = loss
        self.weights = [getattr(net.rnn, name) for name in net.weight_names]
        self.grads: list[torch.Tensor] = [w.grad for w in self.weights]
        #: One prepared stack per batch size (the last batch of an epoch may be smaller).
        self.plans: dict[tuple[int, ...], native.StackPlan] = {}

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

        Shapes: window (B, L, F_in), season (B, S), target (B, T, Ft), all float32.
        """
        net, config = self.net, self.net.config
        if window.dtype != torch.float32:
            raise ValueError("the fused training step runs float32 batches")
        plan = self.plans.get(window.shape)
        if plan is None:
            rows, steps, features = window.shape
            plan = self.plans[window.shape] = native.StackPlan(
                self.weights, self.grads, config.cell, config.num_layers,
                2 if config.bidirectional else 1, steps, rows, features,
            )  # fmt: skip
        hidden = config.hidden_size
        with torch.no_grad():
            top = plan.forward(window)  # (L, B, D·H)
            if config.bidirectional:
                # Forward direction's last step, backward direction's first (as in forward()).
                last = torch.cat([top[-1, :, :hidden], top[0, :, hidden:]], dim=1)
            else:
                last = top[-1]
            parts = [last, season]
            if config.skip:
                parts.append(window.flatten(1))  # (B, L, F_in) -> (B, L·F_in)
            head_in = torch.cat(parts, dim=1)  # (B, D_head)
            head = net.head
            forecast = torch.addmm(head.bias, head_in, head.weight.t())  # (B, T·Ft)
            diff = forecast - target.reshape(forecast.shape)
            value, grad = _loss_and_grad(self.loss, diff)
            assert head.weight.grad is not None and head.bias.grad is not None
            torch.mm(grad.t(), head_in, out=head.weight.grad)
            torch.sum(grad, dim=0, out=head.bias.grad)
            grad_last = grad @ head.weight[:, : last.shape[1]]  # (B, D·H)
            # dL/d(top output) is zero but at the steps the output layer reads.
            plan.grad_top[-1, :, :hidden] = grad_last[:, :hidden]
            if config.bidirectional:
                plan.grad_top[0, :, hidden:] = grad_last[:, hidden:]
            plan.backward()
        return value


def _loss_and_grad(loss: str, diff: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Mean loss of the errors ``diff`` (B, O) and its derivative with respect to them, as
    ``nn.HuberLoss(delta=1)``, ``nn.MSELoss`` and ``nn.L1Loss`` compute it."""
    scale = 1.0 / diff.numel()
    if loss == "huber":
        size = diff.abs()
        value = torch.where(size < 1.0, 0.5 * diff * diff, size - 0.5).mean()
        return float(value), diff.clamp(-1.0, 1.0) * scale
    if loss == "mse":
        return float((diff * diff).mean()), diff * (2.0 * scale)
    return float(diff.abs().mean()), diff.sign() * scale
