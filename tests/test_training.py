"""The training loop against a model whose trajectory is known in closed form.

A network that outputs one learned constant b, trained with plain gradient descent (SGD without
momentum, one full batch per epoch, no clipping) on the mean squared error towards targets 1,
follows b_e = 1 − (1 − 2·lr)^e (1 − b_0) exactly; its validation loss against targets v is
(b_e − v)², so the best epoch, the early stop and the weights kept can all be worked out by hand.

The real loop is also run beside a reference loop written with torch.optim and torch's
schedulers (the same batches, scores and best epoch), and on the corners of its scoring, its
flat parameter buffer and a non-finite start.
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from constant_model import Constant
from module_weights import assert_same_weights
from torch import nn

import seqcast.training.loop as loop
from seqcast import _native as native
from seqcast.data import synthetic_series
from seqcast.data.windows import iterate_batches
from seqcast.errors import DataError, SeqcastError
from seqcast.forecasters.neural import NeuralForecaster
from seqcast.forecasters.registry import create, forecaster_class
from seqcast.networks import RecurrentConfig, RecurrentNet
from seqcast.training.compiled_step import CompiledStep
from seqcast.training.loop import (
    History,
    TrainConfig,
    TrainData,
    TrainingError,
    batch_loss,
    evaluate,
    loss_function,
    train,
)
from seqcast.training.optimizer import FlatParameters

N = 8
LR = 0.05


def constant_data(target: float, n: int = N) -> TrainData:
    return TrainData(
        window=torch.zeros(n, 3, 1), season=torch.zeros(n, 0), target=torch.full((n, 1, 1), target)
    )


def gd_config(**changes: Any) -> TrainConfig:
    settings: dict[str, Any] = dict(
        epochs=30, batch_size=N, lr=LR, loss="mse", optimizer="sgd", momentum=0.0,
        clip_norm=None, patience=3, schedule="none",
    )  # fmt: skip
    settings.update(changes)
    return TrainConfig(**settings)


def b_after(epoch: int, start: float = 0.0) -> float:
    return 1.0 - (1.0 - 2.0 * LR) ** epoch * (1.0 - start)


def test_the_constant_model_follows_gradient_descent_exactly() -> None:
    model = Constant()
    history = train(model, constant_data(1.0), None, gd_config(epochs=5, patience=0))
    # The training loss of an epoch is measured before its step: (b_{e−1} − 1)².
    want = [(b_after(e - 1) - 1.0) ** 2 for e in range(1, 6)]
    np.testing.assert_allclose(history.train_loss, want, rtol=1e-5)
    assert history.val_loss == [] and history.lr == [LR] * 5
    # Without a validation slice the best epoch is the lowest training loss: the last one.
    assert (history.best_epoch, history.stop_reason, history.epochs) == (5, "completed", 5)
    assert model.b.detach().item() == pytest.approx(b_after(5), rel=1e-5)


@pytest.mark.parametrize(("target", "patience"), [(0.3, 3), (0.3, 1), (-1.0, 2), (0.6, 4)])
def test_early_stopping_stops_after_patience_and_keeps_the_best_weights(
    target: float, patience: int
) -> None:
    validation = constant_data(target)
    model = Constant()
    history = train(model, constant_data(1.0), validation, gd_config(patience=patience))
    # By hand: validation loss after each epoch (epoch 0: the untrained weights, which count
    # as a candidate), the best one, and where patience runs out.
    losses = [(b_after(e) - target) ** 2 for e in range(0, 31)]
    best = 0
    for e in range(1, 31):
        if losses[e] < losses[best]:
            best = e
        if e - best >= patience:
            break
    stop = e
    assert stop < 30  # the validation loss cannot improve for ever: training stops early
    assert history.stop_reason == "early-stopped"
    assert (history.best_epoch, history.epochs) == (best, stop)
    np.testing.assert_allclose(history.val_loss, losses[1 : stop + 1], rtol=1e-4, atol=1e-7)
    # The weights kept are those of the best epoch, and give the best loss seen.
    assert model.b.detach().item() == pytest.approx(b_after(best), rel=1e-5, abs=1e-7)
    assert evaluate(model, validation, nn.MSELoss()) == pytest.approx(
        min(losses[: stop + 1]), rel=1e-4
    )
    assert min(losses[: stop + 1]) < history.val_loss[-1]
    assert not model.training  # left in evaluation mode


def test_validation_that_never_improves_stops_at_one_plus_patience() -> None:
    history = train(Constant(), constant_data(1.0), constant_data(-1.0), gd_config(patience=2))
    assert np.all(np.diff(history.val_loss) > 0)
    # The untrained weights (epoch 0) stay the best: stop after `patience` worse epochs.
    assert (history.best_epoch, history.epochs, history.stop_reason) == (0, 2, "early-stopped")


def test_patience_zero_trains_every_epoch_and_still_keeps_the_best() -> None:
    model = Constant()
    history = train(model, constant_data(1.0), constant_data(-1.0), gd_config(epochs=7, patience=0))
    assert (history.epochs, history.stop_reason, history.best_epoch) == (7, "completed", 0)
    assert len(history.val_loss) == 7
    assert model.b.detach().item() == pytest.approx(b_after(0), abs=1e-7)


def test_plateau_schedule_halves_the_rate_after_four_epochs_without_improvement() -> None:
    history = train(
        Constant(), constant_data(1.0), constant_data(-1.0),
        gd_config(epochs=8, patience=0, schedule="plateau"),
    )  # fmt: skip
    # ReduceLROnPlateau(patience=max(3, 0 // 4)): epochs 2–5 are bad, the rate halves after 5.
    assert history.lr == pytest.approx([LR] * 5 + [LR / 2] * 3)


def test_onecycle_schedule_peaks_at_the_given_rate() -> None:
    history = train(
        Constant(), constant_data(1.0), None, gd_config(epochs=6, patience=0, schedule="onecycle")
    )
    assert max(history.lr) <= LR and min(history.lr) < LR / 100


def test_evaluate_is_the_loss_over_all_windows_whatever_the_batch_size() -> None:
    rng = np.random.default_rng(0)
    data = TrainData(
        window=torch.zeros(11, 2, 1),
        season=torch.zeros(11, 0),
        target=torch.from_numpy(rng.normal(size=(11, 1, 1)).astype(np.float32)),
    )
    model = Constant(0.5)
    want = float(np.mean((data.target.numpy() - 0.5) ** 2))
    for batch_size in (1, 3, 11, 100):
        assert evaluate(model, data, nn.MSELoss(), batch_size) == pytest.approx(want, rel=1e-6)


class StepModel(nn.Module):
    """Known outputs for both heads, to check how the sequence-to-sequence loss combines them."""

    def forward(
        self, window: torch.Tensor, season: torch.Tensor, steps: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        final = torch.full((window.shape[0], 2, 1), 1.0)
        if not steps:
            return final
        return final, torch.full((window.shape[0], window.shape[1], 2, 1), 3.0)


def test_seq2seq_loss_is_the_mean_of_the_final_and_every_step_losses() -> None:
    data = TrainData(
        window=torch.zeros(4, 5, 1),
        season=torch.zeros(4, 0),
        target=torch.zeros(4, 2, 1),
        step_target=torch.zeros(4, 5, 2, 1),
    )
    loss = batch_loss(StepModel(), data, nn.MSELoss(), seq2seq=True)
    assert float(loss) == pytest.approx(0.5 * (1.0 + 9.0))
    assert float(batch_loss(StepModel(), data, nn.MSELoss(), seq2seq=False)) == 1.0


# -------------------------------------------------------------------------- divergence
def breaking_from(epoch: int, how: str) -> Any:
    """A batch_loss that, from ``epoch`` on (one batch per epoch), first wrecks the weights
    (as a step with an absurd rate would) and returns a non-finite or exploding loss."""
    real = loop.batch_loss
    calls = {"n": 0}

    def broken(model: nn.Module, batch: TrainData, loss_fn: nn.Module, seq2seq: bool) -> Any:
        calls["n"] += 1
        loss = real(model, batch, loss_fn, seq2seq)
        if calls["n"] < epoch:
            return loss
        if how == "nan":
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.fill_(math.nan)
            return real(model, batch, loss_fn, seq2seq)
        return loss * 1e5

    return broken


@pytest.mark.parametrize(
    ("how", "what"), [("nan", "a non-finite loss"), ("explode", "an exploding loss")]
)
def test_divergence_stops_training_and_keeps_the_last_good_weights(
    monkeypatch: pytest.MonkeyPatch, how: str, what: str
) -> None:
    monkeypatch.setattr(loop, "batch_loss", breaking_from(4, how))
    model = Constant()
    history = train(model, constant_data(1.0), None, gd_config(epochs=10, patience=0))
    assert history.stop_reason == "diverged"
    assert history.epochs == 3 and history.best_epoch == 3  # the diverged epoch is not recorded
    assert history.message.startswith(f"training diverged at epoch 4 with {what}"), history.message
    assert "at learning rate 0.05" in history.message
    assert "Try a lower lr (e.g. 0.005)" in history.message
    assert math.isfinite(model.b.detach().item())
    assert model.b.detach().item() == pytest.approx(b_after(3), rel=1e-5)


def test_non_finite_loss_from_the_first_epoch_is_a_training_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loop, "batch_loss", breaking_from(1, "nan"))
    with pytest.raises(TrainingError, match=r"diverged at epoch 1 .* Try a lower lr") as caught:
        train(Constant(), constant_data(1.0), None, gd_config())
    assert isinstance(caught.value, SeqcastError)  # the command line prints it on one line


def small_series() -> list[np.ndarray]:
    values = synthetic_series(length=150, period=12, amplitude=10.0, noise_level=1.0)
    return [np.asarray(values, dtype=np.float64)[:, None]]


def tiny(name: str = "rnn", **settings: Any) -> NeuralForecaster:
    options: dict[str, Any] = dict(
        window=6, season=1, epochs=6, batch_size=256, lr=1e-2, patience=0, hidden_size=4
    )
    options.update(settings)
    model = forecaster_class(name)(**options)
    assert isinstance(model, NeuralForecaster)
    return model


def breaking_fused_from(epoch: int) -> Any:
    """:func:`breaking_from` for the fused step of the recurrent network (one batch per
    epoch): from ``epoch`` on it wrecks the weights before computing the loss."""
    real = CompiledStep.__call__
    calls = {"n": 0}

    def broken(self: CompiledStep, *batch: torch.Tensor) -> float:
        calls["n"] += 1
        if calls["n"] >= epoch:
            with torch.no_grad():
                for parameter in self.net.parameters():
                    parameter.fill_(math.nan)
        return real(self, *batch)

    return broken


def break_training(monkeypatch: pytest.MonkeyPatch, path: str, epoch: int) -> None:
    """Wrecks the weights from ``epoch`` on, in the fused step or (any other ``path``) in
    autograd's ``batch_loss`` with the fused step turned off."""
    if path == "fused":
        if not native.available():
            pytest.skip("no compiled recurrence")
        monkeypatch.setattr(CompiledStep, "__call__", breaking_fused_from(epoch))
    else:
        monkeypatch.setattr(CompiledStep, "create", classmethod(lambda *args: None))
        monkeypatch.setattr(loop, "batch_loss", breaking_from(epoch, "nan"))


