"""load_series: every source and format, and every validation rule with the message it gives.

Rows are counted from 1 after the header; for files the line number (row + 1) is given too.
"""

from __future__ import annotations

import gzip
import re
import warnings
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqcast.data.loading import load_series
from seqcast.errors import DataError

WriteFile = Callable[[str, str | bytes], Path]

DAILY = "date,y,x\n2020-01-01,1.5,10\n2020-01-02,2.5,20\n2020-01-03,4.0,30\n2020-01-04,8.0,40\n"


def csv(header: str, rows: list[str]) -> str:
    return "\n".join([header, *rows]) + "\n"


def days(n: int, start: str = "2020-01-01") -> list[str]:
    return [d.strftime("%Y-%m-%d") for d in pd.date_range(start, periods=n, freq="D")]


def file_label(path: Path) -> str:
    return re.escape(f"file '{path}'")


def first_row(lines: list[str], predicate: object) -> int:
    """Oracle: the 1-based data row of the first line (after the header) matching."""
    for number, line in enumerate(lines[1:], start=1):
        if predicate(line):  # type: ignore[operator]
            return number
    raise AssertionError("no such row")


# --------------------------------------------------------------------------- sources
def test_csv_wide(write_file: WriteFile) -> None:
    path = write_file("daily.csv", DAILY)
    data = load_series(path, targets=["y", "x"])
    assert data.columns == ("y", "x")
    assert data.n_targets == 2  # both named as targets
    assert data.source == f"file '{path}'"
    assert data.time_col == "date"
    assert data.freq == "D"
    (series,) = data.series
    assert series.values.dtype == np.float64
    np.testing.assert_array_equal(series.values, [[1.5, 10], [2.5, 20], [4.0, 30], [8.0, 40]])
    assert list(series.time) == list(pd.date_range("2020-01-01", periods=4, freq="D"))
    assert series.series_id is None


def test_parquet_equals_csv(write_file: WriteFile, tmp_path: Path) -> None:
    frame = pd.read_csv(write_file("daily.csv", DAILY), parse_dates=["date"])
    frame.to_parquet(tmp_path / "daily.parquet")
    from_parquet = load_series(tmp_path / "daily.parquet", targets=["y"])
    from_csv = load_series(tmp_path / "daily.csv", targets=["y"])
    assert from_parquet.columns == from_csv.columns == ("y", "x")
    assert from_parquet.freq == "D"
    np.testing.assert_array_equal(from_parquet.series[0].values, from_csv.series[0].values)
    assert list(from_parquet.series[0].time) == list(from_csv.series[0].time)


def test_dataframe_source() -> None:
    frame = pd.DataFrame(
        {"ds": pd.date_range("2021-05-01", periods=5, freq="h"), "load": np.arange(5.0)},
        index=[10, 11, 12, 13, 14],  # a non-default index must not matter
    )
    data = load_series(frame)
    assert data.source == "the DataFrame"
    assert data.time_col == "ds"
    assert data.freq == "h"
    np.testing.assert_array_equal(data.series[0].values[:, 0], np.arange(5.0))


def test_numpy_1d() -> None:
    data = load_series(np.array([3.0, 1.0, 4.0, 1.0, 5.0]))
    assert data.columns == ("y",)
    assert data.source == "the array"
    assert data.time_col is None and data.freq is None
    np.testing.assert_array_equal(data.series[0].values, [[3.0], [1.0], [4.0], [1.0], [5.0]])
    assert data.series[0].time is None
    assert list(data.future_time(data.series[0], 3)) == [5, 6, 7]


def test_numpy_2d() -> None:
    values = np.arange(12.0).reshape(4, 3)
    data = load_series(values, targets=["y1"])
    assert data.columns == ("y1", "y0", "y2")
    np.testing.assert_array_equal(data.series[0].values, values[:, [1, 0, 2]])


def test_numpy_3d_is_refused() -> None:
    with pytest.raises(DataError, match=r"the array has shape \(2, 3, 4\); expected \(N,\) or"):
        load_series(np.zeros((2, 3, 4)))


def test_long_format(write_file: WriteFile) -> None:
    rows = [f"b,{d},{10 + i}" for i, d in enumerate(days(4))]
    rows += [f"a,{d},{i}" for i, d in enumerate(days(3, "2020-01-02"))]
    data = load_series(write_file("long.csv", csv("store,date,sales", rows)), id_col="store")
    assert data.id_col == "store"
    assert data.columns == ("sales",)
    assert [s.series_id for s in data.series] == ["b", "a"]  # order of first appearance
    assert data.lengths == [4, 3]
    np.testing.assert_array_equal(data.series[0].values[:, 0], [10, 11, 12, 13])
    np.testing.assert_array_equal(data.series[1].values[:, 0], [0, 1, 2])
    assert data.freq == "D"
    assert list(data.future_time(data.series[0], 1)) == [pd.Timestamp("2020-01-05")]
    assert list(data.future_time(data.series[1], 2)) == [
        pd.Timestamp("2020-01-05"),
        pd.Timestamp("2020-01-06"),
    ]


