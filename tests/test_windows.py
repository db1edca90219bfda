"""seqcast.data.windows against a slow loop oracle: shapes, values, views, leakage, batches."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqcast.data.windows import Windows, iterate_batches, make_windows, n_windows, sliding_windows

# (N, F, L, T, S): series length, channels, window, horizon, stride.
CASES = [
    (20, 1, 3, 2, 1),
    (20, 3, 5, 1, 2),
    (17, 2, 4, 3, 3),
    (30, 4, 1, 1, 1),
    (30, 2, 29, 1, 1),  # a single window
    (12, 1, 1, 11, 1),  # a single window, horizon longer than window
    (100, 3, 10, 5, 7),
    (8, 2, 2, 2, 4),
    (10, 1, 7, 3, 1),  # N exactly L + T: one window
    (10, 2, 3, 2, 50),  # stride larger than N: only the first window
    (9, 1, 7, 3, 1),  # N < L + T: no window
    (3, 2, 5, 4, 1),  # N < L and N < T
]


def oracle(
    values: np.ndarray, window: int, horizon: int, stride: int, n_targets: int, seq2seq: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Slow loop: inputs[b] = values[bS : bS+L]; targets follow the window (or each step)."""
    n, f = values.shape
    inputs, targets = [], []
    start = 0
    while start + window + horizon <= n:
        inputs.append(values[start : start + window].copy())
        if seq2seq:
            rows = []
            for i in range(window):
                first = start + i + 1
                rows.append(values[first : first + horizon, :n_targets].copy())
            targets.append(np.stack(rows))
        else:
            targets.append(values[start + window : start + window + horizon, :n_targets].copy())
        start += stride
    target_shape = (window, horizon, n_targets) if seq2seq else (horizon, n_targets)
    if not inputs:
        return np.empty((0, window, f)), np.empty((0, *target_shape))
    return np.stack(inputs), np.stack(targets)


def series(n: int, f: int) -> np.ndarray:
    """Distinct values: value = 100 * step + channel, so every cell tells where it came from."""
    return (100.0 * np.arange(n)[:, None] + np.arange(f)[None, :]).astype(np.float64)


def _case_params() -> list[object]:
    params: list[object] = []
    for case in CASES:
        for seq2seq in (False, True):
            params.append(pytest.param(*case, seq2seq, id=f"{case}-s2s{seq2seq}"))
    return params


@pytest.mark.parametrize(("n", "f", "window", "horizon", "stride", "seq2seq"), _case_params())
@pytest.mark.parametrize("targets_kind", ["all", "first"])
def test_make_windows_matches_loop(
    n: int, f: int, window: int, horizon: int, stride: int, seq2seq: bool, targets_kind: str
) -> None:
    values = series(n, f)
    n_targets = f if targets_kind == "all" else 1
    windows = make_windows(
        values, window, horizon, n_targets=n_targets, stride=stride, seq2seq=seq2seq
    )
    want_inputs, want_targets = oracle(values, window, horizon, stride, n_targets, seq2seq)
    assert isinstance(windows, Windows)
    assert windows.inputs.shape == want_inputs.shape
    assert windows.targets.shape == want_targets.shape
    np.testing.assert_array_equal(windows.inputs, want_inputs)
    np.testing.assert_array_equal(windows.targets, want_targets)
    assert len(windows) == want_inputs.shape[0] == n_windows(n, window, horizon, stride)


def test_make_windows_default_targets_are_all_channels() -> None:
    values = series(15, 3)
    windows = make_windows(values, 4, 2)
    assert windows.targets.shape == (10, 2, 3)


def test_make_windows_docstring_example_by_hand() -> None:
    windows = make_windows(np.arange(10.0)[:, None], window=3, horizon=2)
    assert windows.inputs[0, :, 0].tolist() == [0.0, 1.0, 2.0]
    assert windows.targets[0, :, 0].tolist() == [3.0, 4.0]
    assert windows.inputs[-1, :, 0].tolist() == [5.0, 6.0, 7.0]
    assert windows.targets[-1, :, 0].tolist() == [8.0, 9.0]
    assert len(windows) == 6


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(0, 40),
    f=st.integers(1, 3),
    window=st.integers(1, 8),
    horizon=st.integers(1, 5),
    stride=st.integers(1, 6),
    n_targets=st.integers(1, 3),
)
def test_make_windows_property(
    n: int, f: int, window: int, horizon: int, stride: int, n_targets: int
) -> None:
    n_targets = min(n_targets, f)
    values = series(n, f)
    windows = make_windows(values, window, horizon, n_targets=n_targets, stride=stride)
    want_inputs, want_targets = oracle(values, window, horizon, stride, n_targets, False)
    np.testing.assert_array_equal(windows.inputs, want_inputs)
    np.testing.assert_array_equal(windows.targets, want_targets)


