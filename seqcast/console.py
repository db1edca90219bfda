"""What the command line shows: the leaderboard table, the training progress bar, and library
messages with the command line's flags."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
from rich.console import Console, Group
from rich.table import Table

from seqcast.evaluation.leaderboard import Leaderboard
from seqcast.forecasters.base import EpochEnd

__all__ = ["FLAGS", "EpochBar", "csv_text", "in_flags", "leaderboard_table", "one_line"]


class EpochBar:
    """A rich progress bar on stderr with the losses of the last epoch: the command line's
    ``on_epoch`` listener (the library never draws)."""

    def __init__(self, quiet: bool, console: Console) -> None:
        self.quiet = quiet
        self.console = console
        self.bar: Any = None

    def __call__(self, end: EpochEnd) -> None:
        if self.quiet:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        if self.bar is None or end.epoch == 1:
            self.close()
            self.bar = Progress(
                TextColumn(f"training {end.model}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[losses]}"),
                console=self.console,
                transient=True,
            )
            self.task = self.bar.add_task("train", total=end.epochs, losses="")
            self.bar.start()
        losses = f"loss {end.train_loss:.4f}"
        if end.val_loss is not None:
            losses += f"  val {end.val_loss:.4f}"
        self.bar.update(self.task, completed=end.epoch, losses=losses)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __enter__(self) -> EpochBar:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()  # on errors and Ctrl-C too: the terminal gets its cursor back


def leaderboard_table(board: Leaderboard) -> Group:
    """The leaderboard for a terminal: the point scores, and with quantiles a second table of
    the interval scores. No number is ever cut short: a cell too wide for the terminal wraps."""
    title = (
        f"{board.dataset}: window {board.window}, horizon {board.horizon}, "
        f"{board.describe_validation()} per series, season {board.season}"
    )
    point = [
        [
            result.model,
            _number(result.metrics["mae"]),
            _number(result.metrics["rmse"]),
            _number(result.metrics["smape"], 2),
            _number(result.metrics["mase"]),
            f"{result.fit_seconds:.2f}",
            f"{result.predict_seconds:.3f}",
            "-" if result.epochs is None else f"{result.epochs} ({result.best_epoch})",
        ]
        for result in board.results
    ]
    heads = ["model", "MAE", "RMSE", "sMAPE %", "MASE", "fit s", "predict s", "epochs (kept)"]
    tables = [_table(title, heads, point)]
    if board.quantiles:
        scores = next((r.probabilistic for r in board.results if r.probabilistic), {})
        coverages = sorted(
            (k for k in scores if k.startswith("coverage_")),
            key=lambda k: float(k.removeprefix("coverage_")),
        )
        heads = ["model", "from", "WQL"]
        heads += [f"cover {k.removeprefix('coverage_')}%" for k in coverages]
        heads += ["MSIS"] if "msis" in scores else []
        rows = []
        for result in board.results:
            found = result.probabilistic
            row = [result.model, result.quantile_source or "-", _number(found.get("wql"), 4)]
            row += [_number(None if found.get(k) is None else 100.0 * found[k], 1)  # type: ignore[operator]
                    for k in coverages]  # fmt: skip
            row += [_number(found.get("msis"))] if "msis" in scores else []
            rows.append(row)
        quantiles = ", ".join(f"{q:g}" for q in board.quantiles)
        tables.append(_table(f"quantiles {quantiles}", heads, rows))
    return Group(*tables)


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(title: str, heads: list[str], rows: list[list[str]]) -> Table:
    """A table whose value columns are as wide as their longest value (headers may wrap)."""
    table = Table(title=title)
    for k, head in enumerate(heads):
        widest = max((len(row[k]) for row in rows), default=1)
        if k == 0:
            table.add_column(head, no_wrap=True, min_width=widest)
        else:
            table.add_column(head, justify="right", min_width=widest, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


#: Library names whose flag (or command) is not the name with dashes.
FLAGS = {
    "targets": "--target",
    "features": "--feature",
    "lr_find": "'seqcast lr-find'",
    "address": "--engine-address",
}


def in_flags(message: str, arguments: tuple[str, ...]) -> str:
    """A library message with the arguments it names spelt as this command line's flags:
    ``window must be at least 1`` -> ``--window must be at least 1``."""
    for phrase in arguments:
        name, _, rest = phrase.partition(" ")
        flag = FLAGS.get(name, "--" + name.replace("_", "-"))
        spelt = f"{flag} {rest}" if rest else flag
        # Not inside a path, a quoted name or a file name ('/tmp/window/x.csv', series 'season').
        message = re.sub(rf"(?<![-\w/'.]){re.escape(phrase)}(?![\w/'])", spelt, message)
    return message


#: The longest run of characters without a space that a message shows whole.
LONGEST_WORD = 120


def one_line(message: str) -> str:
    """A message as one line of readable length: line breaks become spaces, and a run longer
    than :data:`LONGEST_WORD` characters (a 5 MB field quoted in an error) is cut in the
    middle, saying how much was left out.

    Example:
        >>> line = one_line("bad value '" + "x" * 5_000_000 + "'\\nin row 2")
        >>> len(line) < 200, line.endswith("in row 2"), "(4999912 characters left out)" in line
        (True, True, True)
    """
    flat = " ".join(message.splitlines())

    def cut(match: re.Match[str]) -> str:
        word = match.group(0)
        head, tail = LONGEST_WORD // 2, LONGEST_WORD // 4
        return f"{word[:head]}…({len(word) - head - tail} characters left out)…{word[-tail:]}"

    return re.sub(rf"\S{{{LONGEST_WORD + 1},}}", cut, flat)


#: What a spreadsheet reads as the start of a formula (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as CSV for people to open: a header or a text cell that a spreadsheet would
    run as a formula (``=cmd|' /C calc'!A0``) is written with a leading apostrophe, which
    shows it as text; numbers, negative ones included, are written as they are.

    Example:
        >>> csv_text(pd.DataFrame({"=1+1": ["@x", "ok"], "y": [-1.5, 2.0]}))
        "'=1+1,y\\n'@x,-1.5\\nok,2.0\\n"
    """

    def safe(value: object) -> object:
        if isinstance(value, str) and value.startswith(FORMULA_STARTS):
            return "'" + value
        return value

    columns = [safe(str(c)) for c in frame.columns]
    cells = frame.copy()
    for column in cells.columns:
        if not pd.api.types.is_numeric_dtype(cells[column]):
            cells[column] = cells[column].map(safe)
    return str(cells.set_axis(columns, axis=1).to_csv(index=False))
