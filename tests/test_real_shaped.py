"""Real-shaped files through the command line (issue 17): "A test suite of real-shaped files
(gaps, odd date formats, extra numeric columns, long format with ragged series) passes through
`backtest`, `fit`, `predict` and `report` with the default options".

Each file is generated here in the shape of a well-known dataset (no downloads): Melbourne's
daily minimum temperatures with New Year's Eves absent, the airline passengers' year-month
column, the daily births written day first with an extra numeric column, monthly dates that
read both day and month first, a long file of stores of different lengths and end dates (as
CSV and as Parquet) and integer steps as time. The valid runs use the defaults but for the
option that the shape needs, a horizon of 3 and two training epochs; those that leave out that
option fail on one error line.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_runner import Run, assert_one_error_line, run_main

HORIZON = "3"
EPOCHS = ("--epochs", "2")  # every neural model, the report's ladder included
SCORES = ("mae", "rmse", "smape", "mase")


# ----------------------------------------------------------------------------- the files
def melbourne(tmp_path: Path) -> Path:
    """Daily minimum temperatures, `Date,Temp`, from 1981-12-01 to 1983-01-04, without the
    rows of 1981-12-31 and 1982-12-31."""
    rng = np.random.default_rng(1)
    days = pd.date_range("1981-12-01", periods=400, freq="D")
    temp = 11 + 4 * np.cos((days.day_of_year - 15) * 2 * np.pi / 365) + rng.normal(0, 2, 400)
    frame = pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "Temp": temp.round(1)})
    frame = frame[~frame["Date"].isin(["1981-12-31", "1982-12-31"])]
    path = tmp_path / "daily-min-temperatures.csv"
    frame.to_csv(path, index=False)
    return path


def airline(tmp_path: Path) -> Path:
    """Monthly passengers, `Month,Passengers`, 1949-01 to 1960-12 written as year-months."""
    rng = np.random.default_rng(2)
    i = np.arange(144)
    level = (110 + 2.6 * i) * (1 + 0.15 * np.sin(i * 2 * np.pi / 12)) + rng.normal(0, 4, 144)
    months = pd.period_range("1949-01", periods=144, freq="M").strftime("%Y-%m")
    path = tmp_path / "airline-passengers.csv"
    pd.DataFrame({"Month": months, "Passengers": level.round().astype(int)}).to_csv(
        path, index=False
    )
    return path


def births(tmp_path: Path) -> Path:
    """Daily births, `Date,births,weekday`, 1959-01-01 to 1959-07-19, day first
    (`13/01/1959`: one reading only) with the weekday as an extra numeric column."""
    rng = np.random.default_rng(3)
    days = pd.date_range("1959-01-01", periods=200, freq="D")
    count = 40 + 4 * (days.day_of_week < 5) + rng.poisson(3, 200)
    frame = pd.DataFrame(
        {"Date": days.strftime("%d/%m/%Y"), "births": count, "weekday": days.day_of_week}
    )
    path = tmp_path / "daily-total-female-births.csv"
    frame.to_csv(path, index=False)
    return path


def monthly_day_first(tmp_path: Path) -> Path:
    """Monthly sales, `Date,sales`, 1959-01 to 1968-12, each month's first day written day
    first (`01/02/1959`): every date reads both ways."""
    rng = np.random.default_rng(4)
    months = pd.date_range("1959-01-01", periods=120, freq="MS")
    sales = 200 + 30 * np.sin(np.arange(120) * 2 * np.pi / 12) + rng.normal(0, 5, 120)
    path = tmp_path / "monthly-sales.csv"
    pd.DataFrame({"Date": months.strftime("%d/%m/%Y"), "sales": sales.round(2)}).to_csv(
        path, index=False
    )
    return path


#: Store, first day, days: different lengths and end dates; store c is shorter than the rnn's
#: context and horizon (20 + 4 + 3 steps at the default window and a weekly season).
STORES = (("a", "2023-01-01", 200), ("b", "2023-02-15", 150), ("c", "2023-05-10", 24))


def stores_frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    parts = []
    for store, start, n in STORES:
        days = pd.date_range(start, periods=n, freq="D")
        sales = 20 + 6 * (days.day_of_week >= 5) + rng.normal(0, 1.5, n)
        parts.append(
            pd.DataFrame({"store": store, "date": days.strftime("%Y-%m-%d"), "sales": sales})
        )
    return pd.concat(parts, ignore_index=True)


def stores_csv(tmp_path: Path) -> Path:
    path = tmp_path / "store-sales.csv"
    stores_frame().round(2).to_csv(path, index=False)
    return path


def stores_parquet(tmp_path: Path) -> Path:
    path = tmp_path / "store-sales.parquet"
    stores_frame().to_parquet(path, index=False)
    return path


def steps(tmp_path: Path) -> Path:
    """`t,y`: integer steps 0..149 as time."""
    rng = np.random.default_rng(6)
    t = np.arange(150)
    y = 5 + np.sin(t / 5) + rng.normal(0, 0.2, 150)
    path = tmp_path / "steps.csv"
    pd.DataFrame({"t": t, "y": y.round(3)}).to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------------- the cases
@dataclass(frozen=True)
class Shape:
    write: Callable[[Path], Path]
    options: tuple[str, ...]  # the data options this shape needs
    header: list[str]  # predict's columns
    ahead: dict[str, list[str]]  # per series id ("" for one series): predict's times
    season: int
    warnings: tuple[str, ...] = ()  # on backtest's stderr
    notes: tuple[str, ...] = ()  # in report.html
    columns: list[str] | None = None  # the saved model's data columns (targets, then inputs)
    numeric_time: bool = False


MELBOURNE_AHEAD = {"": ["1983-01-05", "1983-01-06", "1983-01-07"]}
ADDED = "added 2 missing timestamp(s) at frequency D (1981-12-31, 1982-12-31)"
STORES_AHEAD = {
    "a": ["2023-07-20", "2023-07-21", "2023-07-22"],
    "b": ["2023-07-15", "2023-07-16", "2023-07-17"],
    "c": ["2023-06-03", "2023-06-04", "2023-06-05"],
}

SHAPES = {
    "melbourne-ffill": Shape(
        melbourne, ("--fill", "ffill"), ["Date", "Temp"], MELBOURNE_AHEAD, 7,
        warnings=(ADDED + "; their values are filled with ffill",), notes=(ADDED,),
    ),
    "melbourne-mask": Shape(
        melbourne, ("--fill", "mask"), ["Date", "Temp"], MELBOURNE_AHEAD, 7,
        warnings=(ADDED + "; their targets are gaps (fill mask)",), notes=(ADDED,),
    ),
    "airline-year-month": Shape(
        airline, (), ["Month", "Passengers"],
        {"": ["1961-01-01", "1961-02-01", "1961-03-01"]}, 12,
        notes=("column &#x27;Month&#x27; holds dates and is the time column",),
    ),
    "births-day-first-extra-column": Shape(
        births, ("--target", "births"), ["Date", "births"],
        {"": ["1959-07-20", "1959-07-21", "1959-07-22"]}, 7,
        columns=["births", "weekday"],
    ),
    "monthly-day-first-ambiguous": Shape(
        monthly_day_first, ("--date-format", "%d/%m/%Y"), ["Date", "sales"],
        {"": ["1969-01-01", "1969-02-01", "1969-03-01"]}, 12,
    ),
    "long-ragged-csv": Shape(
        stores_csv, ("--id-col", "store"), ["store", "date", "sales"], STORES_AHEAD, 7
    ),
    "long-ragged-parquet": Shape(
        stores_parquet, ("--id-col", "store"), ["store", "date", "sales"], STORES_AHEAD, 7
    ),
    "integer-steps": Shape(
        steps, ("--time-col", "t"), ["t", "y"], {"": ["150", "151", "152"]}, 1,
        numeric_time=True,
    ),
}  # fmt: skip


def ok(run: Run) -> Run:
    assert run.code == 0, run
    assert "Traceback" not in run.err and "seqcast: error" not in run.err, run.err
    return run


@pytest.mark.parametrize("name", list(SHAPES))
def test_a_real_shaped_file_passes_through_backtest_fit_predict_and_report(
    name: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shape = SHAPES[name]
    path = str(shape.write(tmp_path))
    n_series = len(shape.ahead)

    # backtest: a table on stdout, finite scores in the JSON.
    board = tmp_path / "board.json"
    run = ok(run_main(capsys, "backtest", path, *shape.options, "-m", "naive", "-m", "rnn",
                      *EPOCHS, "--horizon", HORIZON, "--json", str(board)))  # fmt: skip
    assert "naive" in run.out and "rnn" in run.out and "MAE" in run.out
    flat = " ".join(run.err.split())  # rich wraps long lines
    for warning in shape.warnings:
        assert warning in flat
    document = json.loads(board.read_text())
    assert document["season"] == shape.season
    assert document["horizon"] == int(HORIZON)
    assert len(document["val_sizes"]) == n_series
    assert sorted(row["model"] for row in document["results"]) == ["naive", "rnn"]
    for row in document["results"]:
        for score in SCORES:
            assert row[score] is not None and math.isfinite(row[score]), (row["model"], score)
    if n_series > 1:
        assert [entry["id"] for entry in document["series"]] == list(shape.ahead)

    # fit: a model folder.
    folder = tmp_path / "model"
    ok(run_main(capsys, "fit", path, *shape.options, "-m", "rnn", *EPOCHS, "--horizon",
                HORIZON, "--out", str(folder), "--quiet"))  # fmt: skip
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "weights.safetensors"]
    saved = json.loads((folder / "model.json").read_text())
    if shape.columns is not None:
        assert saved["data"]["columns"] == shape.columns
        assert saved["fitted"]["n_features"] == len(shape.columns)
        assert saved["fitted"]["n_targets"] == 1

    # predict: CSV on stdout, the horizon's steps per series, continuing each series' times.
    run = ok(run_main(capsys, "predict", str(folder)))
    forecast = pd.read_csv(io.StringIO(run.out), dtype=str)
    assert list(forecast.columns) == shape.header
    assert len(forecast) == int(HORIZON) * n_series
    time_col, target = shape.header[-2], shape.header[-1]
    groups = forecast.groupby(shape.header[0], sort=False) if n_series > 1 else [("", forecast)]
    assert [str(key) for key, _ in groups] == list(shape.ahead)
    for key, group in groups:
        times = group[time_col].tolist()
        if shape.numeric_time:  # written as numbers (30.0)
            assert [float(t) for t in times] == [float(t) for t in shape.ahead[str(key)]]
        else:
            assert times == shape.ahead[str(key)]
    assert np.isfinite(forecast[target].astype(float)).all()

    # report: the default ladder, with two epochs for its networks.
    out = tmp_path / "report"
    run = ok(run_main(capsys, "report", path, *shape.options, *EPOCHS, "--out", str(out),
                      "--quiet"))  # fmt: skip
    assert f"report:{out / 'report.html'}" in "".join(run.out.split())  # rich wraps
    html = (out / "report.html").read_text()
    for note in shape.notes:
        assert note in html


@dataclass(frozen=True)
class Refusal:
    write: Callable[[Path], Path]
    fragments: tuple[str, ...]


REFUSALS = {
    # Two absent days: the first gap is named, with --fill as the way out.
    "melbourne-gaps": Refusal(
        melbourne,
        ("irregular spacing", "1981-12-30", "1982-01-01", "--fill"),
    ),
    "births-two-numeric-columns": Refusal(
        births, ("several numeric columns", "'births'", "'weekday'", "--target")
    ),
    "monthly-day-first-ambiguous": Refusal(
        monthly_day_first,
        ("column 'Date'", "'01/02/1959'", "1959-01-02", "1959-02-01", "--date-format"),
    ),
    "integer-steps-unnamed": Refusal(steps, ("several numeric columns", "'t'", "'y'")),
}


@pytest.mark.parametrize("command", ["backtest", "fit", "report"])
@pytest.mark.parametrize("name", list(REFUSALS))
def test_without_the_option_it_needs_a_real_shaped_file_fails_on_one_line(
    name: str, command: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    refusal = REFUSALS[name]
    path = str(refusal.write(tmp_path))
    out = tmp_path / "out"
    if command == "backtest":
        args = ["-m", "naive", "--quiet"]
    elif command == "fit":
        args = ["-m", "naive", "--out", str(out), "--quiet"]
    else:
        args = [*EPOCHS, "--out", str(out), "--quiet"]
    assert_one_error_line(run_main(capsys, command, path, *args), *refusal.fragments)
    assert not (out / "model.json").exists() and not (out / "report.html").exists()
