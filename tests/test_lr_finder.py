"""The learning-rate range finder against a numpy re-run of the same sweep.

On a model that outputs one learned constant b, with the mean squared error towards targets 1
and plain gradient descent (one full batch per step), the sweep is known step by step:
loss_i = (b_i − 1)², b_{i+1} = b_i − lr_i · 2 (b_i − 1), and it explodes once lr_i > 1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from constant_model import Constant

import seqcast.training.lr_finder as lr_finder
from seqcast.networks import RecurrentConfig, RecurrentNet
from seqcast.training.loop import TrainConfig, TrainData
from seqcast.training.lr_finder import find_lr, suggest

N = 8


def ones(n: int = N) -> TrainData:
    return TrainData(
        window=torch.zeros(n, 3, 1), season=torch.zeros(n, 0), target=torch.ones(n, 1, 1)
    )


def gd_config(**changes: Any) -> TrainConfig:
    settings: dict[str, Any] = dict(
        batch_size=N, loss="mse", optimizer="sgd", momentum=0.0, clip_norm=None
    )
    settings.update(changes)
    return TrainConfig(**settings)


def oracle_sweep(
    start_lr: float, end_lr: float, steps_per_decade: int, stop_factor: float, smoothing: float
) -> tuple[list[float], list[float], list[float]]:
    total = math.ceil(math.log10(end_lr / start_lr) * steps_per_decade) + 1
    b, average, best = 0.0, 0.0, math.inf
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    for i in range(total):
        lr = start_lr * 10 ** (i / steps_per_decade)
        loss = (b - 1.0) ** 2
        if not math.isfinite(loss):
            break
        average = smoothing * average + (1 - smoothing) * loss
        corrected = average / (1 - smoothing ** (i + 1))
        lrs.append(lr)
        losses.append(loss)
        smoothed.append(corrected)
        best = min(best, corrected)
        if corrected > stop_factor * best:
            break
        b -= lr * 2.0 * (b - 1.0)
    return lrs, losses, smoothed


def test_rates_grow_tenfold_every_steps_per_decade() -> None:
    # Rates up to 0.1 never overshoot the constant model: the whole sweep runs.
    result = find_lr(Constant(), ones(), gd_config(), start_lr=1e-4, end_lr=0.1, steps_per_decade=5)
    assert len(result.lrs) == 3 * 5 + 1
    lrs = np.array(result.lrs)
    np.testing.assert_allclose(lrs, 1e-4 * 10 ** (np.arange(16) / 5), rtol=1e-12)
    np.testing.assert_allclose(lrs[5:] / lrs[:-5], 10.0, rtol=1e-12)
    assert lrs[0] == 1e-4 and lrs[-1] == pytest.approx(0.1)
    assert np.all(np.diff(result.losses) < 0)  # gradient descent at rates ≤ 0.1 only improves


def test_no_rate_exceeds_end_lr() -> None:
    result = find_lr(Constant(), ones(), gd_config(), start_lr=1e-4, end_lr=0.5, steps_per_decade=5)
    assert max(result.lrs) <= 0.5


def test_the_sweep_matches_the_numpy_rerun_and_stops_when_the_loss_explodes() -> None:
    # From 0.8 the rates soon pass 1, where each step overshoots further: b − 1 never gets small
    # enough for float32 rounding to matter, and the loss explodes within a dozen steps (with
    # stop factors 2, 4 and 8 the sweep would stop after 11, 12 and 13 steps).
    settings = dict(start_lr=0.8, end_lr=100.0, steps_per_decade=40, stop_factor=4.0)
    result = find_lr(Constant(), ones(), gd_config(), smoothing=0.9, **settings)  # type: ignore[arg-type]
    lrs, losses, smoothed = oracle_sweep(smoothing=0.9, **settings)  # type: ignore[arg-type]
    total = math.ceil(math.log10(100.0 / 0.8) * 40) + 1
    assert len(result.lrs) == len(lrs) == 12 < total  # stopped early
    assert lrs[-1] > 1.0  # past the rate where gradient descent overshoots
    np.testing.assert_allclose(result.lrs, lrs, rtol=1e-12)
    np.testing.assert_allclose(result.losses, losses, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(result.smoothed, smoothed, rtol=1e-4, atol=1e-9)
    assert result.smoothed[-1] > 4.0 * min(result.smoothed)
    assert all(s <= 4.0 * min(result.smoothed[: i + 1]) for i, s in enumerate(result.smoothed[:-1]))
    assert result.suggestion == suggest(result.lrs, result.smoothed)


def test_the_model_is_left_unchanged() -> None:
    config = RecurrentConfig(input_size=2, window=5, season_size=3, horizon=2, n_targets=1,
                             hidden_size=4)  # fmt: skip
    torch.manual_seed(0)
    net = RecurrentNet(config)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = np.random.default_rng(0)
    data = TrainData(
        window=torch.from_numpy(rng.normal(size=(40, 5, 2)).astype(np.float32)),
        season=torch.from_numpy(rng.normal(size=(40, 3)).astype(np.float32)),
        target=torch.from_numpy(rng.normal(size=(40, 2, 1)).astype(np.float32)),
    )
    result = find_lr(net, data, TrainConfig(batch_size=8), end_lr=1.0, steps_per_decade=4)
    assert len(result.lrs) > 4
    after = net.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        torch.testing.assert_close(after[key], value, rtol=0, atol=0)


def test_a_non_finite_loss_ends_the_sweep_without_being_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = lr_finder.batch_loss
    calls = {"n": 0}

    def nan_after_six(*args: Any) -> torch.Tensor:
        calls["n"] += 1
        loss = real(*args)
        return loss * math.nan if calls["n"] > 6 else loss

    monkeypatch.setattr(lr_finder, "batch_loss", nan_after_six)
    result = find_lr(Constant(), ones(), gd_config(), start_lr=1e-4, end_lr=1e-2)
    assert len(result.lrs) == len(result.losses) == 6
    assert all(math.isfinite(v) for v in result.losses)


def test_no_finite_loss_at_all_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lr_finder, "batch_loss", lambda *_: torch.tensor(math.nan))
    with pytest.raises(ValueError, match="recorded no finite loss"):
        find_lr(Constant(), ones(), gd_config())


@pytest.mark.parametrize(("start", "end"), [(0.0, 1.0), (1.0, 0.1), (0.1, 0.1)])
def test_bad_range_is_refused(start: float, end: float) -> None:
    with pytest.raises(ValueError, match="need 0 < start_lr < end_lr"):
        find_lr(Constant(), ones(), gd_config(), start_lr=start, end_lr=end)


# ------------------------------------------------------------------------------ suggest
def test_suggest_is_a_tenth_of_the_rate_at_the_lowest_smoothed_loss() -> None:
    lrs = [10 ** (-6 + i / 5) for i in range(30)]
    smoothed = [5.0 - 0.2 * i for i in range(18)] + [1.7 + 0.5 * i for i in range(12)]
    assert int(np.argmin(smoothed)) == 17
    assert suggest(lrs, smoothed) == pytest.approx(lrs[17] / 10)


def test_suggest_ignores_the_noisy_first_steps() -> None:
    lrs = [10 ** (-6 + i / 5) for i in range(30)]
    smoothed = [2.0] * 30
    smoothed[2] = 0.1  # among the first min(10, 30 // 5) = 6 steps: ignored
    smoothed[20] = 1.0
    assert suggest(lrs, smoothed) == pytest.approx(lrs[20] / 10)
    smoothed[6] = 0.5  # the first step that counts
    assert suggest(lrs, smoothed) == pytest.approx(lrs[6] / 10)


def test_suggest_on_a_short_sweep_uses_every_step() -> None:
    assert suggest([1e-3, 1e-2, 1e-1, 1.0], [0.5, 0.7, 0.9, 2.0]) == pytest.approx(1e-4)
