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

import math

import torch

from seqcast import _native as native
from seqcast.networks import NegativeBinomialNet, QuantileNet, RecurrentNet, StudentTNet
from seqcast.networks.distribution import (
    LEAST_DISPERSION,
    negative_binomial_log_prob,
    negative_binomial_moments,
    unpack_counts,
)
from seqcast.networks.quantile import ordered
from seqcast.training.optimizer import FlatParameters

__all__ = ["HEAD_IN_C", "CompiledStep", "DistributionStep"]

#: The probabilistic outputs :class:`DistributionStep` trains.
DistributionNet = QuantileNet | StudentTNet | NegativeBinomialNet

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
    ) -> CompiledStep | DistributionStep | None:
        """The compiled step for ``model``, or None where training must use autograd."""
        if (
            (isinstance(model, QuantileNet) and loss == "pinball")
            or (isinstance(model, StudentTNet) and loss == "studentt")
            or (isinstance(model, NegativeBinomialNet) and loss == "negbin")
        ):
            return DistributionStep.create(model, parameters, seq2seq)
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


class DistributionStep:
    """The training step of a probabilistic output (:class:`QuantileNet`,
    :class:`StudentTNet`, :class:`NegativeBinomialNet`) over the standard recurrent network:
    the compiled recurrence forward and backward (as :class:`CompiledStep`), then the output
    layer and the loss with their derivatives written out in a dozen tensor operations
    (autograd's bookkeeping over them cost as much as the recurrence). Tested against
    autograd."""

    def __init__(self, net: DistributionNet, parameters: FlatParameters) -> None:
        self.net = net
        self.base: RecurrentNet = net.base  # type: ignore[assignment]
        self.parameters = parameters
        self.head_loss: _PinballHead | _StudentTHead | _NegativeBinomialHead
        if isinstance(net, QuantileNet):
            self.head_loss = _PinballHead(net.levels, net.median)
        elif isinstance(net, StudentTNet):
            self.head_loss = _StudentTHead()
        else:
            self.head_loss = _NegativeBinomialHead()
        self.weights = [getattr(self.base.rnn, name) for name in self.base.weight_names]
        self.grads: list[torch.Tensor] = [w.grad for w in self.weights]
        self.plan: tuple[tuple[int, ...], native.CompiledStack] | None = None

    @classmethod
    def create(
        cls, model: DistributionNet, parameters: FlatParameters, seq2seq: bool
    ) -> DistributionStep | None:
        base = model.base
        if not isinstance(base, RecurrentNet) or seq2seq or base.conv is not None:
            return None
        config = base.config
        if config.bidirectional or (config.dropout and config.num_layers > 1):
            return None
        weights = [getattr(base.rnn, name) for name in base.weight_names]
        trained = {id(t) for t in parameters.tensors}
        expected = {id(t) for t in (*weights, base.head.weight, base.head.bias)}
        if trained != expected or not native.compiled(*parameters.tensors, cell=config.cell):
            return None
        return cls(model, parameters)

    def __call__(self, window: torch.Tensor, season: torch.Tensor, target: torch.Tensor) -> float:
        """The batch's mean loss; its gradients are left in the trained tensors' ``.grad``.
        Shapes: window (B, L, F_in), season (B, S), target (B, T, Ft), or (B, T, Ft, 3) with
        each window's unit for a count distribution."""
        if self.plan is None or self.plan[0] != tuple(window.shape):
            stack = self._prepare(*window.shape)
            if self.plan is None:
                self.plan = (tuple(window.shape), stack)
        else:
            stack = self.plan[1]
        with torch.no_grad():
            config = self.base.config
            hidden = config.hidden_size
            top = stack.forward(window)  # (L, B, H)
            parts = [top[-1], season] + ([window.flatten(1)] if config.skip else [])
            inputs = torch.cat(parts, dim=1)  # (B, I)
            head = self.base.head
            raw = torch.addmm(head.bias, inputs, head.weight.t())  # (B, O), O = T·Ft·K
            # (B, T, Ft) -> (B·T·Ft,); with units (B, T, Ft, 3) -> (B·T·Ft, 3).
            flat = target.reshape(-1, *target.shape[3:])
            value, grad_raw = self.head_loss(raw, flat)
            grad_raw = grad_raw.reshape(inputs.shape[0], -1)  # (B, O)
            torch.mm(grad_raw.t(), inputs, out=head.weight.grad)
            torch.sum(grad_raw, dim=0, out=head.bias.grad)
            stack.grad_top[-1, :, :hidden].copy_(grad_raw @ head.weight[:, :hidden])
            stack.backward()
        return value

    def _prepare(self, rows: int, steps: int, features: int) -> native.CompiledStack:
        config = self.base.config
        return native.CompiledStack(
            self.weights, config.cell, config.num_layers, 1, steps, rows, features, self.grads
        )


