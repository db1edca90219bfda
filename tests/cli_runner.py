"""Runs ``seqcast.cli.main`` in process and captures its exit code and output."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from seqcast.cli import main

#: Tiny neural settings for command-line runs (seconds, not minutes).
TINY = ("--epochs", "2", "--hidden-size", "4", "--window", "6", "--batch-size", "64",
        "--season", "1")  # fmt: skip


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def assert_one_error_line(run: Run, *fragments: str) -> None:
    """The command failed with exit code 2 and one ``seqcast: error:`` line holding each
    fragment, without a traceback."""
    assert run.code == 2, run
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("seqcast: error: "), run.err
    assert "Traceback" not in run.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
