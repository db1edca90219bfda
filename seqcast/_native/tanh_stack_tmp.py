"""A stack of tanh recurrent layers run as one wavefront, with a hand-written backward pass.

``nn.RNN`` on the CPU runs each layer's steps one after another and records every small
operation for autograd, so a batch of 32 windows costs far more in per-operation overhead than
in arithmetic. This module computes the same function with two operations per step for the
whole stack:

* **Wavefront.** Layer ``l`` at time ``t`` needs layer ``l - 1`` at ``t`` and itself at
  ``t - 1``, so at wavefront step ``k`` every layer advances at once (layer ``l`` computes time
  ``k - 1 - l``): one ``(B, N·H) @ (N·H, N·H)`` product per step instead of ``N`` of them,
  ``L + N - 1`` steps instead of ``N · L``.
* **tanh through the sigmoid.** ``tanh(a) = 2·σ(2a) - 1``, and the sigmoid is the cheaper
  kernel. The loop keeps ``s = σ(2a)`` (so ``h = 2s - 1``) and folds the factors and the
  ``-1`` into the weights and biases, so a step is one ``addmm`` and one ``sigmoid``.
* **Backward by hand.** The gradient runs the same wavefront in reverse, two operations per step,
  and forms every weight gradient with one large product at the end.

Same weights and the same results as ``nn.RNN(nonlinearity='tanh')`` up to float rounding
(tested against it, and with ``gradcheck`` in float64).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["tanh_stack"]


def _blocks(
    weights: tuple[torch.Tensor, ...], num_layers: int, hidden: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The h-space wavefront matrix and the constant part of every layer's pre-activation.

    ``weights`` are nn.RNN's ``(weight_ih_l, weight_hh_l, bias_ih_l, bias_hh_l)`` per layer.
    Returns ``matrix`` (N·H, N·H): row block ``l`` maps layer ``l``'s state to its own next
    pre-activation (``W_hh_l^T``, diagonal) and to layer ``l + 1``'s (``W_ih_{l+1}^T``,
    superdiagonal); and ``bias`` (N·H,): ``b_ih + b_hh`` of every layer.
    """
    rows = []
    zeros = weights[1].new_zeros(hidden, hidden)
    for layer in range(num_layers):
        row = [zeros] * num_layers
        row[layer] = weights[4 * layer + 1].T
        if layer + 1 < num_layers:
            row[layer + 1] = weights[4 * layer + 4].T
        rows.append(torch.cat(row, dim=1))
    biases = [weights[4 * layer + 2] + weights[4 * layer + 3] for layer in range(num_layers)]
    return torch.cat(rows), torch.cat(biases)


