"""The main job: run the whole ladder on a dataset, draw every figure, write one HTML report.

The report is a single self-contained file: images are embedded as data URIs and the page
makes no external request, so it opens offline and can be mailed as it is.
"""

from __future__ import annotations

import base64
import html
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqcast import plotting
from seqcast._version import __version__
from seqcast.atomic import atomic_directory, holds_current_folder, write_text
from seqcast.data.frame import SeriesData
from seqcast.data.known import known_ahead
from seqcast.data.seasonality import estimate_season
from seqcast.errors import DataError
from seqcast.evaluation.conformal import calibrate, series_floors, series_scales
from seqcast.evaluation.leaderboard import Leaderboard, run_leaderboard
from seqcast.evaluation.probabilistic import interval_bounds
from seqcast.forecasters.base import EpochEnd
from seqcast.forecasters.registry import create_for

__all__ = ["LADDER", "ReportResult", "build_report", "render_html"]

#: The models of the demo: every baseline rung, then the neural forecasters.
LADDER = ("naive", "snaive", "ma", "diff-ma", "diff-ma-smooth", "linear", "dnn", "rnn", "lstm")


@dataclass
class ReportResult:
    """What :func:`build_report` produced.

    Attributes:
        board: the leaderboard.
        html_path: the report file.
        figures: figure name -> PNG path.
        summary: the data summary shown in the report.
        seconds: wall time of the whole run.
    """

    board: Leaderboard
    html_path: Path
    figures: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


#: The levels the report forecasts: the bounds of the 80 % and 95 % intervals and the median.
REPORT_QUANTILES = (0.025, 0.1, 0.5, 0.9, 0.975)


#: Readable names of pandas frequency codes (their first letters, anchors dropped).
FREQUENCY_NAMES = {"D": "daily", "B": "business days", "h": "hourly", "H": "hourly",
                   "min": "every minute", "T": "every minute", "s": "every second",
                   "S": "every second", "W": "weekly", "MS": "monthly, month start",
                   "ME": "monthly, month end", "M": "monthly, month end",
                   "QS": "quarterly, quarter start", "QE": "quarterly, quarter end",
                   "Q": "quarterly, quarter end", "YS": "yearly, year start",
                   "AS": "yearly, year start", "YE": "yearly, year end",
                   "A": "yearly, year end", "Y": "yearly, year end"}  # fmt: skip


def describe_freq(freq: str | None) -> str | None:
    """A pandas frequency code in words, with the code: ``MS`` -> ``monthly, month start
    (pandas 'MS')``; ``15min`` -> ``every 15 minutes (pandas '15min')``; None for None."""
    if freq is None:
        return None
    count = "".join(ch for ch in freq if ch.isdigit())
    code = freq[len(count) :].split("-")[0]
    name = FREQUENCY_NAMES.get(code)
    if name is None:
        return f"pandas frequency '{freq}'"
    if count and count != "1":
        unit = {"every minute": "minutes", "every second": "seconds", "hourly": "hours",
                "daily": "days", "weekly": "weeks"}.get(name)  # fmt: skip
        name = f"every {count} {unit}" if unit else f"{name}, every {count}"
    return f"{name} (pandas '{freq}')"


def _stamp(value: object) -> str:
    """A timestamp without a midnight time of day: ``1949-01-01``, not ``1949-01-01 00:00:00``."""
    if isinstance(value, pd.Timestamp) and value == value.normalize():
        return str(value.strftime("%Y-%m-%d"))
    return str(value)


