"""The command line, in process through ``seqcast.cli.main`` and as a real subprocess.

A user mistake must end with exactly one line on stderr starting "seqcast: error:", a non-zero
exit code and no traceback; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_runner import TINY, Run, assert_one_error_line, run_main
from model_folders import CHANGES, edit, snapshot

from seqcast.cli import main
from seqcast.data import load_dataset
from seqcast.errors import DataError
from seqcast.persistence import load_model


def console_script() -> str:
    beside = Path(sys.executable).parent / "seqcast"
    found = str(beside) if beside.exists() else shutil.which("seqcast")
    assert found, "the seqcast console script is not installed"
    return found


def run_process(*args: str, cwd: Path, module: bool = False) -> Run:
    command = [sys.executable, "-m", "seqcast.cli"] if module else [console_script()]
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    return Run(done.returncode, done.stdout, done.stderr)


def dated_csv(rows: list[str]) -> str:
    return "date,y\n" + "\n".join(rows) + "\n"


def days(n: int) -> list[str]:
    return [d.strftime("%Y-%m-%d") for d in pd.date_range("2020-01-01", periods=n, freq="D")]


GOOD = dated_csv([f"{d},{i % 7}" for i, d in enumerate(days(40))])


# ------------------------------------------------------------------------- commands
def test_datasets_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    run = run_main(capsys, "datasets")
    assert run.code == 0
    for name in ("synthetic", "sunspots", "etth1", "etth2"):
        assert name in run.out


def test_datasets_subprocess(tmp_path: Path) -> None:
    run = run_process("datasets", cwd=tmp_path)
    assert run.code == 0, run.err
    for name in ("synthetic", "sunspots", "etth1", "etth2"):
        assert name in run.out
    assert run.err == ""


def test_python_dash_m(tmp_path: Path) -> None:
    run = run_process("datasets", cwd=tmp_path, module=True)
    assert "synthetic" in run.out


def test_backtest_course_numbers_and_json_subprocess(tmp_path: Path) -> None:
    run = run_process(
        "backtest", "synthetic", "--model", "naive", "--model", "ma", "--window", "30",
        "--horizon", "1", "--val-size", "461", "--json", "out/board.json", cwd=tmp_path,
    )  # fmt: skip
    assert run.code == 0, run.err
    assert "5.938" in run.out and "7.142" in run.out
    document = json.loads((tmp_path / "out" / "board.json").read_text())
    documented = {"dataset", "targets", "window", "horizon", "val_size", "results"}
    assert documented <= set(document)
    assert {k: document[k] for k in documented - {"results"}} == {
        "dataset": "synthetic",
        "targets": ["y"],
        "window": 30,
        "horizon": 1,
        "val_size": 461,
    }
    row_keys = {"model", "mae", "mse", "rmse", "smape", "mase", "fit_seconds",
                "predict_seconds", "epochs", "params"}  # fmt: skip
    rows = document["results"]
    assert [r["model"] for r in rows] == ["naive", "ma"]
    for row in rows:
        assert row_keys <= set(row)
        assert row["fit_seconds"] >= 0 and row["predict_seconds"] >= 0
        assert row["epochs"] is None and row["params"] is None
    assert round(rows[0]["mae"], 3) == 5.938 and round(rows[0]["mse"], 2) == 61.83
    assert round(rows[1]["mae"], 3) == 7.142 and round(rows[1]["mse"], 2) == 106.67


def test_backtest_in_process(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "board.json"
    run = run_main(
        capsys, "backtest", "synthetic", "-m", "diff-ma", "-m", "diff-ma-smooth",
        "--window", "50", "--season", "365", "--val-size", "461", "--json", str(out),
    )  # fmt: skip
    assert run.code == 0, run.err
    assert "5.839" in run.out and "4.569" in run.out
    assert "backtesting diff-ma ..." in run.err  # progress goes to stderr, not stdout
    rows = json.loads(out.read_text())["results"]
    assert [round(r["mae"], 3) for r in rows] == [4.569, 5.839]


def test_fit_then_predict_month_end_timestamps(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    run = run_main(capsys, "fit", "sunspots", "-m", "naive", "--out", str(folder), "--quiet")
    assert run.code == 0, run.err
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "weights.safetensors"]

    out = tmp_path / "forecast.csv"
    run = run_main(capsys, "predict", str(folder), "--horizon", "3", "--out", str(out))
    assert run.code == 0, run.err
    assert f"wrote 3 steps for 1 series to {out}" in " ".join(run.err.split())  # rich wraps
    forecast = pd.read_csv(out)
    target = "Monthly Mean Total Sunspot Number"
    assert list(forecast.columns) == ["Date", target]
    assert forecast["Date"].tolist() == ["2018-08-31", "2018-09-30", "2018-10-31"]
    last = load_dataset("sunspots").series[0].values[-1, 0]
    np.testing.assert_allclose(forecast[target], [last] * 3)  # naive repeats the last month

    run = run_main(capsys, "predict", str(folder), "--horizon", "2")  # to stdout
    assert run.code == 0
    assert run.out.splitlines()[1:] == [f"2018-08-31,{last}", f"2018-09-30,{last}"]


def test_fit_then_predict_from_newer_data(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    history = pd.DataFrame(
        {"date": pd.date_range("2022-01-01", periods=80, freq="h"), "y": rng.normal(size=80)}
    )
    history.to_csv(tmp_path / "history.csv", index=False)
    newer = pd.DataFrame(
        {"date": pd.date_range("2022-03-01", periods=10, freq="h"), "y": rng.normal(size=10)}
    )
    newer.to_csv(tmp_path / "newer.csv", index=False)
    folder = tmp_path / "model"
    run = run_main(
        capsys, "fit", str(tmp_path / "history.csv"), "-m", "linear", "--window", "4",
        "--horizon", "2", "--out", str(folder), "--quiet",
    )  # fmt: skip
    assert run.code == 0, run.err

    run = run_main(capsys, "predict", str(folder), "--data", str(tmp_path / "newer.csv"))
    assert run.code == 0, run.err
    forecast = pd.read_csv(io.StringIO(run.out))
    assert forecast["date"].tolist() == ["2022-03-01 10:00:00", "2022-03-01 11:00:00"]
    model = load_model(folder).forecaster
    want = model.predict(newer["y"].to_numpy()[None, -4:, None])[0, :, 0]
    np.testing.assert_allclose(forecast["y"], want)


def test_unsorted_file_warns_on_one_line_and_succeeds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rows = [f"{d},{i % 5}" for i, d in enumerate(days(30))]
    rows[3], rows[4] = rows[4], rows[3]
    path = tmp_path / "unsorted.csv"
    path.write_text(dated_csv(rows))
    run = run_main(capsys, "backtest", str(path), "-m", "naive", "--val-size", "5", "--quiet")
    assert run.code == 0, run.err
    lines = run.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("seqcast: warning: ")
    assert "rows are not in time order; sorted them by 'date'" in lines[0]


# -------------------------------------------------------------------- fit and predict
def test_fit_refuses_to_replace_a_folder_that_holds_no_model(
    capsys: pytest.CaptureFixture[str], csv_file: Path
) -> None:
    # The user's own folder, holding the data itself: replacing it whole would delete both.
    folder = csv_file.parent
    (folder / "notes.txt").write_text("keep me")
    before = snapshot(folder)
    run = run_main(capsys, "fit", str(csv_file), "-m", "rnn", "--out", str(folder), *TINY)
    assert_one_error_line(run, str(folder), "not empty", "no seqcast model")
    assert snapshot(folder) == before  # and no training ran: the one line is all of stderr


def test_fit_refuses_to_replace_a_model_folder_that_also_holds_the_users_files(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path
) -> None:
    """Issue 19's data loss: a model folder holding a user's notes and a nested model was
    replaced whole, both deleted, with exit code 0."""
    folder = tmp_path / "M"
    run = run_main(capsys, "fit", str(csv_file), "-m", "naive", "--out", str(folder), "--quiet")
    assert run.code == 0, run.err
    (folder / "notes.txt").write_text("keep me")
    run = run_main(capsys, "fit", str(csv_file), "-m", "naive", "--out", str(folder / "sub"),
                   "--quiet")  # fmt: skip
    assert run.code == 0, run.err
    before = snapshot(folder)
    run = run_main(capsys, "fit", str(csv_file), "-m", "linear", "--out", str(folder), "--quiet")
    assert_one_error_line(run, str(folder), "also holds notes.txt, sub", "left alone")
    assert snapshot(folder) == before
    (folder / "notes.txt").unlink()
    shutil.rmtree(folder / "sub")
    run = run_main(capsys, "fit", str(csv_file), "-m", "linear", "--out", str(folder), "--quiet")
    assert run.code == 0, run.err  # the model alone is replaced


def test_predict_refuses_a_horizon_above_the_maximum_before_any_work(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path
) -> None:
    """Issue 19: --horizon 100000000 grew past 4 GB and kept going."""
    folder = tmp_path / "m"
    run = run_main(capsys, "fit", str(csv_file), "-m", "naive", "--out", str(folder), "--quiet")
    assert run.code == 0, run.err
    run = run_main(capsys, "predict", str(folder), "--horizon", "100000000")
    assert_one_error_line(run, "--horizon 100000000 is above --max-horizon 100000")
    run = run_main(capsys, "predict", str(folder), "--horizon", "30", "--max-horizon", "20")
    assert_one_error_line(run, "--horizon 30 is above --max-horizon 20")
    run = run_main(capsys, "predict", str(folder), "--horizon", "20", "--max-horizon", "20")
    assert run.code == 0, run.err


@pytest.mark.parametrize("horizon", ["0", "-2"])
def test_predict_refuses_a_horizon_below_one(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path, horizon: str
) -> None:
    folder = tmp_path / "m"
    run = run_main(capsys, "fit", str(csv_file), "-m", "naive", "--out", str(folder), "--quiet")
    assert run.code == 0, run.err
    run = run_main(capsys, "predict", str(folder), "--horizon", horizon)
    assert_one_error_line(run, f"--horizon must be at least 1, got {horizon}")
    assert run.out == ""


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


@pytest.mark.parametrize("change", CHANGES)
def test_predict_from_an_edited_model_json_is_one_error_line(
    capsys: pytest.CaptureFixture[str], linear_folder: Path, change: str
) -> None:
    edit(linear_folder, change)
    run = run_main(capsys, "predict", str(linear_folder))
    assert_one_error_line(run, "is inconsistent")


def test_predict_with_too_short_data_names_the_file(
    capsys: pytest.CaptureFixture[str], linear_folder: Path, tmp_path: Path
) -> None:
    short = tmp_path / "recent.csv"
    pd.DataFrame({"date": pd.date_range("2021-03-22", periods=4, freq="D"), "y": 1.0}).to_csv(
        short, index=False
    )
    run = run_main(capsys, "predict", str(linear_folder), "--data", str(short))
    assert_one_error_line(
        run, f"--data {short}: ", "has 4 points before its forecast; linear reads the last 6"
    )


# --------------------------------------------------------------------------- errors
ERROR_CASES = {
    # name: (file content or None for no file, extra arguments, fragments of the message)
    "missing-file": (None, [], ["does not exist"]),
    "empty-file": ("", [], ["is empty"]),
    "header-only": ("date,y\n", [], ["has a header but no data rows"]),
    "garbage": (bytes(range(256)) * 4, [], ["is not a CSV table"]),
    "unknown-column": (GOOD, ["--target", "sales"], ["has no column 'sales'", "'y'"]),
    "non-numeric": (
        dated_csv(["2020-01-01,1", "2020-01-02,2", "2020-01-03,abc"]),
        [],
        ["column 'y', row 3 (line 4): expected a number, got 'abc'"],
    ),
    "missing-values": (
        dated_csv(["2020-01-01,1", "2020-01-02,", "2020-01-03,3"]),
        [],
        ["column 'y' has 1 missing value(s), the first at row 2 (line 3)"],
    ),
    "infinite": (
        dated_csv(["2020-01-01,1", "2020-01-02,inf", "2020-01-03,3"]),
        [],
        ["1 infinite value(s), the first at row 2 (line 3)"],
    ),
    "bad-timestamp": (
        dated_csv(["2020-01-01,1", "2020-01-02,2", "someday,3"]),
        [],
        ["column 'date', row 3 (line 4): cannot parse 'someday' as a timestamp"],
    ),
    "duplicate-timestamp": (
        dated_csv(["2020-01-01,1", "2020-01-02,2", "2020-01-02,3"]),
        [],
        ["row 3 (line 4): duplicate timestamp"],
    ),
    "irregular-spacing": (
        dated_csv(["2020-01-01,1", "2020-01-02,2", "2020-01-03,3", "2020-01-07,3"]),
        [],
        ["row 4 (line 5): irregular spacing"],
    ),
    "bad-fill": (GOOD, ["--fill", "zero"], ["unknown fill policy 'zero'"]),
    "unknown-model": (GOOD, ["-m", "prophet"], ["unknown model 'prophet'"]),
    "too-short": (GOOD, ["-m", "ma", "--window", "38"], ["needs at least 41 points"]),
    "no-training": (GOOD, ["--val-size", "40"], ["minimum length 41"]),
    "bad-season": (GOOD, ["--season", "yearly"], ["--season must be a whole number or 'auto'"]),
    "two-split-options": (GOOD, ["--val-frac", "0.5"], ["give exactly one of --val-size"]),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_validation_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str
) -> None:
    content, extra, fragments = ERROR_CASES[case]
    path = tmp_path / "data.csv"
    if content is not None:
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    args = ["backtest", str(path), "--val-size", "3", "--quiet", *extra]
    if "-m" not in extra:
        args += ["-m", "naive"]
    assert_one_error_line(run_main(capsys, *args), *fragments)


def test_fit_on_a_too_short_series(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text(dated_csv([f"{d},1" for d in days(5)]))
    run = run_main(capsys, "fit", str(path), "-m", "ma", "--window", "10", "--out", "m", "--quiet")
    assert_one_error_line(run, "has 5 points; ma needs at least 11")


def test_predict_without_a_model_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = run_main(capsys, "predict", str(tmp_path / "nowhere"))
    assert_one_error_line(run, "model folder", "does not exist")


def test_predict_with_tampered_weights(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(GOOD)
    folder = tmp_path / "model"
    assert (
        run_main(capsys, "fit", str(path), "-m", "naive", "--out", str(folder), "--quiet").code == 0
    )
    weights = bytearray((folder / "weights.safetensors").read_bytes())
    weights[-1] ^= 0xFF
    (folder / "weights.safetensors").write_bytes(bytes(weights))
    assert_one_error_line(run_main(capsys, "predict", str(folder)), "checksum")


def test_debug_raises_in_process(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        main(["backtest", str(tmp_path / "nope.csv"), "-m", "naive", "--debug"])


def test_error_and_debug_subprocess(tmp_path: Path) -> None:
    run = run_process("backtest", "nope.csv", "-m", "naive", cwd=tmp_path)
    assert_one_error_line(run, "file 'nope.csv' does not exist")
    assert run.out == ""

    run = run_process("backtest", "nope.csv", "-m", "naive", "--debug", cwd=tmp_path)
    assert run.code != 0
    assert "Traceback (most recent call last)" in run.err
    assert "seqcast.errors.DataError: file 'nope.csv' does not exist" in run.err


@pytest.mark.parametrize(
    "args",
    [
        ["backtest", "synthetic"],  # no --model
        ["backtest", "synthetic", "-m", "naive", "--window", "ten"],
        ["backtest", "synthetic", "-m", "naive", "--no-such-option"],
        ["forecast"],  # no such command
    ],
    ids=["missing-model", "bad-int", "unknown-option", "unknown-command"],
)
def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    assert_one_error_line(run_main(capsys, *args))


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


@pytest.mark.parametrize("port", ["65536", "99999", "-1"])
def test_serve_refuses_a_port_out_of_range_in_one_line(
    capsys: pytest.CaptureFixture[str], daily_model: Path, port: str
) -> None:
    assert not 0 <= int(port) <= 65535  # the range a TCP port can take
    # Before: uvicorn's OverflowError traceback, then "internal error" and exit code 1.
    run = run_main(capsys, "serve", str(daily_model), "--port", port)
    assert_one_error_line(run, f"--port must lie between 0 and 65535, got {port}")


def test_ctrl_c_ends_with_exit_130_and_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import seqcast.cli as cli

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "load_source", interrupted)
    run = run_main(capsys, "backtest", "synthetic", "-m", "naive")
    assert run.code == 130
    assert run.err.strip().splitlines()[-1] == "seqcast: interrupted"


def test_backtest_n_windows_writes_per_series_scores_and_every_forecast(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The many-series form: string ids, an integer step as time, N windows h apart; the JSON
    scores each series and the CSV holds one row per series, window and step."""
    rows = ["id,ds,y"]
    for name, n in (("s1", 40), ("s2", 52)):
        rows += [f"{name},{t},{10 + t % 7 + (0.5 if name == 's2' else 0)}" for t in range(n)]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    board, table = tmp_path / "board.json", tmp_path / "forecasts.csv"
    run = run_main(
        capsys, "backtest", str(tmp_path / "m.csv"), "--id-col", "id", "--time-col", "ds",
        "-m", "naive", "-m", "snaive", "--season", "7", "--horizon", "3", "--n-windows", "2",
        "--stride", "3", "--json", str(board), "--forecasts", str(table), "--quiet",
    )  # fmt: skip
    assert run.code == 0, run.err
    document = json.loads(board.read_text())
    assert document["val_size"] == 3 + 3
    assert [entry["id"] for entry in document["series"]] == ["s1", "s2"]
    assert document["series"][0]["snaive"]["mae"] == 0.0  # a weekly pattern, exactly repeated
    frame = pd.read_csv(table)
    # The models in the leaderboard's order, best first.
    assert list(frame.columns) == ["id", "ds", "cutoff", "y", "snaive", "naive"]
    assert len(frame) == 2 * 2 * 3
    s2 = frame[frame["id"] == "s2"]
    assert sorted(set(s2["cutoff"])) == [45, 48]  # the last origins are 52 - 3 and 52 - 6
    assert (s2["naive"] == 10 + s2["cutoff"] % 7 + 0.5).all()
    run = run_main(
        capsys, "backtest", str(tmp_path / "m.csv"), "--id-col", "id", "-m", "naive",
        "--n-windows", "2", "--val-size", "5",
    )  # fmt: skip
    assert_one_error_line(run, "give --n-windows or one of --val-size")


