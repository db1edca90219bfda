"""Edge cases of the fast training path, the flat optimiser and the transforms.

Written in a review against oracles (torch.nn.RNN, torch.optim, numpy); four of them found
bugs that are now fixed (decay of unused parameters, the flat buffer kept after an early
error, float32 scoring indices, explicit transforms reaching covariates).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import seqcast.training.loop as loop
from seqcast.data.scaling import Scaler, transform_power
from seqcast.errors import DataError
from seqcast.forecasters.neural import NeuralForecaster
from seqcast.forecasters.registry import forecaster_class
from seqcast.networks import RecurrentConfig, RecurrentNet
from seqcast.training.loop import TrainConfig, TrainData, TrainingError, train
from seqcast.training.optimizer import FlatOptimizer, FlatParameters
from seqcast.training.schedules import OneCycle

torch.set_num_threads(1)


# ------------------------------------------------------------------ flat parameters
class _WithUnused(nn.Module):
    """A used layer and one that never gets a gradient (like step_head without seq2seq)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.used = nn.Linear(3, 2)
        self.unused = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.used(x)


def _batch(step: int) -> torch.Tensor:
    return torch.randn(8, 3, generator=torch.Generator().manual_seed(step))


@pytest.mark.parametrize(
    ("kind", "settings", "reference"),
    [
        ("adamw", {"weight_decay": 0.1}, lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1)),
        ("adam", {"weight_decay": 0.1}, lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.1)),
        (
            "sgd",
            {"momentum": 0.9, "weight_decay": 0.1},
            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.1),
        ),
    ],
)
def test_parameters_without_gradients_are_left_alone_like_torch_optim(
    kind: str, settings: dict[str, Any], reference: Any
) -> None:
    """torch.optim skips parameters whose grad is None; the flat buffer holds only the used ones
    (train() finds them with used_parameters), so weight decay never reaches the others."""
    ours, theirs = _WithUnused(), _WithUnused()
    flat = FlatParameters(ours, list(ours.used.parameters()))
    optimizer = FlatOptimizer(flat.flat, kind, 0.05, **settings)
    peer = reference(list(theirs.parameters()))
    for step in range(5):
        flat.grad.zero_()
        (ours(_batch(step)) ** 2).mean().backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        peer.zero_grad(set_to_none=True)
        (theirs(_batch(step)) ** 2).mean().backward()  # type: ignore[no-untyped-call]
        peer.step()
    flat.release()
    torch.testing.assert_close(ours.used.weight, theirs.used.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.unused.weight, theirs.unused.weight)


def _tiny_recurrent() -> RecurrentNet:
    torch.manual_seed(0)
    config = RecurrentConfig(
        input_size=1, window=4, season_size=0, horizon=1, n_targets=1, hidden_size=3,
        num_layers=1,
    )  # fmt: skip
    return RecurrentNet(config)


def _tiny_data(n: int = 40, target: float | None = None) -> TrainData:
    generator = torch.Generator().manual_seed(0)
    window = torch.randn(n, 4, 1, generator=generator)
    values = window.sum(1, keepdim=True) if target is None else torch.full((n, 1, 1), target)
    return TrainData(window=window, season=torch.zeros(n, 0), target=values)


def test_adamw_training_without_seq2seq_leaves_the_step_head_unchanged() -> None:
    """Through train(): with AdamW the unused step_head must not decay, as with
    torch.optim.AdamW (tests/test_neural.py checks this only for Adam)."""
    net = _tiny_recurrent()
    before = net.step_head.weight.detach().clone()
    config = TrainConfig(epochs=3, batch_size=8, lr=1e-2, optimizer="adamw", patience=0)
    train(net, _tiny_data(), None, config)
    torch.testing.assert_close(net.step_head.weight.detach(), before)


def test_a_non_finite_start_still_gives_the_parameters_their_own_storage_back() -> None:
    """The TrainingError for a non-finite untrained loss must still release the flat buffer:
    the model gets its own storage back and no gradients."""
    net = _tiny_recurrent()
    with pytest.raises(TrainingError, match="non-finite"):
        train(net, _tiny_data(target=float("nan")), None, TrainConfig(epochs=1, patience=0))
    assert all(p.grad is None for p in net.parameters())
    pointers = {p.untyped_storage().data_ptr() for p in net.parameters()}
    assert len(pointers) == len(list(net.parameters()))


