"""Metrics against hand computations and slow loops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqcast.errors import DataError
from seqcast.evaluation.metrics import (
    mae,
    mape,
    mase,
    mase_scale,
    mean_or_none,
    mse,
    per_target,
    rmse,
    smape,
)


def pair(seed: int, shape: tuple[int, ...] = (7, 3)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true = rng.normal(10.0, 5.0, size=shape)
    return true, true + rng.normal(0.0, 2.0, size=shape)


def loop_mae(true: list[float], pred: list[float]) -> float:
    total = 0.0
    for t, p in zip(true, pred, strict=True):
        total += abs(t - p)
    return total / len(true)


def loop_mse(true: list[float], pred: list[float]) -> float:
    total = 0.0
    for t, p in zip(true, pred, strict=True):
        total += (t - p) ** 2
    return total / len(true)


def loop_mape(true: list[float], pred: list[float]) -> float:
    return 100.0 * sum(abs((t - p) / t) for t, p in zip(true, pred, strict=True)) / len(true)


def loop_smape(true: list[float], pred: list[float]) -> float:
    total = 0.0
    for t, p in zip(true, pred, strict=True):
        denominator = abs(t) + abs(p)
        total += 0.0 if denominator == 0 else 200.0 * abs(t - p) / denominator
    return total / len(true)


def loop_mase_scale(train: list[float], season: int) -> float:
    diffs = [abs(train[i] - train[i - season]) for i in range(season, len(train))]
    return sum(diffs) / len(diffs)


def test_hand_values() -> None:
    true, pred = np.array([1.0, 2.0, 4.0]), np.array([2.0, 4.0, 4.0])
    assert mae(true, pred) == pytest.approx(1.0)  # (1 + 2 + 0) / 3
    assert mse(true, pred) == pytest.approx(5.0 / 3.0)  # (1 + 4 + 0) / 3
    assert rmse(true, pred) == pytest.approx(math.sqrt(5.0 / 3.0))
    assert mape(true, pred) == pytest.approx(100.0 * (1.0 + 1.0 + 0.0) / 3.0)
    assert smape(true, pred) == pytest.approx(100.0 * (2 / 3 + 4 / 6 + 0.0) / 3.0)
    assert rmse(np.zeros(2), np.array([3.0, 4.0])) == pytest.approx(math.sqrt(12.5))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("shape", [(1,), (13,), (7, 3), (4, 5, 2)])
def test_against_loops(seed: int, shape: tuple[int, ...]) -> None:
    true, pred = pair(seed, shape)
    t, p = true.ravel().tolist(), pred.ravel().tolist()
    assert mae(true, pred) == pytest.approx(loop_mae(t, p), rel=1e-12)
    assert mse(true, pred) == pytest.approx(loop_mse(t, p), rel=1e-12)
    assert rmse(true, pred) == pytest.approx(math.sqrt(loop_mse(t, p)), rel=1e-12)
    assert mape(true, pred) == pytest.approx(loop_mape(t, p), rel=1e-12)
    assert smape(true, pred) == pytest.approx(loop_smape(t, p), rel=1e-12)


def test_metrics_return_python_floats() -> None:
    true, pred = pair(0)
    for metric in (mae, mse, rmse, mape, smape):
        assert type(metric(true, pred)) is float


def test_mape_refuses_zeros_with_a_message() -> None:
    with pytest.raises(DataError, match=r"MAPE is undefined: 2 actual value\(s\) are zero; use"):
        mape(np.array([0.0, 1.0, 0.0]), np.array([1.0, 1.0, 1.0]))


def test_smape_counts_zero_over_zero_as_zero() -> None:
    assert smape(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == 0.0
    assert smape(np.array([0.0, 2.0]), np.array([0.0, 0.0])) == pytest.approx(100.0)
    assert smape(np.zeros(4), np.zeros(4)) == 0.0
    assert smape(np.array([1.0]), np.array([-1.0])) == pytest.approx(200.0)  # the maximum


@pytest.mark.parametrize("season", [1, 2, 7])
def test_mase_scale_and_mase_against_loops(season: int) -> None:
    rng = np.random.default_rng(season)
    train = rng.normal(size=40).cumsum()
    true, pred = pair(season, (9,))
    scale = loop_mase_scale(train.tolist(), season)
    assert mase_scale(train, season) == pytest.approx(scale, rel=1e-12)
    expected = loop_mae(true.tolist(), pred.tolist()) / scale
    assert mase(true, pred, train, season) == pytest.approx(expected, rel=1e-12)


def test_mase_by_hand() -> None:
    assert mase(np.array([3.0]), np.array([4.0]), np.array([1.0, 3.0, 5.0])) == 0.5
    # season 2 on 1, 5, 2, 8: |2 - 1| and |8 - 5| -> scale 2; error 3 -> 1.5
    assert mase(np.array([0.0]), np.array([3.0]), np.array([1.0, 5.0, 2.0, 8.0]), 2) == 1.5


def test_mase_scale_errors() -> None:
    with pytest.raises(DataError, match="needs more than 3 training points, got 3"):
        mase_scale(np.arange(3.0), 3)
    with pytest.raises(DataError, match="training part is constant at that season"):
        mase_scale(np.array([1.0, 2.0, 1.0, 2.0]), 2)
    with pytest.raises(DataError, match="season must be at least 1, got 0"):
        mase_scale(np.arange(10.0), 0)


def test_per_target_against_loop() -> None:
    true, pred = pair(3, (6, 5, 3))  # (B, T, F_target)
    for metric in (mae, mse, rmse, smape):
        got = per_target(metric, true, pred)
        assert len(got) == 3
        for k in range(3):
            t = [true[b, h, k] for b in range(6) for h in range(5)]
            p = [pred[b, h, k] for b in range(6) for h in range(5)]
            assert got[k] == pytest.approx(metric(np.array(t), np.array(p)), rel=1e-12)
    assert per_target(mae, true, pred)[0] == pytest.approx(
        loop_mae(true[..., 0].ravel().tolist(), pred[..., 0].ravel().tolist())
    )


def test_shape_mismatch_and_empty_inputs() -> None:
    with pytest.raises(ValueError, match=r"y_true has shape \(3,\) but y_pred has \(4,\)"):
        mae(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="no values to score"):
        mse(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="y_true has shape"):
        per_target(mae, np.zeros((2, 3)), np.zeros((3, 2)))


def test_mean_or_none() -> None:
    assert mean_or_none([1.0, 2.0, 6.0]) == 3.0
    assert mean_or_none([1.0, None]) is None
