"""Review of the recurrent forecasters on the command line: saving over a folder, predict's
horizon, edited model folders, repeated warnings, and every option reaching the model.

Models are tiny (hidden size 4, two epochs, 200 points); oracles are the same model fitted in
process, or counts worked out by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_runner import TINY, assert_one_error_line, run_main

from seqcast.data import load_series
from seqcast.data.seasonality import estimate_season
from seqcast.errors import ModelFormatError
from seqcast.forecasters.neural import NeuralForecaster
from seqcast.forecasters.registry import create_for, forecaster_class
from seqcast.persistence import load_model, save_model


def values_of(csv_file: Path) -> np.ndarray:
    return pd.read_csv(csv_file)[["y"]].to_numpy(dtype=np.float64)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ------------------------------------------------------- saving over an existing path
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


def test_save_model_refuses_a_file_or_a_foreign_folder_but_replaces_a_model(
    tmp_path: Path,
) -> None:
    data = load_series(np.arange(40.0))
    model = create_for("naive", dict()).fit([data.series[0].values], 1)
    file = tmp_path / "forecast.csv"
    file.write_text("keep me\n")
    with pytest.raises(ModelFormatError, match="is a file, not a model folder"):
        save_model(model, file, data)
    assert file.read_text() == "keep me\n"
    foreign = tmp_path / "project"
    foreign.mkdir()
    (foreign / "model.json").write_text('{"format": "another-tool"}')
    with pytest.raises(ModelFormatError, match="holds no seqcast model"):
        save_model(model, foreign, data)
    assert snapshot(foreign) == {"model.json": b'{"format": "another-tool"}'}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forecast.csv", "project"]

    empty = tmp_path / "empty"
    empty.mkdir()
    save_model(model, empty, data)
    save_model(model, empty, data)  # an earlier model is replaced
    assert load_model(empty).forecaster.name == "naive"


# ------------------------------------------------------------------- predict's horizon
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


# ----------------------------------------------------------------- edited model folders
@pytest.fixture
def linear_folder(tmp_path: Path) -> Path:
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2021-01-01", periods=80, freq="D"),
            "y": np.sin(np.arange(80.0)) + 10.0,
        }
    )
    data = load_series(frame)
    model = create_for("linear", dict(window=6)).fit([data.series[0].values], 1)
    return save_model(model, tmp_path / "model", data)


def edit(folder: Path, change: str) -> None:
    config = json.loads((folder / "model.json").read_text())
    if change == "window":
        config["config"]["window"] = 7  # the stored context and weights hold 6 steps
    elif change == "columns":
        config["data"]["columns"] = []
    elif change == "freq":
        config["data"]["freq"] = "fortnightly"
    elif change == "no-series":
        config["data"]["series"] = []
    elif change == "last-time":
        config["data"]["series"][0]["last_time"] = "yesterday"
    (folder / "model.json").write_text(json.dumps(config))


CHANGES = ["window", "columns", "freq", "no-series", "last-time"]


@pytest.mark.parametrize("change", CHANGES)
def test_an_edited_model_json_is_refused_when_loading(linear_folder: Path, change: str) -> None:
    edit(linear_folder, change)
    with pytest.raises(ModelFormatError, match="is inconsistent"):
        load_model(linear_folder)


@pytest.mark.parametrize("change", CHANGES)
def test_predict_from_an_edited_model_json_is_one_error_line(
    capsys: pytest.CaptureFixture[str], linear_folder: Path, change: str
) -> None:
    edit(linear_folder, change)
    run = run_main(capsys, "predict", str(linear_folder))
    assert_one_error_line(run, "is inconsistent")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        # four times the recurrent weights of the saved tanh cells: torch lists every mismatch
        ({"config": {"cell": "lstm"}}, "size mismatch"),
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
    (folder / "model.json").write_text(json.dumps(config))
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


# ----------------------------------------------------------- short series name their file
def test_predict_with_too_short_data_names_the_file(
    capsys: pytest.CaptureFixture[str], linear_folder: Path, tmp_path: Path
) -> None:
    short = tmp_path / "recent.csv"
    pd.DataFrame({"date": pd.date_range("2021-03-22", periods=4, freq="D"), "y": 1.0}).to_csv(
        short, index=False
    )
    run = run_main(capsys, "predict", str(linear_folder), "--data", str(short))
    assert_one_error_line(run, f"--data {short}: ", "has 4 points; the model needs the last 6")


def test_lr_find_on_too_short_a_file_names_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    short = tmp_path / "short.csv"
    pd.DataFrame({"y": np.arange(24.0)}).to_csv(short, index=False)  # 19 to train on
    run = run_main(capsys, "lr-find", str(short), "--window", "20", "--val-size", "5", "--quiet")
    assert_one_error_line(run, str(short), "needs training series of at least 21 points")
