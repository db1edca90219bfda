"""Temporal splits: the validation part is the later part, options are exclusive, errors say why."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from seqcast.data.frame import Series, SeriesData
from seqcast.data.loading import load_series
from seqcast.data.splits import split_indices, split_point
from seqcast.errors import DataError

# pandas 3 parses dates to microseconds: the unit every loaded file has.
UNITS = ["ns", "us"]


def daily(n: int, start: str = "2020-01-01", tz: str | None = None, unit: str = "ns") -> Series:
    time = pd.date_range(start, periods=n, freq="D", tz=tz, name="date", unit=unit)
    return Series(values=np.arange(n, dtype=np.float64)[:, None], time=time)


def numeric(n: int, step: float = 0.5) -> Series:
    return Series(values=np.zeros((n, 1)), time=pd.Index(step * np.arange(n), name="t"))


def first_at_or_after(time: pd.Index, cut: object) -> int:
    """Oracle: the first position whose time is at or after ``cut`` (len if none)."""
    for i, stamp in enumerate(time):
        if stamp >= cut:
            return i
    return len(time)


def data_of(*series: Series, source: str = "test.csv") -> SeriesData:
    return SeriesData(series=series, columns=("y",), n_targets=1, source=source)


@pytest.mark.parametrize(("n", "val_size"), [(100, 1), (100, 20), (1461, 461), (5, 4)])
def test_val_size_takes_the_last_points(n: int, val_size: int) -> None:
    assert split_point(daily(n), val_size=val_size) == n - val_size


@pytest.mark.parametrize(
    ("n", "val_frac", "expected_val"),
    [(100, 0.2, 20), (1461, 0.2, 292), (10, 0.35, 4), (10, 0.01, 1), (3, 0.5, 2), (5, 0.5, 3),
     (9, 0.5, 5), (7, 0.5, 4), (30, 0.25, 8)],
)  # fmt: skip
def test_val_frac_rounds_to_nearest_and_keeps_at_least_one(
    n: int, val_frac: float, expected_val: int
) -> None:
    """Halves round up (5 × 0.5 gives 3 validation points, not Python's round-to-even 2)."""
    assert split_point(daily(n), val_frac=val_frac) == n - expected_val


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize(
    "cut",
    ["2020-02-10", "2020-02-10 12:00", pd.Timestamp("2020-01-05"), "2020-04-09"],
)
def test_split_time_datetime(cut: object, unit: str) -> None:
    s = daily(100, unit=unit)  # 2020-01-01 .. 2020-04-09
    expected = first_at_or_after(s.time, pd.Timestamp(cut))  # type: ignore[arg-type]
    assert split_point(s, split_time=cut) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("unit", UNITS)
def test_split_time_by_hand(unit: str) -> None:
    s = daily(100, unit=unit)
    assert split_point(s, split_time="2020-01-11") == 10  # Jan 1 + 10 days
    assert split_point(s, split_time="2020-01-10 00:00:01") == 10
    assert split_point(s, split_time="2030-01-01") == 100
    assert split_point(s, split_time="2019-06-01") == 0


@pytest.mark.parametrize("unit", UNITS)
def test_split_time_on_a_time_zone_aware_index(unit: str) -> None:
    s = daily(50, tz="UTC", unit=unit)
    assert split_point(s, split_time="2020-01-21") == 20


def test_split_time_on_a_loaded_frame_of_string_dates() -> None:
    frame = pd.DataFrame({"date": [f"2021-03-{d:02d}" for d in range(1, 31)], "y": range(30)})
    data = load_series(frame)
    assert split_indices(data, split_time="2021-03-21") == [20]


@pytest.mark.parametrize("cut", [10.25, 10.0, "10", 0, -3.0, 100.0])
def test_split_time_numeric(cut: object) -> None:
    s = numeric(40)  # 0, 0.5, ..., 19.5
    expected = first_at_or_after(s.time, float(cut))  # type: ignore[arg-type]
    assert split_point(s, split_time=cut) == expected  # type: ignore[arg-type]
    if cut == 10.25:
        assert expected == 21


def test_split_time_needs_a_time_column() -> None:
    s = Series(values=np.zeros((10, 1)))
    with pytest.raises(DataError, match="split_time needs a time column"):
        split_point(s, split_time="2020-01-01")


def test_split_time_must_parse() -> None:
    with pytest.raises(DataError, match="'not a date' is not a timestamp"):
        split_point(daily(10), split_time="not a date")
    with pytest.raises(DataError, match="'soon' is not a number like the time column"):
        split_point(numeric(10), split_time="soon")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"val_size": 5, "val_frac": 0.1},
        {"val_size": 5, "split_time": "2020-01-05"},
        {"val_frac": 0.1, "split_time": "2020-01-05"},
        {"val_size": 5, "val_frac": 0.1, "split_time": "2020-01-05"},
    ],
)
def test_exactly_one_option(options: dict[str, object]) -> None:
    with pytest.raises(DataError, match="exactly one of val_size, val_frac or split_time"):
        split_point(daily(10), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("val_size", [0, -3])
def test_val_size_must_be_positive(val_size: int) -> None:
    with pytest.raises(DataError, match=f"val_size must be at least 1, got {val_size}"):
        split_point(daily(10), val_size=val_size)


@pytest.mark.parametrize("val_frac", [0.0, 1.0, 1.5, -0.2])
def test_val_frac_must_lie_in_the_open_unit_interval(val_frac: float) -> None:
    with pytest.raises(DataError, match="val_frac must lie strictly between 0 and 1"):
        split_point(daily(10), val_frac=val_frac)


def test_split_time_with_an_offset_on_naive_timestamps_is_a_clear_error() -> None:
    data = load_series(
        pd.DataFrame({"date": pd.date_range("2020-01-01", periods=10), "y": np.arange(10.0)})
    )
    with pytest.raises(DataError, match="has a time zone but the timestamps have none"):
        split_point(data.series[0], split_time="2020-01-05T00:00+05:00")
    # The same instant without its offset splits where a slow loop says.
    time = data.series[0].time
    expected = next(i for i, t in enumerate(time) if t >= pd.Timestamp("2020-01-05"))  # type: ignore[arg-type, union-attr]
    assert split_indices(data, split_time="2020-01-05") == [expected]


# ---------------------------------------------------------------------- split_indices
def test_split_indices_per_series() -> None:
    a, b = daily(30), daily(50)
    data = SeriesData(
        series=(
            Series(a.values, a.time, series_id="a"),
            Series(b.values, b.time, series_id="b"),
        ),
        columns=("y",),
        n_targets=1,
    )
    assert split_indices(data, val_size=10) == [20, 40]
    assert split_indices(data, split_time="2020-01-21") == [20, 20]


def test_split_leaving_no_validation_is_refused() -> None:
    with pytest.raises(DataError, match=r"test\.csv: the split leaves no validation points"):
        split_indices(data_of(daily(30)), split_time="2020-03-01")


def test_split_leaving_no_validation_names_the_series() -> None:
    s = daily(30)
    data = data_of(Series(s.values, s.time, series_id="north"))
    with pytest.raises(DataError, match="series 'north': the split leaves no validation"):
        split_indices(data, split_time="2021-01-01")


@pytest.mark.parametrize(
    ("n", "val_size", "min_train"), [(100, 95, 10), (100, 100, 1), (20, 30, 5)]
)
def test_split_leaving_too_little_training_states_the_minimum_length(
    n: int, val_size: int, min_train: int
) -> None:
    training = max(n - val_size, 0)
    minimum = val_size + min_train  # oracle: the validation part plus the least training
    with pytest.raises(DataError) as info:
        split_indices(data_of(daily(n)), val_size=val_size, min_train=min_train)
    message = str(info.value)
    assert message.startswith(f"test.csv has {n} points")
    assert f"leaves {training} for training" in message
    assert f"at least {min_train} are needed" in message
    assert f"minimum length {minimum})" in message


def test_split_exactly_at_the_minimum_is_accepted() -> None:
    assert split_indices(data_of(daily(100)), val_size=90, min_train=10) == [10]


# --------------------------------------------------------------------------- leakage
@settings(max_examples=50, deadline=None)
@given(n=st.integers(3, 300), data=st.data())
def test_training_part_is_strictly_before_validation(n: int, data: st.DataObject) -> None:
    s = daily(n)
    option = data.draw(st.sampled_from(["val_size", "val_frac", "split_time"]))
    if option == "val_size":
        kwargs: dict[str, object] = {"val_size": data.draw(st.integers(1, n - 1))}
    elif option == "val_frac":
        val_frac = data.draw(st.floats(0.01, 0.99))
        assume(round(n * val_frac) < n)  # else the split is refused (tested above)
        kwargs = {"val_frac": val_frac}
    else:
        kwargs = {"split_time": s.time[data.draw(st.integers(1, n - 1))]}  # type: ignore[index]
    (point,) = split_indices(data_of(s), **kwargs)  # type: ignore[arg-type]
    assert 1 <= point <= n - 1
    train_time, val_time = s.time[:point], s.time[point:]  # type: ignore[index]
    assert train_time.max() < val_time.min()
    if option == "split_time":
        assert train_time.max() < kwargs["split_time"] <= val_time.min()  # type: ignore[operator]
        assert val_time.min() == kwargs["split_time"]
    if option == "val_size":
        assert len(val_time) == kwargs["val_size"]
