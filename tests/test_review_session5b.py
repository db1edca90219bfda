"""Review of intake, splits, leaderboards and the service's timestamps: rows that vanished,
inputs that ended in a traceback, errors naming the wrong row, JSON that is not JSON.

Each test has an oracle: a slow loop over the file's rows, numpy by hand, or the loaded table.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_runner import assert_one_error_line, run_main
from fastapi.testclient import TestClient

from seqcast.data import load_series, split_indices, split_point
from seqcast.errors import DataError
from seqcast.evaluation.leaderboard import run_leaderboard
from seqcast.forecasters.registry import create_for
from seqcast.persistence import save_model
from seqcast.serving import create_app


def first_row(lines: list[str], predicate: object) -> int:
    """Oracle: the 1-based data row of the first line (after the header) matching."""
    for number, line in enumerate(lines[1:], start=1):
        if predicate(line):  # type: ignore[operator]
            return number
    raise AssertionError("no such row")


# --------------------------------------------------------------------------- intake
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


def test_parquet_messages_give_rows_but_no_lines(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    values = [1.0, 2.0, None, 4.0]
    pd.DataFrame({"y": values}).to_parquet(tmp_path / "t.parquet")
    row = next(i + 1 for i, v in enumerate(values) if v is None)
    with pytest.raises(DataError, match=rf"the first at row {row}; pass fill") as info:
        load_series(tmp_path / "t.parquet")
    assert "line" not in str(info.value)  # a Parquet file has no lines to count


# --------------------------------------------------------------------------- splits
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


# ----------------------------------------------------------------------- leaderboard
def test_leaderboard_json_is_strict_json_when_a_metric_overflows() -> None:
    values = np.tile([1e160, -1e160], 15)
    data = load_series(values)
    splits = split_indices(data, val_size=6)
    with np.errstate(over="ignore"):  # the overflow is the point of the test
        board = run_leaderboard(data, ["naive"], dict(window=3, horizon=1), splits)
        errors = values[24:] - values[23:-1]  # naive: the previous value
        expected_mse = float(np.mean(errors**2))
    assert math.isinf(expected_mse)  # the square overflows; the absolute error does not
    # Before: json.dumps wrote "mse": Infinity, which no strict JSON parser reads.
    text = json.dumps(board.to_json(), allow_nan=False)
    row = json.loads(text)["results"][0]
    assert row["mse"] is None and row["rmse"] is None
    assert row["mae"] == pytest.approx(float(np.mean(np.abs(errors))))


def test_unwritable_json_path_is_a_user_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "d.csv"
    data.write_text("y\n" + "".join(f"{i % 5}\n" for i in range(30)))
    blocker = tmp_path / "file"
    blocker.write_text("")
    target = blocker / "out.json"  # a folder that is a file
    # Before: "internal error: NotADirectoryError ..." and exit code 1.
    run = run_main(capsys, "backtest", str(data), "-m", "naive", "--json", str(target), "--quiet")
    assert_one_error_line(run, str(blocker))
    assert not target.exists()


# ------------------------------------------------------------------------- service
@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    root = tmp_path_factory.mktemp("served")
    numeric = load_series(
        pd.DataFrame({"t": 0.5 * np.arange(30), "y": np.arange(30.0) % 5}), time_col="t"
    )
    rows = load_series(np.arange(30.0) % 5)
    for name, data in (("numeric", numeric), ("rows", rows)):
        model = create_for("naive", dict()).fit([data.series[0].values], 1)
        save_model(model, root / name, data)
    return TestClient(create_app([root / "numeric", root / "rows"]))


@pytest.mark.parametrize(
    ("model", "timestamps", "step"),
    [("numeric", [1.0, 2.0, 3.0, 4.0], 0.5), ("rows", [10.0, 20.0, 35.0, 45.0], 10.0)],
)
def test_numeric_timestamps_must_be_evenly_spaced(
    client: TestClient, model: str, timestamps: list[float], step: float
) -> None:
    # Oracle: the first timestamp off the step, for a model trained on a numeric time column
    # its step; else the step of the last two timestamps, as the answer continues them.
    step = step if model == "numeric" else timestamps[-1] - timestamps[-2]
    wrong = next(i for i in range(1, len(timestamps)) if timestamps[i] - timestamps[i - 1] != step)
    body = {"history": [1.0, 2.0, 3.0, 4.0], "timestamps": timestamps, "horizon": 2}
    # Before: 200, continuing [1, 2, 3, 4] at the model's 0.5 (4.5, 5.0) and [.., 35, 45] at 10.
    response = client.post(f"/models/{model}/forecast", json=body)
    assert response.status_code == 422, response.text
    expected = (
        f"timestamp {wrong} is {timestamps[wrong]:g}, expected {timestamps[wrong - 1] + step:g}"
    )
    assert expected in response.json()["detail"]


def test_evenly_spaced_numeric_timestamps_still_continue(client: TestClient) -> None:
    body = {"history": [1.0, 2.0, 3.0], "timestamps": [0.1, 0.2, 0.3], "horizon": 2}
    response = client.post("/models/rows/forecast", json=body)
    assert response.status_code == 200, response.text
    step = 0.3 - 0.2
    assert response.json()["timestamps"] == pytest.approx([0.3 + step, 0.3 + 2 * step])


@pytest.mark.parametrize(
    "timestamps",
    [
        ["01/02/2020", "01/03/2020", "01/04/2020"],
        ["2020-01-01T00:00+01:00", "2020-01-02T00:00+02:00", "2020-01-03T00:00+01:00"],
    ],
)
def test_bad_dates_get_one_sentence_without_pandas_advice(
    client: TestClient, timestamps: list[str]
) -> None:
    body = {"history": [1.0, 2.0, 3.0], "timestamps": timestamps}
    response = client.post("/models/rows/forecast", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("timestamps must be ISO 8601 dates")
    # Before: pandas' advice to its own callers ("passing `format='mixed'`", "Pass utc=True").
    assert "\n" not in detail and "utc=True" not in detail and "format=" not in detail


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


# ------------------------------------------------------------------ predict --data
@pytest.fixture
def daily_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    days = pd.date_range("2021-01-01", periods=20, freq="D")
    path = tmp_path / "train.csv"
    pd.DataFrame({"date": days.date, "y": np.arange(20.0) % 4}).to_csv(path, index=False)
    folder = tmp_path / "model"
    run = run_main(capsys, "fit", str(path), "-m", "naive", "--out", str(folder), "--quiet")
    assert run.code == 0, run
    return folder


def test_predict_from_one_new_row_continues_at_the_models_frequency(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, daily_model: Path
) -> None:
    new = tmp_path / "new.csv"
    new.write_text("date,y\n2021-06-30,7\n")
    # Before: "internal error: ValueError: the series has timestamps but no inferred frequency".
    run = run_main(capsys, "predict", str(daily_model), "--data", str(new), "--horizon", "3")
    assert run.code == 0, run
    forecast = pd.read_csv(io.StringIO(run.out))
    last = pd.Timestamp("2021-06-30")
    expected = [str((last + pd.Timedelta(days=k)).date()) for k in (1, 2, 3)]
    assert forecast["date"].tolist() == expected
    assert forecast["y"].tolist() == [7.0, 7.0, 7.0]  # naive repeats the last value


def test_predict_refuses_data_at_another_frequency(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, daily_model: Path
) -> None:
    weeks = pd.date_range("2021-06-07", periods=4, freq="W-MON")
    new = tmp_path / "weekly.csv"
    pd.DataFrame({"date": weeks.date, "y": [1.0, 2.0, 3.0, 4.0]}).to_csv(new, index=False)
    # Oracle: the first row that is not one day after the first, as the daily model reads it.
    wrong = next(i for i, t in enumerate(weeks) if t != weeks[0] + pd.Timedelta(days=i))
    # Before: exit 0, with weekly timestamps on forecasts of a daily model.
    run = run_main(capsys, "predict", str(daily_model), "--data", str(new))
    assert_one_error_line(run, str(weeks[wrong].date()), "frequency 'D'")


@pytest.mark.parametrize("port", ["65536", "99999", "-1"])
def test_serve_refuses_a_port_out_of_range_in_one_line(
    capsys: pytest.CaptureFixture[str], daily_model: Path, port: str
) -> None:
    assert not 0 <= int(port) <= 65535  # the range a TCP port can take
    # Before: uvicorn's OverflowError traceback, then "internal error" and exit code 1.
    run = run_main(capsys, "serve", str(daily_model), "--port", port)
    assert_one_error_line(run, f"--port must lie between 0 and 65535, got {port}")


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


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"history": [1, ' + b"9" * 5000 + b"]}", "Exceeds the limit (4300 digits)"),
        (b'{"history": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested too deeply"),
        (b'{"history": [1], "caf\xe9": 1}', "send JSON encoded as UTF-8"),
    ],
    ids=["long-integer", "deep-nesting", "latin-1"],
)
def test_an_undecodable_body_is_told_why(client: TestClient, body: bytes, reason: str) -> None:
    # Oracle: only the Latin-1 body fails to decode as UTF-8.
    try:
        body.decode("utf-8")
        is_utf8 = True
    except UnicodeDecodeError:
        is_utf8 = False
    headers = {"content-type": "application/json"}
    response = client.post("/models/rows/forecast", content=body, headers=headers)
    assert response.status_code == 400
    detail = response.json()["detail"]
    # Before: "send JSON encoded as UTF-8" for all three, though two of them are UTF-8.
    assert reason in detail
    assert ("UTF-8" in detail) is not is_utf8
    assert "sys.set_int_max_str_digits" not in detail
