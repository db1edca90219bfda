"""Headless matplotlib figures for reports; each function writes one PNG and returns its path.

matplotlib is an optional dependency (``pip install 'seqcast[plot]'``).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seqcast.atomic import write_bytes
from seqcast.errors import SeqcastError
from seqcast.evaluation.probabilistic import interval_bounds

if TYPE_CHECKING:
    from seqcast.data.frame import SeriesData
    from seqcast.evaluation.backtest import BacktestResult
    from seqcast.evaluation.leaderboard import Leaderboard
    from seqcast.training.loop import History
    from seqcast.training.lr_finder import LRFinderResult

__all__ = [
    "plot_extremes",
    "plot_fan",
    "plot_forecasts",
    "plot_future",
    "plot_histories",
    "plot_horizon",
    "plot_leaderboard",
    "plot_lr_finder",
    "plot_residuals",
    "plot_series_split",
    "pyplot",
    "ranked_series",
]


def pyplot() -> Any:
    """matplotlib's pyplot on the headless Agg backend, or a clear install hint."""
    try:
        import matplotlib
    except ImportError as exc:
        raise SeqcastError("plots need matplotlib: pip install 'seqcast[plot]'") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | os.PathLike[str]) -> Path:
    """Writes a figure as PNG atomically and closes it; value axes read as plain numbers
    (never an offset or a power of ten), date axes as concise dates."""
    import matplotlib.dates as mdates

    for axes in figure.axes:
        with contextlib.suppress(AttributeError):  # a log axis keeps its own labels
            axes.ticklabel_format(axis="y", style="plain", useOffset=False)
        if isinstance(axes.xaxis.get_major_formatter(), mdates.AutoDateFormatter):
            locator = axes.xaxis.get_major_locator()
            axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(figure)
    write_bytes(path, buffer.getvalue())
    return Path(path)


