"""The training loop against a model whose trajectory is known in closed form.

A network that outputs one learned constant b, trained with plain gradient descent (SGD without
momentum, one full batch per epoch, no clipping) on the mean squared error towards targets 1,
follows b_e = 1 − (1 − 2·lr)^e (1 − b_0) exactly; its validation loss against targets v is
(b_e − v)², so the best epoch, the early stop and the weights kept can all be worked out by hand.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from constant_model import Constant
from torch import nn

import seqcast.training.loop as loop
from seqcast import _native as native
from seqcast.data import synthetic_series
from seqcast.data.windows import iterate_batches
from seqcast.errors import SeqcastError
from seqcast.forecasters.neural import NeuralForecaster
from seqcast.forecasters.registry import forecaster_class
from seqcast.training.compiled_step import CompiledStep
from seqcast.training.loop import (
    History,
    TrainConfig,
    TrainData,
    TrainingError,
    batch_loss,
    evaluate,
    train,
)

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
    got = list(loop._batches(data, 32, seed=5))
    want = [data.take(torch.from_numpy(i)) for i in iterate_batches(150, 32, seed=5)]
    assert len(got) == len(want) == 5
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a.window, b.window) and torch.equal(a.season, b.season)
        assert torch.equal(a.target, b.target)
