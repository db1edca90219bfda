"""The compiled pieces of a training step (seqcast/_native/step.py): HeadLoss, the output layer
with its mean loss, and adam_step, Adam in one pass.

Oracles: float64 autograd with torch.nn's own losses, the defining values of the losses'
derivatives, and torch.optim.Adam / AdamW. The output layer as it trains through autograd
(an output layer of more than HEAD_IN_C weights: torch operations and the training loop's loss)
is held to the same oracles, and the compiled one to its results.
"""

from __future__ import annotations

import math

import pytest
import torch
from kernels import (
    KERNELS,
    close,
    needs_library,
    one_thread_and_vector_kernels,  # noqa: F401  (a fixture)
    select,
)
from torch import nn

from seqcast import _native as native
from seqcast.training.loop import loss_function
from seqcast.training.optimizer import FlatOptimizer

pytestmark = [needs_library, pytest.mark.usefixtures("one_thread_and_vector_kernels")]

LOSS_NAMES = ["huber", "mse", "mae"]
#: ``compiled``: HeadLoss; ``autograd``: the output layer in torch operations through autograd.
HEADS = ["compiled", "autograd"]
Fixed = list[tuple[torch.Tensor, torch.Tensor | None]]


def torch_loss(name: str) -> nn.Module:
    """torch.nn's own losses (the oracle, not seqcast's mapping)."""
    return {"huber": nn.HuberLoss(delta=1.0), "mse": nn.MSELoss(), "mae": nn.L1Loss()}[name]


