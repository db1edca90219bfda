"""seqcast/data/loading.py under a fuzzer (issue 19): random CSV files (headers, delimiters,
numbers, dates, text, gaps, encodings, raw bytes) either load into finite series of the shape
their columns say, or are refused with one line (a DataError); never another exception.

Bounded for CI: a fixed number of derandomized examples, so every run tries the same files.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqcast.data.loading import load_series
from seqcast.errors import DataError

NAMES = st.sampled_from(
    ["y", "sales", "date", "ds", "time", "Month", "x", "", "=1+1", "é", "a b", "_seqcast_row",
     "unique_id", "1", "nan"]
)  # fmt: skip
NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
    st.sampled_from(["1e308", "-1e200", "1e30", "0", "-0.0", "1,5", "1 000", "NaN", "inf",
                     "", " ", "true", "x", "１２"]),
)  # fmt: skip
DATES = st.sampled_from(
    ["2020-01-01", "2020-01-02", "2020-02-01", "01/02/2020", "2020-01", "1949-01", "2020-13-01",
     "yesterday", "2020-01-01 00:00:00", "", "2020-01-01T12:00"]
)  # fmt: skip


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A small CSV file, sometimes malformed on purpose."""
    if draw(st.integers(0, 9)) == 0:  # raw bytes: any encoding, any structure
        return draw(st.binary(max_size=200))
    columns = draw(st.lists(NAMES, min_size=1, max_size=4))
    separator = draw(st.sampled_from([",", ",", ",", ";", "\t"]))
    dated = draw(st.booleans())
    rows = []
    for k in range(draw(st.integers(0, 12))):
        cells = [draw(NUMBERS) for _ in columns]
        if dated and cells:
            cells[0] = draw(DATES) if draw(st.integers(0, 3)) == 0 else f"2020-01-{k + 1:02d}"
        if draw(st.integers(0, 15)) == 0:
            cells = cells[: draw(st.integers(0, len(cells)))]  # a ragged row
        rows.append(separator.join(cells))
    text = "\n".join([separator.join(columns), *rows]) + draw(st.sampled_from(["", "\n", "\r\n"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16"]))
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode("utf-8")


@settings(max_examples=300, derandomize=True, suppress_health_check=list(HealthCheck))
@given(content=csv_files(), fill=st.sampled_from(["error", "ffill", "interpolate", "drop"]))
def test_any_csv_loads_into_finite_series_or_is_refused_in_one_line(
    content: bytes, fill: str
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.csv"
        path.write_bytes(content)
        try:
            data = load_series(path, fill=fill)  # type: ignore[arg-type]
        except DataError as exc:
            message = str(exc)
            assert message and "\n" not in message and len(message) < 2_000, message
            return
    assert data.series, "loaded, but no series"
    for series in data.series:
        assert series.values.ndim == 2 and series.values.shape[1] == len(data.columns)
        assert len(series) >= 1 and np.isfinite(series.values).all()
        if series.time is not None:
            assert len(series.time) == len(series)


def test_the_fuzzer_draws_both_kinds_of_outcome() -> None:
    """The property above is only worth its name if some files load and some are refused."""
    outcomes = {"loaded": 0, "refused": 0}

    @settings(max_examples=200, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(content=csv_files())
    def count(content: bytes) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "data.csv"
            path.write_bytes(content)
            try:
                load_series(path)
                outcomes["loaded"] += 1
            except DataError:
                outcomes["refused"] += 1

    count()
    assert outcomes["loaded"] >= 5 and outcomes["refused"] >= 5, outcomes
