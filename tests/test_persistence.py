"""Model folders: round trip for every baseline, refusal of anything tampered or edited, what
saving may replace, atomic saves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from model_folders import CHANGES, edit, snapshot, write_signed

from seqcast.data import load_series
from seqcast.data.frame import SeriesData
from seqcast.errors import ModelFormatError, SeqcastError
from seqcast.forecasters.base import Forecaster
from seqcast.forecasters.registry import BASELINES, create_for
from seqcast.persistence import FORMAT_VERSION, load_model, save_model

NAMES = sorted(BASELINES)


def daily_data(n: int = 120, channels: int = 2) -> SeriesData:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n, channels)).cumsum(axis=0) + 20.0)
    frame.columns = [f"c{i}" for i in range(channels)]
    frame.insert(0, "date", pd.date_range("2021-01-01", periods=n, freq="D"))
    return load_series(frame, targets=["c0"])


def fitted(name: str, data: SeriesData, horizon: int = 3) -> Forecaster:
    model = create_for(name, dict(window=6, horizon=horizon, season=14))
    return model.fit([s.values for s in data.series], data.n_targets)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    data = daily_data()
    return save_model(fitted("linear", data), tmp_path / "model", data)


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_gives_the_same_forecasts(tmp_path: Path, name: str) -> None:
    data = daily_data()
    model = fitted(name, data)
    folder = save_model(model, tmp_path / "model", data, metrics={"mae": 1.5})
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "weights.safetensors"]

    loaded = load_model(folder)
    again = loaded.forecaster
    assert type(again) is type(model)
    assert again.get_config() == model.get_config()
    assert (again.n_features_, again.n_targets_) == (2, 1)
    values = data.series[0].values
    steps = model.context_length
    np.testing.assert_array_equal(loaded.contexts[0], values[-steps:])
    contexts = np.stack([values[o - steps : o] for o in (steps, 60, 120)])
    np.testing.assert_array_equal(again.predict(contexts), model.predict(contexts))
    np.testing.assert_array_equal(
        again.predict(loaded.contexts[0][None]), model.predict(values[None, -steps:])
    )
    assert loaded.targets == ["c0"]
    assert loaded.metadata["format_version"] == FORMAT_VERSION
    assert loaded.metadata["metrics"] == {"mae": 1.5}
    assert list(loaded.future_index(0, 2)) == [
        pd.Timestamp("2021-05-01"),  # 2021-01-01 + 120 days
        pd.Timestamp("2021-05-02"),
    ]


def test_training_ends_store_the_context_of_the_training_part(tmp_path: Path) -> None:
    data = daily_data()
    model = create_for("naive", dict()).fit([data.series[0].values[:100]], 1)
    loaded = load_model(save_model(model, tmp_path / "m", data, training_ends=[100]))
    np.testing.assert_array_equal(loaded.contexts[0], data.series[0].values[99:100])
    assert loaded.data["series"][0]["length"] == 100
    assert loaded.future_index(0, 1)[0] == pd.Timestamp("2021-04-11")  # day 100 after Jan 1


def test_unfitted_model_cannot_be_saved(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="cannot save a forecaster that is not fitted"):
        save_model(create_for("naive", dict()), tmp_path / "m", daily_data())


def test_saving_replaces_a_model_folder_whole_and_never_a_users_file_in_it(
    tmp_path: Path,
) -> None:
    data = daily_data()
    folder = tmp_path / "model"
    save_model(fitted("naive", data), folder, data)
    (folder / "notes.txt").write_text("the user's")
    with pytest.raises(ModelFormatError, match=r"also holds notes\.txt, which seqcast did not"):
        save_model(fitted("ma", data), folder, data)
    assert (folder / "notes.txt").read_text() == "the user's"
    assert load_model(folder).forecaster.name == "naive"
    (folder / "notes.txt").unlink()
    save_model(fitted("ma", data), folder, data)
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "weights.safetensors"]
    assert load_model(folder).forecaster.name == "ma"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folders left


# ------------------------------------------------------------------------- refusals
def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match=r"model folder '.*nowhere' does not exist"):
        load_model(tmp_path / "nowhere")


@pytest.mark.parametrize("missing", ["weights.safetensors", "model.json"])
def test_folder_without_a_file(saved: Path, missing: str) -> None:
    (saved / missing).unlink()
    with pytest.raises(ModelFormatError, match=f"has no {missing}; it is not a seqcast model"):
        load_model(saved)


@pytest.mark.parametrize("position", [0, 100, -1])
def test_tampered_weights_fail_the_checksum(saved: Path, position: int) -> None:
    weights = bytearray((saved / "weights.safetensors").read_bytes())
    weights[position] ^= 0x01  # flip one bit
    (saved / "weights.safetensors").write_bytes(bytes(weights))
    with pytest.raises(ModelFormatError, match=r"does not match the checksum in model\.json"):
        load_model(saved)


def test_truncated_weights_fail_the_checksum(saved: Path) -> None:
    weights = (saved / "weights.safetensors").read_bytes()
    (saved / "weights.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(ModelFormatError, match="checksum"):
        load_model(saved)


def test_json_that_does_not_parse(saved: Path) -> None:
    text = (saved / "model.json").read_text()
    (saved / "model.json").write_text(text[: len(text) // 2])
    with pytest.raises(ModelFormatError, match=r"model\.json is not valid JSON"):
        load_model(saved)


def edit_json(folder: Path, **changes: object) -> None:
    """Edits model.json and signs it again (see model_folders.write_signed)."""
    config = json.loads((folder / "model.json").read_text())
    for key, value in changes.items():
        if value is None:
            del config[key]
        else:
            config[key] = value
    write_signed(folder, config)


@pytest.mark.parametrize(
    "change",
    ["value", "key", "unsigned", "nested"],
)
def test_any_edit_of_model_json_is_refused_naming_the_file(saved: Path, change: str) -> None:
    config = json.loads((saved / "model.json").read_text())
    if change == "value":
        config["trained_at"] = "2000-01-01T00:00:00+00:00"
    elif change == "key":
        config["extra"] = 1
    elif change == "unsigned":
        del config["description_sha256"]
    else:
        config["metrics"]["mae"] = 0.0
    (saved / "model.json").write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match=r"model\.json was changed after seqcast wrote it"):
        load_model(saved)


def test_a_layout_change_alone_is_no_edit(saved: Path) -> None:
    config = json.loads((saved / "model.json").read_text())
    (saved / "model.json").write_text(json.dumps(config, indent=7, sort_keys=True))
    load_model(saved)


def test_json_of_another_format(saved: Path) -> None:
    edit_json(saved, format="something-else")
    with pytest.raises(ModelFormatError, match=r"model\.json is not a seqcast model description"):
        load_model(saved)
    (saved / "model.json").write_text("[1, 2, 3]")
    with pytest.raises(ModelFormatError, match="not a seqcast model description"):
        load_model(saved)


def test_json_with_a_different_checksum(saved: Path) -> None:
    edit_json(saved, weights_sha256="0" * 64)
    with pytest.raises(ModelFormatError, match="checksum"):
        load_model(saved)


@pytest.mark.parametrize("version", [2, 0])
def test_other_format_version(saved: Path, version: int) -> None:
    config = json.loads((saved / "model.json").read_text())
    config["format_version"] = version
    (saved / "model.json").write_text(json.dumps(config))
    with pytest.raises(ModelFormatError) as info:
        load_model(saved)
    message = str(info.value)
    assert f"uses model format version {version!r}" in message
    assert f"reads version {FORMAT_VERSION}" in message
    assert "refit the model" in message


@pytest.mark.parametrize("version", [None, "1", 1.0, True])
def test_a_format_version_that_is_not_an_integer_is_named_as_such(
    saved: Path, version: object
) -> None:
    """Issue 19: "uses version 1 ... reads version 1" read as a contradiction ('1' vs 1)."""
    config = json.loads((saved / "model.json").read_text())
    config["format_version"] = version
    (saved / "model.json").write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match=rf"gives format_version {re.escape(repr(version))}"
                       ", which is not an integer"):  # fmt: skip
        load_model(saved)


def test_a_model_folder_lost_in_an_interrupted_save_names_where_the_old_one_is(
    saved: Path,
) -> None:
    """A kill between the two renames of a save (where the folder swap is not available)
    leaves the old model beside the path; loading says where, and the next save restores it."""
    aside = saved.parent / f".{saved.name}.x1y2.old"
    saved.rename(aside)
    with pytest.raises(ModelFormatError, match=rf"does not exist: a save to it was interrupted "
                       rf"and left the previous model in '{re.escape(str(aside))}'"):  # fmt: skip
        load_model(saved)


@pytest.mark.parametrize(
    "changes",
    [{"fitted": None}, {"config": {"no_such_option": 1}}, {"data": {"columns": ["c0"]}}],
    ids=["no-fitted", "unknown-option", "data-without-series"],
)
def test_inconsistent_json(saved: Path, changes: dict[str, object]) -> None:
    edit_json(saved, **changes)
    with pytest.raises(ModelFormatError, match="is inconsistent"):
        load_model(saved)


def test_unknown_model_name_in_json(saved: Path) -> None:
    edit_json(saved, model="prophet")
    with pytest.raises(SeqcastError) as info:
        load_model(saved)
    assert isinstance(info.value, ModelFormatError)


@pytest.mark.parametrize("change", CHANGES)
def test_an_edited_model_json_is_refused_when_loading(linear_folder: Path, change: str) -> None:
    edit(linear_folder, change)
    with pytest.raises(ModelFormatError, match="is inconsistent"):
        load_model(linear_folder)


# ------------------------------------------------------- saving over an existing path
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


# ---------------------------------------------------------------------------- atomic
def test_failed_save_leaves_the_previous_folder_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = daily_data()
    folder = save_model(fitted("naive", data), tmp_path / "model", data)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def fail(self: Path, *args: object, **kwargs: object) -> int:
        raise OSError("disk full")

    # model.json is written last, after the weights: this fails midway through the folder
    monkeypatch.setattr(Path, "write_text", fail)
    with pytest.raises(OSError, match="disk full"):
        save_model(fitted("linear", data), folder, data)
    monkeypatch.undo()

    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert load_model(folder).forecaster.name == "naive"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left


def test_failed_first_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = daily_data()

    def fail(self: Path, *args: object, **kwargs: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", fail)
    with pytest.raises(OSError):
        save_model(fitted("naive", data), tmp_path / "model", data)
    assert list(tmp_path.iterdir()) == []


def test_a_file_given_as_a_model_folder_is_named_as_a_file(tmp_path: Path) -> None:
    path = tmp_path / "model.csv"
    path.write_text("a,b\n")
    with pytest.raises(ModelFormatError, match="is a file, not a model folder"):
        load_model(path)


def test_a_deeply_nested_model_json_is_refused_not_a_recursion_error(saved: Path) -> None:
    (saved / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelFormatError, match="nested too deeply"):
        load_model(saved)
