"""seqcast/console.py: what the command line shows. The progress bar lets go of the terminal
whatever happens; library messages get the command line's flags, and only where they name an
argument."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from seqcast.console import EpochBar, in_flags
from seqcast.forecasters.base import EpochEnd


def test_the_progress_bar_stops_when_training_fails() -> None:
    console = Console(file=io.StringIO(), force_terminal=True)
    with pytest.raises(RuntimeError, match="diverged"), EpochBar(False, console) as bar:
        bar(EpochEnd("rnn", 1, 10, 0.5, 0.4))
        assert bar.bar is not None and bar.bar.live.is_started
        live = bar.bar.live
        raise RuntimeError("diverged")
    assert bar.bar is None and not live.is_started


def test_a_quiet_bar_draws_nothing() -> None:
    stream = io.StringIO()
    with EpochBar(True, Console(file=stream, force_terminal=True)) as bar:
        bar(EpochEnd("rnn", 1, 10, 0.5, None))
    assert bar.bar is None and stream.getvalue() == ""


@pytest.mark.parametrize(
    ("message", "arguments", "expected"),
    [
        ("window must be at least 1, got 0", ("window",), "--window must be at least 1, got 0"),
        ("batch_size must be at least 1", ("batch_size",), "--batch-size must be at least 1"),
        ("name the value column with targets", ("targets",), "name the value column with --target"),
        (
            "an exploding loss (5.2) ... lower lr (e.g. 0.1) or lr_find, or use loss huber",
            ("lr", "lr_find", "loss huber"),
            "an exploding loss (5.2) ... lower --lr (e.g. 0.1) or 'seqcast lr-find', or use "
            "--loss huber",
        ),
        (
            "file '/tmp/window/season.csv': series 'season' has 3 points; use a longer season",
            ("season", "window"),
            "file '/tmp/window/season.csv': series 'season' has 3 points; use a longer --season",
        ),
        ("unknown cell 'gpt'", ("cell",), "unknown --cell 'gpt'"),
        ("see the season_length column", ("season",), "see the season_length column"),
    ],
)
def test_messages_get_flags_where_they_name_an_argument(
    message: str, arguments: tuple[str, ...], expected: str
) -> None:
    assert in_flags(message, arguments) == expected
