"""What a report's reader sees: multi-step forecasts drawn as such, frequencies in words,
dates without a midnight time, plain axis numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqcast.data import load_series, split_indices
from seqcast.plotting import pyplot, save_figure
from seqcast.report import _stamp, build_report, describe_freq


@pytest.mark.parametrize(
    ("freq", "words"),
    [
        ("MS", "monthly, month start (pandas 'MS')"),
        ("D", "daily (pandas 'D')"),
        ("W-SUN", "weekly (pandas 'W-SUN')"),
        ("15min", "every 15 minutes (pandas '15min')"),
        ("QE-DEC", "quarterly, quarter end (pandas 'QE-DEC')"),
        ("2h", "every 2 hours (pandas '2h')"),
        ("C", "pandas frequency 'C'"),
        (None, None),
    ],
)
def test_frequencies_read_in_words(freq: str | None, words: str | None) -> None:
    assert describe_freq(freq) == words


def test_timestamps_drop_a_midnight_time_of_day() -> None:
    assert _stamp(pd.Timestamp("1949-01-01")) == "1949-01-01"
    assert _stamp(pd.Timestamp("1949-01-01 06:30")) == "1949-01-01 06:30:00"
    assert _stamp(3.0) == "3.0"


def test_value_axes_never_show_an_offset_or_a_power_of_ten(tmp_path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots()
    axes.plot([0.35501, 0.35502, 0.35504])  # matplotlib alone labels these "+3.55e-1"
    save_figure(figure, tmp_path / "f.png")
    figure.canvas.draw()
    assert axes.yaxis.get_offset_text().get_text() == ""
    assert all("e" not in t.get_text() for t in axes.get_yticklabels())


def test_a_multi_step_report_draws_errors_by_step_and_whole_paths(tmp_path: Path) -> None:
    months = pd.date_range("1990-01-01", periods=120, freq="MS")
    y = 100 + 10 * np.sin(np.arange(120) * 2 * np.pi / 12) + np.arange(120)
    frame = pd.DataFrame({"Month": months.strftime("%Y-%m"), "sales": y})
    path = tmp_path / "sales.csv"
    frame.to_csv(path, index=False)
    data = load_series(path)
    splits = split_indices(data, val_size=24)
    result = build_report(data, splits, tmp_path / "report", models=("naive", "snaive"),
                          settings={"horizon": 6, "season": 12})  # fmt: skip
    assert "horizon" in result.figures and result.figures["horizon"].is_file()
    text = result.html_path.read_text()
    assert "monthly, month start (pandas &#x27;MS&#x27;)" in text
    assert "1990-01-01 to 1999-12-01" in text
    assert "00:00:00" not in text


def test_the_report_forecasts_past_the_end_of_the_data_with_bands(tmp_path: Path) -> None:
    from seqcast.report import forecast_ahead

    values = 50 + 10 * np.sin(np.arange(300) * 2 * np.pi / 12) + np.random.default_rng(0).normal(
        size=300)  # fmt: skip
    data = load_series(values)
    model, point, bands, _ = forecast_ahead(
        data, "snaive", {"season": 12}, 12, (0.025, 0.1, 0.5, 0.9, 0.975)
    )
    assert (model, point.shape) == ("snaive", (12, 1))
    np.testing.assert_allclose(point[:, 0], values[-12:])  # a season back, rolled out
    assert bands is not None and bands.shape == (12, 1, 5)
    np.testing.assert_allclose(bands[:, 0, 2], point[:, 0])
    assert np.all(np.diff(bands, axis=-1) >= 0)
    # Too short to calibrate intervals: the forecast still comes, without bands.
    short = load_series(values[:10])
    _, point, bands, _ = forecast_ahead(short, "naive", {}, 1, (0.1, 0.9))
    assert point.shape == (12, 1) and bands is None


def test_report_levels_are_chosen_on_the_command_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from cli_runner import run_main

    values = 50 + 10 * np.sin(np.arange(200) * 2 * np.pi / 12)
    path = tmp_path / "s.csv"
    pd.DataFrame({"y": values}).to_csv(path, index=False)
    run = run_main(capsys, "report", str(path), "-m", "naive", "-m", "linear", "--level", "50,90",
                   "--out", str(tmp_path / "r"), "--quiet")  # fmt: skip
    assert run.code == 0, run.err
    text = (tmp_path / "r" / "report.html").read_text()
    assert "<th>50 % interval held</th>" in text and "<th>90 % interval held</th>" in text
    run = run_main(capsys, "report", str(path), "-m", "naive", "--no-intervals",
                   "--out", str(tmp_path / "p"), "--quiet")  # fmt: skip
    assert run.code == 0, run.err
    assert not (tmp_path / "p" / "fan.png").exists()
    assert 'id="calibration"' not in (tmp_path / "p" / "report.html").read_text()


def test_a_many_series_report_shows_the_best_and_worst_series(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = []
    for k in range(12):  # noise grows with k % 4: the worst series are the noisiest
        y = 100.0 * (k + 1) + 10 * np.sin(np.arange(60) * 2 * np.pi / 12)
        y += rng.normal(0, 0.5 + 4 * (k % 4), 60)
        frames.append(pd.DataFrame({"id": f"s{k}", "ds": np.arange(60), "y": y}))
    data = load_series(pd.concat(frames), id_col="id", time_col="ds")
    result = build_report(data, split_indices(data, val_size=12), tmp_path / "r",
                          models=("naive", "linear"), quantiles=None)  # fmt: skip
    assert "extremes" in result.figures
    text = result.html_path.read_text()
    table = text[text.index('<table id="series">') :]
    table = table[: table.index("</table>")]
    ranks = [int(r) for r in re.findall(r"<tr><td>(\d+)</td>", table)]
    assert ranks == [1, 2, 3, 4, 5, 8, 9, 10, 11, 12]
    best = result.board.results[0]
    scores = sorted(row["smape"] for row in best.per_series)  # type: ignore[type-var]
    shown = [float(v) for v in re.findall(r"<td>s\d+</td><td>([0-9.]+)</td>", table)]
    np.testing.assert_allclose(shown, [round(v, 2) for v in scores[:5] + scores[-5:]])