def head_oracle(
    weight: torch.Tensor,
    bias: torch.Tensor,
    pieces: list[torch.Tensor],
    target: torch.Tensor,
    loss: str,
) -> tuple[float, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Loss and gradients of bias + cat(pieces)·Wᵀ in float64 autograd."""
    w = weight.detach().double().requires_grad_()
    b = bias.detach().double().requires_grad_()
    parts = [p.detach().double().requires_grad_() for p in pieces]
    forecast = torch.cat(parts, dim=1) @ w.T + b
    value = torch_loss(loss)(forecast, target.detach().double())
    grads = torch.autograd.grad(value, [w, b, *parts])
    return float(value.detach()), grads[0], grads[1], list(grads[2:])


def run_head(
    kind: str,
    weight: torch.Tensor,
    bias: torch.Tensor,
    loss: str,
    fixed: Fixed,
    pieces: list[torch.Tensor],
    target: torch.Tensor,
) -> float:
    """The batch's mean loss from the compiled output layer or the one autograd trains (float32
    torch operations, the training loop's loss); either writes the gradients of the weight, the
    bias and the fixed pieces that have a destination."""
    if kind == "compiled":
        head = native.HeadLoss(weight, bias, loss, fixed, [p.shape[1] for p in pieces])
        return head(pieces, target)
    w, b = weight.detach().requires_grad_(), bias.detach().requires_grad_()
    states = [view.detach().requires_grad_() for view, _ in fixed]
    forecast = nn.functional.linear(torch.cat([*states, *pieces], dim=1), w, b)
    value = loss_function(loss)(forecast, target)
    grads = torch.autograd.grad(value, [w, b, *states])
    assert weight.grad is not None and bias.grad is not None
    weight.grad.copy_(grads[0])
    bias.grad.copy_(grads[1])
    for (_, destination), grad in zip(fixed, grads[2:], strict=True):
        if destination is not None:
            destination.copy_(grad)
    return float(value.detach())


class HeadCase:
    """Random inputs of an output layer: fixed pieces as strided-row views (some without a
    gradient destination), batch pieces as strided-row views, sentinel-filled buffers."""

    def __init__(
        self,
        rows: int,
        outs: int,
        fixed_widths: list[int],
        batch_widths: list[int],
        no_grad: set[int],
        seed: int,
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        width = sum(fixed_widths) + sum(batch_widths)
        self.weight = torch.randn(outs, width, generator=g)
        self.bias = torch.randn(outs, generator=g)
        self.weight.grad = torch.full_like(self.weight, 7.0)  # must be overwritten
        self.bias.grad = torch.full_like(self.bias, 7.0)
        self.fixed: Fixed = []
        self.grad_buffers: list[torch.Tensor] = []
        self.fixed_widths = fixed_widths
        for k, w in enumerate(fixed_widths):
            buffer = torch.randn(rows, w + 3, generator=g)
            grad_buffer = torch.full((rows, w + 5), 9.0)  # columns 2..2+w are the gradient
            self.grad_buffers.append(grad_buffer)
            view = buffer[:, 1 : 1 + w]
            self.fixed.append((view, None if k in no_grad else grad_buffer[:, 2 : 2 + w]))
        self.batch_widths = batch_widths
        self.pieces = [
            (torch.randn(rows, w + 2, generator=g) * 2)[:, 1 : 1 + w] for w in batch_widths
        ]
        # Errors of all sizes: both sides of Huber's |e| = 1.
        self.target = (torch.randn(rows, outs + 1, generator=g) * 3)[:, :outs]

    def run(self, kind: str, loss: str) -> float:
        pieces = [p if p.shape[1] <= 1 else p.contiguous() for p in self.pieces]
        return run_head(
            kind, self.weight, self.bias, loss, self.fixed, pieces, self.target.contiguous()
        )


HEAD_LAYOUTS = {
    # fixed piece widths, batch piece widths, fixed pieces without a gradient destination
    "state_season_window": ([5], [3, 8], set()),
    "bidirectional_empty_season": ([3, 3], [0, 4], set()),
    "width_one_and_zero": ([1, 0, 2], [1, 0], {1}),
    "state_without_grad": ([4, 1], [2], {0}),
}


# ========================================================================== HeadLoss
@pytest.mark.parametrize("kind", HEADS)
@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("rows", [1, 31, 33, 64])
@pytest.mark.parametrize("layout", list(HEAD_LAYOUTS))
def test_head_matches_float64_autograd_and_overwrites_its_gradients(
    kind: str, loss: str, rows: int, layout: str
) -> None:
    fixed_widths, batch_widths, no_grad = HEAD_LAYOUTS[layout]
    case = HeadCase(rows, 3, fixed_widths, batch_widths, no_grad, seed=rows)
    before = [p.clone() for p in case.pieces] + [case.target.clone()]
    value = case.run(kind, loss)
    pieces = [view for view, _ in case.fixed] + case.pieces
    want, grad_w, grad_b, grad_pieces = head_oracle(
        case.weight, case.bias, pieces, case.target, loss
    )
    assert value == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert case.weight.grad is not None and case.bias.grad is not None
    close(case.weight.grad, grad_w)
    close(case.bias.grad, grad_b)
    for k, (_, grad_view) in enumerate(case.fixed):
        buffer = case.grad_buffers[k].clone()
        if grad_view is not None:
            close(grad_view, grad_pieces[k])
            buffer[:, 2 : 2 + case.fixed_widths[k]] = 9.0
        assert torch.equal(buffer, torch.full_like(buffer, 9.0)), "wrote outside its view"
    for old, new in zip(before, [*case.pieces, case.target], strict=True):
        assert torch.equal(old, new)


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("rows", [1, 33])
def test_the_compiled_head_gives_the_autograd_heads_results(loss: str, rows: int) -> None:
    fixed_widths, batch_widths, no_grad = HEAD_LAYOUTS["bidirectional_empty_season"]
    results = []
    for kind in HEADS:
        case = HeadCase(rows, 4, fixed_widths, batch_widths, no_grad, seed=5)
        value = case.run(kind, loss)
        assert case.weight.grad is not None and case.bias.grad is not None
        grads = [case.weight.grad, case.bias.grad]
        grads += [g for _, g in case.fixed if g is not None]
        results.append((value, [g.clone() for g in grads]))
    (value_c, grads_c), (value_a, grads_a) = results
    assert value_c == pytest.approx(value_a, rel=1e-6, abs=1e-7)
    for a, b in zip(grads_c, grads_a, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", HEADS)
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_head_at_errors_of_exactly_zero_and_one(kind: str, loss: str) -> None:
    """Dyadic inputs and weights: every forecast is exact, so the errors are exactly
    0, ±0.5, ±1 and ±2. torch's L1 gradient at 0 is sign(0) = 0; its Huber gradient at
    |e| = 1 is ±1."""
    g = torch.Generator().manual_seed(3)
    rows, outs = 35, 5
    weight = torch.randint(-2, 3, (outs, 6), generator=g) * 0.25
    bias = torch.randint(-2, 3, (outs,), generator=g) * 0.5
    state = torch.randint(-3, 4, (rows, 4), generator=g).float()
    season = torch.randint(-3, 4, (rows, 2), generator=g).float()
    forecast = torch.cat([state, season], 1).double() @ weight.double().T + bias.double()
    errors = torch.tensor([0.0, 1.0, -1.0, 0.5, -2.0, 0.0])
    error = errors[torch.randint(0, len(errors), (rows, outs), generator=g)]
    target = (forecast + error).float()
    assert torch.equal(target.double() - forecast, error.double())  # exact in float32
    weight.grad, bias.grad = torch.zeros_like(weight), torch.zeros_like(bias)
    grad_state = torch.full((rows, 4), 5.0)
    value = run_head(kind, weight, bias, loss, [(state, grad_state)], [season], target)
    want, grad_w, grad_b, grad_parts = head_oracle(weight, bias, [state, season], target, loss)
    assert value == pytest.approx(want, rel=1e-6, abs=1e-7)
    close(weight.grad, grad_w, rtol=1e-6, atol=1e-7)
    close(bias.grad, grad_b, rtol=1e-6, atol=1e-7)
    close(grad_state, grad_parts[0], rtol=1e-6, atol=1e-7)
    # And the defining values, independently of autograd.
    scale, error = 1.0 / (rows * outs), -error  # forecast − target
    if loss == "mae":
        d_forecast = torch.sign(error) * scale
    elif loss == "huber":
        d_forecast = error.clamp(-1, 1) * scale
    else:
        d_forecast = 2 * error * scale
    close(bias.grad, d_forecast.sum(0), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", HEADS)
def test_mae_head_with_every_error_zero_has_zero_gradients(kind: str) -> None:
    g = torch.Generator().manual_seed(4)
    weight = torch.randint(-2, 3, (3, 5), generator=g) * 0.5
    bias = torch.randint(-2, 3, (3,), generator=g) * 0.25
    x = torch.randint(-3, 4, (33, 5), generator=g).float()
    target = (x.double() @ weight.double().T + bias.double()).float()
    weight.grad, bias.grad = torch.full_like(weight, 1.0), torch.full_like(bias, 1.0)
    grad_x = torch.full((33, 2), 1.0)
    value = run_head(kind, weight, bias, "mae", [(x[:, :2], grad_x)], [x[:, 2:]], target)
    assert value == 0.0
    assert not weight.grad.any() and not bias.grad.any() and not grad_x.any()


def test_the_compiled_head_refuses_pieces_it_was_not_prepared_for() -> None:
    weight = torch.zeros(2, 5, requires_grad=True)
    bias = torch.zeros(2, requires_grad=True)
    weight.grad, bias.grad = torch.zeros(2, 5), torch.zeros(2)
    state = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="add up"):
        native.HeadLoss(weight, bias, "huber", [(state, None)], [3])  # 3 + 3 columns, not 5
    head = native.HeadLoss(weight, bias, "huber", [(state, None)], [2])
    assert head([torch.zeros(4, 2)], torch.zeros(4, 2)) == 0.0
    with pytest.raises(ValueError, match="takes pieces"):
        head([torch.zeros(4, 3)], torch.zeros(4, 2))
    with pytest.raises(ValueError, match="takes pieces"):
        head([torch.zeros(4, 2)], torch.zeros(5, 2))
    with pytest.raises(ValueError, match="float32"):
        head([torch.zeros(4, 2, dtype=torch.float64)], torch.zeros(4, 2))


HEAD_REFUSALS = {
    # what is wrong, what the message says
    "no_gradients": ("no_grad", "writes into existing gradients"),
    "float64_weight": ("float64", "contiguous float32 weights and gradients"),
    "transposed_weight": ("transposed", "contiguous float32 weights and gradients"),
    "strided_state_rows": ("strided_state", "pieces with contiguous rows"),
    "strided_gradient_rows": ("strided_grad", "pieces with contiguous rows"),
}


@pytest.mark.parametrize("case", list(HEAD_REFUSALS))
def test_the_compiled_head_refuses_what_it_cannot_run(case: str) -> None:
    change, message = HEAD_REFUSALS[case]
    weight, bias = torch.zeros(4, 4), torch.zeros(4)
    state, grad_state = torch.zeros(3, 2), torch.zeros(3, 2)
    if change == "float64":
        weight = weight.double()
    elif change == "transposed":
        weight = weight.t()
    elif change == "strided_state":
        state = torch.zeros(3, 4)[:, ::2]
    elif change == "strided_grad":
        grad_state = torch.zeros(3, 4)[:, ::2]
    if change != "no_grad":
        weight.grad, bias.grad = torch.zeros_like(weight), torch.zeros_like(bias)
    with pytest.raises(ValueError, match=message):
        native.HeadLoss(weight, bias, "mse", [(state, grad_state)], [2])


# ============================================================================ adam_step
def adam_settings(
    lr: float, beta1: float, beta2: float, eps: float, step: int, decay: float
) -> tuple[float, ...]:
    """adam_step's settings, computed as FlatOptimizer computes them."""
    return (1 - beta1, beta2, 1 - beta2, eps, -lr / (1 - beta1**step),
            math.sqrt(1 - beta2**step), decay, 1 - lr * decay)  # fmt: skip


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(
    ("kind", "decay", "betas"),
    [
        ("adam", 0.0, (0.9, 0.999)),
        ("adam", 0.1, (0.9, 0.999)),
        ("adamw", 0.1, (0.9, 0.999)),
        ("adamw", 0.0, (0.3, 0.5)),  # lerp's other branch (weight >= 0.5)
        ("adam", 0.05, (0.3, 0.5)),
    ],
)
def test_flat_adam_follows_torch_optim_at_sizes_1_to_17(
    kernel: str,
    kind: str,
    decay: float,
    betas: tuple[float, float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    select(kernel)
    calls: list[int] = []
    adam_step = native.adam_step

    def spy(*args: object) -> None:
        calls.append(1)
        adam_step(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(native, "adam_step", spy)
    for size in range(1, 18):  # the vector loop's tail and sizes below one vector
        g = torch.Generator().manual_seed(size)
        start = torch.randn(size, generator=g)
        ours, theirs = nn.Parameter(start.clone()), nn.Parameter(start.clone())
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        reference = cls([theirs], lr=0.05, betas=betas, weight_decay=decay)
        optimizer = FlatOptimizer(ours, kind, 0.05, weight_decay=decay, betas=betas)
        for step in range(6):
            grad = torch.randn(size, generator=g)
            if step == 2:
                grad.zero_()  # a zero gradient: only the moments' decay moves the weights
            elif step == 3:
                grad[::2] = 0.0
            ours.grad, theirs.grad = grad.clone(), grad.clone()
            reference.step()
            optimizer.step()
            assert torch.equal(ours.grad, grad), "the step changed the gradient"
            # Rounding-level differences only (fma against torch's add, lerp's other branch).
            torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=2e-6, atol=1e-7)
            state, their_state = optimizer.state[ours], reference.state[theirs]
            torch.testing.assert_close(
                state["exp_avg"], their_state["exp_avg"], rtol=1e-5, atol=2e-7
            )
            torch.testing.assert_close(
                state["exp_avg_sq"], their_state["exp_avg_sq"], rtol=1e-5, atol=1e-8
            )
    assert len(calls) == 17 * 6  # every step ran the compiled pass


@pytest.mark.parametrize("size", [1, 7, 8, 9, 17])
def test_adam_step_updates_every_element_including_the_tail(size: int) -> None:
    """First step from zero moments: each element moves by about -lr·sign(g)."""
    param = torch.zeros(size)
    grad = torch.linspace(-1.0, 1.0, size) + 0.01
    exp_avg, exp_avg_sq = torch.zeros(size), torch.zeros(size)
    lr, beta1, beta2 = 0.1, 0.9, 0.999
    settings = adam_settings(lr, beta1, beta2, 1e-8, 1, 0.0)
    assert native.adam_step(param, grad, exp_avg, exp_avg_sq, settings, False) is None
    torch.testing.assert_close(param, -lr * torch.sign(grad), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(exp_avg, (1 - beta1) * grad)
    torch.testing.assert_close(exp_avg_sq, (1 - beta2) * grad * grad)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("decay", "decoupled"), [(0.0, False), (0.1, False), (0.1, True)])
def test_the_compiled_adam_step_is_torch_optims_to_the_last_bit_of_the_square_root(
    kernel: str, decay: float, decoupled: bool
) -> None:
    """The moments match bit for bit; the parameters within what torch's own square root
    (MKL's, accurate to 1 ulp) makes of them. 1,003 values: the vector loop and its tail."""
    select(kernel)
    generator = torch.Generator().manual_seed(1)
    n = 1003
    param = torch.randn(n, generator=generator)
    grad = torch.randn(n, generator=generator) * 0.01
    exp_avg = torch.randn(n, generator=generator) * 0.01
    exp_avg_sq = torch.rand(n, generator=generator) * 1e-4
    lr, beta1, beta2, eps, step = 0.2, 0.9, 0.999, 1e-8, 5
    ours = [t.clone() for t in (param, grad, exp_avg, exp_avg_sq)]
    native.adam_step(*ours, adam_settings(lr, beta1, beta2, eps, step, decay), decoupled)
    # torch.optim.Adam's single-tensor step, written out.
    if decoupled:
        param.mul_(1 - lr * decay)
    elif decay:
        grad = grad.add(param, alpha=decay)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = exp_avg_sq.sqrt().div_(math.sqrt(1 - beta2**step)).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1**step))
    if kernel == "vector":
        assert torch.equal(ours[2], exp_avg) and torch.equal(ours[3], exp_avg_sq)
    else:  # libm's fmaf and plain arithmetic: the same rounding rules, not always the same bits
        torch.testing.assert_close(ours[2], exp_avg, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(ours[3], exp_avg_sq, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(ours[0], param, rtol=2e-6, atol=1e-7)


def test_the_compiled_adam_step_refuses_what_it_cannot_run() -> None:
    """adam_step raises; the switch and FlatOptimizer keep such tensors on PyTorch."""
    settings = adam_settings(0.1, 0.9, 0.999, 1e-8, 1, 0.0)
    x = torch.zeros(8, dtype=torch.float64)
    assert not native.compiled(x)
    with pytest.raises(ValueError, match="contiguous float32 tensors on the CPU"):
        native.adam_step(x, x, x, x, settings, False)
    y = torch.zeros(8, 2)[:, 0]  # not contiguous
    assert native.compiled(y) and not y.is_contiguous()
    with pytest.raises(ValueError, match="contiguous float32 tensors on the CPU"):
        native.adam_step(y, y, y, y, settings, False)


def test_the_compiled_adam_step_refuses_tensors_of_different_sizes() -> None:
    a, b = torch.zeros(8), torch.zeros(7)
    with pytest.raises(ValueError, match="one size"):
        native.adam_step(a, a, a, b, adam_settings(0.1, 0.9, 0.999, 1e-8, 1, 0.0), False)