def _setup(
    x: torch.Tensor, weights: tuple[torch.Tensor, ...], num_layers: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What every step needs: the h-space matrix M (N·H, N·H), the constant ``offset`` (N·H,)
    of the s-space pre-activation, and ``inputs`` (L, B, N·H): the offset plus layer 0's
    input term ``2·x_t W_ih0^T`` for each step.

    With ``h = 2s - 1`` the s-space pre-activation is ``z = 2a = 2c + 2(2s - 1) M =
    (2c - 2·1M) + 4·s M``, where ``c`` holds the biases and layer 0's input term.
    """
    batch, length, features = x.shape
    hidden = weights[1].shape[0]
    matrix, bias = _blocks(weights, num_layers, hidden)
    offset = 2.0 * (bias - matrix.sum(0))
    w_in = weights[0].T  # (F, H)
    if num_layers > 1:
        w_in = torch.cat([w_in, w_in.new_zeros(features, (num_layers - 1) * hidden)], dim=1)
    steps_first = x.transpose(0, 1).reshape(length * batch, features)  # (L·B, F)
    if features <= 4:  # MKL is slow with a tiny inner dimension: sum the outer products
        inputs = torch.addcmul(offset, steps_first[:, :1], w_in[:1], value=2.0)
        for f in range(1, features):
            inputs.addcmul_(steps_first[:, f : f + 1], w_in[f : f + 1], value=2.0)
    else:
        inputs = torch.addmm(offset, steps_first, w_in, alpha=2.0)
    inputs = inputs.view(length, batch, -1)
    return matrix, offset, inputs


class _TanhStack(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, num_layers: int, last_only: bool, *weights: torch.Tensor
    ) -> torch.Tensor:
        batch, length, _ = x.shape
        hidden = weights[1].shape[0]
        size = num_layers * hidden
        steps = length + num_layers - 1
        matrix, offset, inputs = _setup(x, weights, num_layers)
        input_at = inputs.unbind(0) + (offset,) * (num_layers - 1)  # layer 0 done after L
        states = x.new_empty(steps + 1, batch, size)  # s before step 1 .. after step K
        states[0] = 0.5  # h = 0
        state_at = states.unbind(0)  # views, made once: indexing in the loop costs as much
        for k in range(1, steps + 1):
            state = state_at[k]
            torch.addmm(input_at[k - 1], state_at[k - 1], matrix, alpha=4.0, out=state)
            torch.sigmoid(state, out=state)
            if k < num_layers:
                state[:, k * hidden :] = 0.5  # layers k.. have not started: still h = 0
        ctx.save_for_backward(x, states, matrix, *weights)
        ctx.num_layers, ctx.last_only = num_layers, last_only
        # Time t of the top layer is at step t + N: (L, B, H), or (1, B, H) for the last.
        top = states[steps if last_only else num_layers :, :, size - hidden :]
        return (2.0 * top - 1.0).transpose(0, 1)  # (B, L or 1, H)

    @staticmethod
    def backward(ctx: Any, grad_top: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, states, matrix, *weights = ctx.saved_tensors
        num_layers: int = ctx.num_layers
        batch, length, features = x.shape
        hidden = weights[1].shape[0]
        size = num_layers * hidden
        steps = length + num_layers - 1
        # grad_h: dL/dh of every state. With h = tanh(a) = 2s - 1, dh/da = 4·s(1 - s), so
        # dL/da = 4·grad_h·slope with slope = s - s²; the loop keeps reduced = grad_h·slope and
        # the factor 4 goes into the products.
        grad_h = states.new_zeros(steps + 1, batch, size)
        first_top = steps if ctx.last_only else num_layers
        grad_h[first_top:, :, size - hidden :] = grad_top.transpose(0, 1)
        slope = torch.addcmul(states[1:], states[1:], states[1:], value=-1.0)
        reduced = torch.empty_like(slope)  # (K, B, N·H)
        matrix_t = matrix.T
        grad_h_at, slope_at, reduced_at = grad_h.unbind(0), slope.unbind(0), reduced.unbind(0)
        for k in range(steps, 0, -1):
            dz = reduced_at[k - 1]
            torch.mul(grad_h_at[k], slope_at[k - 1], out=dz)
            if k < num_layers:
                dz[:, k * hidden :] = 0.0  # those states were fixed, not computed
            grad_h_at[k - 1].addmm_(dz, matrix_t, alpha=4.0)
        flat = reduced.view(-1, size)  # dL/da = 4·flat
        column = flat.sum(0)
        # dL/dM = h_prevᵀ · dL/da with h_prev = 2s - 1: 8·sᵀ·flat - 4·(column sums, every row).
        grad_matrix = torch.addmm(
            column, states[:-1].reshape(-1, size).T, flat, beta=-4.0, alpha=8.0
        )
        grad_bias = 4.0 * column
        grads: list[torch.Tensor] = []
        first = reduced[:length, :, :hidden].reshape(-1, hidden)  # layer 0's, (L·B, H)
        x_steps = x.transpose(0, 1).reshape(-1, features)  # (L·B, F)
        for layer in range(num_layers):
            rows = slice(layer * hidden, (layer + 1) * hidden)
            if layer:
                grad_ih = grad_matrix[(layer - 1) * hidden : layer * hidden, rows].T
            else:
                grad_ih = torch.mm(first.T, x_steps).mul_(4.0)
            grad_b = grad_bias[rows]
            grads += [grad_ih, grad_matrix[rows, rows].T, grad_b, grad_b]
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.mm(first, weights[0]).mul_(4.0).view(length, batch, -1).transpose(0, 1)
        return (grad_x, None, None, *grads)


def _forward_only(
    x: torch.Tensor, weights: tuple[torch.Tensor, ...], num_layers: int, last_only: bool
) -> torch.Tensor:
    """The forward pass without keeping the states for a backward pass: two state buffers."""
    batch, length, _ = x.shape
    hidden = weights[1].shape[0]
    size = num_layers * hidden
    matrix, offset, inputs = _setup(x, weights, num_layers)
    input_at = inputs.unbind(0) + (offset,) * (num_layers - 1)
    buffers = [x.new_full((batch, size), 0.5), x.new_empty(batch, size)]
    top = None if last_only else x.new_empty(length, batch, hidden)
    for k in range(1, length + num_layers):
        previous, state = buffers[(k - 1) % 2], buffers[k % 2]
        torch.addmm(input_at[k - 1], previous, matrix, alpha=4.0, out=state)
        torch.sigmoid(state, out=state)
        if k < num_layers:
            state[:, k * hidden :] = 0.5
        elif top is not None:
            top[k - num_layers] = state[:, size - hidden :]
    if top is None:
        top = state[None, :, size - hidden :]  # (1, B, H)
    return (2.0 * top - 1.0).transpose(0, 1)


def tanh_stack(
    x: torch.Tensor, weights: list[torch.Tensor], num_layers: int, last_only: bool = False
) -> torch.Tensor:
    """Runs a unidirectional stack of tanh RNN layers: (B, L, F) -> top layer's states (B, L, H),
    or only the last one, (B, 1, H), with ``last_only``.

    ``weights`` are ``nn.RNN``'s flat weights in its order (``weight_ih_l0, weight_hh_l0,
    bias_ih_l0, bias_hh_l0, ...``); the initial state is zero. Without gradients to compute it
    keeps two state buffers instead of every step's.
    """
    if len(weights) != 4 * num_layers:
        raise ValueError("tanh_stack needs weights and biases for every layer")
    if not torch.is_grad_enabled() or not (
        x.requires_grad or any(w.requires_grad for w in weights)
    ):
        return _forward_only(x, tuple(weights), num_layers, last_only)
    out: torch.Tensor = _TanhStack.apply(x, num_layers, last_only, *weights)  # type: ignore[no-untyped-call]
    return out