def summarise(data: SeriesData, splits: Sequence[int], season: int) -> dict[str, str]:
    """Length, frequency, time range, filled values and seasonal period, as display strings."""
    first = data.series[0]
    lengths = data.lengths
    summary = {
        "source": data.source,
        "series": str(len(data.series)),
        "length": str(lengths[0])
        if len(set(lengths)) == 1
        else f"{min(lengths)} to {max(lengths)}",
        "targets": ", ".join(data.targets),
        "input features": ", ".join(data.features[: len(data.features) - data.n_future]) or "none",
        "inputs known ahead": ", ".join(data.columns[len(data.columns) - data.n_future :])
        if data.n_future
        else "none",
        "frequency": describe_freq(data.freq)
        or ("numeric steps" if first.time is not None else "rows are steps"),
    }
    if first.time is not None:
        summary["time range"] = f"{_stamp(first.time[0])} to {_stamp(first.time[-1])}"
    summary["training / validation"] = f"{splits[0]} / {len(first) - splits[0]} points"
    summary["missing values"] = "; ".join(data.notes) or "none"
    guess = estimate_season(first.values[: splits[0], 0])
    summary["seasonal period"] = (
        f"{season} used; the autocorrelation of the training part suggests "
        f"{guess if guess > 1 else 'none'}"
    )
    return summary


#: What a report folder holds; a folder with anything else is not replaced.
REPORT_FILES = frozenset(
    {"report.html", "series.png", "fan.png", "future.png", "horizon.png", "forecasts.png",
     "extremes.png",
     "residuals.png",
     "training.png", "lr_finder.png", "leaderboard.png"}
)  # fmt: skip