class _PinballHead:
    """The mean pinball loss of ordered quantiles and its derivative by the raw outputs."""

    def __init__(self, levels: tuple[float, ...], median: int) -> None:
        self.levels = torch.tensor(levels)
        self.median = median

    def __call__(self, raw: torch.Tensor, target: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Raw outputs (B, T·Ft·Q) and targets (B·T·Ft,) -> the loss and d loss / d raw."""
        levels, median = self.levels, self.median
        raw = raw.reshape(-1, len(levels))  # (N, Q), N = B·T·Ft
        error = target[:, None] - ordered(raw, median)
        value = float(torch.maximum(levels * error, (levels - 1.0) * error).mean())
        # d/d(forecast) of the mean pinball loss, through the ordering (the centre moves every
        # level; a step above the median moves the levels from it up, one below it those from
        # it down) and softplus.
        grad_out = torch.where(error > 0, -levels, 1.0 - levels) / error.numel()  # (N, Q)
        grad_raw = torch.empty_like(raw)
        grad_raw[:, median] = grad_out.sum(dim=1)
        above = grad_out[:, median + 1 :].flip(1).cumsum(1).flip(1)
        below = -grad_out[:, :median].cumsum(1)
        slope = torch.sigmoid(raw)
        grad_raw[:, median + 1 :] = above * slope[:, median + 1 :]
        grad_raw[:, :median] = below * slope[:, :median]
        return value, grad_raw


class _StudentTHead:
    """The mean negative log-likelihood of a Student-t (location r₀, scale softplus(r₁) +
    10⁻⁴, freedom 2 + softplus(r₂)) and its derivative by the raw outputs."""

    def __call__(self, raw: torch.Tensor, target: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Raw outputs (B, T·Ft·3) and targets (B·T·Ft,) -> the loss and d loss / d raw."""
        raw = raw.reshape(-1, 3)  # (N, 3)
        loc = raw[:, 0]
        scale = torch.nn.functional.softplus(raw[:, 1]) + 1e-4
        df = 2.0 + torch.nn.functional.softplus(raw[:, 2])
        z = (target - loc) / scale
        ratio = 1.0 + z * z / df
        nll = (
            torch.lgamma(df / 2) - torch.lgamma((df + 1) / 2) + 0.5 * torch.log(df * math.pi)
            + torch.log(scale) + (df + 1) / 2 * torch.log(ratio)
        )  # fmt: skip
        count = nll.numel()
        shared = (df + 1) / (df + z * z)  # (ν + 1) / (ν + z²)
        grad_loc = -shared * z / scale
        grad_scale = (1.0 - shared * z * z) / scale
        grad_df = 0.5 * (
            torch.digamma(df / 2) - torch.digamma((df + 1) / 2) + 1.0 / df + torch.log(ratio)
            - shared * z * z / df
        )  # fmt: skip
        grad_raw = torch.stack(
            [grad_loc, grad_scale * torch.sigmoid(raw[:, 1]), grad_df * torch.sigmoid(raw[:, 2])],
            dim=1,
        )
        return float(nll.mean()), grad_raw / count


class _NegativeBinomialHead:
    """The mean negative log-likelihood of a negative binomial (:class:`NegativeBinomialNet`)
    and its derivative by the raw outputs, in float64.

    With μ = softplus(a·r₀ + b), σ = softplus(r₁) + 10⁻⁴ and r = μ² / (a·σ)² (at most
    1/:data:`LEAST_DISPERSION`), the loss is −[lgamma(y + r) − lgamma(r) − lgamma(y + 1)
    + r·log r + y·log μ − (r + y)·log(r + μ)]; by the chain rule through r(μ, σ)."""

    def __call__(self, raw: torch.Tensor, target: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Raw outputs (B, T·Ft·2) and targets with their units (B·T·Ft, 3) -> the loss and
        d loss / d raw."""
        raw64 = raw.reshape(-1, 2).double()  # (N, 2)
        counts, unit = unpack_counts(target)
        spread = torch.nn.functional.softplus(raw64[:, 1]) + 1e-4
        mean, successes = negative_binomial_moments(torch.stack([raw64[:, 0], spread], dim=1), unit)
        nll = -negative_binomial_log_prob(counts, mean, successes)
        total = successes + mean
        by_mean = (successes + counts) / total - counts / mean  # r held fixed
        by_successes = -(
            torch.digamma(counts + successes) - torch.digamma(successes) + torch.log(successes)
            + 1.0 - torch.log(total) - (successes + counts) / total
        )  # fmt: skip
        # r at its bound does not move with μ or σ.
        by_successes = torch.where(successes < 1.0 / LEAST_DISPERSION, by_successes, 0.0)
        by_mean = by_mean + by_successes * 2.0 * successes / mean  # r = μ²/(aσ)²
        size = unit[:, 0]
        grad_location = by_mean * size * torch.sigmoid(size * raw64[:, 0] + unit[:, 1])
        grad_spread = by_successes * (-2.0 * successes / spread) * torch.sigmoid(raw64[:, 1])
        grad_raw = torch.stack([grad_location, grad_spread], dim=1) / nll.numel()
        return float(nll.mean()), grad_raw.to(raw.dtype)


def _rows(matrix: torch.Tensor) -> torch.Tensor:
    """``matrix`` (B, W) with each row's values next to each other, as the compiled call reads
    them (a copy only when they are not)."""
    return matrix if matrix.stride(1) == 1 or matrix.shape[1] <= 1 else matrix.contiguous()
