"""A time column is found by its values when it is not named: never silently dropped.

A text column whose every value reads as a date becomes the time column (with a note), dates
that read two ways (day or month first) are refused until ``date_format`` says which, and two
such columns are an error naming both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_runner import assert_one_error_line, run_main

from seqcast.data import load_series
from seqcast.errors import DataError


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def airline(months: int = 30) -> str:
    """The airline file's shape: a ``Month`` column of year-months and one value column."""
    stamps = pd.period_range("1949-01", periods=months, freq="M").strftime("%Y-%m")
    rows = "\n".join(f"{m},{100 + i}" for i, m in enumerate(stamps))
    return f"Month,Passengers\n{rows}\n"


def test_a_year_month_column_of_any_name_becomes_the_time_column(tmp_path: Path) -> None:
    data = load_series(write(tmp_path, airline()))
    assert data.time_col == "Month"
    assert data.columns == ("Passengers",)
    assert data.freq == "MS"
    time = data.series[0].time
    assert time is not None
    assert list(time[:3]) == list(pd.to_datetime(["1949-01-01", "1949-02-01", "1949-03-01"]))
    assert any("column 'Month' holds dates" in note for note in data.notes)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (["13/01/2020", "14/01/2020", "15/01/2020"], ["2020-01-13", "2020-01-14", "2020-01-15"]),
        (["01/13/2020", "01/14/2020", "01/15/2020"], ["2020-01-13", "2020-01-14", "2020-01-15"]),
        (["Jan 1949", "Feb 1949", "Mar 1949"], ["1949-01-01", "1949-02-01", "1949-03-01"]),
        (["1959-01-01", "1959-01-02", "1959-01-03"], ["1959-01-01", "1959-01-02", "1959-01-03"]),
    ],
)
def test_dates_that_read_one_way_only_are_read_that_way(
    tmp_path: Path, written: list[str], expected: list[str]
) -> None:
    rows = "".join(f"{w},{i}\n" for i, w in enumerate(written))
    data = load_series(write(tmp_path, f"Day,value\n{rows}"))
    assert data.time_col == "Day"
    time = data.series[0].time
    assert time is not None
    assert list(time) == list(pd.to_datetime(expected))


def test_the_first_value_alone_does_not_decide_the_reading(tmp_path: Path) -> None:
    # 01/02 reads both ways, 13/02 only day first: the column is day first.
    data = load_series(write(tmp_path, "Day,value\n01/02/2020,1\n13/02/2020,2\n25/02/2020,3\n"))
    time = data.series[0].time
    assert time is not None
    assert list(time) == list(pd.to_datetime(["2020-02-01", "2020-02-13", "2020-02-25"]))


def test_dates_that_read_two_ways_ask_for_the_format(tmp_path: Path) -> None:
    path = write(tmp_path, "Day,value\n01/01/2020,1\n01/02/2020,2\n01/03/2020,3\n")
    # The example is the first date that reads two ways (01/01 reads the same both ways).
    both = r"column 'Day': dates such as '01/02/2020' read both as 2020-01-02 \(%m/%d/%Y\) and "
    with pytest.raises(DataError, match=both + r"as 2020-02-01 \(%d/%m/%Y\)") as caught:
        load_series(path)
    assert caught.value.arguments == ("date_format",)
    with pytest.raises(DataError, match="date_format"):  # also when the column is named
        load_series(path, time_col="Day")
    data = load_series(path, date_format="%d/%m/%Y")
    time = data.series[0].time
    assert time is not None
    assert list(time) == list(pd.to_datetime(["2020-01-01", "2020-02-01", "2020-03-01"]))
    assert data.freq == "MS"
    month_first = load_series(path, date_format="%m/%d/%Y")
    assert month_first.freq == "D"
    assert month_first.series[0].time is not None
    assert list(month_first.series[0].time) == list(
        pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"])
    )