def test_a_huge_field_is_cut_in_the_one_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Issue 19: a 5 MB field was echoed whole into one stderr line."""
    path = tmp_path / "big.csv"
    path.write_text("date,y\n2020-01-01," + "x" * 5_000_000 + "\n2020-01-02,1\n")
    run = run_main(capsys, "backtest", str(path), "-m", "naive")
    assert_one_error_line(run, "column 'y', row 1 (line 2): expected a number, got 'xxx",
                          "(4999912 characters left out)")  # fmt: skip
    assert len(run.err) < 400


@pytest.mark.parametrize("out", [".", ".."])
@pytest.mark.parametrize("command", ["fit", "report"])
def test_out_the_current_folder_is_refused_before_any_work(
    capsys: pytest.CaptureFixture[str],
    csv_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    out: str,
    command: str,
) -> None:
    """Issue 19: `fit --out .` trained and `report --out .` ran every backtest, then each
    failed ('Device or resource busy')."""
    empty = tmp_path / "empty" / "here"
    empty.mkdir(parents=True)
    monkeypatch.chdir(empty)
    model = ["-m", "naive"] if command == "fit" else []
    run = run_main(capsys, command, str(csv_file), *model, "--out", out)
    assert run.code == 2 and "Traceback" not in run.err, run.err
    # A report may first warn that a baseline does not suit the data; no progress line.
    errors = [line for line in run.err.splitlines() if not line.startswith("seqcast: warning:")]
    what = "the model" if command == "fit" else "the report"
    assert len(errors) == 1 and errors[0].startswith("seqcast: error: "), run.err
    assert f"'{out}' is the current folder or holds it" in errors[0]
    assert errors[0].endswith(f"name a new folder for {what}")
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize("command", ["backtest", "fit", "report"])
def test_a_data_file_above_max_input_bytes_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path, command: str
) -> None:
    """Issue 19: the CLI bounds its input as the service does."""
    size = csv_file.stat().st_size
    extra = {"fit": ["--out", str(tmp_path / "m")], "report": ["--out", str(tmp_path / "r")]}
    model = [] if command == "report" else ["-m", "naive"]
    run = run_main(capsys, command, str(csv_file), *model, *extra.get(command, []),
                   "--max-input-bytes", str(size - 1))  # fmt: skip
    assert_one_error_line(run, f"holds {size:,} bytes, above --max-input-bytes {size - 1:,}")
    assert not (tmp_path / "m").exists() and not (tmp_path / "r").exists()


def test_predict_data_above_max_input_bytes_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "m"
    assert run_main(capsys, "fit", str(csv_file), "-m", "naive", "--out", str(folder)).code == 0
    size = csv_file.stat().st_size
    run = run_main(capsys, "predict", str(folder), "--data", str(csv_file),
                   "--max-input-bytes", "10")  # fmt: skip
    assert_one_error_line(run, f"holds {size:,} bytes, above --max-input-bytes 10")


def test_numpy_arithmetic_warnings_never_reach_the_user(
    capsys: pytest.CaptureFixture[str], csv_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19: raw numpy warnings ('RuntimeWarning: divide by zero encountered') leaked."""
    from seqcast.evaluation import metrics

    original = metrics.mae

    def noisy(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="warn"):
            np.float64(1.0) / np.float64(0.0)  # divide by zero encountered
            np.log(np.float64(-1.0))  # invalid value encountered
        return original(*args, **kwargs)

    monkeypatch.setattr(metrics, "mae", noisy)
    run = run_main(capsys, "backtest", str(csv_file), "-m", "naive")
    assert run.code == 0, run.err
    assert "encountered" not in run.err and "RuntimeWarning" not in run.err, run.err


