"""All trainable tensors in one flat buffer, and an optimiser that updates it in a few operations.

A recurrent forecaster has about a dozen small tensors. ``torch.optim.Adam`` then spends most of
a step in per-tensor Python bookkeeping, and so do gradient clipping and zeroing; on a CPU with
a batch of 32 windows that costs as much as the forward pass. Here every parameter is a view
into one buffer and every gradient a view into another, so clipping is one norm, zeroing one
fill, and an Adam step seven tensor operations.

The optimiser is a plain class, not a ``torch.optim.Optimizer``: constructing one of those
imports ``torch._dynamo``, 1.9 s of every process that trains (measured on this project's
machine). Adam's step is one compiled pass where :mod:`seqcast._native` is built:
eight tensor operations that each stream the four arrays took 0.33 ms of a 6 ms step.
Its learning-rate schedules are in :mod:`seqcast.training.schedules`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from seqcast import _native as native

__all__ = ["FlatOptimizer", "FlatParameters"]


class FlatParameters:
    """A model's trainable tensors as views into one flat buffer, their gradients as views
    into another.

    Autograd accumulates into existing gradients in place, so after ``backward`` the flat
    gradient holds every tensor's. :meth:`release` gives each tensor its own storage back.
    """

    def __init__(self, model: nn.Module, tensors: list[nn.Parameter] | None = None) -> None:
        """``tensors``: the parameters to train (default: all that require gradients). Leave
        out those the loss never reaches, as ``torch.optim`` skips a tensor whose gradient is
        None: a flat optimiser would otherwise move them by weight decay."""
        if tensors is None:
            tensors = [p for p in model.parameters() if p.requires_grad]
        self.tensors = tensors
        dtypes = {p.dtype for p in self.tensors}
        if len(dtypes) != 1:
            raise ValueError("FlatParameters needs trainable tensors that share one dtype")
        total = sum(p.numel() for p in self.tensors)
        device = self.tensors[0].device if self.tensors else None
        self.flat = nn.Parameter(torch.empty(total, dtype=dtypes.pop(), device=device))
        self.flat.grad = torch.zeros_like(self.flat)
        offset = 0
        with torch.no_grad():
            for tensor in self.tensors:
                part = slice(offset, offset + tensor.numel())
                self.flat[part] = tensor.reshape(-1)
                tensor.data = self.flat.data[part].view_as(tensor)
                tensor.grad = self.flat.grad[part].view_as(tensor)
                offset += tensor.numel()

    @property
    def grad(self) -> torch.Tensor:
        """Every gradient, flat: (P,)."""
        grad = self.flat.grad
        assert grad is not None
        return grad

    def clip_(self, max_norm: float) -> None:
        """Scales the gradients down to an overall norm of at most ``max_norm``."""
        norm = float(torch.linalg.vector_norm(self.grad))
        if norm > max_norm:
            self.grad.mul_(max_norm / (norm + 1e-6))

    def release(self) -> None:
        """Gives each tensor its own storage again and drops the gradients."""
        for tensor in self.tensors:
            tensor.data = tensor.data.clone()
            tensor.grad = None


class FlatOptimizer:
    """Adam, AdamW or SGD with momentum over one flat tensor.

    The update rules are those of ``torch.optim.Adam``, ``AdamW`` and ``SGD`` (no amsgrad,
    no Nesterov, no dampening), tested against them. As in ``torch.optim``, the settings live
    in ``param_groups[0]`` (``lr``, ``weight_decay``, ``betas`` or ``momentum``, which the
    schedules change) and the running averages in ``state[flat]``.
    """

    def __init__(
        self,
        flat: torch.Tensor,
        kind: str,
        lr: float,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if kind not in ("adam", "adamw", "sgd"):
            raise ValueError(f"unknown optimiser {kind!r}")
        group: dict[str, Any] = {"params": [flat], "lr": lr, "weight_decay": weight_decay}
        if kind == "sgd":
            group["momentum"] = momentum
        else:
            group.update(betas=betas, eps=eps)
        self.param_groups = [group]
        self.state: dict[torch.Tensor, dict[str, Any]] = {flat: {}}
        self.kind = kind

    def state_dict(self) -> dict[str, Any]:
        """The settings and running averages (live tensors, as in ``torch.optim``)."""
        settings = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        return {"state": dict(next(iter(self.state.values()))), "settings": settings}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continues from :meth:`state_dict` of an optimiser of the same kind and size."""
        self.param_groups[0].update(state["settings"])
        flat = self.param_groups[0]["params"][0]
        self.state[flat] = {
            k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in state["state"].items()
        }

    @torch.no_grad()
    def step(self) -> None:
        """One update from the gradient of the flat tensor."""
        group = self.param_groups[0]
        param: torch.Tensor = group["params"][0]
        grad = param.grad
        if grad is None:
            return
        state = self.state.setdefault(param, {})
        lr, decay = group["lr"], group["weight_decay"]
        if self.kind == "sgd":
            if decay:
                grad = grad.add(param, alpha=decay)
            buffer = state.get("momentum_buffer")
            if group["momentum"] == 0:
                buffer = grad
            elif buffer is None:
                buffer = state["momentum_buffer"] = grad.clone()
            else:
                buffer.mul_(group["momentum"]).add_(grad)
            param.add_(buffer, alpha=-lr)
            return
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        state["step"] += 1
        step = state["step"]
        beta1, beta2 = group["betas"]
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        settings = (1.0 - beta1, beta2, 1.0 - beta2, group["eps"], -lr / (1.0 - beta1**step),
                    math.sqrt(1.0 - beta2**step), decay, 1.0 - lr * decay)  # fmt: skip
        tensors = (param, grad, exp_avg, exp_avg_sq)
        if native.compiled(*tensors) and all(t.is_contiguous() for t in tensors):
            native.adam_step(*tensors, settings, self.kind == "adamw")
            return
        if self.kind == "adamw":
            param.mul_(1.0 - lr * decay)
        elif decay:
            grad = grad.add(param, alpha=decay)
        exp_avg.lerp_(grad, 1.0 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        denom = exp_avg_sq.sqrt().div_(math.sqrt(1.0 - beta2**step)).add_(group["eps"])
        param.addcdiv_(exp_avg, denom, value=-lr / (1.0 - beta1**step))
