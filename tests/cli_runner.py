"""Runs ``seqcast.cli.main`` in process and captures its exit code and output."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from seqcast.cli import main


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