@pytest.mark.parametrize(("name", "path"), [("rnn", "autograd"), ("rnn", "fused"), ("dnn", "")])
def test_forecaster_warns_on_divergence_and_forecasts_from_finite_weights(
    monkeypatch: pytest.MonkeyPatch, name: str, path: str
) -> None:
    break_training(monkeypatch, path, 3)
    model = tiny(name)
    with pytest.warns(RuntimeWarning, match=r"training diverged at epoch 3 .* lower lr"):
        model.fit(small_series(), 1)
    assert model.history_.stop_reason == "diverged" and model.epochs_run == 2
    assert all(torch.isfinite(p).all() for p in model.network_.parameters())
    forecast = model.predict(small_series()[0][None, -6:])
    assert np.isfinite(forecast).all()


@pytest.mark.parametrize("path", ["autograd", "fused"])
def test_forecaster_raises_when_the_first_epoch_diverges(
    monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    break_training(monkeypatch, path, 1)
    model = tiny()
    with pytest.raises(TrainingError, match="lower lr"):
        model.fit(small_series(), 1)
    assert not hasattr(model, "is_fitted_")


@pytest.mark.parametrize(("optimizer", "batch_size"), [("sgd", 32), ("sgd", 256), ("adam", 256)])
def test_an_absurd_learning_rate_is_caught(optimizer: str, batch_size: int) -> None:
    values = small_series()
    model = tiny(lr=1e6, optimizer=optimizer, batch_size=batch_size, epochs=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.fit(values, 1)
        except TrainingError as exc:
            assert "lower lr" in str(exc)
            return
    assert model.history_.stop_reason == "diverged"
    assert any(issubclass(w.category, RuntimeWarning) for w in caught)
    forecast = model.predict(values[0][None, -6:])
    spread = values[0].max() - values[0].min()
    assert np.abs(forecast - values[0][-6:].mean()).max() < 10 * spread


def test_without_validation_the_kept_weights_give_the_best_recorded_loss() -> None:
    # lr 1.5 overshoots: b_e − 1 = (−2)^e (b_0 − 1), so each epoch's loss is 4 times the last.
    model = Constant()
    history = train(model, constant_data(1.0), None, gd_config(lr=1.5, patience=0))
    # Each epoch is scored after its step (4^e); epoch 5 ends at 4^5 = 1024, over a thousand
    # times the untrained loss of 1: divergence, and the untrained weights (loss 1) are kept.
    np.testing.assert_allclose(history.train_loss, [1.0, 4.0, 16.0, 64.0], rtol=1e-5)
    assert history.stop_reason == "diverged" and history.best_epoch == 0
    kept = evaluate(model, constant_data(1.0), nn.MSELoss())
    assert kept == pytest.approx(1.0)


# ----------------------------------------------------------------------------- History
def test_history_round_trips_through_json() -> None:
    history = History(
        train_loss=[0.5, 0.25, 0.125],
        val_loss=[0.6, 0.3, 0.4],
        lr=[1e-3, 1e-3, 5e-4],
        best_epoch=2,
        stop_reason="early-stopped",
        message="",
    )
    text = json.dumps(history.to_json())
    again = History.from_json(json.loads(text))
    assert again == history and again.epochs == 3
    assert History.from_json({"train_loss": [1.0], "unknown": 1}) == History(train_loss=[1.0])


def test_history_of_a_real_training_round_trips() -> None:
    model = Constant()
    history = train(model, constant_data(1.0), constant_data(0.3), gd_config(patience=2))
    assert History.from_json(json.loads(json.dumps(history.to_json()))) == history


def test_unknown_schedule_is_refused() -> None:
    with pytest.raises(
        SeqcastError, match="unknown schedule 'cosine'; choose from plateau, onecycle, none"
    ):
        train(Constant(), constant_data(1.0), None, gd_config(schedule="cosine"))


@pytest.mark.parametrize("gather", [1, 2, 64])
def test_gathered_batches_are_the_shuffled_batches(
    gather: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gathering several mini-batches with one indexing operation changes no batch."""
    monkeypatch.setattr(loop, "GATHER_BATCHES", gather)
    generator = torch.Generator().manual_seed(0)
    data = TrainData(
        torch.randn(150, 4, 2, generator=generator),
        torch.randn(150, 3, generator=generator),
        torch.randn(150, 1, 1, generator=generator),
    )
    got = [batch for batch, _ in loop._batches(data, 32, seed=5)]
    want = [data.take(torch.from_numpy(i)) for i in iterate_batches(150, 32, seed=5)]
    assert len(got) == len(want) == 5
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a.window, b.window) and torch.equal(a.season, b.season)
        assert torch.equal(a.target, b.target)


# ----------------------------------------------------------------- the training loop
class Tiny(nn.Module):
    """A small forecaster of (B, L, F), (B, S) -> (B, T, Ft) with a layer the loss never
    reaches (as the per-step head without seq2seq)."""

    def __init__(self, window: int, features: int, season: int, horizon: int, targets: int):
        super().__init__()
        flat = window * features + season
        self.body = nn.Linear(flat, 5)
        self.head = nn.Linear(5 + flat, horizon * targets)
        self.unused = nn.Linear(3, 2)
        self.shape = (horizon, targets)

    def forward(self, window: torch.Tensor, season: torch.Tensor) -> torch.Tensor:
        flat = torch.cat([window.flatten(1), season], dim=1)
        out = self.head(torch.cat([torch.tanh(self.body(flat)), flat], dim=1))
        return out.reshape(-1, *self.shape)


def make_data(n: int, seed: int, window: int = 6, features: int = 2, season: int = 3) -> TrainData:
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(n, window, features, generator=generator)
    s = torch.randn(n, season, generator=generator)
    signal = w[:, -2:, :1].sum(dim=1, keepdim=True) * 0.7 + s[:, :1, None] * 0.3
    target = torch.cat([signal, -signal], dim=2) + 0.3 * torch.randn(n, 1, 2, generator=generator)
    return TrainData(window=w, season=s, target=target)


def reference_train(
    model: nn.Module, data: TrainData, validation: TrainData | None, config: TrainConfig
) -> tuple[list[float], list[float], int]:
    """The documented training loop written with torch.optim and torch's schedulers:
    returns the rate after each epoch, the scores, and the best epoch (its weights kept)."""
    loss_fn = loss_function(config.loss)
    params = list(model.parameters())
    decay = config.weight_decay
    if config.optimizer == "sgd":
        opt: Any = torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=decay
        )
    elif config.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=decay or 1e-2)
    else:
        opt = torch.optim.Adam(params, lr=config.lr, weight_decay=decay)
    steps = math.ceil(len(data) / config.batch_size)
    scheduler: Any = None
    if config.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=config.lr, total_steps=config.epochs * steps
        )
    elif config.schedule == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=max(3, config.patience // 4)
        )
    assert len(data) <= loop.SCORE_WINDOWS  # then every window is scored

    def score() -> float:
        part = validation if validation is not None else data
        model.eval()
        with torch.no_grad():
            return float(loss_fn(model(part.window, part.season), part.target))

    best, best_epoch, since = score(), 0, 0
    best_state = copy.deepcopy(model.state_dict())
    rates, scores = [], []
    for epoch in range(1, config.epochs + 1):
        model.train()
        for index in iterate_batches(len(data), config.batch_size, seed=config.seed + epoch):
            rows = torch.from_numpy(index).long()
            loss = loss_fn(model(data.window[rows], data.season[rows]), data.target[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_norm:
                nn.utils.clip_grad_norm_(
                    [p for p in params if p.grad is not None], config.clip_norm
                )
            opt.step()
            if config.schedule == "onecycle":
                scheduler.step()
        value = score()
        rates.append(float(opt.param_groups[0]["lr"]))
        scores.append(value)
        if config.schedule == "plateau":
            scheduler.step(value)
        if value < best:
            best, best_epoch, since = value, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since += 1
        if config.patience and validation is not None and since >= config.patience:
            break
    model.load_state_dict(best_state)
    return rates, scores, best_epoch


def run_both(
    model: nn.Module, data: TrainData, validation: TrainData | None, config: TrainConfig
) -> tuple[nn.Module, nn.Module, Any, tuple[list[float], list[float], int]]:
    twin = copy.deepcopy(model)
    history = train(model, data, validation, config)
    reference = reference_train(twin, data, validation, config)
    return model, twin, history, reference


TRAIN_CASES = [
    (schedule, optimizer)
    for schedule in ("onecycle", "plateau", "none")
    for optimizer in ("adam", "adamw", "sgd")
]


@pytest.mark.parametrize(("schedule", "optimizer"), TRAIN_CASES)
@pytest.mark.parametrize("clip", [None, 0.5])
def test_train_matches_a_torch_optim_reference_loop(
    schedule: str, optimizer: str, clip: float | None
) -> None:
    torch.manual_seed(3)
    model = Tiny(6, 2, 3, 1, 2)
    data, validation = make_data(70, 1), make_data(30, 2)
    config = TrainConfig(
        epochs=14 if schedule == "plateau" else 4, batch_size=16, lr=0.08, optimizer=optimizer,
        weight_decay=0.01 if optimizer != "adamw" else 0.0, patience=0, schedule=schedule,
        seed=5, clip_norm=clip, loss="mse",
    )  # fmt: skip
    unused = copy.deepcopy(model.unused.state_dict())
    ours, theirs, history, (rates, scores, best_epoch) = run_both(model, data, validation, config)
    tight = clip is None
    assert history.best_epoch == best_epoch
    assert history.stop_reason == "completed" and history.epochs == config.epochs
    np.testing.assert_allclose(history.lr, rates, rtol=1e-12 if tight else 1e-9)
    np.testing.assert_allclose(history.val_loss, scores, rtol=1e-5 if tight else 1e-4)
    assert_same_weights(ours, theirs, rtol=1e-5 if tight else 1e-4, atol=1e-6 if tight else 1e-5)
    for key, value in unused.items():  # never reached: never moved, not even by decay
        assert torch.equal(ours.unused.state_dict()[key], value)
    if schedule == "plateau":
        assert min(rates) < config.lr  # a reduction happened
    for p in ours.parameters():  # the flat buffer was released
        assert p.grad is None
    storages = {p.untyped_storage().data_ptr() for p in ours.parameters()}
    assert len(storages) == len(list(ours.parameters()))


@pytest.mark.parametrize("schedule", ["onecycle", "plateau", "none"])
def test_train_without_validation_and_with_early_stopping(schedule: str) -> None:
    torch.manual_seed(4)
    data = make_data(50, 7)
    for validation, patience in ((None, 3), (make_data(20, 8), 2)):
        model = Tiny(6, 2, 3, 1, 2)
        config = TrainConfig(
            epochs=9, batch_size=8, lr=0.2, optimizer="adam", patience=patience,
            schedule=schedule, seed=1, clip_norm=None, loss="huber",
        )  # fmt: skip
        ours, theirs, history, (rates, scores, best) = run_both(model, data, validation, config)
        assert history.best_epoch == best
        assert history.epochs == len(rates)
        if validation is None:
            assert history.val_loss == []
        else:
            np.testing.assert_allclose(history.val_loss, scores, rtol=1e-5)
            assert history.stop_reason == "early-stopped" or history.epochs == config.epochs
        np.testing.assert_allclose(history.lr, rates, rtol=1e-12)
        # 63 Adam steps at lr 0.2: torch's square root (MKL's, within 1 ulp) and the compiled
        # step's (correctly rounded) differ in the last bit now and then, and the steps carry
        # that forward.
        assert_same_weights(ours, theirs, rtol=1e-4, atol=5e-5)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("seq2seq", [False, True])
def test_train_a_recurrent_network_matches_the_reference(cell: str, seq2seq: bool) -> None:
    """The real network: its per-step head gets no gradient without seq2seq."""
    torch.manual_seed(0)
    spec = dict(input_size=2, window=6, season_size=3, horizon=1, n_targets=2)
    net = RecurrentNet(RecurrentConfig(**spec, cell=cell, hidden_size=3, num_layers=2))  # type: ignore[arg-type]
    data, validation = make_data(40, 3), make_data(16, 4)
    if seq2seq:
        generator = torch.Generator().manual_seed(9)
        data.step_target = torch.randn(40, 6, 1, 2, generator=generator)
    config = TrainConfig(
        epochs=2, batch_size=16, lr=0.05, optimizer="adam", patience=0, schedule="onecycle",
        seed=2, clip_norm=None, loss="mse", seq2seq=seq2seq,
    )  # fmt: skip
    head_before = copy.deepcopy(net.step_head.state_dict())
    twin = copy.deepcopy(net)
    train(net, data, validation, config)
    # Reference: torch.optim over every parameter, the seq2seq loss written out.
    loss_fn = loss_function("mse")
    opt = torch.optim.Adam(twin.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=6)
    best, best_state = math.inf, None
    with torch.no_grad():
        twin.eval()
        best = float(loss_fn(twin(validation.window, validation.season), validation.target))
        best_state = copy.deepcopy(twin.state_dict())
    for epoch in (1, 2):
        twin.train()
        for index in iterate_batches(40, 16, seed=2 + epoch):
            rows = torch.from_numpy(index).long()
            if seq2seq:
                forecast, steps = twin(data.window[rows], data.season[rows], steps=True)
                assert data.step_target is not None
                loss = 0.5 * (
                    loss_fn(forecast, data.target[rows]) + loss_fn(steps, data.step_target[rows])
                )
            else:
                loss = loss_fn(twin(data.window[rows], data.season[rows]), data.target[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        twin.eval()
        with torch.no_grad():
            value = float(loss_fn(twin(validation.window, validation.season), validation.target))
        if value < best:
            best, best_state = value, copy.deepcopy(twin.state_dict())
    twin.load_state_dict(best_state)
    assert_same_weights(net, twin, rtol=1e-4, atol=1e-5)
    if not seq2seq:
        for key, value in head_before.items():
            assert torch.equal(net.step_head.state_dict()[key], value)


@pytest.mark.parametrize(("n", "batch_size"), [(1, 4), (5, 2), (64, 1), (1000, 7), (4100, 64)])
def test_batches_are_the_gathers_of_iterate_batches(n: int, batch_size: int) -> None:
    data = make_data(n, 0, window=2, features=1, season=1)
    data.step_target = torch.arange(n * 2 * 3, dtype=torch.float32).reshape(n, 2, 1, 3)
    got = list(loop._batches(data, batch_size, seed=11))
    want = list(iterate_batches(n, batch_size, seed=11))
    assert len(got) == len(want) == math.ceil(n / batch_size)
    for (batch, count), index in zip(got, want, strict=True):
        rows = torch.from_numpy(index).long()
        assert len(batch) == len(index) == count
        assert torch.equal(batch.window, data.window[rows])
        assert torch.equal(batch.season, data.season[rows])
        assert torch.equal(batch.target, data.target[rows])
        assert batch.step_target is not None and data.step_target is not None
        assert torch.equal(batch.step_target, data.step_target[rows])


def test_training_is_reproducible_and_leaves_the_rng_alone() -> None:
    data, validation = make_data(60, 5), make_data(20, 6)
    config = TrainConfig(epochs=3, batch_size=16, lr=0.05, patience=0, schedule="onecycle")
    weights = []
    for _ in range(2):
        torch.manual_seed(1)
        model = Tiny(6, 2, 3, 1, 2)
        state = torch.random.get_rng_state()
        train(model, data, validation, config)
        assert torch.equal(torch.random.get_rng_state(), state)
        weights.append(model.state_dict())
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key])


# ------------------------------------------------- a tiny recurrent network, flat buffer
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

    def stop(model: nn.Module, part: TrainData, loss_fn: nn.Module, parallel: Any = None) -> float:
        assert len(part) == loop.SCORE_WINDOWS
        raise _Scored

    monkeypatch.setattr(loop, "evaluate", stop)
    with pytest.raises(_Scored):
        train(_tiny_recurrent(), data, None, TrainConfig(epochs=1, patience=0))


def test_score_windows_cover_both_ends_and_a_single_window(monkeypatch: Any) -> None:
    seen: list[TrainData] = []

    def record(
        model: nn.Module, part: TrainData, loss_fn: nn.Module, parallel: Any = None
    ) -> float:
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


def test_a_fit_that_never_improves_on_its_start_says_so() -> None:
    """At a learning rate too small to move the weights, no epoch beats the untrained network
    (its output layer's least-squares fit): the start is kept, and the user is told."""
    values = np.sin(np.arange(300.0) / 5.0)[:, None]
    model = create("rnn", window=8, epochs=3, lr=1e-12, patience=0, hidden_size=4)
    with pytest.warns(RuntimeWarning, match="rnn: no training epoch improved on the network's"):
        model.fit([values], 1)
    assert model.history_.best_epoch == 0 and model.history_.epochs == 3


def test_device_names_are_checked_and_cuda_is_never_assumed() -> None:
    from seqcast.training.device import training_device

    assert training_device("cpu").type == "cpu"
    assert training_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DataError, match="unknown device 'gpu'; choose from cpu, cuda"):
        training_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(DataError, match="PyTorch sees no CUDA GPU here"):
            training_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_network_trained_on_the_gpu_comes_back_to_the_cpu_and_forecasts_close() -> None:
    from seqcast.forecasters.registry import create_for

    rng = np.random.default_rng(0)
    t = np.arange(300)
    series = [(np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.1, 300))[:, None]]
    settings = {"window": 12, "horizon": 3, "season": 12, "epochs": 3, "patience": 0}
    cpu = create_for("rnn", settings).fit(series, 1)
    gpu = create_for("rnn", {**settings, "device": "cuda"}).fit(series, 1)
    assert all(p.device.type == "cpu" for p in gpu.network_.parameters())  # type: ignore[attr-defined]
    context = series[0][-cpu.context_length :][None]
    np.testing.assert_allclose(gpu.predict(context), cpu.predict(context), rtol=0.05, atol=0.05)
