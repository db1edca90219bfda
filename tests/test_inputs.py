"""seqcast/forecasters/inputs.py: the input layout against its documented definitions, built by
a slow loop.

Definitions (``seqcast.forecasters.inputs``), for a context ending just before origin o, window
length L, horizon T, season P > 1 and neighbourhood radius K:

* the level is the mean of the last L target values;
* m_h is the smallest number of whole periods that puts the neighbourhood of step h, the
  2K + 1 values around o + h − m_h·P, entirely before the origin;
* D = K + T when K + T ≤ P, else 0; the seasonal channel at window step s holds y[s + D − P];
* every target-valued input has the level subtracted; extra features do not.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from seqcast.forecasters.inputs import InputSpec, ModelInputs, build_inputs

# (L, T, P, K): no season, short and long seasons, T > P, K + T > P, K = 0.
LAYOUTS = [
    (5, 1, 1, 0),
    (5, 3, 1, 0),
    (4, 1, 12, 3),
    (6, 3, 12, 3),
    (3, 2, 4, 1),
    (5, 7, 4, 1),  # T > P: several periods back, D = 0
    (2, 5, 3, 0),  # T > P with K = 0
    (7, 4, 6, 2),  # K + T = P: D = P
    (3, 3, 5, 2),  # K + T > P ≥ T: D = 0
]


def oracle_periods_back(h: int, season: int, radius: int) -> int:
    m = 1
    while h + radius - m * season >= 0:  # the neighbourhood must end before the origin
        m += 1
    return m


def oracle_lead(horizon: int, season: int, radius: int) -> int:
    if season == 1:
        return 0
    return radius + horizon if radius + horizon <= season else 0


def oracle_context_length(window: int, horizon: int, season: int, radius: int) -> int:
    """The fewest steps before the origin that hold every index an input uses."""
    if season == 1:
        return window
    lead = oracle_lead(horizon, season, radius)
    earliest = -window + lead - season  # seasonal channel of the first window step
    for h in range(horizon):
        earliest = min(earliest, h - oracle_periods_back(h, season, radius) * season - radius)
    return max(window, -earliest)


def oracle_inputs(context: np.ndarray, spec: InputSpec) -> ModelInputs:
    """Every element by hand, one at a time, in float64."""
    batch, length, n_features = context.shape
    window, horizon, season, radius, n_targets = (
        spec.window, spec.horizon, spec.season, spec.radius, spec.n_targets,
    )  # fmt: skip
    origin = length  # context index of the origin: the first step not in the context
    seasonal = season > 1
    lead = oracle_lead(horizon, season, radius)
    channels = n_features + (n_targets if seasonal else 0)
    win = np.zeros((batch, window, channels))
    level = np.zeros((batch, 1, n_targets))
    flat = []
    for b in range(batch):
        for f in range(n_targets):
            total = 0.0
            for s in range(origin - window, origin):
                total += context[b, s, f]
            level[b, 0, f] = total / window
        for i in range(window):
            s = origin - window + i
            for f in range(n_features):
                shift = level[b, 0, f] if f < n_targets else 0.0
                win[b, i, f] = context[b, s, f] - shift
            if seasonal:
                for f in range(n_targets):
                    win[b, i, n_features + f] = context[b, s + lead - season, f] - level[b, 0, f]
        row = []
        if seasonal:
            for h in range(horizon):
                centre = origin + h - oracle_periods_back(h, season, radius) * season
                for j in range(-radius, radius + 1):
                    for f in range(n_targets):
                        row.append(context[b, centre + j, f] - level[b, 0, f])
        flat.append(row)
    return ModelInputs(
        window=win,
        season=np.array(flat).reshape(batch, -1),
        level=level,
        spread=np.ones_like(level),  # the pooled scale: nothing divided
    )


def spec_for(layout: tuple[int, int, int, int], n_features: int, n_targets: int) -> InputSpec:
    window, horizon, season, radius = layout
    return InputSpec(window, horizon, season, radius, n_features, n_targets)


# --------------------------------------------------------------------------- InputSpec
@pytest.mark.parametrize("layout", LAYOUTS)
def test_spec_properties_match_their_definitions(layout: tuple[int, int, int, int]) -> None:
    window, horizon, season, radius = layout
    spec = spec_for(layout, n_features=3, n_targets=2)
    seasonal = season > 1
    assert spec.seasonal is seasonal
    assert spec.lead == oracle_lead(horizon, season, radius)
    assert spec.context_length == oracle_context_length(window, horizon, season, radius)
    assert spec.input_size == 3 + (2 if seasonal else 0)
    assert spec.season_size == (horizon * (2 * radius + 1) * 2 if seasonal else 0)
    if not seasonal:
        return
    want_back = [oracle_periods_back(h, season, radius) for h in range(horizon)]
    assert spec.periods_back.tolist() == want_back
    offsets = spec.head_offsets
    assert offsets.shape == (horizon, 2 * radius + 1)
    for h, j in itertools.product(range(horizon), range(2 * radius + 1)):
        assert offsets[h, j] == h - want_back[h] * season + j - radius
    assert offsets.max() <= -1  # every neighbourhood is in the past ...
    later = offsets + season  # ... and the one a period later is not: the most recent one
    assert (later.max(axis=1) >= 0).all()


def test_spec_hand_examples() -> None:
    # The course layout: L = 20, P = 365, K = 5, T = 1: D = 6, C = 20 + 365 − 6.
    spec = InputSpec(window=20, horizon=1, season=365, radius=5, n_features=1, n_targets=1)
    assert (spec.lead, spec.context_length, spec.input_size, spec.season_size) == (6, 379, 2, 11)
    assert spec.head_offsets.tolist() == [list(range(-370, -359))]
    # T = 7 > P = 4, K = 1: m_h = ceil((h + 2) / 4) = 1, 1, 1, 2, 2, 2, 2.
    spec = InputSpec(window=5, horizon=7, season=4, radius=1, n_features=1, n_targets=1)
    assert spec.periods_back.tolist() == [1, 1, 1, 2, 2, 2, 2]
    assert spec.head_offsets[:, 1].tolist() == [-4, -3, -2, -5, -4, -3, -2]
    assert spec.lead == 0 and spec.context_length == 9  # max(5 + 4 − 0, 6)


# -------------------------------------------------------------------------- build_inputs
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("n_features", "n_targets"), [(1, 1), (3, 1), (3, 2)])
@pytest.mark.parametrize("extra", [0, 4])
def test_build_inputs_matches_the_slow_loop(
    layout: tuple[int, int, int, int], n_features: int, n_targets: int, extra: int
) -> None:
    spec = spec_for(layout, n_features, n_targets)
    rng = np.random.default_rng(sum(layout))
    context = rng.normal(size=(3, spec.context_length + extra, n_features)) * 10 + 50
    before = context.copy()
    got = build_inputs(context, spec)
    want = oracle_inputs(context, spec)
    np.testing.assert_array_equal(context, before)  # the input is not modified
    assert got.window.dtype == got.season.dtype == got.level.dtype == np.float32
    assert got.window.shape == (3, spec.window, spec.input_size)
    assert got.season.shape == (3, spec.season_size)
    assert got.level.shape == (3, 1, n_targets)
    np.testing.assert_allclose(got.window, want.window, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got.season, want.season, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got.level, want.level, rtol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_only_the_last_context_length_steps_matter(layout: tuple[int, int, int, int]) -> None:
    spec = spec_for(layout, 2, 1)
    rng = np.random.default_rng(1)
    context = rng.normal(size=(2, spec.context_length + 6, 2))
    full = build_inputs(context, spec)
    cut = build_inputs(context[:, 6:], spec)
    for a, b in zip(
        (full.window, full.season, full.level), (cut.window, cut.season, cut.level), strict=True
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("extra", [0, 3])
def test_no_input_lies_at_or_after_the_origin(
    layout: tuple[int, int, int, int], extra: int
) -> None:
    """Each value is its own time index: adding the level back recovers which step it came from."""
    spec = spec_for(layout, n_features=2, n_targets=1)
    length = spec.context_length + extra
    time = np.arange(length, dtype=np.float64)
    context = np.stack([time, time], axis=1)[None]  # (1, C, 2): target and feature = index
    got = build_inputs(context, spec)
    level = float(got.level[0, 0, 0])
    assert level == pytest.approx(np.mean(time[-spec.window :]))
    used = [got.window[0, :, 0] + level, got.window[0, :, 1]]  # target (shifted), feature
    if spec.seasonal:
        used += [got.window[0, :, 2] + level, got.season[0] + level]
    indices = np.rint(np.concatenate(used)).astype(int)
    assert indices.max() < length  # strictly before the origin
    assert indices.min() == extra  # within the last context_length steps, all of them needed
    np.testing.assert_array_equal(
        np.rint(got.window[0, :, 0] + level), np.arange(length - spec.window, length)
    )
    if spec.seasonal:
        lagged = np.rint(got.window[0, :, 2] + level)
        np.testing.assert_array_equal(
            lagged, np.arange(length - spec.window, length) + spec.lead - spec.season
        )
        heads = np.rint(got.season[0] + level).reshape(spec.horizon, -1)
        np.testing.assert_array_equal(heads, length + spec.head_offsets)


def test_build_inputs_accepts_a_strided_view() -> None:
    from seqcast.data.windows import sliding_windows

    spec = InputSpec(window=4, horizon=2, season=6, radius=1, n_features=2, n_targets=1)
    rng = np.random.default_rng(2)
    series = rng.normal(size=(40, 2))
    views = sliding_windows(series, spec.context_length)  # (B, C, 2) view, not contiguous
    got = build_inputs(views, spec)
    want = oracle_inputs(np.ascontiguousarray(views), spec)
    np.testing.assert_allclose(got.window, want.window, atol=1e-5)
    np.testing.assert_allclose(got.season, want.season, atol=1e-5)


def test_window_scaling_divides_target_inputs_by_the_contexts_mean_absolute_step() -> None:
    """The spread is taken over the C steps the model reads (window and seasonal lags), not
    over steps before them."""
    rng = np.random.default_rng(4)
    contexts = rng.normal(size=(3, 30, 2)).cumsum(axis=1)
    contexts[1, :, 0] = 5.0  # a flat context keeps the pooled scale (spread 1)
    spec = InputSpec(window=8, horizon=2, season=6, radius=0, n_features=2, n_targets=1,
                     window_scaling=True)  # fmt: skip
    steps = spec.context_length
    assert steps == 12 < 30  # window 8 + season 6 − lead 2
    plain = build_inputs(contexts, replace(spec, window_scaling=False))
    scaled = build_inputs(contexts, spec)
    context = contexts[:, -steps:, 0]
    want = np.abs(np.diff(context, axis=1)).mean(axis=1)
    want[1] = 1.0
    np.testing.assert_allclose(scaled.spread[:, 0, 0], want, rtol=1e-6)
    spread = scaled.spread
    np.testing.assert_allclose(scaled.window[:, :, 0], plain.window[:, :, 0] / spread[:, :, 0],
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(scaled.window[:, :, 1], plain.window[:, :, 1])  # a feature: as is
    np.testing.assert_allclose(scaled.window[:, :, 2], plain.window[:, :, 2] / spread[:, :, 0],
                               rtol=1e-5, atol=1e-6)  # the seasonal lag  # fmt: skip
    np.testing.assert_allclose(scaled.season, plain.season / spread[:, :, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(plain.spread, np.ones((3, 1, 1)))


# ------------------------------------------------------------------- unobserved values
def oracle_masked_inputs(context: np.ndarray, spec: InputSpec) -> ModelInputs:
    """The masked layout by hand: the level over the observed window values, every unobserved
    target-valued input 0 (at the level), then one flag per target for the window values and
    one for their seasonal lags (1 observed, 0 not)."""
    batch, length, n_features = context.shape
    n_targets, origin = spec.n_targets, length
    lead = oracle_lead(spec.horizon, spec.season, spec.radius)
    valued = 2 if spec.seasonal else 1
    channels = n_features + (valued - 1) * n_targets + valued * n_targets
    win = np.zeros((batch, spec.window, channels))
    level = np.zeros((batch, 1, n_targets))
    flat = []
    for b in range(batch):
        for f in range(n_targets):
            seen = [
                context[b, s, f]
                for s in range(origin - spec.window, origin)
                if not np.isnan(context[b, s, f])
            ]
            level[b, 0, f] = sum(seen) / len(seen) if seen else 0.0
        for i in range(spec.window):
            s = origin - spec.window + i
            for f in range(n_features):
                value = context[b, s, f]
                shift = level[b, 0, f] if f < n_targets else 0.0
                win[b, i, f] = 0.0 if np.isnan(value) else value - shift
            flags = n_features + (valued - 1) * n_targets
            for f in range(n_targets):
                win[b, i, flags + f] = 0.0 if np.isnan(context[b, s, f]) else 1.0
                if spec.seasonal:
                    lagged = context[b, s + lead - spec.season, f]
                    seen_lag = not np.isnan(lagged)
                    win[b, i, n_features + f] = lagged - level[b, 0, f] if seen_lag else 0.0
                    win[b, i, flags + n_targets + f] = 1.0 if seen_lag else 0.0
        row = []
        if spec.seasonal:
            for h in range(spec.horizon):
                centre = origin + h - oracle_periods_back(h, spec.season, spec.radius) * spec.season
                for j in range(-spec.radius, spec.radius + 1):
                    for f in range(n_targets):
                        value = context[b, centre + j, f]
                        row.append(0.0 if np.isnan(value) else value - level[b, 0, f])
        flat.append(row)
    return ModelInputs(
        window=win,
        season=np.array(flat).reshape(batch, -1),
        level=level,
        spread=np.ones_like(level),
    )


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("n_features", "n_targets"), [(1, 1), (3, 2)])
def test_masked_inputs_match_the_slow_loop(
    layout: tuple[int, int, int, int], n_features: int, n_targets: int
) -> None:
    spec = replace(spec_for(layout, n_features, n_targets), masked=True)
    length = spec.context_length
    rng = np.random.default_rng(sum(layout) + 7)
    context = rng.normal(size=(4, length, n_features)) * 10 + 50
    context[1, : length // 2] = np.nan  # padded in front: a short series
    context[2, : length - 1] = np.nan  # one observed point
    context[3, length // 3, 0] = np.nan  # a gap in the first target
    got = build_inputs(context, spec)
    want = oracle_masked_inputs(context, spec)
    assert got.window.shape == (4, spec.window, spec.input_size) == want.window.shape
    for part in (got.window, got.season, got.level, got.spread):
        assert np.isfinite(part).all()
    np.testing.assert_allclose(got.window, want.window, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got.season, want.season, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got.level, want.level, rtol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_complete_context_gives_the_unmasked_inputs_with_all_flags_set(
    layout: tuple[int, int, int, int],
) -> None:
    spec = spec_for(layout, 2, 1)
    masked = replace(spec, masked=True)
    assert masked.input_size == spec.input_size + (2 if spec.seasonal else 1)
    context = np.random.default_rng(3).normal(size=(3, spec.context_length, 2))
    plain, flagged = build_inputs(context, spec), build_inputs(context, masked)
    np.testing.assert_allclose(flagged.window[:, :, : spec.input_size], plain.window, atol=1e-5)
    np.testing.assert_array_equal(flagged.window[:, :, spec.input_size :], 1.0)
    np.testing.assert_allclose(flagged.season, plain.season, atol=1e-5)


def test_window_spread_counts_only_changes_between_observed_steps() -> None:
    values = np.array([np.nan, np.nan, 1.0, 3.0, 2.0, 6.0])[None, :, None]
    spec = InputSpec(window=6, horizon=1, season=1, radius=0, n_features=1, n_targets=1,
                     window_scaling=True, masked=True)  # fmt: skip
    got = build_inputs(values, spec)
    assert float(got.spread[0, 0, 0]) == pytest.approx((2 + 1 + 4) / 3)
    assert float(got.level[0, 0, 0]) == pytest.approx(3.0)
    spread = 7 / 3
    want = [0, 0, -2 / spread, 0, -1 / spread, 3 / spread]
    np.testing.assert_allclose(got.window[0, :, 0], want, atol=1e-6)
    np.testing.assert_array_equal(got.window[0, :, 1], [0, 0, 1, 1, 1, 1])


def test_mean_unit_divides_target_inputs_by_the_windows_mean_absolute_value() -> None:
    """DeepAR's scale, by hand: spread = mean |y| over the window × unit."""
    contexts = np.array([[4.0, -2.0, 6.0, 8.0], [0.0, 0.0, 0.0, 0.0]])[:, :, None]
    spec = InputSpec(window=4, horizon=1, season=1, radius=0, n_features=1, n_targets=1,
                     mean_unit=0.5)  # fmt: skip
    got = build_inputs(contexts, spec)
    np.testing.assert_allclose(got.spread[:, 0, 0], [5.0 * 0.5, 1.0 * 0.5])  # all-zero: 1
    np.testing.assert_allclose(got.level[:, 0, 0], [4.0, 0.0])
    np.testing.assert_allclose(got.window[0, :, 0], [0.0, -6 / 2.5, 2 / 2.5, 4 / 2.5], atol=1e-6)