def test_long_format_interleaved_rows() -> None:
    time = pd.date_range("2020-01-01", periods=3, freq="D")
    frame = pd.DataFrame(
        {
            "unique_id": ["u", "v", "u", "v", "u", "v"],
            "ds": [time[0], time[0], time[1], time[1], time[2], time[2]],
            "y": [1.0, -1.0, 2.0, -2.0, 3.0, -3.0],
        }
    )
    data = load_series(frame, id_col="unique_id")
    assert [s.series_id for s in data.series] == ["u", "v"]
    np.testing.assert_array_equal(data.series[1].values[:, 0], [-1.0, -2.0, -3.0])


def test_long_format_needs_a_named_value_column_when_several() -> None:
    frame = pd.DataFrame({"id": ["a", "a"], "y": [1.0, 2.0], "z": [3.0, 4.0]})
    with pytest.raises(DataError, match=r"several numeric columns \('y', 'z'\); name the col"):
        load_series(frame, id_col="id")


def test_several_numeric_columns_are_never_all_forecast_silently(write_file: WriteFile) -> None:
    # A weekday column beside the births: without targets, the file names both and asks.
    path = write_file("births.csv", DAILY)
    with pytest.raises(DataError, match=r"several numeric columns \('y', 'x'\); name") as caught:
        load_series(path)
    assert caught.value.arguments == ("targets",)
    data = load_series(path, targets=["y"])
    assert (data.columns, data.n_targets) == (("y", "x"), 1)  # the other one is an input
    # An array's columns have no names to choose by: all of them are forecast.
    assert load_series(np.ones((4, 3))).n_targets == 3


def test_long_format_series_must_share_a_frequency() -> None:
    frame = pd.DataFrame(
        {
            "id": ["a"] * 3 + ["b"] * 3,
            "ds": [
                *pd.date_range("2020-01-01", periods=3, freq="D"),
                *pd.date_range("2020-01-01", periods=3, freq="h"),
            ],
            "y": np.arange(6.0),
        }
    )
    with pytest.raises(DataError, match="series 'b' has frequency h but the first series has D"):
        load_series(frame, id_col="id")


@pytest.mark.parametrize("name", ["date", "Date", "datetime", "timestamp", "TIME", "ds"])
def test_time_column_is_found_by_name(write_file: WriteFile, name: str) -> None:
    data = load_series(write_file("t.csv", DAILY.replace("date", name, 1)), targets=["y", "x"])
    assert data.time_col == name
    assert data.columns == ("y", "x")
    assert data.freq == "D"


def test_time_column_by_option(write_file: WriteFile) -> None:
    data = load_series(
        write_file("t.csv", DAILY.replace("date", "when", 1)), time_col="when", targets=["y", "x"]
    )
    assert data.time_col == "when"
    assert data.series[0].time[0] == pd.Timestamp("2020-01-01")


def test_without_a_time_column_rows_are_steps(write_file: WriteFile) -> None:
    data = load_series(write_file("t.csv", "a,b\n1,2\n3,4\n5,6\n"), targets=["a", "b"])
    assert data.time_col is None and data.series[0].time is None
    assert list(data.future_time(data.series[0], 2)) == [3, 4]


def test_index_column_saved_by_pandas_is_dropped(write_file: WriteFile) -> None:
    path = write_file("t.csv", ",date,y\n0,2020-01-01,1\n1,2020-01-02,2\n2,2020-01-03,4\n")
    data = load_series(path)
    assert data.columns == ("y",)


def test_dataframe_with_integer_column_names_loads() -> None:
    values = np.arange(12.0).reshape(6, 2)
    # Before: KeyError '0', since columns were looked up by their names as strings.
    data = load_series(pd.DataFrame(values), targets=["1"])
    assert data.columns == ("1", "0")
    np.testing.assert_array_equal(data.series[0].values, values[:, [1, 0]])


@pytest.mark.parametrize("name", [None, "when"])
def test_dataframe_datetime_index_is_the_time_column(name: str | None) -> None:
    index = pd.date_range("2021-03-01", periods=6, freq="h", name=name)
    frame = pd.DataFrame({"load": np.arange(6.0)}, index=index)
    # Before: the index was dropped, so the series had no timestamps and no frequency.
    data = load_series(frame)
    assert data.time_col == (name or "ds")
    assert data.freq == "h"
    assert list(data.series[0].time) == list(index)  # type: ignore[arg-type]
    assert data.columns == ("load",)


