"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_first_python_example_is_the_dataframe_workflow() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks and "seqcast.Forecast(" in blocks[0]


def test_python_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    arrays = [b for b in blocks if "seqcast.backtest(" in b]
    assert arrays, "the README has no array example"
    exec(compile(arrays[0], str(README), "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed[:3]] == ["naive", "snaive", "rnn"]
    assert printed[-1] == "(1, 5, 1)"


def test_long_frame_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    frame = [b for b in blocks if "seqcast.Forecast(" in b]
    assert frame, "the README has no DataFrame example"
    exec(compile(frame[0], str(README), "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "(21, 4) (42, 6)"
    assert printed[1].split() == ["metric", "snaive", "rnn"]
    assert [line.split()[0] for line in printed[2:]] == ["smape", "mase"]


def test_first_commands_are_setup_and_tests() -> None:
    text = README.read_text()
    first = re.search(r"```bash\n(.*?)```", text, flags=re.S)
    assert first is not None
    lines = [line for line in first.group(1).splitlines() if line and not line.startswith("#")]
    assert "constraints.txt" in lines[0] and "seqcast demo" in lines[0]
    ci = (README.parent / ".ci" / "run").read_text()
    assert lines[1] in ci  # CI runs exactly the README's test command


def test_quantile_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    frame = next(b for b in blocks if "seqcast.Forecast(" in b)
    bands = [b for b in blocks if "level=[80, 95]" in b]
    assert bands, "the README has no quantile example"
    exec(compile(frame + bands[0], str(README), "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[4].split() == ["metric", "snaive", "rnn"]
    assert [line.split()[0] for line in printed[5:]] == ["wql", "coverage_80"]
    for line in printed[5:]:
        assert all(0.0 <= float(v) <= 1.0 for v in line.split()[1:])
