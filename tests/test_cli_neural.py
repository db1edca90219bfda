"""The neural models on the command line, in process, with tiny settings.

Every run is compared with the same model built and fitted in process: the command line must add
nothing but reading, splitting and printing.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_runner import TINY, assert_one_error_line, run_main

from seqcast.data import load_dataset
from seqcast.forecasters.neural import NeuralForecaster
from seqcast.forecasters.registry import forecaster_class
from seqcast.persistence import load_model

N_POINTS = 200
VAL_SIZE = 40


def tiny_model(name: str, **settings: object) -> NeuralForecaster:
    model = forecaster_class(name)(
        window=6, season=1, epochs=2, hidden_size=4, batch_size=64, **settings
    )
    assert isinstance(model, NeuralForecaster)
    return model


def test_backtest_json_reports_epochs_and_params_for_the_neural_model(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "board.json"
    run = run_main(
        capsys, "backtest", str(csv_file), "--model", "rnn", "--model", "naive", *TINY,
        "--val-size", str(VAL_SIZE), "--json", str(out), "--quiet",
    )  # fmt: skip
    assert run.code == 0, run.err
    assert run.err == ""
    rows = {row["model"]: row for row in json.loads(out.read_text())["results"]}
    assert set(rows) == {"rnn", "naive"}
    assert rows["naive"]["epochs"] is None and rows["naive"]["params"] is None
    rnn = rows["rnn"]
    assert isinstance(rnn["epochs"], int) and 1 <= rnn["epochs"] <= 2
    assert isinstance(rnn["params"], int) and rnn["params"] > 0
    # Oracle: the same model fitted in process on the training part, scored on the rest.
    frame = pd.read_csv(csv_file)
    series = frame[["y"]].to_numpy(dtype=np.float64)
    split = N_POINTS - VAL_SIZE
    model = tiny_model("rnn").fit([series[:split]], 1)
    steps = model.context_length
    contexts = np.stack([series[o - steps : o] for o in range(split, N_POINTS)])
    errors = np.abs(model.predict(contexts)[:, 0, 0] - series[split:, 0])
    assert rnn["mae"] == pytest.approx(errors.mean(), rel=1e-9)
    assert rnn["params"] == model.n_params and rnn["epochs"] == model.epochs_run


def test_fit_lstm_then_predict_three_steps(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    run = run_main(capsys, "fit", str(csv_file), "--model", "lstm", "--out", str(folder), *TINY)
    assert run.code == 0, run.err
    assert "fitting lstm" in run.err and "saved lstm" in run.err  # progress on stderr only
    assert run.out == ""
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "weights.safetensors"]

    run = run_main(capsys, "predict", str(folder), "--horizon", "3")
    assert run.code == 0, run.err
    forecast = pd.read_csv(io.StringIO(run.out))
    assert list(forecast.columns) == ["date", "y"] and len(forecast) == 3
    assert forecast["date"].tolist() == ["2023-07-20", "2023-07-21", "2023-07-22"]
    # Oracle: the same model fitted in process on the whole series, rolled out three steps.
    series = pd.read_csv(csv_file)[["y"]].to_numpy(dtype=np.float64)
    model = tiny_model("lstm").fit([series], 1)
    want = model.predict(series[None, -model.context_length :], 3)[0, :, 0]
    np.testing.assert_allclose(forecast["y"], want, rtol=1e-6)
    saved = load_model(folder).forecaster
    assert saved.get_config() == model.get_config()


def test_quiet_fit_writes_nothing_to_stderr(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path
) -> None:
    run = run_main(
        capsys, "fit", str(csv_file), "-m", "gru", "--out", str(tmp_path / "m"), *TINY, "--quiet"
    )
    assert run.code == 0
    assert run.err == "" and run.out == ""
    assert (tmp_path / "m" / "model.json").is_file()


def test_lr_find_prints_the_suggestion_and_writes_a_png(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plot = tmp_path / "plots" / "lr.png"
    run = run_main(
        capsys, "lr-find", "synthetic", "--model", "rnn", "--season", "1", "--batch-size", "64",
        "--hidden-size", "4", "--window", "6", "--plot", str(plot),
    )  # fmt: skip
    assert run.code == 0, run.err
    found = re.search(r"suggested lr: (\S+)", run.out)
    assert found, run.out
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"wrote {plot}" in " ".join(run.err.split())
    # Oracle: the same sweep in process, on the training part (the first 1,000 points).
    values = load_dataset("synthetic").series[0].values[:1000]
    result = tiny_model("rnn").lr_find([values], 1)
    assert found.group(1) == f"{result.suggestion:.3g}"
    assert f"steps: {len(result.lrs)}," in run.out


def test_lr_find_takes_a_fit_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    """--seq2seq changes the swept loss as in fit; the options the sweep sets itself are
    accepted with one warning naming them, so a fit command line can be reused as it is."""
    run = run_main(
        capsys, "lr-find", "synthetic", "--model", "rnn", "--season", "1", "--batch-size", "64",
        "--hidden-size", "4", "--window", "6", "--seq2seq", "--epochs", "3", "--lr", "0.01",
        "--patience", "2", "--schedule", "plateau", "--quiet",
    )  # fmt: skip
    assert run.code == 0, run.err
    assert run.err.splitlines() == [
        "seqcast: warning: lr-find sweeps the learning rate itself; --epochs, --lr, --patience, "
        "--schedule not used"
    ]
    values = load_dataset("synthetic").series[0].values[:1000]
    seq2seq = tiny_model("rnn", seq2seq=True).lr_find([values], 1)
    plain = tiny_model("rnn").lr_find([values], 1)
    assert seq2seq.losses != plain.losses
    assert f"steps: {len(seq2seq.lrs)}, lowest smoothed loss" in run.out
    assert f"suggested lr: {seq2seq.suggestion:.3g}" in run.out
    best = int(np.argmin(seq2seq.smoothed))
    assert f"lowest smoothed loss {seq2seq.smoothed[best]:.4g} at lr" in run.out


@pytest.mark.parametrize(
    ("command", "option", "fragments"),
    [
        ("fit", ("--cell", "transformer"), ("unknown --cell 'transformer'", "rnn, lstm, gru")),
        ("backtest", ("--cell", "transformer"), ("unknown --cell 'transformer'",)),
        ("fit", ("--loss", "hinge"), ("unknown --loss 'hinge'",)),
        ("backtest", ("--optimizer", "lbfgs"), ("unknown --optimizer 'lbfgs'",)),
        ("fit", ("--dropout", "1.5"), ("--dropout must lie in [0, 1), got 1.5",)),
        ("fit", ("--lr", "0"), ("--lr must be a positive number, got 0.0",)),
        ("fit", ("--seq2seq", "--bidirectional"), ("--seq2seq cannot be combined",)),
        ("fit", ("--transform", "cube"), ("unknown --transform 'cube'",)),
        ("backtest", ("--transform", "boxcox"), ("unknown --transform 'boxcox'",)),
    ],
)
def test_bad_neural_settings_give_one_error_line(
    capsys: pytest.CaptureFixture[str],
    csv_file: Path,
    tmp_path: Path,
    command: str,
    option: tuple[str, ...],
    fragments: tuple[str, ...],
) -> None:
    where = ("--out", str(tmp_path / "m")) if command == "fit" else ("--val-size", "40")
    run = run_main(
        capsys, command, str(csv_file), "--model", "rnn", *where, *TINY, *option, "--quiet"
    )
    assert_one_error_line(run, *fragments)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("command", ["fit", "backtest"])
def test_bad_settings_fail_before_any_work(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path, command: str
) -> None:
    if command == "fit":
        where: tuple[str, ...] = ("--model", "rnn", "--out", str(tmp_path / "m"))
    else:  # dnn ignores --cell and would be trained in full before rnn fails
        where = ("--model", "dnn", "--model", "rnn", "--val-size", "40")
    run = run_main(capsys, command, str(csv_file), *where, *TINY, "--cell", "transformer")
    if command == "backtest":  # dnn says it has no use for --cell, then rnn refuses it
        warning, *rest = run.err.splitlines(keepends=True)
        assert warning == "seqcast: warning: dnn has no recurrent layers; --cell not used\n"
        run = replace(run, err="".join(rest))
    assert_one_error_line(run, "unknown --cell 'transformer'")


def test_lr_find_refuses_a_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    run = run_main(capsys, "lr-find", "synthetic", "--model", "naive", "--season", "1")
    assert_one_error_line(run, "lr-find needs a neural model; 'naive' has no learning rate")


def test_fit_saves_the_chosen_transform(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path
) -> None:
    run = run_main(
        capsys, "fit", str(csv_file), "--model", "rnn", "--out", str(tmp_path / "m"), *TINY,
        "--transform", "sqrt", "--quiet",
    )  # fmt: skip
    assert run.code == 0, run
    loaded = load_model(tmp_path / "m").forecaster
    assert isinstance(loaded, NeuralForecaster) and loaded.transform == "sqrt"
    np.testing.assert_array_equal(loaded.scaler_.power_, [0.5])


def test_dnn_names_the_recurrent_options_it_does_not_use(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path
) -> None:
    run = run_main(
        capsys, "fit", str(csv_file), "-m", "dnn", "--out", str(tmp_path / "m"), *TINY,
        "--cell", "lstm", "--bidirectional", "--quiet",
    )  # fmt: skip
    assert run.code == 0, run.err
    assert run.err.splitlines() == [
        "seqcast: warning: dnn has no recurrent layers; --cell, --bidirectional not used"
    ]
    assert "cell" not in load_model(tmp_path / "m").forecaster.get_config()