def test_a_parquet_date_column_is_the_time_not_a_target(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    months = pd.date_range("2020-01-01", periods=8, freq="MS")
    sales = np.arange(8.0) * 3
    pd.DataFrame({"Month": months, "sales": sales}).to_parquet(tmp_path / "m.parquet")
    # Before: 'Month' was forecast as a second target, in microseconds since 1970.
    data = load_series(tmp_path / "m.parquet")
    assert data.columns == ("sales",)
    assert data.time_col == "Month" and data.freq == "MS"
    np.testing.assert_array_equal(data.series[0].values[:, 0], sales)
    assert list(data.series[0].time) == list(months)  # type: ignore[arg-type]


# ---------------------------------------------------------------- frequency and future
@pytest.mark.parametrize(
    ("stamps", "freq", "future"),
    [
        (days(5, "2020-02-25"), "D", ["2020-03-01", "2020-03-02", "2020-03-03"]),  # leap year
        (
            ["2020-01-01 21:00", "2020-01-01 22:00", "2020-01-01 23:00"],
            "h",
            ["2020-01-02 00:00", "2020-01-02 01:00", "2020-01-02 02:00"],
        ),
        (
            ["2018-04-30", "2018-05-31", "2018-06-30", "2018-07-31"],
            "ME",
            ["2018-08-31", "2018-09-30", "2018-10-31"],
        ),
        (
            ["2019-11-01", "2019-12-01", "2020-01-01"],
            "MS",
            ["2020-02-01", "2020-03-01", "2020-04-01"],
        ),
    ],
)
def test_frequency_and_future_timestamps(
    write_file: WriteFile, stamps: list[str], freq: str, future: list[str]
) -> None:
    rows = [f"{s},{i}" for i, s in enumerate(stamps)]
    data = load_series(write_file("t.csv", csv("date,y", rows)))
    assert data.freq == freq
    got = data.future_time(data.series[0], 3)
    assert list(got) == [pd.Timestamp(f) for f in future]
    assert got.name == "date"


def test_two_daily_points_give_a_daily_frequency(write_file: WriteFile) -> None:
    data = load_series(write_file("t.csv", csv("date,y", ["2020-01-01,1", "2020-01-02,2"])))
    assert list(data.future_time(data.series[0], 2)) == [
        pd.Timestamp("2020-01-03"),
        pd.Timestamp("2020-01-04"),
    ]


def test_numeric_time_column(write_file: WriteFile) -> None:
    data = load_series(write_file("t.csv", "t,y\n0,1\n0.5,2\n1.0,3\n1.5,5\n"), time_col="t")
    assert data.freq is None
    assert data.step == 0.5
    assert data.series[0].time.tolist() == [0.0, 0.5, 1.0, 1.5]
    assert data.future_time(data.series[0], 3).tolist() == [2.0, 2.5, 3.0]


def test_numeric_time_column_found_by_name(write_file: WriteFile) -> None:
    data = load_series(write_file("t.csv", "time,y\n1990,1\n2000,2\n2010,3\n"))
    assert data.time_col == "time"
    assert data.step == 10.0
    assert data.future_time(data.series[0], 2).tolist() == [2020.0, 2030.0]


# ----------------------------------------------------------------- column selection
def test_targets_come_first_then_the_other_numeric_columns(write_file: WriteFile) -> None:
    path = write_file("t.csv", csv("date,a,b,c,label", [f"{d},1,2,3,x" for d in days(3)]))
    data = load_series(path, targets=["c"])
    assert data.columns == ("c", "a", "b")  # the text column is not a feature
    assert data.targets == ("c",) and data.features == ("a", "b")
    assert data.n_features == 3
    np.testing.assert_array_equal(data.series[0].values[0], [3, 1, 2])


def test_targets_and_features_chosen(write_file: WriteFile) -> None:
    path = write_file("t.csv", csv("date,a,b,c", [f"{d},1,2,3" for d in days(3)]))
    data = load_series(path, targets=["b", "a"], features=["c"])
    assert data.columns == ("b", "a", "c")
    assert data.n_targets == 2
    data = load_series(path, targets=["b"], features=[])
    assert data.columns == ("b",)


def test_target_that_is_also_a_feature_is_refused(write_file: WriteFile) -> None:
    path = write_file("t.csv", csv("date,a,b", [f"{d},1,2" for d in days(3)]))
    with pytest.raises(DataError, match="column 'a' is both a target and a feature"):
        load_series(path, targets=["a"], features=["a"])


@pytest.mark.parametrize("option", ["targets", "features", "time_col", "id_col"])
def test_unknown_column_lists_the_available_ones(write_file: WriteFile, option: str) -> None:
    path = write_file("t.csv", DAILY)
    value: object = ["nope"] if option in ("targets", "features") else "nope"
    with pytest.raises(DataError) as info:
        load_series(path, **{option: value})  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith(f"file '{path}' has no ")
    assert "'nope'" in message
    assert re.search(r"available columns: ('date', )?'y', 'x'$", message)


def test_no_numeric_column(write_file: WriteFile) -> None:
    path = write_file("t.csv", csv("date,name", [f"{d},abc" for d in days(3)]))
    with pytest.raises(DataError, match=f"{file_label(path)} has no numeric column to forecast"):
        load_series(path)


def test_true_false_column_is_refused(write_file: WriteFile) -> None:
    path = write_file("t.csv", csv("date,y,flag", [f"{d},1,true" for d in days(3)]))
    with pytest.raises(DataError, match="column 'flag': expected numbers, got true/false"):
        load_series(path, targets=["y", "flag"])


def test_unknown_fill_policy() -> None:
    with pytest.raises(DataError, match="unknown fill policy 'mean'; expected one of error"):
        load_series(np.arange(5.0), fill="mean")  # type: ignore[arg-type]


@pytest.mark.parametrize(("option", "role"), [("targets", "time"), ("features", "id")])
def test_naming_the_time_or_id_column_as_a_value_says_what_it_is(
    tmp_path: Path, option: str, role: str
) -> None:
    path = tmp_path / "long.csv"
    path.write_text("id,date,y\na,2020-01-01,1\na,2020-01-02,2\na,2020-01-03,3\n")
    name = {"time": "date", "id": "id"}[role]
    kwargs = {option: [name], **({"targets": ["y"]} if option == "features" else {})}
    # Before: "has no column 'date'; available columns: 'y'", of a column that is in the file.
    with pytest.raises(DataError, match=rf"column '{name}' is the {role} column; it cannot"):
        load_series(path, id_col="id", **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ file-level errors
def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=f"^{file_label(path)} does not exist$"):
        load_series(path)


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"^{file_label(tmp_path)} is a folder; expected a CSV"):
        load_series(tmp_path)


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_empty_file(write_file: WriteFile, content: str) -> None:
    path = write_file("empty.csv", content)
    with pytest.raises(DataError, match=f"^{file_label(path)} is empty$"):
        load_series(path)


