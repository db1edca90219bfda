"""The neural models on the command line, in process, with tiny settings.

Every run that fits is compared with the same model built and fitted in process: the command line
must add nothing but reading, splitting and printing. Settings it cannot use, model folders that
do not fit their weights, and training that diverges each end with one line on stderr.
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
from model_folders import write_signed

from seqcast.data import load_dataset
from seqcast.data.seasonality import estimate_season
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


def values_of(csv_file: Path) -> np.ndarray:
    return pd.read_csv(csv_file)[["y"]].to_numpy(dtype=np.float64)


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


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        # four times the recurrent weights of the saved tanh cells: the first mismatch named
        ({"config": {"cell": "lstm"}}, "the settings make weight net.rnn.weight_ih_l0 of shape"),
        ({"info": []}, "AttributeError"),  # the training history is read as a mapping
    ],
    ids=["cell", "info"],
)
def test_a_neural_model_json_that_does_not_fit_is_one_error_line(
    capsys: pytest.CaptureFixture[str],
    csv_file: Path,
    tmp_path: Path,
    change: dict[str, object],
    fragment: str,
) -> None:
    folder = tmp_path / "m"
    run = run_main(capsys, "fit", str(csv_file), "-m", "rnn", "--out", str(folder), *TINY)
    assert run.code == 0, run.err
    config = json.loads((folder / "model.json").read_text())
    for key, value in change.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    write_signed(folder, config)  # past the checksum, to the checks behind it
    run = run_main(capsys, "predict", str(folder))
    assert_one_error_line(run, "is inconsistent", fragment)


# --------------------------------------------------------------------- repeated warnings
def test_a_warning_about_the_settings_is_printed_once(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path
) -> None:
    run = run_main(
        capsys, "fit", str(csv_file), "-m", "rnn", "--out", str(tmp_path / "m"), *TINY,
        "--num-layers", "1", "--dropout", "0.2", "--quiet",
    )  # fmt: skip
    assert run.code == 0, run.err
    assert run.err.splitlines() == [
        "seqcast: warning: --dropout acts between recurrent layers and has no effect with "
        "--num-layers 1"
    ]


# ------------------------------------------------------------ every option, every model
OPTIONS = {
    "dnn": ("--num-layers", "3", "--dropout", "0.1", "--loss", "mae", "--optimizer", "sgd",
            "--lr", "0.003", "--patience", "1", "--schedule", "onecycle", "--seed", "3"),
    "rnn": ("--num-layers", "3", "--cell", "gru", "--bidirectional", "--dropout", "0.1",
            "--loss", "mse", "--optimizer", "adamw", "--patience", "0", "--schedule", "none",
            "--seed", "4", "--horizon", "2"),
    "lstm": ("--num-layers", "1", "--loss", "huber", "--optimizer", "adam", "--lr", "0.01",
             "--seq2seq", "--horizon", "3", "--patience", "5", "--seed", "5"),
    "gru": ("--cell", "rnn", "--unidirectional", "--loss", "mae", "--optimizer", "sgd",
            "--schedule", "plateau", "--transform", "none", "--seed", "6"),
    "cnn-lstm": ("--bidirectional", "--optimizer", "adamw", "--loss", "mse", "--horizon", "2",
                 "--transform", "sqrt", "--seed", "7", "--patience", "0"),
}  # fmt: skip
SETTINGS = {
    "dnn": dict(num_layers=3, dropout=0.1, loss="mae", optimizer="sgd", lr=0.003, patience=1,
                schedule="onecycle", seed=3),
    "rnn": dict(num_layers=3, cell="gru", bidirectional=True, dropout=0.1, loss="mse",
                optimizer="adamw", patience=0, schedule="none", seed=4, horizon=2),
    "lstm": dict(num_layers=1, loss="huber", optimizer="adam", lr=0.01, seq2seq=True, horizon=3,
                 patience=5, seed=5),
    "gru": dict(cell="rnn", bidirectional=False, loss="mae", optimizer="sgd",
                schedule="plateau", transform="none", seed=6),
    "cnn-lstm": dict(bidirectional=True, optimizer="adamw", loss="mse", horizon=2,
                     transform="sqrt", seed=7, patience=0),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_fit_passes_every_option_to_the_model_and_forecasts_as_in_process(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path, name: str
) -> None:
    folder = tmp_path / "m"
    run = run_main(
        capsys, "fit", str(csv_file), "-m", name, "--out", str(folder), *TINY, *OPTIONS[name],
        "--quiet",
    )  # fmt: skip
    assert run.code == 0, run.err
    saved = load_model(folder)
    settings: dict[str, object] = dict(
        window=6, season=1, epochs=2, hidden_size=4, batch_size=64, **SETTINGS[name]
    )
    model = forecaster_class(name)(**settings)
    assert isinstance(model, NeuralForecaster)
    values = values_of(csv_file)
    model.fit([values], 1)
    assert saved.forecaster.get_config() == model.get_config()
    for key, value in SETTINGS[name].items():
        assert saved.forecaster.get_config()[key] == value
    context = values[None, -model.context_length :]
    np.testing.assert_array_equal(saved.forecaster.predict(context), model.predict(context))
    history = json.loads((folder / "model.json").read_text())["info"]["history"]
    if SETTINGS[name].get("patience") == 0:  # no early stopping: exactly --epochs, no slice
        assert len(history["train_loss"]) == 2 and history["val_loss"] == []


def test_season_auto_is_the_estimate_from_the_series(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "m"
    tiny = [a for a in TINY if a not in ("--season", "1")]
    run = run_main(
        capsys, "fit", str(csv_file), "-m", "gru", "--out", str(folder), *tiny,
        "--season", "auto", "--quiet",
    )  # fmt: skip
    assert run.code == 0, run.err
    expected = estimate_season(values_of(csv_file)[:, 0])
    assert expected == 7  # the weekly season of the fixture
    assert load_model(folder).forecaster.get_config()["season"] == expected


def test_the_same_seed_gives_the_same_weights_file_run_after_run(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path
) -> None:
    def fit(seed: str, folder: str) -> bytes:
        run = run_main(
            capsys, "fit", str(csv_file), "-m", "cnn-lstm", "--out", str(tmp_path / folder),
            *TINY, "--dropout", "0.2", "--seed", seed, "--quiet",
        )  # fmt: skip
        assert run.code == 0, run.err
        return (tmp_path / folder / "weights.safetensors").read_bytes()

    first = fit("11", "a")
    assert fit("11", "b") == first
    assert fit("12", "c") != first


# ----------------------------------------------------------------------- divergence advice
@pytest.mark.parametrize("loss", ["huber", "mse"])
def test_divergence_advises_huber_only_to_those_not_using_it(
    capsys: pytest.CaptureFixture[str], csv_file: Path, tmp_path: Path, loss: str
) -> None:
    folder = tmp_path / "m"
    run = run_main(
        capsys, "fit", str(csv_file), "-m", "rnn", "--out", str(folder), *TINY,
        "--optimizer", "sgd", "--lr", "10000", "--loss", loss, "--quiet",
    )  # fmt: skip
    assert_one_error_line(run, "diverged at epoch 1", "at learning rate 1e+04", "--lr (e.g. 1e+03)")
    assert ("--loss huber" in run.err) == (loss != "huber")
    assert not folder.exists()  # nothing is saved from a run that never finished an epoch


def test_lr_find_on_too_short_a_file_names_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    short = tmp_path / "short.csv"
    pd.DataFrame({"y": np.arange(24.0)}).to_csv(short, index=False)  # 19 to train on
    run = run_main(capsys, "lr-find", str(short), "--window", "20", "--val-size", "5", "--quiet")
    assert_one_error_line(run, str(short), "needs training series of at least 21 points")


def test_lr_find_names_patience_0_among_the_settings_it_ignores(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = run_main(capsys, "lr-find", "synthetic", *TINY, "--patience", "0", "--quiet")
    assert run.code == 0, run.err
    assert "--patience not used" in run.err


def test_fit_on_many_series_with_a_short_one_pads_it_and_predict_forecasts_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A series shorter than the context no longer stops `fit`: it trains padded (one warning
    line says how many), and `predict` forecasts it as the in-process model does."""
    rng = np.random.default_rng(5)
    lengths = {"long": 80, "mid": 60, "short": 4}
    frame = pd.concat(
        pd.DataFrame({"id": name, "t": np.arange(n), "y": 50 + rng.normal(size=n).cumsum()})
        for name, n in lengths.items()
    )
    data = tmp_path / "many.csv"
    frame.to_csv(data, index=False)
    folder = tmp_path / "model"
    args = ("--id-col", "id", "--time-col", "t", *TINY)
    run = run_main(capsys, "fit", str(data), "-m", "rnn", "--out", str(folder), *args)
    assert run.code == 0, run.err
    assert "warning: rnn: 1 of 3 training series are shorter than its context" in run.err
    run = run_main(capsys, "predict", str(folder), "--horizon", "1")
    assert run.code == 0, run.err
    forecast = pd.read_csv(io.StringIO(run.out))
    assert forecast["id"].tolist() == ["long", "mid", "short"]
    model = tiny_model("rnn")
    histories = [g["y"].to_numpy()[:, None] for _, g in frame.groupby("id", sort=False)]
    with pytest.warns(Warning, match="shorter than its context"):
        model.fit(histories, 1)
        want = model.predict(model.last_contexts(histories, list(lengths)))[:, 0, 0]
    np.testing.assert_allclose(forecast["y"], want, rtol=1e-6)