def plot_lr_finder(result: LRFinderResult, path: str | os.PathLike[str], title: str = "") -> Path:
    """Loss against learning rate (log scale), with the suggested rate marked."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.plot(result.lrs, result.losses, color="0.75", linewidth=0.8, label="mini-batch loss")
    axes.plot(result.lrs, result.smoothed, color="C0", linewidth=1.8, label="smoothed loss")
    axes.axvline(
        result.suggestion, color="C3", linestyle="--", label=f"suggested lr {result.suggestion:.2g}"
    )
    axes.set_xscale("log")
    low, high = np.percentile(result.smoothed, [0, 90])
    axes.set_ylim(low - 0.1 * (high - low), high + 0.5 * (high - low))
    axes.set_xlabel("learning rate (log scale)")
    axes.set_ylabel("training loss (scaled units)")
    axes.set_title(title or "learning-rate range finder")
    axes.legend(loc="upper left")
    axes.grid(True, which="both", alpha=0.3)
    return save_figure(figure, path)


def _x_axis(data: SeriesData, series_index: int = 0) -> tuple[np.ndarray, str]:
    """The x values of a series (timestamps or steps) and their axis label."""
    series = data.series[series_index]
    if series.time is None:
        return np.arange(len(series)), "step"
    return np.asarray(series.time), str(series.time.name or "time")


def plot_series_split(
    data: SeriesData, split: int, path: str | os.PathLike[str], target: int = 0
) -> Path:
    """The first series with its training and validation parts."""
    plt = pyplot()
    x, xlabel = _x_axis(data)
    values = data.series[0].values[:, target]
    figure, axes = plt.subplots(figsize=(10, 3.8))
    axes.plot(x[:split], values[:split], color="C0", linewidth=0.9, label="training part")
    axes.plot(x[split:], values[split:], color="C1", linewidth=0.9, label="validation part")
    axes.axvspan(x[split], x[-1], color="C1", alpha=0.08)
    axes.set_title(
        f"{data.source}: {data.targets[target]} ({len(values)} points, {split} for training)"
    )
    axes.set_xlabel(xlabel)
    axes.set_ylabel(data.targets[target])
    axes.legend(loc="upper left")
    axes.grid(True, alpha=0.3)
    return save_figure(figure, path)


def plot_forecasts(
    data: SeriesData,
    results: Sequence[BacktestResult],
    path: str | os.PathLike[str],
    target: int = 0,
    zoom: int = 100,
) -> Path:
    """Actual against the first-step forecasts of a few models on the validation part, with a
    zoomed panel on its last ``zoom`` points when there are more than twice as many."""
    plt = pyplot()
    x, xlabel = _x_axis(data)
    values = data.series[0].values[:, target]
    origins = results[0].origins[0]
    zoomed = len(origins) > 2 * zoom
    figure, panels = plt.subplots(2 if zoomed else 1, 1, figsize=(10, 7.5 if zoomed else 4.2))
    full, close = (panels[0], panels[1]) if zoomed else (panels, None)
    horizon = results[0].forecasts[0].shape[1]
    steps = "all steps" if horizon == 1 else f"all {horizon} steps"
    for axes, keep in ((full, slice(None)), (close, slice(-zoom, None))):
        if axes is None:
            continue
        shown = origins[keep]
        axes.plot(x[shown], values[shown], color="black", linewidth=1.1, label="actual")
        for i, result in enumerate(results):
            forecast = result.forecasts[0][:, 0, target][keep]
            axes.plot(
                x[result.origins[0][keep]],
                forecast,
                color=f"C{i}",
                linewidth=1.0,
                alpha=0.9,
                label=f"{result.model} (MAE {result.metrics['mae']:.3f} over {steps})",
            )
        axes.set_xlabel(xlabel)
        axes.set_ylabel(data.targets[target])
        axes.grid(True, alpha=0.3)
    what = "one-step-ahead forecasts" if horizon == 1 else f"step 1 of {horizon}-step forecasts"
    full.set_title(f"{data.source}: {what} on the validation part")
    if close is not None:
        close.set_title(f"zoom: the last {zoom} validation points")
    full.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_future(
    data: SeriesData,
    model: str,
    point: np.ndarray,
    bands: np.ndarray | None,
    levels: Sequence[float],
    path: str | os.PathLike[str],
    target: int = 0,
) -> Path:
    """The end of the first series and a model's forecast past it (T, F_target), with the
    central intervals its quantiles (T, F_target, Q) at ``levels`` hold."""
    plt = pyplot()
    series = data.series[0]
    steps = len(point)
    x, xlabel = _x_axis(data)
    ahead = np.asarray(data.future_time(series, steps))
    shown = slice(max(0, len(series) - 4 * steps), None)
    figure, axes = plt.subplots(figsize=(10, 4.2))
    axes.plot(x[shown], series.values[shown, target], color="black", linewidth=1.0,
              label="actual")  # fmt: skip
    if bands is not None:
        _draw_bands(axes, ahead, bands[:, target], levels)
    axes.plot(ahead, point[:, target], color="C0", linewidth=1.4, label=f"{model} forecast")
    note = "" if bands is not None or not levels else " (no intervals: too short to calibrate)"
    title = f"{data.source}: {model}, {steps} steps past the end of the data{note}"
    return _finish(figure, axes, title, xlabel, data.targets[target], path)


def _draw_bands(axes: Any, x: np.ndarray, bands: np.ndarray, levels: Sequence[float]) -> None:
    """Shades the central intervals that quantiles (n, Q) at ``levels`` hold, the widest
    palest."""
    intervals = sorted(interval_bounds(levels).items(), reverse=True)
    for shade, (level, (low, high)) in enumerate(intervals):
        axes.fill_between(x, bands[:, low], bands[:, high], color="C0", alpha=0.15 + 0.15 * shade,
                          linewidth=0, label=f"{level} % interval")  # fmt: skip


def _finish(
    figure: Any, axes: Any, title: str, xlabel: str, ylabel: str, path: str | os.PathLike[str]
) -> Path:
    """Titles, labels, grid and legend of a one-panel figure, then saves it."""
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_horizon(
    data: SeriesData, results: Sequence[BacktestResult], path: str | os.PathLike[str]
) -> Path:
    """Multi-step forecasts as such: each model's MAE at each horizon step (left), and the
    best model's whole paths from a few origins of the first series against the actual values
    (right)."""
    plt = pyplot()
    figure, (errors, paths) = plt.subplots(1, 2, figsize=(12, 4.2))
    horizon = results[0].forecasts[0].shape[1]
    steps = np.arange(1, horizon + 1)
    for i, result in enumerate(results):
        pairs = zip(result.forecasts, result.actuals, strict=True)
        misses = np.concatenate([np.abs(f - a).mean(axis=2) for f, a in pairs])  # (n, T)
        errors.plot(steps, misses.mean(axis=0), marker="o", markersize=3, color=f"C{i}",
                    label=result.model)  # fmt: skip
    errors.set_title("MAE at each forecast step (all series)")
    errors.set_xlabel("forecast step")
    errors.set_ylabel("MAE")
    errors.grid(True, alpha=0.3)
    errors.legend(fontsize=8)
    best = results[0]
    x, xlabel = _x_axis(data)
    values = data.series[0].values[:, 0]
    origins = best.origins[0]
    first, last = int(origins[0]), int(origins[-1]) + horizon
    paths.plot(x[first:last], values[first:last], color="black", linewidth=1.0, label="actual")
    chosen = np.linspace(0, len(origins) - 1, num=min(6, len(origins))).astype(int)
    for k, row in enumerate(chosen):
        start = int(origins[row])
        paths.plot(x[start : start + horizon], best.forecasts[0][row, :, 0], color="C0",
                   linewidth=1.4, label=f"{best.model} paths" if k == 0 else None)  # fmt: skip
    paths.set_title(f"{best.model}: whole {horizon}-step paths from {len(chosen)} origins")
    paths.set_xlabel(xlabel)
    paths.set_ylabel(data.targets[0])
    paths.grid(True, alpha=0.3)
    paths.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_fan(
    data: SeriesData,
    result: BacktestResult,
    path: str | os.PathLike[str],
    target: int = 0,
    last: int = 200,
) -> Path:
    """A fan chart of one model's forecasts on the validation part: the actual values, the
    first forecast step from each origin and the central intervals its quantiles hold (the
    widest palest), over the last ``last`` origins of the first series."""
    plt = pyplot()
    x, xlabel = _x_axis(data)
    values = data.series[0].values[:, target]
    origins = result.origins[0][-last:]
    bands = result.quantile_forecasts[0][-last:, 0, target]  # (n, Q)
    figure, axes = plt.subplots(figsize=(10, 4.5))
    _draw_bands(axes, x[origins], bands, result.quantiles)
    point = result.forecasts[0][-last:, 0, target]
    axes.plot(x[origins], point, color="C0", linewidth=1.0, label=f"{result.model} forecast")
    axes.plot(x[origins], values[origins], color="black", linewidth=1.0, label="actual")
    source = "its own quantiles" if result.quantile_source == "network" else "conformal"
    title = f"{data.source}: {result.model}, first forecast step with intervals ({source})"
    return _finish(figure, axes, title, xlabel, data.targets[target], path)


def plot_residuals(
    data: SeriesData, result: BacktestResult, path: str | os.PathLike[str], target: int = 0
) -> Path:
    """Residuals (actual − forecast) of one model over time and their distribution."""
    plt = pyplot()
    x, xlabel = _x_axis(data)
    residuals = result.actuals[0][:, 0, target] - result.forecasts[0][:, 0, target]
    figure, (over_time, histogram) = plt.subplots(
        1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 1]}
    )
    over_time.plot(x[result.origins[0]], residuals, color="C0", linewidth=0.8)
    over_time.axhline(0.0, color="black", linewidth=0.8)
    over_time.set_title(f"{result.model}: residuals on the validation part")
    over_time.set_xlabel(xlabel)
    over_time.set_ylabel("actual − forecast")
    over_time.grid(True, alpha=0.3)
    histogram.hist(residuals, bins=30, color="C0", alpha=0.8, orientation="horizontal")
    histogram.set_xlabel("count")
    histogram.set_title(f"mean {residuals.mean():.2f}, sd {residuals.std():.2f}")
    histogram.grid(True, alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, path)


def ranked_series(result: BacktestResult, metric: str = "smape") -> list[int]:
    """Series indices from the best to the worst by one model's own score on each (series
    whose score is undefined last)."""
    scores = [row.get(metric) for row in result.per_series]
    return sorted(range(len(scores)), key=lambda i: (scores[i] is None, scores[i] or 0.0))


def plot_extremes(
    data: SeriesData, result: BacktestResult, path: str | os.PathLike[str], target: int = 0
) -> Path:
    """Many series: one model's first-step forecasts on the validation part of the series it
    forecast best and of the one it forecast worst (by sMAPE), against the actual values."""
    plt = pyplot()
    ranked = ranked_series(result)
    figure, panels = plt.subplots(1, 2, figsize=(12, 4))
    for axes, index, which in ((panels[0], ranked[0], "best"), (panels[1], ranked[-1], "worst")):
        x, xlabel = _x_axis(data, index)
        series = data.series[index]
        origins = result.origins[index]
        axes.plot(x[origins], series.values[origins, target], color="black", linewidth=1.0,
                  label="actual")  # fmt: skip
        axes.plot(x[origins], result.forecasts[index][:, 0, target], color="C0", linewidth=1.0,
                  label=f"{result.model}, step 1")  # fmt: skip
        score = result.per_series[index].get("smape")
        shown = "-" if score is None else f"{score:.2f}"
        axes.set_title(f"{which}: series '{series.series_id}' (sMAPE {shown})")
        axes.set_xlabel(xlabel)
        axes.set_ylabel(data.targets[target])
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_histories(histories: dict[str, History], path: str | os.PathLike[str]) -> Path:
    """Training and validation loss per epoch of each neural model."""
    plt = pyplot()
    figure, panels = plt.subplots(
        1, len(histories), figsize=(4.2 * len(histories), 3.6), squeeze=False
    )
    for axes, (name, history) in zip(panels[0], histories.items(), strict=True):
        epochs = np.arange(1, len(history.train_loss) + 1)
        axes.plot(epochs, history.train_loss, color="C0", label="training")
        if history.val_loss:
            axes.plot(epochs, history.val_loss, color="C1", label="early-stopping slice")
        if history.best_epoch:
            axes.axvline(
                history.best_epoch,
                color="C3",
                linestyle="--",
                label=f"kept: epoch {history.best_epoch}",
            )
        axes.set_yscale("log")
        axes.set_title(f"{name}: loss per epoch")
        axes.set_xlabel("epoch")
        axes.set_ylabel("loss (scaled units, log)")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_leaderboard(board: Leaderboard, path: str | os.PathLike[str]) -> Path:
    """MAE of every model as horizontal bars, best at the top."""
    plt = pyplot()
    results = [r for r in board.results if r.metrics["mae"] is not None]
    names = [r.model for r in results][::-1]
    maes = [float(r.metrics["mae"] or 0.0) for r in results][::-1]
    figure, axes = plt.subplots(figsize=(8, 0.45 * len(names) + 1.5))
    bars = axes.barh(
        names, maes, color=["C2" if r.params is not None else "C0" for r in results][::-1]
    )
    axes.bar_label(bars, labels=[f"{m:.3f}" for m in maes], padding=3, fontsize=9)
    axes.set_xlim(0, max(maes) * 1.15)
    axes.set_xlabel(f"MAE on the validation part ({', '.join(board.targets)})")
    axes.set_title(f"{board.dataset}: leaderboard (green: neural, blue: baselines)")
    axes.grid(True, axis="x", alpha=0.3)
    return save_figure(figure, path)