def test_header_only_file(write_file: WriteFile) -> None:
    path = write_file("header.csv", "date,y\n")
    with pytest.raises(DataError, match=f"^{file_label(path)} has a header but no data rows$"):
        load_series(path)


@pytest.mark.parametrize(
    "content",
    [bytes(range(256)) * 4, gzip.compress(DAILY.encode() * 50)],
    ids=["bytes", "gzip-named-csv"],
)
def test_binary_garbage_is_not_a_table(write_file: WriteFile, content: bytes) -> None:
    path = write_file("garbage.csv", content)
    with pytest.raises(DataError, match=f"^{file_label(path)} is not a CSV table"):
        load_series(path)


def test_garbage_parquet(write_file: WriteFile) -> None:
    path = write_file("data.parquet", "date,y\n2020-01-01,1\n")
    with pytest.raises(DataError, match=f"^{file_label(path)} is not a Parquet table"):
        load_series(path)


@pytest.mark.parametrize(
    "content",
    [
        "date;y\n2020-01-01;1\n2020-01-02;2\n2020-01-03;3\n",
        "date;y\n2020-01-01;1,5\n2020-01-02;2,5\n2020-01-03;3,5\n",
        "date\ty\n2020-01-01\t1\n2020-01-02\t2\n2020-01-03\t3\n",
    ],
    ids=["semicolon", "semicolon-decimal-comma", "tab"],
)
def test_other_separator_is_named(write_file: WriteFile, content: str) -> None:
    path = write_file("semi.csv", content)
    with pytest.raises(DataError, match=f"^{file_label(path)} has one column .*separator"):
        load_series(path)


# ------------------------------------------------------------------- value errors
@pytest.mark.parametrize("bad_row", [1, 2, 4, 6])
def test_non_numeric_value_names_column_row_and_line(write_file: WriteFile, bad_row: int) -> None:
    values = ["1", "2", "3", "4", "5", "6"]
    values[bad_row - 1] = "n/a?"
    rows = [f"{d},{v},0" for d, v in zip(days(6), values, strict=True)]
    path = write_file("t.csv", csv("date,y,x", rows))
    expected = (
        f"{file_label(path)}, column 'y', row {bad_row} \\(line {bad_row + 1}\\): "
        "expected a number, got 'n/a\\?' \\(1 non-numeric value\\(s\\) in the column\\)"
    )
    with pytest.raises(DataError, match=f"^{expected}$"):
        load_series(path, targets=["y", "x"])


def test_non_numeric_value_counts_them_all(write_file: WriteFile) -> None:
    rows = [f"{d},{v}" for d, v in zip(days(5), ["1", "x", "3", "y", "z"], strict=True)]
    path = write_file("t.csv", csv("date,y", rows))
    with pytest.raises(DataError, match=r"row 2 \(line 3\): expected a number, got 'x' \(3 non"):
        load_series(path)


