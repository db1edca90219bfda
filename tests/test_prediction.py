"""seqcast/prediction.py: the timestamps after a history, shared by ``seqcast predict --data``
and the service, and the table ``predict`` writes; hand-computed answers as the oracles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from seqcast.data import load_series
from seqcast.errors import DataError
from seqcast.forecasters.registry import create
from seqcast.persistence import load_model, save_model
from seqcast.prediction import continue_timestamps, future_times, predict_saved

DAILY: dict[str, Any] = {"freq": "D", "step": 1.0, "time_col": "date"}
NUMERIC: dict[str, Any] = {"freq": None, "step": 0.5, "time_col": "t"}
BARE: dict[str, Any] = {"freq": None, "step": 1.0, "time_col": None}


def test_dates_continue_at_the_model_frequency() -> None:
    given = pd.date_range("2024-02-26", periods=3, freq="D")
    got = future_times(given, 3, DAILY)
    assert list(got) == list(pd.to_datetime(["2024-02-29", "2024-03-01", "2024-03-02"]))


def test_numbers_continue_at_the_model_step() -> None:
    got = future_times(pd.Index([1.0, 1.5, 2.0]), 2, NUMERIC)
    assert list(got) == [2.5, 3.0] and got.name == "t"


def test_a_model_without_dates_takes_the_spacing_of_the_history() -> None:
    assert list(future_times(pd.Index([10.0, 20.0, 30.0]), 2, BARE)) == [40.0, 50.0]
    hours = ["2024-01-01T01:00:00", "2024-01-01T02:00:00", "2024-01-01T03:00:00"]
    assert continue_timestamps(hours, 1, BARE, "m") == ["2024-01-01T04:00:00"]


@pytest.mark.parametrize(
    ("given", "data", "message"),
    [
        (pd.date_range("2024-01-01", periods=3, freq="W"), DAILY, "frequency 'D': timestamp 1"),
        (pd.Index([1.0, 1.5, 2.5]), NUMERIC, "step 0.5: timestamp 2 is 2.5, expected 2"),
        (pd.Index([1.0, 2.0]), DAILY, "trained on dated rows"),
        (pd.date_range("2024-01-01", periods=3, freq="D"), NUMERIC, "numeric time column"),
        (pd.Index([3.0, 2.0, 1.0]), BARE, "must increase: timestamp 1"),
    ],
)
def test_histories_off_the_model_spacing_are_refused(
    given: pd.Index, data: dict[str, Any], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        future_times(given, 2, data)


def test_a_series_of_several_is_named_in_the_message() -> None:
    given = pd.date_range("2024-01-01", periods=3, freq="W")
    with pytest.raises(DataError, match=r"^series 'b': timestamps must follow"):
        future_times(given, 2, DAILY, series="series 'b'")


def test_the_service_and_predict_give_the_same_timestamps() -> None:
    given = pd.date_range("2024-03-30", periods=4, freq="D")
    table = future_times(given, 3, DAILY)
    json = continue_timestamps([t.isoformat() for t in given], 3, DAILY, "m")
    assert [t.isoformat() for t in table] == json


def test_predict_saved_forecasts_after_the_training_data_and_after_newer_data(
    tmp_path: Path,
) -> None:
    dates = pd.date_range("2024-01-01", periods=60, freq="D")
    frame = pd.DataFrame({"date": dates, "y": np.arange(60.0)})
    data = load_series(frame, time_col="date")
    model = create("naive", window=3).fit([data.series[0].values], 1)
    saved = load_model(save_model(model, tmp_path / "m", data))

    table = predict_saved(saved, 2)
    assert list(table.columns) == ["date", "y"]
    assert list(table["date"]) == list(pd.to_datetime(["2024-03-01", "2024-03-02"]))
    assert list(table["y"]) == [59.0, 59.0]  # naive: the last value

    newer = load_series(frame.iloc[10:20], time_col="date")
    table = predict_saved(saved, 1, newer)
    assert list(table["date"]) == [pd.Timestamp("2024-01-21")] and list(table["y"]) == [19.0]
    with pytest.raises(DataError, match="horizon must be at least 1, got 0"):
        predict_saved(saved, 0)
