"""Shared fixtures: small files in tmp_path and the course series, built once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from seqcast.data.synthetic import course_series

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


def pytest_configure(config: pytest.Config) -> None:
    # pandas 3 deprecates infer_freq returning a string and offset.name; the package still
    # relies on both. The warnings would repeat in every test that loads dated data, so they
    # are silenced here and pinned once each by the xfail tests
    # test_loading.py::test_loading_emits_no_pandas_deprecation_warning and
    # test_seasonality.py::test_season_from_freq_emits_no_pandas_deprecation_warning.
    config.addinivalue_line(
        "filterwarnings", "ignore:A future version of pandas will return a BaseOffset"
    )
    config.addinivalue_line("filterwarnings", "ignore:The 'name' property is deprecated")
