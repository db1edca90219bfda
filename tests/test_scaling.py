"""Scaler against numpy: standard, minmax, none; inverse, constant channels, state, leakage."""

from __future__ import annotations

import numpy as np
import pytest

from seqcast.data.scaling import SCALERS, Scaler


def sample(n: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(loc=[5.0, -300.0, 0.01], scale=[2.0, 50.0, 0.001], size=(n, 3))


def test_standard_against_numpy() -> None:
    values = sample()
    scaler = Scaler("standard").fit(values)
    np.testing.assert_allclose(scaler.shift_, values.mean(axis=0))
    np.testing.assert_allclose(scaler.scale_, values.std(axis=0))  # population std, ddof 0
    scaled = scaler.transform(values)
    np.testing.assert_allclose(scaled, (values - values.mean(0)) / values.std(0))
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0)


def test_standard_by_hand() -> None:
    scaler = Scaler("standard").fit(np.array([[1.0], [3.0]]))
    assert scaler.shift_.tolist() == [2.0]
    assert scaler.scale_.tolist() == [1.0]
    assert scaler.transform(np.array([[3.0], [0.0]])).tolist() == [[1.0], [-2.0]]


def test_minmax_against_numpy() -> None:
    values = sample()
    scaler = Scaler("minmax").fit(values)
    low, high = values.min(axis=0), values.max(axis=0)
    np.testing.assert_allclose(scaler.transform(values), (values - low) / (high - low))
    scaled = scaler.transform(values)
    np.testing.assert_allclose(scaled.min(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(scaled.max(axis=0), 1.0)


def test_none_is_the_identity() -> None:
    values = sample()
    scaler = Scaler("none").fit(values)
    np.testing.assert_array_equal(scaler.transform(values), values)
    np.testing.assert_array_equal(scaler.inverse_transform(values), values)


@pytest.mark.parametrize("kind", SCALERS)
def test_inverse_round_trip(kind: str) -> None:
    values = sample()
    scaler = Scaler(kind).fit(values[:150])  # type: ignore[arg-type]
    other = sample(seed=1)  # values it was not fitted on
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(other)), other)


@pytest.mark.parametrize("kind", SCALERS)
def test_channels_slice_selects_the_fitted_channels(kind: str) -> None:
    values = sample()
    scaler = Scaler(kind).fit(values)  # type: ignore[arg-type]
    targets = values[:, :1]  # e.g. forecasts of the first (target) channel only
    np.testing.assert_allclose(
        scaler.transform(targets, channels=slice(0, 1)), scaler.transform(values)[:, :1]
    )
    back = scaler.inverse_transform(scaler.transform(targets, slice(0, 1)), slice(0, 1))
    np.testing.assert_allclose(back, targets)


def test_transform_broadcasts_over_batches() -> None:
    values = sample()
    scaler = Scaler("standard").fit(values)
    batch = values[:60].reshape(3, 20, 3)  # (B, L, F)
    np.testing.assert_allclose(
        scaler.transform(batch), scaler.transform(values[:60]).reshape(3, 20, 3)
    )


def test_fit_on_stacked_series_equals_fit_on_their_concatenation() -> None:
    stacked = sample(120).reshape(2, 60, 3)  # (S, N, F)
    a = Scaler("standard").fit(stacked)
    b = Scaler("standard").fit(stacked.reshape(120, 3))
    np.testing.assert_allclose(a.shift_, b.shift_)
    np.testing.assert_allclose(a.scale_, b.scale_)


def test_fit_on_a_list_of_series() -> None:
    parts = [sample(50, seed=2), sample(80, seed=3)]
    scaler = Scaler("standard").fit(parts)  # type: ignore[arg-type]
    np.testing.assert_allclose(scaler.shift_, np.concatenate(parts).mean(axis=0))


@pytest.mark.parametrize("kind", ["standard", "minmax"])
def test_constant_channel_gets_scale_one(kind: str) -> None:
    values = sample()
    values[:, 1] = 7.5
    scaler = Scaler(kind).fit(values)  # type: ignore[arg-type]
    assert scaler.scale_[1] == 1.0
    scaled = scaler.transform(values)
    assert np.isfinite(scaled).all()
    np.testing.assert_array_equal(scaled[:, 1], 0.0)
    np.testing.assert_allclose(scaler.inverse_transform(scaled), values)


@pytest.mark.parametrize("kind", SCALERS)
def test_state_round_trip(kind: str) -> None:
    values = sample()
    scaler = Scaler(kind).fit(values)  # type: ignore[arg-type]
    state = {k: v.astype(np.float32) for k, v in scaler.state().items()}  # as stored on disk
    assert set(state) == {"shift", "scale"}
    restored = Scaler.from_state(kind, scaler.state())  # type: ignore[arg-type]
    assert restored.kind == kind
    np.testing.assert_array_equal(restored.transform(values), scaler.transform(values))
    assert Scaler.from_state(kind, state).shift_.dtype == np.float64  # type: ignore[arg-type]


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scaler 'robust'; expected one of standard"):
        Scaler("robust")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["standard", "minmax"])
def test_fitting_on_the_training_part_ignores_a_shifted_validation_part(kind: str) -> None:
    train = sample(300)
    validation = sample(100, seed=5) + 1e6  # a huge level shift after the split
    series = np.concatenate([train, validation])
    split = len(train)
    on_training = Scaler(kind).fit(series[:split])  # type: ignore[arg-type]
    reference = Scaler(kind).fit(train.copy())  # type: ignore[arg-type]
    np.testing.assert_array_equal(on_training.shift_, reference.shift_)
    np.testing.assert_array_equal(on_training.scale_, reference.scale_)
    # the test can fail: one validation row more would move the statistics far
    leaky = Scaler(kind).fit(series[: split + 1])  # type: ignore[arg-type]
    assert (
        np.abs(leaky.shift_ - reference.shift_).max() > 1.0
        or np.abs(leaky.scale_ - reference.scale_).max() > 1.0
    )
    # validation values come out far from the training range, as they should
    assert np.abs(on_training.transform(validation)).min() > 100.0
