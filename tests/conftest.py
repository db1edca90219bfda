"""Shared fixtures: small files in tmp_path, the course series (built once per session) and a
saved model folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

from seqcast.data import load_series
from seqcast.data.synthetic import course_series, synthetic_series
from seqcast.forecasters.registry import create_for
from seqcast.persistence import save_model

WriteFile = Callable[[str, str | bytes], Path]

# No example database: the suite must not leave a .hypothesis folder in the repository.
settings.register_profile("seqcast", database=None, deadline=None)
settings.load_profile("seqcast")


@pytest.fixture
def write_file(tmp_path: Path) -> WriteFile:
    """Writes text or bytes to ``tmp_path / name`` and returns the path."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    return write


@pytest.fixture(scope="session")
def course() -> np.ndarray:
    """The 1,461-point course series (float32); read-only so that no test can alter it."""
    values = course_series()
    values.setflags(write=False)
    return values


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny networks train fastest on one thread, above all on a busy 2-core CI machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    """200 daily points with a weekly season and noise (the command-line tests' file)."""
    values = synthetic_series(length=200, period=7, amplitude=10.0, noise_level=1.0)
    frame = pd.DataFrame({"date": pd.date_range("2023-01-01", periods=200, freq="D"), "y": values})
    path = tmp_path / "daily.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def linear_folder(tmp_path: Path) -> Path:
    """A linear model (window 6) saved from 80 daily points (see tests/model_folders.py)."""
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2021-01-01", periods=80, freq="D"),
            "y": np.sin(np.arange(80.0)) + 10.0,
        }
    )
    data = load_series(frame)
    model = create_for("linear", dict(window=6)).fit([data.series[0].values], 1)
    return save_model(model, tmp_path / "model", data)