@settings(max_examples=50, deadline=None)
@given(
    extra=st.integers(0, 30),
    f=st.integers(1, 3),
    window=st.integers(1, 8),
    horizon=st.integers(1, 5),
    stride=st.integers(1, 6),
)
def test_make_windows_seq2seq_property(
    extra: int, f: int, window: int, horizon: int, stride: int
) -> None:
    n = window + horizon + extra
    values = series(n, f)
    windows = make_windows(values, window, horizon, n_targets=1, stride=stride, seq2seq=True)
    want_inputs, want_targets = oracle(values, window, horizon, stride, 1, True)
    np.testing.assert_array_equal(windows.inputs, want_inputs)
    np.testing.assert_array_equal(windows.targets, want_targets)


@pytest.mark.parametrize("seq2seq", [False, True])
@pytest.mark.parametrize(
    ("n", "f", "window", "horizon", "stride"), [c for c in CASES if c[0] >= c[2] + c[3]]
)
def test_no_leakage_targets_start_after_the_inputs(
    n: int, f: int, window: int, horizon: int, stride: int, seq2seq: bool
) -> None:
    step = np.arange(n, dtype=np.float64)[:, None].repeat(f, axis=1)  # value = time index
    windows = make_windows(step, window, horizon, stride=stride, seq2seq=seq2seq)
    for b in range(len(windows)):
        last_input = windows.inputs[b, -1, 0]
        assert windows.inputs[b, 0, 0] == b * stride
        assert last_input == b * stride + window - 1
        if seq2seq:
            for i in range(window):
                # the target of input step i starts strictly after step i, right after it
                assert windows.targets[b, i, 0, 0] == windows.inputs[b, i, 0] + 1
                assert windows.targets[b, i].min() > windows.inputs[b, i, 0]
        else:
            assert windows.targets[b, 0, 0] == last_input + 1
            assert windows.targets[b].min() > windows.inputs[b].max()
        assert windows.targets[b].max() <= n - 1


# ----------------------------------------------------------------------------- views
def _root(array: object) -> object:
    """The object that owns the memory, following ``.base`` (through numpy's stride tricks)."""
    while getattr(array, "base", None) is not None:
        array = array.base  # type: ignore[attr-defined]
    return array


@pytest.mark.parametrize("seq2seq", [False, True])
def test_windows_are_views_of_the_series(seq2seq: bool) -> None:
    values = series(50, 3)
    windows = make_windows(values, 7, 3, n_targets=2, stride=2, seq2seq=seq2seq)
    assert np.shares_memory(windows.inputs, values)
    assert np.shares_memory(windows.targets, values)
    assert _root(windows.inputs) is values
    assert _root(windows.targets) is values
    values[0, 0] = -1.0  # a view sees the change
    assert windows.inputs[0, 0, 0] == -1.0


@pytest.mark.parametrize("seq2seq", [False, True])
def test_windowing_a_long_series_allocates_nothing_of_size_window_times_n(seq2seq: bool) -> None:
    values = np.random.default_rng(0).normal(size=(1_000_000, 1))
    allocated = []
    for window in (10, 365):
        tracemalloc.start()
        try:
            windows = make_windows(values, window, 7, seq2seq=seq2seq)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        allocated.append(peak)
        assert windows.inputs.shape == (1_000_000 - window - 7 + 1, window, 1)
        assert _root(windows.inputs) is values
        assert _root(windows.targets) is values
    # L x N float64 would be 2.9 GB at L = 365; the views cost a few kB whatever L is.
    assert max(allocated) < 1_000_000
    assert allocated[1] < allocated[0] + 100_000


def test_sliding_windows_1d_and_2d_against_loop() -> None:
    flat = np.arange(11.0)
    for length, stride in [(1, 1), (3, 1), (3, 2), (11, 1), (4, 5)]:
        got = sliding_windows(flat, length, stride)
        want = [flat[s : s + length] for s in range(0, 11 - length + 1, stride)]
        np.testing.assert_array_equal(got, np.array(want))
        assert np.shares_memory(got, flat)
    table = series(9, 2)
    got = sliding_windows(table, 4, 2)
    np.testing.assert_array_equal(got, np.stack([table[s : s + 4] for s in (0, 2, 4)]))


