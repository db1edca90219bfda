"""Scaler against numpy: standard, minmax, none; inverse, constant channels, state, leakage."""

from __future__ import annotations

import numpy as np
import pytest

from seqcast.data.scaling import SCALERS, Scaler, choose_power, transform_power


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
    assert set(state) == {"shift", "scale", "power"}
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


def test_power_is_chosen_from_how_the_noise_grows_with_the_level() -> None:
    rng = np.random.default_rng(0)
    level = np.exp(np.linspace(0.0, 4.0, 3000))  # from 1 to 55
    constant = level + rng.normal(0.0, 1.0, 3000)  # noise independent of the level
    rooted = level + np.sqrt(level) * rng.normal(0.0, 0.3, 3000)  # Poisson-like
    proportional = level * np.exp(rng.normal(0.0, 0.05, 3000))  # multiplicative
    negative = constant - 10.0
    flat = 5.0 + rng.normal(0.0, 0.1, 3000)  # one level: nothing to fit
    columns = np.stack([constant + 5.0, rooted, proportional, negative, flat], axis=1)
    np.testing.assert_array_equal(choose_power([columns]), [1.0, 0.5, 0.0, 1.0, 1.0])
    assert choose_power([columns[:100]]).tolist() == [1.0] * 5  # too short to tell


@pytest.mark.parametrize("power", [0.5, 0.0])
def test_power_transform_round_trips_and_is_a_root_or_log(power: float) -> None:
    values = np.array([[0.0, 1.0], [4.0, 2.0], [9.0, 3.0]])
    powers = np.array([power, 1.0])
    out = transform_power(values, powers)
    want = np.sqrt(values[:, 0]) if power == 0.5 else np.log1p(values[:, 0])
    np.testing.assert_allclose(out[:, 0], want)
    np.testing.assert_array_equal(out[:, 1], values[:, 1])  # lambda 1: untouched
    np.testing.assert_allclose(transform_power(out, powers, inverse=True), values, atol=1e-12)
    scaler = Scaler("standard", powers).fit(values)
    np.testing.assert_allclose(
        scaler.inverse_transform(scaler.transform(values)), values, atol=1e-9
    )
    restored = Scaler.from_state("standard", scaler.state())
    np.testing.assert_array_equal(restored.power_, powers)


def test_a_root_never_gives_nan_for_a_negative_forecast() -> None:
    powers = np.array([0.5])
    assert transform_power(np.array([[-4.0]]), powers).tolist() == [[0.0]]
    assert transform_power(np.array([[-2.0]]), powers, inverse=True).tolist() == [[0.0]]


def test_state_from_before_transforms_loads_as_no_transform() -> None:
    restored = Scaler.from_state("standard", {"shift": np.zeros(2), "scale": np.ones(2)})
    np.testing.assert_array_equal(restored.power_, [1.0, 1.0])


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


def test_scale_span_is_the_ratio_of_the_extreme_percentiles_of_step_sizes() -> None:
    """Oracle: numpy's percentiles of each series' mean absolute step, by hand."""
    from seqcast.data.scaling import scale_span

    rng = np.random.default_rng(0)
    sizes = 10.0 ** rng.uniform(0, 6, size=300)
    series = [rng.normal(size=(40, 1)).cumsum(axis=0) * size for size in sizes]
    series.append(np.full((30, 1), 7.0))  # flat: counts for nothing
    steps = np.array([np.abs(np.diff(s[:, 0])).mean() for s in series[:-1]])
    ordered = np.sort(steps)  # the 1st and 99th percentiles, as observed values
    want = ordered[int(np.ceil(0.99 * (len(steps) - 1)))] / ordered[int(0.01 * (len(steps) - 1))]
    assert scale_span(series) == pytest.approx(want)
    assert scale_span(series[:1]) == 1.0
    # Several channels: the widest one counts.
    two = [np.column_stack([s[:, 0], np.ones(len(s)) * k]) for k, s in enumerate(series[:-1])]
    assert scale_span(two) == pytest.approx(want)
