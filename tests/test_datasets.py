"""Built-in datasets load offline with their documented lengths, targets and frequencies."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

from seqcast.data import DATASETS, course_series, load_dataset

EXPECTED = {
    # name: (length, targets, freq, season, n_features)
    "synthetic": (1461, ("y",), None, 365, 1),
    "sunspots": (3235, ("Monthly Mean Total Sunspot Number",), "ME", 132, 1),
    "etth1": (17420, ("OT",), "h", 24, 7),
    "etth2": (17420, ("OT",), "h", 24, 7),
}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a built-in dataset tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_every_dataset_is_listed() -> None:
    assert set(DATASETS) == set(EXPECTED)


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dataset_loads_offline(name: str) -> None:
    length, targets, freq, season, n_features = EXPECTED[name]
    data = load_dataset(name)
    info = DATASETS[name]
    assert data.lengths == [length]
    assert data.targets == targets == info.targets
    assert data.freq == freq
    assert data.season == season == info.season
    assert data.source == name
    assert data.n_features == n_features
    values = data.series[0].values
    assert values.dtype == np.float64
    assert np.isfinite(values).all()
    assert 0 < info.val_size < length
    assert info.description and info.source


def test_synthetic_dataset_is_the_course_series() -> None:
    data = load_dataset("synthetic")
    np.testing.assert_array_equal(data.series[0].values[:, 0], course_series().astype(np.float64))
    assert data.series[0].time is None
    assert DATASETS["synthetic"].val_size == 461


def test_sunspots_dates() -> None:
    data = load_dataset("sunspots")
    time = data.series[0].time
    assert time[0] == pd.Timestamp("1749-01-31")
    assert time[-1] == pd.Timestamp("2018-07-31")
    assert data.series[0].values[0, 0] == 96.7  # first row of the shipped file
    assert list(data.future_time(data.series[0], 2)) == [
        pd.Timestamp("2018-08-31"),
        pd.Timestamp("2018-09-30"),
    ]


def test_etth1_channels_and_split() -> None:
    data = load_dataset("etth1")
    assert data.columns == ("OT", "HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL")
    time = data.series[0].time
    assert time[0] == pd.Timestamp("2016-07-01 00:00")
    assert time[1] - time[0] == pd.Timedelta(hours=1)
    assert DATASETS["etth1"].val_size == 17420 - 11520  # the usual 12 + 4 months for training


def test_dataset_options_override_the_defaults() -> None:
    data = load_dataset("etth2", targets=["HUFL"], features=["OT"])
    assert data.columns == ("HUFL", "OT")
    assert data.season == 24
    data = load_dataset("etth2", targets=None)  # None means: the default
    assert data.targets == ("OT",)


def test_unknown_dataset() -> None:
    with pytest.raises(KeyError):
        load_dataset("weather")