def test_sliding_windows_shorter_than_window_is_empty() -> None:
    assert sliding_windows(series(3, 2), 5).shape == (0, 5, 2)
    assert sliding_windows(np.arange(3.0), 5).shape == (0, 5)


@pytest.mark.parametrize(("length", "stride"), [(0, 1), (3, 0), (-1, 1)])
def test_sliding_windows_rejects_non_positive(length: int, stride: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        sliding_windows(np.arange(10.0), length, stride)


def test_make_windows_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"shape \(N, F\)"):
        make_windows(np.arange(10.0), 3, 1)
    with pytest.raises(ValueError, match="must be positive"):
        make_windows(series(10, 1), 0, 1)
    with pytest.raises(ValueError, match="must be positive"):
        make_windows(series(10, 1), 3, 0)


def test_make_windows_rejects_zero_stride() -> None:
    with pytest.raises(ValueError, match="stride"):
        make_windows(series(10, 1), 3, 1, stride=0)


@pytest.mark.parametrize("n_targets", [0, 5])
def test_make_windows_rejects_n_targets_outside_channels(n_targets: int) -> None:
    with pytest.raises(ValueError, match="n_targets"):
        make_windows(series(10, 2), 3, 1, n_targets=n_targets)


def test_n_windows_against_brute_force() -> None:
    for n in range(0, 25):
        for window in range(1, 6):
            for horizon in range(1, 4):
                for stride in range(1, 5):
                    count = sum(1 for s in range(0, n, stride) if s + window + horizon <= n)
                    assert n_windows(n, window, horizon, stride) == count, (
                        n,
                        window,
                        horizon,
                        stride,
                    )


# --------------------------------------------------------------------------- batches
def test_iterate_batches_in_order_without_shuffle() -> None:
    got = [b.tolist() for b in iterate_batches(7, 3, shuffle=False)]
    assert got == [[0, 1, 2], [3, 4, 5], [6]]
    got = [b.tolist() for b in iterate_batches(7, 3, shuffle=False, drop_last=True)]
    assert got == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize(("n_items", "batch_size"), [(1, 1), (10, 3), (64, 8), (65, 8), (5, 10)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_iterate_batches_covers_every_index_exactly_once(
    n_items: int, batch_size: int, shuffle: bool
) -> None:
    batches = list(iterate_batches(n_items, batch_size, shuffle=shuffle, seed=3))
    joined = np.concatenate(batches)
    assert sorted(joined.tolist()) == list(range(n_items))
    sizes = [len(b) for b in batches]
    assert sizes[:-1] == [batch_size] * (len(batches) - 1)
    assert sizes[-1] == (n_items % batch_size or batch_size)
    assert len(batches) == -(-n_items // batch_size)


@pytest.mark.parametrize(("n_items", "batch_size"), [(10, 3), (64, 8), (5, 10)])
def test_iterate_batches_drop_last(n_items: int, batch_size: int) -> None:
    batches = list(iterate_batches(n_items, batch_size, seed=1, drop_last=True))
    assert len(batches) == n_items // batch_size
    assert all(len(b) == batch_size for b in batches)
    joined = np.concatenate(batches) if batches else np.array([], dtype=int)
    assert len(set(joined.tolist())) == len(joined) == n_items - n_items % batch_size


def test_iterate_batches_seed_is_reproducible_and_matters() -> None:
    first = np.concatenate(list(iterate_batches(100, 16, seed=7)))
    again = np.concatenate(list(iterate_batches(100, 16, seed=7)))
    other = np.concatenate(list(iterate_batches(100, 16, seed=8)))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, np.arange(100))  # it does shuffle


def test_iterate_batches_edge_cases() -> None:
    assert list(iterate_batches(0, 4)) == []
    with pytest.raises(ValueError, match="batch_size"):
        list(iterate_batches(10, 0))


def test_contexts_before_each_origin_pad_with_nan_only_where_short() -> None:
    from seqcast.data.windows import contexts_before

    values = np.arange(20.0).reshape(10, 2)
    origins = np.array([1, 4, 7])
    got = contexts_before(values, origins, 3)
    for row, origin in zip(got, origins, strict=True):  # a slow obvious loop
        want = [values[s] if s >= 0 else [np.nan, np.nan] for s in range(origin - 3, origin)]
        np.testing.assert_array_equal(row, np.array(want))
    unpadded = contexts_before(values, np.array([3, 9]), 3)
    assert not np.isnan(unpadded).any()
    np.testing.assert_array_equal(unpadded[1], values[6:9])