def test_best_state_copies_are_independent_and_loading_writes_through_the_views() -> None:
    net = _tiny_recurrent()
    flat = FlatParameters(net)
    saved = copy.deepcopy(net.state_dict())
    start = flat.flat.detach().clone()
    with torch.no_grad():
        flat.flat.add_(1.0)
    for key, value in saved.items():  # the copy did not follow the buffer
        torch.testing.assert_close(value + 1.0, net.state_dict()[key])
    net.load_state_dict(saved)  # copies in place: the buffer is the model again
    torch.testing.assert_close(flat.flat.detach(), start)
    flat.release()


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
def test_resuming_from_a_state_dict_continues_exactly(kind: str) -> None:
    def steps(net: nn.Module, optimizer: FlatOptimizer, flat: FlatParameters, r: range) -> None:
        for step in r:
            flat.grad.zero_()
            (net(_batch(step)) ** 2).mean().backward()
            optimizer.step()

    torch.manual_seed(0)
    whole = nn.Linear(3, 2)
    flat = FlatParameters(whole)
    optimizer = FlatOptimizer(flat.flat, kind, 0.05, weight_decay=0.01)
    steps(whole, optimizer, flat, range(6))
    state = copy.deepcopy(optimizer.state_dict())  # state_dict() holds live tensors
    halfway = copy.deepcopy(whole.state_dict())
    steps(whole, optimizer, flat, range(6, 12))

    resumed = nn.Linear(3, 2)
    resumed.load_state_dict(halfway)
    flat2 = FlatParameters(resumed)
    optimizer2 = FlatOptimizer(flat2.flat, kind, 0.05, weight_decay=0.01)
    optimizer2.load_state_dict(state)
    steps(resumed, optimizer2, flat2, range(6, 12))
    torch.testing.assert_close(flat2.flat, flat.flat, rtol=0, atol=0)
    if kind != "sgd":
        assert optimizer2.state[flat2.flat]["step"] == 12


def test_sgd_momentum_with_weight_decay_and_one_cycle_follows_torch_optim() -> None:
    ours, theirs = nn.Linear(3, 2), nn.Linear(3, 2)
    theirs.load_state_dict(ours.state_dict())
    flat = FlatParameters(ours)
    optimizer = FlatOptimizer(flat.flat, "sgd", 0.1, weight_decay=0.05, momentum=0.9)
    peer = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=0.05)
    schedules = [
        OneCycle(optimizer, max_lr=0.1, total_steps=10),
        torch.optim.lr_scheduler.OneCycleLR(peer, max_lr=0.1, total_steps=10),
    ]
    for step in range(10):
        flat.grad.zero_()
        (ours(_batch(step)) ** 2).mean().backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        peer.zero_grad()
        (theirs(_batch(step)) ** 2).mean().backward()  # type: ignore[no-untyped-call]
        peer.step()
        for schedule in schedules:
            schedule.step()
    flat.release()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ scoring windows
class _Scored(Exception):
    pass


def test_score_windows_stay_in_range_for_very_many_windows(monkeypatch: Any) -> None:
    """The evenly spaced scoring indices are exact integers: a float32 linspace would round the
    last one up to len(data) past 2**24 windows (IndexError before training)."""
    n = 2**24 + 4  # n - 1 = 16777219 rounds to 16777220 = n in float32
    data = TrainData(
        window=torch.zeros(1, 4, 1).expand(n, 4, 1),
        season=torch.zeros(1, 0).expand(n, 0),
        target=torch.zeros(1, 1, 1).expand(n, 1, 1),
    )

    def stop(model: nn.Module, part: TrainData, loss_fn: nn.Module) -> float:
        assert len(part) == loop.SCORE_WINDOWS
        raise _Scored

    monkeypatch.setattr(loop, "evaluate", stop)
    with pytest.raises(_Scored):
        train(_tiny_recurrent(), data, None, TrainConfig(epochs=1, patience=0))