def test_non_numeric_value_in_a_dataframe_has_no_line() -> None:
    frame = pd.DataFrame({"y": pd.Series([1.0, 2.0, "x", 4.0], dtype=object)})
    with pytest.raises(DataError, match=r"^the DataFrame, column 'y', row 3: expected a number"):
        load_series(frame)


MISSING = csv(
    "date,y,x",
    [
        f"{d},{y},{x}"
        for d, y, x in zip(
            days(6), ["", "1", "", "", "4", ""], ["1", "2", "3", "", "5", "6"], strict=True
        )
    ],
)


def test_missing_values_with_policy_error(write_file: WriteFile) -> None:
    path = write_file("t.csv", MISSING)
    expected = (
        f"^{file_label(path)}, column 'y' has 4 missing value\\(s\\), the first at "
        r"row 1 \(line 2\); pass fill ffill, interpolate, drop or mask"
    )
    with pytest.raises(DataError, match=expected):
        load_series(path, targets=["y", "x"])


def test_missing_value_row_refers_to_the_file_in_long_format(write_file: WriteFile) -> None:
    rows = [f"a,{d},1" for d in days(3)] + ["b,2020-01-01,1", "b,2020-01-02,", "b,2020-01-03,3"]
    path = write_file("t.csv", csv("id,date,y", rows))
    with pytest.raises(
        DataError, match=r"series 'b', column 'y' has 1 missing .* row 5 \(line 6\)"
    ):
        load_series(path, id_col="id")


