"""The HTML report: self-contained, valid, and rendered by headless Chromium without errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from seqcast.data import load_series, split_indices, synthetic_series
from seqcast.report import ReportResult, build_report

MODELS = ("naive", "snaive", "linear", "rnn")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ReportResult:
    values = synthetic_series(length=400, period=50, amplitude=10, noise_level=1.0)
    data = load_series(values.astype(np.float64))
    splits = split_indices(data, val_size=80)
    options = dict(window=10, season=50, epochs=3, hidden_size=4, patience=0)
    out = tmp_path_factory.mktemp("report")
    return build_report(data, splits, out, models=MODELS, settings=options, title="test report")


class _Collector(HTMLParser):
    """Collects tags, attributes and unclosed elements of a document."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
            return
        self.stack.pop()


def test_report_is_self_contained_and_well_formed(report: ReportResult) -> None:
    text = report.html_path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    parser = _Collector()
    parser.feed(text)
    assert parser.errors == [] and parser.stack == []
    # Every image is embedded; nothing points outside the file.
    sources = [value for tag, name, value in parser.attributes if name in ("src", "href")]
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    without_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert not re.search(r"(https?:)?//[a-z]", without_images)
    assert "<script" not in text
    # The figures of the issue: split, forecasts, residuals, training, lr finder, leaderboard,
    # the fan chart of the best model's intervals and its forecast past the end of the data.
    assert set(report.figures) == {
        "series", "forecasts", "residuals", "training", "lr_finder", "leaderboard", "fan",
        "future",
    }  # fmt: skip
    assert parser.tags.count("img") == len(report.figures)


def test_report_shows_the_leaderboard_and_the_data_summary(report: ReportResult) -> None:
    text = report.html_path.read_text()
    table = text[text.index('<table id="leaderboard">') : text.index("</table>")]
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td><td>([0-9.]+)</td>", table)
    assert [int(rank) for rank, _, _ in rows] == list(range(1, len(MODELS) + 1))
    assert sorted(name for _, name, _ in rows) == sorted(MODELS)
    maes = [float(mae) for _, _, mae in rows]
    assert maes == sorted(maes)  # best first
    assert [r.model for r in report.board.results] == [name for _, name, _ in rows]
    for key in ("length", "frequency", "missing values", "seasonal period"):
        assert f"<dt>{key}</dt>" in text
    assert "the autocorrelation of the training part suggests 50" in text


def test_report_holds_a_calibration_table_of_every_model(report: ReportResult) -> None:
    text = report.html_path.read_text()
    table = text[text.index('<table id="calibration">') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr><td>([^<]+)</td><td>(conformal|network|none)</td>", table)
    assert sorted(name for name, _ in rows) == sorted(MODELS)
    for result in report.board.results:
        held = result.probabilistic["coverage_80"]
        assert held is not None and f"{100 * held:.1f} %" in table


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    _chromium() is None and not os.environ.get("CI"),
    reason="Chromium is not installed here (.ci/run installs it; CI always runs this test)",
)
def test_report_renders_in_headless_chromium(report: ReportResult, tmp_path: Path) -> None:
    binary = _chromium()
    assert binary is not None, "CI must have Chromium: .ci/run installs Debian's package"
    common = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--no-first-run", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
    ]  # fmt: skip
    url = report.html_path.resolve().as_uri()
    shot = tmp_path / "report.png"
    rendered = subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,2400", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    console = [line for line in rendered.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
    # The screenshot shows something: not a blank page.
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[0] >= 2000 and float(pixels[..., :3].std()) > 0.05
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<table id="leaderboard">' in dom.stdout
    for name in MODELS:
        assert f"<td>{name}</td>" in dom.stdout


def test_a_report_replaces_only_an_earlier_report_and_never_a_users_folder(
    tmp_path: Path,
) -> None:
    """Issue 19: `report --out` overwrote what was there without a word. A report folder is
    replaced whole (the old report or the new one, never half); a folder holding anything a
    report does not write is refused before any backtest."""
    from seqcast.errors import DataError
    from seqcast.report import REPORT_FILES, check_report_destination

    data = load_series(synthetic_series(length=200, period=20).astype(np.float64))
    splits = split_indices(data, val_size=40)
    out = tmp_path / "report"
    assert not check_report_destination(out)
    first = build_report(data, splits, out, models=("naive",), settings={"window": 5})
    assert {p.name for p in out.iterdir()} <= REPORT_FILES and first.html_path.exists()
    assert check_report_destination(out)  # an earlier report: the CLI says it replaces it
    build_report(data, splits, out, models=("naive", "linear"), settings={"window": 5})
    assert "linear" in (out / "report.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no leftovers
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"holds notes\.txt, which a report does not write"):
        build_report(data, splits, out, models=("naive",), settings={"window": 5})
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(DataError, match="is a file, not a report folder"):
        check_report_destination(out / "notes.txt")