def test_score_windows_cover_both_ends_and_a_single_window(monkeypatch: Any) -> None:
    seen: list[TrainData] = []

    def record(model: nn.Module, part: TrainData, loss_fn: nn.Module) -> float:
        seen.append(part)
        raise _Scored

    monkeypatch.setattr(loop, "evaluate", record)
    for n in (1, 300):
        data = _tiny_data(n)
        with pytest.raises(_Scored):
            train(_tiny_recurrent(), data, None, TrainConfig(epochs=1, patience=0))
        part = seen[-1]
        assert len(part) == min(n, loop.SCORE_WINDOWS)
        torch.testing.assert_close(part.window[0], data.window[0])
        torch.testing.assert_close(part.window[-1], data.window[-1])


# ------------------------------------------------------------------ transforms
def _counts(n: int = 360, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    level = 50.0 + 49.0 * np.sin(np.arange(n) * 2 * np.pi / 120)
    return rng.poisson(level).astype(np.float64)


def _make(**settings: Any) -> NeuralForecaster:
    options: dict[str, Any] = dict(
        window=8, horizon=2, season=1, epochs=1, batch_size=64, lr=1e-2, patience=0, seed=0,
        hidden_size=3, num_layers=1,
    )  # fmt: skip
    options.update(settings)
    model = forecaster_class("rnn")(**options)
    assert isinstance(model, NeuralForecaster)
    return model


def test_an_explicit_root_of_counts_with_a_signed_covariate_is_accepted() -> None:
    """--transform sqrt/log applies to the targets: a signed covariate neither blocks the fit
    nor gets transformed."""
    rng = np.random.default_rng(1)
    values = np.stack([_counts(), rng.normal(0.0, 1.0, 360)], axis=1)  # target, covariate
    model = _make(transform="sqrt").fit([values], 1)
    assert model.scaler_.power_[0] == 0.5
    assert model.scaler_.power_[1] == 1.0


def test_mixed_powers_over_targets_and_covariates_invert_per_channel() -> None:
    rng = np.random.default_rng(2)
    values = np.abs(rng.normal(5.0, 2.0, (50, 3)))
    powers = np.array([0.5, 0.0, 1.0])
    scaler = Scaler("standard", powers).fit(values)
    scaled = scaler.transform(values)
    by_hand = np.stack([np.sqrt(values[:, 0]), np.log1p(values[:, 1]), values[:, 2]], axis=1)
    np.testing.assert_allclose(scaled, (by_hand - by_hand.mean(0)) / by_hand.std(0))
    targets = slice(0, 2)
    np.testing.assert_allclose(
        scaler.inverse_transform(scaled[:, targets], targets), values[:, targets], rtol=1e-10
    )
    # A forecast below the transformed zero: a root gives 0, log1p's inverse stays above -1.
    low = np.array([[-50.0, -50.0]])
    back = scaler.inverse_transform(low, targets)
    assert np.isfinite(back).all() and back[0, 0] == 0.0 and -1.0 < back[0, 1] < 0.0
    np.testing.assert_array_equal(transform_power(values, np.ones(3)), values)


def test_two_count_targets_and_a_covariate_fit_forecast_and_round_trip_the_state() -> None:
    values = np.stack([_counts(seed=0), _counts(seed=1) * 3.0, np.arange(360.0) % 7], axis=1)
    model = _make(transform="log", seq2seq=True).fit([values], 2)
    np.testing.assert_array_equal(model.scaler_.power_, [0.0, 0.0, 1.0])  # the covariate: none
    contexts = np.stack([values[-8 - o : len(values) - o] for o in (0, 5, 40)])
    forecast = model.predict(contexts)
    assert forecast.shape == (3, 2, 2)
    assert np.isfinite(forecast).all() and (forecast > -1.0).all()
    clone = _make(transform="log", seq2seq=True)
    clone.n_features_, clone.n_targets_ = 3, 2
    clone.set_state(model.get_state())
    clone.is_fitted_ = True
    np.testing.assert_allclose(clone.predict(contexts), forecast, rtol=1e-6)
    # The step scale is the spread of one-step changes of the transformed targets.
    steps = np.diff(np.log1p(values[:, :2]), axis=0).std(axis=0)
    np.testing.assert_allclose(model.scaler_.scale_[:2], steps)
    shifts = np.append(np.log1p(values[:, :2]).mean(axis=0), values[:, 2].mean())
    np.testing.assert_allclose(model.scaler_.shift_, shifts)


def test_explicit_transform_of_negative_targets_is_refused() -> None:
    with pytest.raises(DataError, match="needs target values of at least 0"):
        _make(transform="log").fit([np.stack([_counts() - 100.0], axis=1)], 1)