def test_predict_csv_never_hands_a_spreadsheet_a_formula(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Issue 19: a header `=cmd|' /C calc'!A0` reached predict's CSV as a live formula."""
    data = tmp_path / "f.csv"
    name = "=cmd|' /C calc'!A0"
    frame = pd.DataFrame({"step": range(30), name: np.arange(30.0) - 40.0})
    frame.to_csv(data, index=False)
    folder = tmp_path / "m"
    run = run_main(capsys, "fit", str(data), "-m", "naive", "--time-col", "step", "--out",
                   str(folder), "--quiet")  # fmt: skip
    assert run.code == 0, run.err
    run = run_main(capsys, "predict", str(folder), "--horizon", "2")
    assert run.code == 0, run.err
    header, first = run.out.splitlines()[:2]
    assert header == "step,'=cmd|' /C calc'!A0"  # shown as text, not run
    assert first == "30.0,-11.0"  # a negative number stays a number


def test_report_on_daily_data_leaves_out_the_smoothing_its_season_cannot_hold(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Issue 17/19: `report births.csv` failed with '--smooth must lie in 0..6' (daily data,
    season 7, diff-ma-smooth's smoothing of 10), naming an option that does not exist."""
    days = pd.date_range("2021-01-01", periods=120, freq="D")
    path = tmp_path / "daily.csv"
    y = 10 + np.sin(np.arange(120) * 2 * np.pi / 7)
    pd.DataFrame({"date": days.date, "y": y}).to_csv(path, index=False)
    run = run_main(capsys, "report", str(path), "--out", str(tmp_path / "r"), "-m", "naive",
                   "--quiet")  # fmt: skip
    assert run.code == 0, run.err
    run = run_main(capsys, "report", str(path), "--out", str(tmp_path / "r2"), "--epochs", "1",
                   "--quiet")  # fmt: skip
    assert run.code == 0, run.err
    assert (
        "diff-ma-smooth is left out of the ladder: its smoothing over 10 values needs a "
        "seasonal period above 10, and this one is 7" in run.err
    )
    assert "diff-ma " in run.out and "diff-ma-smooth" not in run.out


def test_report_out_an_earlier_report_is_replaced_with_a_warning_line(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path
) -> None:
    """Issue 19: `report --out` overwrote an existing report without a word."""
    folder = tmp_path / "r"
    first = run_main(capsys, "report", str(csv_file), "--out", str(folder), "-m", "naive",
                     "--quiet")  # fmt: skip
    assert first.code == 0, first.err
    assert "replacing" not in first.err
    again = run_main(capsys, "report", str(csv_file), "--out", str(folder), "-m", "naive",
                     "--quiet")  # fmt: skip
    assert again.code == 0, again.err
    assert f"seqcast: warning: replacing the earlier report in '{folder}'" in again.err.splitlines()
    assert (folder / "report.html").is_file()


def test_help_lists_every_model_name(capsys: pytest.CaptureFixture[str]) -> None:
    from seqcast.forecasters.registry import model_names

    run = run_main(capsys, "backtest", "--help")
    assert run.code == 0
    flat = " ".join(run.out.replace("│", " ").split())
    for name in model_names():
        assert name in flat