def check_report_destination(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds an earlier report, which a new one replaces whole.

    Raises:
        DataError: ``path`` is the current folder (or above it), a file, or a folder holding
            anything a report does not write (named), which writing the report would mix
            with or replace.
    """
    target = Path(path)
    if holds_current_folder(target):
        raise DataError(
            f"'{target}' is the current folder or holds it; a report replaces its folder "
            "whole: name a new folder for the report"
        )
    if not target.exists():
        return False
    if not target.is_dir():
        raise DataError(f"'{target}' is a file, not a report folder; choose another folder")
    entries = sorted(p.name for p in target.iterdir())
    foreign = [name for name in entries if name not in REPORT_FILES]
    if foreign:
        raise DataError(
            f"folder '{target}' holds {', '.join(foreign[:5])}"
            f"{f' and {len(foreign) - 5} more' if len(foreign) > 5 else ''}, which a report "
            "does not write; a report replaces its folder whole, so it was left alone: choose "
            "another folder"
        )
    return bool(entries)


def build_report(
    data: SeriesData,
    splits: Sequence[int],
    out_dir: str | os.PathLike[str],
    *,
    models: Sequence[str] = LADDER,
    settings: Mapping[str, Any] | None = None,
    title: str = "",
    on_start: Callable[[str], None] | None = None,
    on_epoch: Callable[[EpochEnd], None] | None = None,
    quantiles: Sequence[float] | None = REPORT_QUANTILES,
) -> ReportResult:
    """Backtests ``models`` on the split, draws the figures and writes ``report.html``.

    Args:
        data: the series.
        splits: per series, the first validation index.
        out_dir: folder for ``report.html`` and the PNG figures.
        models: model names, the ladder by default.
        settings: constructor arguments shared by the models (window, horizon, season, ...).
        title: heading of the report.
        on_start: progress callback with a short description of each step.
        on_epoch: hears of every training epoch of the neural models.
        quantiles: the levels each model also forecasts (its own, or conformal where a
            series is long enough to calibrate them), for the fan chart and the calibration
            table; None for point forecasts only.
    """
    started = time.perf_counter()
    settings = dict(settings or {})
    final = Path(out_dir)
    check_report_destination(final)  # before any work
    with atomic_directory(final) as folder:  # the old report or the new one, never half
        board, figures, html_name = _write_report(
            data, splits, folder, models, settings, title, on_start, on_epoch, quantiles
        )
    return ReportResult(
        board=board,
        html_path=final / html_name,
        figures={name: final / path.name for name, path in figures.items()},
        summary=summarise(data, splits, board.season),
        seconds=time.perf_counter() - started,
    )


def _write_report(
    data: SeriesData,
    splits: Sequence[int],
    folder: Path,
    models: Sequence[str],
    settings: dict[str, Any],
    title: str,
    on_start: Callable[[str], None] | None,
    on_epoch: Callable[[EpochEnd], None] | None,
    quantiles: Sequence[float] | None,
) -> tuple[Leaderboard, dict[str, Path], str]:
    """:func:`build_report`'s work, written into ``folder``: the leaderboard, the figures and
    the report's file name."""
    say = on_start or (lambda _: None)
    board = run_leaderboard(
        data,
        models,
        settings,
        splits,
        on_start=lambda name: say(f"backtesting {name}"),
        on_epoch=on_epoch,
        quantiles=quantiles,
        intervals="optional",
    )
    figures: dict[str, Path] = {}
    say("drawing the figures")
    figures["series"] = plotting.plot_series_split(data, splits[0], folder / "series.png")
    scored = [r for r in board.results if r.metrics["mae"] is not None]
    figures["forecasts"] = plotting.plot_forecasts(data, scored[:3], folder / "forecasts.png")
    figures["residuals"] = plotting.plot_residuals(data, scored[0], folder / "residuals.png")
    if board.horizon > 1:
        figures["horizon"] = plotting.plot_horizon(data, scored[:4], folder / "horizon.png")
    if len(data.series) > 1:
        figures["extremes"] = plotting.plot_extremes(data, scored[0], folder / "extremes.png")
    banded = [r for r in scored if r.quantiles]
    if banded:
        figures["fan"] = plotting.plot_fan(data, banded[0], folder / "fan.png")
    # The values known ahead are computed (the calendar) or repeated (static features) here;
    # a future feature's are not known past the data.
    if data.n_future == len(data.calendar) + len(data.static):
        say(f"forecasting past the end of the data with {scored[0].model}")
        future = forecast_ahead(data, scored[0].model, settings, board.season, quantiles)
        figures["future"] = plotting.plot_future(data, *future, folder / "future.png")
    histories = {
        r.model: r.forecaster.history_  # type: ignore[attr-defined]
        for r in board.results
        if r.forecaster is not None and r.forecaster.epochs_run is not None
    }
    if histories:
        figures["training"] = plotting.plot_histories(histories, folder / "training.png")
    neural = [m for m in models if m in histories]
    if neural:
        name = "rnn" if "rnn" in neural else neural[0]
        say(f"sweeping the learning rate of {name}")
        sweeper = create_for(name, settings)
        sweep = sweeper.lr_find(
            [
                sweeper.readable_values(s.values[:split])
                for s, split in zip(data.series, splits, strict=True)
            ],
            data.n_targets,
            n_future=data.n_future,
        )
        figures["lr_finder"] = plotting.plot_lr_finder(
            sweep, folder / "lr_finder.png", title=f"{name}: learning-rate range finder"
        )
    figures["leaderboard"] = plotting.plot_leaderboard(board, folder / "leaderboard.png")
    summary = summarise(data, splits, board.season)
    shown = {
        "window": str(board.window),
        "horizon": str(board.horizon),
        "seasonal period": str(board.season),
        "seed": str(settings.get("seed", 0)),
        "protocol": "fit on the training part; from every validation point forecast the next "
        f"{board.horizon} point(s) from the true history before it",
        "early stopping": "on the latest 10 % of the training windows, never on the "
        "validation part",
    }
    html_path = folder / "report.html"
    write_text(
        html_path,
        render_html(board, summary, shown, figures, title or f"seqcast report: {data.source}"),
    )
    return board, figures, html_path.name


def forecast_ahead(
    data: SeriesData,
    model: str,
    settings: Mapping[str, Any],
    season: int,
    quantiles: Sequence[float] | None,
) -> tuple[str, np.ndarray, np.ndarray | None, tuple[float, ...]]:
    """The model refitted on every series whole, forecasting past the end of the first: its
    horizon, or (rolled out, where no input feature needs future values) at least one season
    and at most 60 steps.

    Returns:
        The model's name, the (T, F_target) forecast, its (T, F_target, Q) quantiles (None
        where intervals cannot be calibrated: a note in the figure says so) and their levels.
    """
    forecaster = create_for(model, settings)
    data = forecaster.readable(data)  # gaps (fill mask) kept, or carried forward
    histories = [s.values for s in data.series]
    forecaster.fit(histories, data.n_targets, n_future=data.n_future)
    steps = forecaster.horizon
    if forecaster.can_roll_out:
        steps = max(steps, min(max(season, 12), 60))
    context = forecaster.last_contexts(histories[:1], [data.label(data.series[0])])
    # The static values and calendar of the forecast steps (the inputs known ahead here).
    span = max(steps, forecaster.horizon)
    known = None
    if data.n_future:  # (1, T', F_k)
        times = data.future_time(data.series[0], span)
        known = known_ahead(histories[0][-1], times, None, data.static, data.calendar)[None]
    point = forecaster.predict(context, steps, future=known)[0]  # (T, Ft)
    levels = tuple(quantiles or ())
    bands = None
    if levels:
        try:
            if forecaster.quantiles_reach(steps):
                bands = forecaster.predict_quantiles(context, levels, steps, future=known)[0]
            else:
                conformal = calibrate(
                    forecaster, histories, data.n_targets, steps, n_future=data.n_future
                )  # a copy
                scale = series_scales(histories[:1], data.n_targets)
                floor = series_floors(histories[:1], data.n_targets)
                bands = conformal.quantiles(point[None], scale, levels, floor)[0]
        except DataError:
            bands = None
    return model, point, bands, levels


def _series_table(board: Leaderboard, shown: int = 5) -> str:
    """Many series: the best model's scores on the ``shown`` series it forecast best and
    worst (by sMAPE), with its mean over all series."""
    if len(board.series_ids) < 2:
        return ""
    esc = html.escape
    best = board.results[0]
    ranked = plotting.ranked_series(best)
    picked = ranked if len(ranked) <= 2 * shown else ranked[:shown] + ranked[-shown:]
    rows = []
    for rank, index in ((ranked.index(i) + 1, i) for i in picked):
        row = best.per_series[index]
        cells = [str(rank), esc(str(board.series_ids[index])), _cell(row.get("smape"), 2),
                 _cell(row.get("mase")), _cell(row.get("mae"))]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    means = best.series_means
    return (
        f"<h2>Series</h2><p>{esc(best.model)} on each of the {len(ranked)} series: the mean "
        f"of their own scores is sMAPE {_cell(means['smape'], 2)}, MASE {_cell(means['mase'])}"
        f"; the {min(shown, len(ranked))} it forecast best and worst:</p>"
        '<table id="series"><thead><tr><th>rank</th><th>series</th><th>sMAPE %</th>'
        "<th>MASE</th><th>MAE</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _calibration_table(board: Leaderboard) -> str:
    """The intervals' section: each model's requested level against the share of validation
    points its interval held, WQL and MSIS, and why a model has none."""
    esc = html.escape
    banded = [r for r in board.results if r.quantiles or r.quantile_note]
    if not banded:
        return ""
    levels = sorted(interval_bounds(board.quantiles))
    heads = ["model", "quantiles from", "WQL", *(f"{level} % interval held" for level in levels)]
    heads.append("MSIS")
    rows = []
    for r in banded:
        found = r.probabilistic
        cells = [esc(r.model), esc(r.quantile_source or "none"), _cell(found.get("wql"), 4)]
        cells += [
            "-"
            if found.get(f"coverage_{level}") is None
            else f"{100 * float(found[f'coverage_{level}']):.1f} %"  # type: ignore[arg-type]
            for level in levels
        ]
        cells.append(_cell(found.get("msis")))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    notes = "".join(
        f"<li>{esc(r.model)}: no intervals ({esc(r.quantile_note)})</li>"
        for r in banded
        if r.quantile_note
    )
    return (
        "<h2>Intervals</h2><p>Requested level against the share of validation points inside "
        "each model's central interval: a calibrated model holds about its level.</p>"
        '<table id="calibration"><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in heads)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + (f"<ul>{notes}</ul>" if notes else "")
    )


def _cell(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def render_html(
    board: Leaderboard,
    summary: dict[str, str],
    settings: dict[str, str],
    figures: dict[str, Path],
    title: str,
) -> str:
    """The report as one HTML5 document with inline CSS and embedded PNGs."""
    esc = html.escape
    baselines = [r for r in board.results if r.params is None]
    best_baseline = baselines[0] if baselines else None
    rows = []
    for rank, r in enumerate(board.results, start=1):
        m = r.metrics
        beats = ""
        if r.params is not None and best_baseline and m["mae"] is not None:
            ratio = float(m["mae"]) / float(best_baseline.metrics["mae"] or np.inf)
            beats = f"{(1 - ratio) * 100:+.1f} %"
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{c}</td>"
                for c in (
                    str(rank),
                    esc(r.model),
                    _cell(m["mae"]),
                    _cell(m["rmse"]),
                    _cell(m["mape"], 2),
                    _cell(m["smape"], 2),
                    _cell(m["mase"]),
                    f"{r.fit_seconds:.2f}",
                    f"{r.predict_seconds:.3f}",
                    _cell(r.epochs),
                    _cell(r.params),
                    beats,
                )
            )
            + "</tr>"
        )
    headers = (
        "#",
        "model",
        "MAE",
        "RMSE",
        "MAPE %",
        "sMAPE %",
        "MASE",
        "fit s",
        "predict s",
        "epochs",
        "parameters",
        "MAE vs best baseline",
    )
    table = (
        '<table id="leaderboard"><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in headers)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )

    def definition_list(items: dict[str, str]) -> str:
        return (
            "<dl>"
            + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items.items())
            + "</dl>"
        )

    captions = {
        "series": "The series and its temporal split.",
        "forecasts": "Forecasts of the three best models against the actual values.",
        "residuals": "Residuals of the best model.",
        "training": "Training and early-stopping loss per epoch of each neural model.",
        "lr_finder": "Learning-rate range finder (loss against an exponentially growing rate).",
        "leaderboard": "Mean absolute error of every model.",
        "extremes": "Many series: the best model on the series it forecast best and worst.",
        "future": "The best model refitted on all the data, forecasting past its end (with its "
        "80 % and 95 % intervals where it has them).",
        "horizon": "Multi-step forecasts: each model's error at each step, and the best model's "
        "whole paths from a few origins.",
        "fan": "The best model with quantiles: its first forecast step from every origin of "
        "the validation part with its central intervals.",
    }
    images = []
    for name, path in figures.items():
        encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        caption = esc(captions.get(name, name))
        images.append(
            f'<figure><img src="data:image/png;base64,{encoded}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    best = board.results[0]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
       padding: 0 1rem; color: #222; line-height: 1.45; }}
h1 {{ font-size: 1.6rem; }} h2 {{ font-size: 1.2rem; margin-top: 2rem; }}
table {{ border-collapse: collapse; width: 100%; font-size: 0.9rem; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.35rem 0.5rem; text-align: right; }}
th:nth-child(2), td:nth-child(2) {{ text-align: left; }}
tbody tr:first-child {{ background: #eef7ee; font-weight: 600; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }}
dt {{ font-weight: 600; }} dd {{ margin: 0; }}
figure {{ margin: 1.5rem 0; }} img {{ max-width: 100%; height: auto; }}
figcaption {{ color: #555; font-size: 0.9rem; }}
footer {{ margin-top: 3rem; color: #777; font-size: 0.8rem; }}
</style>
</head>
<body>
<h1>{esc(title)}</h1>
<p>Best model: <strong>{esc(best.model)}</strong> with MAE {_cell(best.metrics["mae"])} on
{board.describe_validation()} per series.</p>
<h2>Leaderboard</h2>
{table}
{_calibration_table(board)}
{_series_table(board)}
<h2>Data</h2>
{definition_list(summary)}
<h2>Settings</h2>
{definition_list(settings)}
<h2>Figures</h2>
{"".join(images)}
<footer>Made by seqcast {esc(__version__)}.</footer>
</body>
</html>
"""