@pytest.mark.parametrize(
    ("fill", "y", "x", "kept"),
    [
        ("ffill", [1, 1, 1, 1, 4, 4], [1, 2, 3, 3, 5, 6], 6),  # leading gap back-filled
        ("interpolate", [1, 1, 2, 3, 4, 4], [1, 2, 3, 4, 5, 6], 6),
        ("drop", [1, 4], [2, 5], 2),
    ],
)
def test_fill_policies_by_hand(
    write_file: WriteFile, fill: str, y: list[float], x: list[float], kept: int
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # filling is reported in notes, not warned
        data = load_series(write_file("t.csv", MISSING), fill=fill, targets=["y", "x"])  # type: ignore[arg-type]
    values = data.series[0].values
    np.testing.assert_allclose(values[:, 0], y)
    np.testing.assert_allclose(values[:, 1], x)
    assert len(data.series[0].time) == kept
    assert any(fill in note or "dropped" in note for note in data.notes)
    # The notes say where a filled value came from a later one (row 1 of y is missing).
    later = {"ffill": "a leading gap from the first value after it", "interpolate": "has seen the "
             "value after its gap", "drop": None}[fill]  # fmt: skip
    assert (later is None) or any(later in note for note in data.notes), data.notes
    if fill == "drop":
        assert list(data.series[0].time) == [pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-05")]


@pytest.mark.parametrize("fill", ["ffill", "interpolate", "drop"])
def test_fill_policies_against_pandas(tmp_path: Path, fill: str) -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    frame = frame.mask(rng.random(frame.shape) < 0.2)
    frame.insert(0, "date", pd.date_range("2020-01-01", periods=60, freq="D"))
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    data = load_series(path, fill=fill, targets=["a", "b", "c"])  # type: ignore[arg-type]
    numbers = pd.read_csv(path)[["a", "b", "c"]]
    if fill == "ffill":
        want = numbers.ffill().bfill()
    elif fill == "interpolate":
        want = numbers.interpolate(method="linear", limit_direction="both")
    else:
        want = numbers.dropna()
    np.testing.assert_allclose(data.series[0].values, want.to_numpy())


def test_drop_that_leaves_nothing(write_file: WriteFile) -> None:
    path = write_file("t.csv", csv("date,y", [f"{d}," for d in days(3)]))
    with pytest.raises(DataError, match="every row has a missing value; nothing left"):
        load_series(path, fill="drop")


def test_fill_of_an_empty_column(write_file: WriteFile) -> None:
    path = write_file("t.csv", csv("date,y,x", [f"{d},1," for d in days(3)]))
    with pytest.raises(DataError, match="a column has no values at all; cannot fill it"):
        load_series(path, fill="ffill", targets=["y", "x"])


@pytest.mark.parametrize("token", ["inf", "-inf", "Infinity"])
def test_infinite_values(write_file: WriteFile, token: str) -> None:
    rows = [f"{d},{v}" for d, v in zip(days(4), ["1", "2", token, token], strict=True)]
    path = write_file("t.csv", csv("date,y", rows))
    expected = (
        f"^{file_label(path)}, column 'y' has 2 infinite value\\(s\\), the first at "
        r"row 3 \(line 4\); expected finite numbers$"
    )
    with pytest.raises(DataError, match=expected):
        load_series(path)


def test_rows_without_a_series_id_are_refused_not_dropped(tmp_path: Path) -> None:
    lines = ["id,date,y"]
    lines += [f"a,2020-01-0{d},{d}" for d in range(1, 6)]
    lines += ["b,2020-01-01,1", ",2020-01-02,2", "b,2020-01-03,3", ",2020-01-04,4"]
    path = tmp_path / "long.csv"
    path.write_text("\n".join(lines) + "\n")
    row = first_row(lines, lambda line: line.startswith(","))
    count = sum(line.startswith(",") for line in lines[1:])
    # Before: groupby dropped both rows, and series 'b' came back with a silent gap.
    with pytest.raises(
        DataError,
        match=rf"column 'id', row {row} \(line {row + 1}\): missing series id \({count} row",
    ):
        load_series(path, id_col="id")


def test_parquet_messages_give_rows_but_no_lines(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    values = [1.0, 2.0, None, 4.0]
    pd.DataFrame({"y": values}).to_parquet(tmp_path / "t.parquet")
    row = next(i + 1 for i, v in enumerate(values) if v is None)
    with pytest.raises(DataError, match=rf"the first at row {row}; pass fill") as info:
        load_series(tmp_path / "t.parquet")
    assert "line" not in str(info.value)  # a Parquet file has no lines to count


# --------------------------------------------------------------------- time errors
def test_unparseable_timestamp(write_file: WriteFile) -> None:
    path = write_file("t.csv", csv("date,y", ["2020-01-01,1", "2020-01-02,2", "soon,3"]))
    expected = (
        f"^{file_label(path)}, column 'date', row 3 \\(line 4\\): cannot parse 'soon' as a "
        "timestamp$"
    )
    with pytest.raises(DataError, match=expected):
        load_series(path)


def test_missing_timestamp(write_file: WriteFile) -> None:
    path = write_file("t.csv", csv("date,y", ["2020-01-01,1", ",2", "2020-01-03,3"]))
    with pytest.raises(DataError, match=r"column 'date', row 2 \(line 3\): missing timestamp$"):
        load_series(path)


def test_duplicate_timestamps(write_file: WriteFile) -> None:
    rows = ["2020-01-01,1", "2020-01-02,2", "2020-01-03,3", "2020-01-02,4"]
    path = write_file("t.csv", csv("date,y", rows))
    expected = (
        f"^{file_label(path)}, column 'date', row 4 \\(line 5\\): duplicate timestamp "
        r"2020-01-02 00:00:00 \(also at row 2 \(line 3\)\); expected one row per time step$"
    )
    with pytest.raises(DataError, match=expected):
        load_series(path)


def test_unsorted_timestamps_are_sorted_with_a_warning(write_file: WriteFile) -> None:
    rows = ["2020-01-03,3", "2020-01-01,1", "2020-01-04,4", "2020-01-02,2"]
    path = write_file("t.csv", csv("date,y", rows))
    with pytest.warns(UserWarning, match="rows are not in time order; sorted them by 'date'"):
        data = load_series(path)
    np.testing.assert_array_equal(data.series[0].values[:, 0], [1, 2, 3, 4])
    assert list(data.series[0].time) == list(pd.date_range("2020-01-01", periods=4))
    assert data.freq == "D"
    assert any("sorted" in note for note in data.notes)


def test_unsorted_rows_keep_file_row_numbers_in_messages(write_file: WriteFile) -> None:
    rows = ["2020-01-03,3", "2020-01-01,1", "2020-01-02,"]
    path = write_file("t.csv", csv("date,y", rows))
    with pytest.warns(UserWarning), pytest.raises(DataError, match=r"row 3 \(line 4\)"):
        load_series(path)


def test_irregular_spacing(write_file: WriteFile) -> None:
    stamps = ["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-05", "2020-01-06"]
    path = write_file("t.csv", csv("date,y", [f"{s},1" for s in stamps]))
    expected = (
        f"^{file_label(path)}, column 'date', row 4 \\(line 5\\): irregular spacing "
        r"\(2020-01-03 00:00:00 to 2020-01-05 00:00:00, while most steps are .*\); resample"
    )
    with pytest.raises(DataError, match=expected):
        load_series(path)


def test_irregular_spacing_states_the_usual_step(write_file: WriteFile) -> None:
    stamps = ["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-05", "2020-01-06"]
    path = write_file("t.csv", csv("date,y", [f"{s},1" for s in stamps]))
    with pytest.raises(DataError, match=r"while most steps are 1 days 00:00:00\)"):
        load_series(path)


def test_irregular_numeric_spacing(write_file: WriteFile) -> None:
    path = write_file("t.csv", "t,y\n0,1\n1,2\n2,3\n4,4\n5,5\n")
    expected = (
        f"^{file_label(path)}, column 't', row 4 \\(line 5\\): irregular spacing \\(2 to 4, "
        r"while most steps are 1\); expected evenly spaced steps$"
    )
    with pytest.raises(DataError, match=expected):
        load_series(path, time_col="t")


def test_loading_emits_no_pandas_deprecation_warning(write_file: WriteFile) -> None:
    path = write_file("daily.csv", DAILY)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        load_series(path, targets=["y", "x"])


def test_timestamps_with_different_utc_offsets_name_the_row(tmp_path: Path) -> None:
    # Hourly local time across the start of daylight saving time.
    stamps = ["2020-03-29T00:00+01:00", "2020-03-29T01:00+01:00", "2020-03-29T03:00+02:00"]
    lines = ["date,y", *[f"{s},{i}" for i, s in enumerate(stamps)]]
    path = tmp_path / "dst.csv"
    path.write_text("\n".join(lines) + "\n")
    first_offset = stamps[0][-6:]
    row = first_row(lines, lambda line: line.split(",")[0][-6:] != first_offset)
    # Before: pandas' ValueError ("Pass utc=True in to_datetime ...") reached the user.
    with pytest.raises(
        DataError, match=rf"column 'date', row {row} \(line {row + 1}\): timestamp .* UTC offset"
    ):
        load_series(path)


def test_a_missing_month_is_named_not_the_first_short_month(tmp_path: Path) -> None:
    months = pd.date_range("2020-01-01", periods=12, freq="MS")
    kept = [m for i, m in enumerate(months) if i != 7]  # August is missing
    lines = ["date,y", *[f"{m.date()},{i}" for i, m in enumerate(kept)]]
    path = tmp_path / "monthly.csv"
    path.write_text("\n".join(lines) + "\n")
    # Oracle: the first row whose month is not one after the previous row's.
    row = next(
        i + 1
        for i in range(1, len(kept))
        if (kept[i].year * 12 + kept[i].month) - (kept[i - 1].year * 12 + kept[i - 1].month) != 1
    )
    # Before: "row 2" (January to February, 31 days, while most steps were 30 days).
    with pytest.raises(DataError, match=rf"row {row} \(line {row + 1}\): irregular spacing"):
        load_series(path)


def test_repeated_column_names_are_refused_not_renamed(tmp_path: Path) -> None:
    """Issue 19: pandas turned a second 'sales' header into 'sales.1', which was forecast."""
    path = tmp_path / "dup.csv"
    path.write_text("date,sales,sales\n2020-01-01,1,2\n2020-01-02,3,4\n")
    with pytest.raises(DataError, match=r"has several columns named 'sales'; give each column"):
        load_series(path)
    frame = pd.DataFrame([[1.0, 2.0], [3.0, 4.0]], columns=["a", "a"])
    with pytest.raises(DataError, match="several columns named 'a'"):
        load_series(frame)


def test_the_internal_row_column_name_is_refused_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "row.csv"
    path.write_text("date,_seqcast_row\n2020-01-01,1\n2020-01-02,3\n")
    with pytest.raises(DataError, match="the column name '_seqcast_row' is reserved; rename it"):
        load_series(path)


def test_values_whose_squares_overflow_are_refused_by_row(tmp_path: Path) -> None:
    """Issue 19: values near 1e308 crashed the report ('arange: cannot compute length')."""
    path = tmp_path / "huge.csv"
    path.write_text("y\n1.0\n2.0\n-3e200\n4.0\n")
    with pytest.raises(DataError, match=r"column 'y' has 1 value\(s\) beyond ±1e\+150, the "
                       r"first -3e\+200 at row 3 \(line 4\): their squares overflow"):  # fmt: skip
        load_series(path)
    assert load_series(pd.DataFrame({"y": [1e149, -1e149, 0.0]})).series[0].values.shape == (3, 1)


@pytest.mark.parametrize(
    ("text", "first", "other"),
    [
        # Beyond int64: pandas keeps Python ints (object); 1e30 + 1 and 1e30 + 1000 are 1e30.
        ("1000000000000000000000000000001\n1000000000000000000000000001000\n5\n",
         "1000000000000000000000000000001", "1000000000000000000000000001000"),
        # int64 just past 2 ** 53: 2 ** 53 + 3 and 2 ** 53 + 5 round to the same even float.
        ("9007199254740995\n9007199254740997\n1\n", "9007199254740995", "9007199254740997"),
        # uint64 near 2 ** 64.
        ("18446744073709551610\n18446744073709551611\n1\n",
         "18446744073709551610", "18446744073709551611"),
    ],
)  # fmt: skip
def test_distinct_integers_that_read_as_one_float_are_refused(
    tmp_path: Path, text: str, first: str, other: str
) -> None:
    """Issue 19: integers near 1e30 collapsed to one value and were forecast as a constant."""
    path = tmp_path / "big.csv"
    path.write_text("y\n" + text)
    with pytest.raises(DataError, match=rf"column 'y', row 1 \(line 2\): {first} and {other} "
                       "are different numbers but the same 64-bit float"):  # fmt: skip
        load_series(path)


def test_large_numbers_that_floats_hold_exactly_still_load(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("y\n1000000000000000000000000000000\n2e30\n9007199254740992\n3\n")
    values = load_series(path).series[0].values[:, 0]
    np.testing.assert_array_equal(values, [1e30, 2e30, 2.0**53, 3.0])
    decimals = pd.DataFrame({"y": [Decimal("1e30"), Decimal("1" + "0" * 29 + "1"), Decimal(1)]})
    with pytest.raises(DataError, match="different numbers but the same 64-bit float"):
        load_series(decimals)  # as a Parquet decimal128 column arrives


@pytest.mark.parametrize("value", ["inf", "-8e307", "2e308"])
def test_a_numeric_time_column_beyond_the_limit_is_refused_by_row(
    tmp_path: Path, value: str
) -> None:
    """Issue 19: time steps near 1e308 crashed the report's plots; an infinite one was called a
    duplicate timestamp."""
    path = tmp_path / "t.csv"
    path.write_text(f"t,y\n1,1\n2,2\n{value},3\n")
    with pytest.raises(DataError, match=r"column 't', row 3 \(line 4\): time step .* is not a "
                       r"finite number within ±1e\+150"):  # fmt: skip
        load_series(path, time_col="t")


def test_a_file_above_max_input_bytes_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "y.csv"
    path.write_text("y\n1\n2\n3\n")  # 8 bytes
    with pytest.raises(DataError, match="holds 8 bytes, above max_input_bytes 7") as caught:
        load_series(path, max_input_bytes=7)
    assert caught.value.arguments == ("max_input_bytes",)
    assert len(load_series(path, max_input_bytes=8).series[0]) == 3


def test_a_parquet_table_with_repeated_names_is_refused_by_name(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table([pa.array([1.0, 2.0]), pa.array([3.0, 4.0])], names=["a", "a"]), path)
    with pytest.raises(DataError, match="has several columns named 'a'; give each column"):
        load_series(path)


def test_missing_timestamps_are_added_and_filled_as_missing_values(tmp_path: Path) -> None:
    """Issue 17: the course's Melbourne temperatures miss two New Year's Eves, and --fill
    filled only missing values. Oracle: pandas reindexing to the full daily range, then the
    same fill."""
    days = pd.date_range("2020-01-01", periods=60, freq="D")
    keep = np.ones(60, dtype=bool)
    keep[[10, 11, 40]] = False
    values = np.sin(np.arange(60) / 5.0) * 10
    path = tmp_path / "temps.csv"
    pd.DataFrame({"date": days[keep], "temp": values[keep]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="or pass fill ffill, interpolate or mask to add missing"):
        load_series(path)
    for fill in ("ffill", "interpolate"):
        with pytest.warns(UserWarning, match=r"added 3 missing timestamp\(s\) at frequency D "
                          r"\(2020-01-11, 2020-01-12, 2020-02-10\)"):  # fmt: skip
            data = load_series(path, fill=fill)  # type: ignore[arg-type]
        full = pd.Series(values[keep], index=days[keep]).reindex(days)
        want = full.ffill() if fill == "ffill" else full.interpolate()
        np.testing.assert_allclose(data.series[0].values[:, 0], want.to_numpy())
        assert data.freq == "D" and list(data.series[0].time) == list(days)


def test_missing_months_follow_the_calendar_in_every_series(tmp_path: Path) -> None:
    months = pd.date_range("2000-01-01", periods=30, freq="MS")
    parts = []
    for name, gaps in (("a", [4, 5]), ("b", [20])):
        keep = np.ones(30, dtype=bool)
        keep[gaps] = False
        parts.append(pd.DataFrame({"id": name, "month": months[keep], "y": np.arange(30.0)[keep]}))
    path = tmp_path / "monthly.csv"
    pd.concat(parts).to_csv(path, index=False)
    with pytest.warns(UserWarning, match=r"added \d missing timestamp"):
        data = load_series(path, id_col="id", time_col="month", fill="interpolate")
    assert data.freq == "MS"
    assert [n.split(": ")[1][:28] for n in data.notes if "timestamp" in n] == [
        "added 2 missing timestamp(s)",
        "added 1 missing timestamp(s)",
    ]
    for series in data.series:
        np.testing.assert_allclose(series.values[:, 0], np.arange(30.0))  # a line: exact


def test_timestamps_off_any_grid_are_still_refused(tmp_path: Path) -> None:
    """Filling never invents a frequency: steps of 1, 3 and 7 hours fit no grid the data
    shows without inserting more than ten times its rows."""
    times = pd.to_datetime(["2020-01-01 00:00", "2020-01-01 01:00", "2020-01-01 04:00",
                            "2020-01-01 11:00", "2020-01-05 11:30"])  # fmt: skip
    path = tmp_path / "odd.csv"
    pd.DataFrame({"t": times, "y": np.arange(5.0)}).to_csv(path, index=False)
    with pytest.raises(DataError, match="irregular spacing"):
        load_series(path, time_col="t", fill="ffill")