def test_a_value_that_does_not_match_the_date_format_names_its_row(tmp_path: Path) -> None:
    path = write(tmp_path, "Day,value\n01/02/2020,1\n2020-02-02,2\n")
    with pytest.raises(DataError, match=r"row 2 \(line 3\).*'2020-02-02'.*%d/%m/%Y"):
        load_series(path, time_col="Day", date_format="%d/%m/%Y")


def test_two_date_columns_are_an_error_naming_both(tmp_path: Path) -> None:
    path = write(tmp_path, "start,end,v\n2020-01,2020-02,1\n2020-02,2020-03,2\n")
    with pytest.raises(DataError, match="'start' and 'end' both hold dates") as caught:
        load_series(path)
    assert caught.value.arguments == ("time_col",)
    assert load_series(path, time_col="end").time_col == "end"


def test_a_date_column_with_an_impossible_date_names_the_row(tmp_path: Path) -> None:
    path = write(tmp_path, "Day,v\n2020-01-30,1\n2020-02-31,2\n")
    with pytest.raises(DataError, match=r"column 'Day', row 2 \(line 3\).*'2020-02-31'"):
        load_series(path)


@pytest.mark.parametrize("text", ["abc", "A1", "12 apples"])
def test_text_that_is_not_dates_never_becomes_the_time_column(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, f"name,v\n{text},1\n{text}x,2\n{text}y,3\n")
    data = load_series(path)
    assert data.time_col is None
    assert data.columns == ("v",)


def test_a_named_time_column_is_not_searched_for(tmp_path: Path) -> None:
    path = write(tmp_path, "Month,ds,v\n1949-01,0,1\n1949-02,1,2\n1949-03,2,3\n")
    data = load_series(path)
    assert data.time_col == "ds"  # found by name first, without a note
    assert not any("holds dates" in note for note in data.notes)


def test_the_id_column_is_never_taken_for_dates(tmp_path: Path) -> None:
    rows = "".join(f"2020-0{k},{m},{k}\n" for k in (1, 2) for m in ("2021-01", "2021-02"))
    data = load_series(write(tmp_path, f"id,when,v\n{rows}"), id_col="id")
    assert data.time_col == "when"
    assert [s.series_id for s in data.series] == ["2020-01", "2020-02"]


def test_cli_forecasts_past_the_end_of_an_unnamed_month_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path, airline(36))
    folder = tmp_path / "model"
    run = run_main(capsys, "fit", str(path), "-m", "snaive", "--season", "12", "--out",
                   str(folder), "--quiet")  # fmt: skip
    assert run.code == 0, run.err
    out = tmp_path / "forecast.csv"
    run = run_main(capsys, "predict", str(folder), "--horizon", "2", "--out", str(out))
    assert run.code == 0, run.err
    forecast = pd.read_csv(out)
    assert list(forecast.columns) == ["Month", "Passengers"]
    assert forecast["Month"].tolist() == ["1952-01-01", "1952-02-01"]
    np.testing.assert_allclose(forecast["Passengers"], [100 + 24, 100 + 25])  # a season back


def test_cli_names_the_date_format_flag_and_predict_reuses_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    days = pd.date_range("2020-01-01", periods=12, freq="D")
    path = write(tmp_path, "Day,v\n" + "".join(f"{d:%d/%m/%Y},{i}\n" for i, d in enumerate(days)))
    # Twelve days of January: every value reads both ways, day or month first.
    run = run_main(capsys, "backtest", str(path), "-m", "naive", "--quiet")
    assert_one_error_line(run, "column 'Day'", "'02/01/2020'", "--date-format")
    folder = tmp_path / "model"
    run = run_main(capsys, "fit", str(path), "-m", "naive", "--date-format", "%d/%m/%Y",
                   "--out", str(folder), "--quiet")  # fmt: skip
    assert run.code == 0, run.err
    newer = write(tmp_path, "Day,v\n13/01/2020,20\n14/01/2020,21\n", "newer.csv")
    run = run_main(capsys, "predict", str(folder), "--data", str(newer), "--horizon", "1")
    assert run.code == 0, run.err
    assert run.out.splitlines() == ["Day,v", "2020-01-15,21.0"]
