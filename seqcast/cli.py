"""The ``seqcast`` command line.

A user mistake ends with one line on stderr and a non-zero exit; ``--debug`` anywhere on the
command line shows the traceback instead.
"""

from __future__ import annotations

import json
import re
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, NoReturn

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from seqcast.atomic import write_text
from seqcast.data.datasets import DATASETS
from seqcast.data.frame import SeriesData
from seqcast.data.loading import load_series
from seqcast.data.seasonality import estimate_season, season_from_freq
from seqcast.data.splits import split_indices
from seqcast.errors import DataError, SeqcastError
from seqcast.evaluation.leaderboard import Leaderboard, run_leaderboard
from seqcast.forecasters.base import EpochEnd
from seqcast.forecasters.registry import create_for
from seqcast.persistence import check_destination, load_model, save_model
from seqcast.serving import (
    DEFAULT_HOST,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HORIZON,
    DEFAULT_PORT,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="seqcast",
    help="Forecast time series with recurrent networks, compared against honest baselines.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

# ------------------------------------------------------------------------ shared options
DataArg = Annotated[str, typer.Argument(help="CSV/Parquet file, or a built-in dataset name.")]
Models = Annotated[list[str], typer.Option("--model", "-m", help="Model name; repeat for several.")]
Target = Annotated[
    list[str] | None, typer.Option("--target", help="Column to forecast; repeatable.")
]
Feature = Annotated[
    list[str] | None, typer.Option("--feature", help="Extra input column; repeatable.")
]
TimeCol = Annotated[str | None, typer.Option("--time-col", help="Timestamp column.")]
IdCol = Annotated[str | None, typer.Option("--id-col", help="Series id column (long format).")]
Window = Annotated[int, typer.Option("--window", help="Input window length L.")]
Horizon = Annotated[int, typer.Option("--horizon", help="Forecast horizon T.")]
ValSize = Annotated[int | None, typer.Option("--val-size", help="Validation points per series.")]
ValFrac = Annotated[float | None, typer.Option("--val-frac", help="Validation fraction.")]
SplitTime = Annotated[str | None, typer.Option("--split-time", help="First validation time.")]
Stride = Annotated[int, typer.Option("--stride", help="Steps between forecast origins.")]
Season = Annotated[
    str | None, typer.Option("--season", help="Seasonal period P, 'auto', or 1 for none.")
]
Fill = Annotated[
    str,
    typer.Option(
        "--fill",
        help="Missing values: error|ffill|interpolate|drop. ffill looks back only (a leading "
        "gap takes the first value); interpolate reads the value after each gap, so "
        "backtest forecasts from filled points have seen a later value.",
    ),
]
Seed = Annotated[int, typer.Option("--seed", help="Random seed.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress output.")]
Epochs = Annotated[int | None, typer.Option("--epochs", help="Training epochs (maximum).")]
BatchSize = Annotated[int | None, typer.Option("--batch-size", help="Mini-batch size.")]
Lr = Annotated[float | None, typer.Option("--lr", help="Learning rate.")]
Hidden = Annotated[int | None, typer.Option("--hidden-size", help="Recurrent units H.")]
Layers = Annotated[int | None, typer.Option("--num-layers", help="Recurrent layers.")]
Cell = Annotated[str | None, typer.Option("--cell", help="Recurrent cell: rnn|lstm|gru.")]
Bidir = Annotated[
    bool | None, typer.Option("--bidirectional/--unidirectional", help="Bidirectional layers.")
]
Dropout = Annotated[float | None, typer.Option("--dropout", help="Dropout between layers.")]
Loss = Annotated[str | None, typer.Option("--loss", help="Loss: huber|mse|mae.")]
Optimizer = Annotated[str | None, typer.Option("--optimizer", help="Optimiser: adam|adamw|sgd.")]
Patience = Annotated[
    int | None, typer.Option("--patience", help="Early-stopping patience; 0 trains all epochs.")
]
Schedule = Annotated[
    str | None, typer.Option("--schedule", help="Learning-rate schedule: plateau|onecycle|none.")
]
Transform = Annotated[
    str | None,
    typer.Option(
        "--transform",
        help="Neural models: auto|none|sqrt|log (auto: per channel, a root or log where the "
        "noise grows with the level; sqrt and log: the targets).",
    ),
]
Seq2seq = Annotated[bool | None, typer.Option("--seq2seq", help="Loss at every input step.")]


def resolve_data(
    source: str,
    *,
    target: list[str] | None = None,
    feature: list[str] | None = None,
    time_col: str | None = None,
    id_col: str | None = None,
    fill: str = "error",
) -> SeriesData:
    """Loads a built-in dataset by name, or a file, with the command line's options."""
    options: dict[str, Any] = dict(
        targets=target or None, features=feature, time_col=time_col, id_col=id_col, fill=fill
    )
    if source in DATASETS and not Path(source).exists():
        return DATASETS[source].load(**options)
    return load_series(source, **options)


def resolve_splits(
    data: SeriesData, val_size: int | None, val_frac: float | None, split_time: str | None
) -> list[int]:
    """Split points from the options, or the dataset's natural split, or the last 20 %."""
    if val_size is None and val_frac is None and split_time is None:
        if data.source in DATASETS:
            val_size = DATASETS[data.source].val_size
        else:
            val_frac = 0.2
    return split_indices(data, val_size=val_size, val_frac=val_frac, split_time=split_time)


def resolve_season(option: str | None, data: SeriesData, splits: list[int]) -> int:
    """The seasonal period: given, 'auto' (estimated), the dataset's, or from the frequency."""
    if option is None:
        return data.season or season_from_freq(data.freq) or 1
    if option.strip().lower() == "auto":
        return estimate_season(data.series[0].values[: splits[0], 0])
    try:
        season = int(option)
    except ValueError:
        raise DataError(f"--season must be a whole number or 'auto', got {option!r}") from None
    if season < 1:
        raise DataError(f"--season must be at least 1, got {season}")
    return season


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        err.print(message, highlight=False)


def _leaderboard_table(board: Leaderboard) -> Table:
    table = Table(
        title=f"{board.dataset}: window {board.window}, horizon {board.horizon}, "
        f"{board.describe_validation()} per series, season {board.season}"
    )
    for name in ("model", "MAE", "RMSE", "sMAPE %", "MASE", "fit s", "predict s", "epochs"):
        if name == "model":
            table.add_column(name, no_wrap=True)
        else:
            table.add_column(name, justify="right")
    for result in board.results:
        m = result.metrics

        def fmt(value: float | None, digits: int = 3) -> str:
            return "-" if value is None else f"{value:.{digits}f}"

        table.add_row(
            result.model,
            fmt(m["mae"]),
            fmt(m["rmse"]),
            fmt(m["smape"], 2),
            fmt(m["mase"]),
            f"{result.fit_seconds:.2f}",
            f"{result.predict_seconds:.3f}",
            "-" if result.epochs is None else str(result.epochs),
        )
    return table


#: The command-line options that are forecaster settings (constructor arguments).
MODEL_SETTINGS = (
    "window", "horizon", "season", "seed", "epochs", "batch_size", "lr", "hidden_size",
    "num_layers", "cell", "bidirectional", "dropout", "loss", "optimizer", "patience", "seq2seq",
    "schedule", "transform",
)  # fmt: skip


def _options(arguments: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The forecaster settings among a command's arguments (those it has and that were given)."""
    merged = {**arguments, **overrides}
    return {k: merged[k] for k in MODEL_SETTINGS if merged.get(k) is not None}


class _EpochBar:
    """A rich progress bar on stderr with the losses of the last epoch: the command line's
    ``on_epoch`` listener (the library never draws)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
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
                console=err,
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


# ------------------------------------------------------------------------------ commands
@app.command()
def datasets() -> None:
    """List the built-in datasets."""
    table = Table(title="built-in datasets")
    for name in ("name", "description", "season", "validation", "source"):
        table.add_column(name)
    for info in DATASETS.values():
        table.add_row(
            info.name, info.description, str(info.season), str(info.val_size), info.source
        )
    out.print(table)


@app.command("backtest")
def backtest_command(
    data: DataArg,
    model: Models,
    target: Target = None,
    feature: Feature = None,
    time_col: TimeCol = None,
    id_col: IdCol = None,
    window: Window = 20,
    horizon: Horizon = 1,
    val_size: ValSize = None,
    val_frac: ValFrac = None,
    split_time: SplitTime = None,
    stride: Stride = 1,
    season: Season = None,
    fill: Fill = "error",
    seed: Seed = 0,
    refit: Annotated[bool, typer.Option("--refit", help="Refit before every origin.")] = False,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    hidden_size: Hidden = None,
    num_layers: Layers = None,
    cell: Cell = None,
    bidirectional: Bidir = None,
    dropout: Dropout = None,
    loss: Loss = None,
    optimizer: Optimizer = None,
    patience: Patience = None,
    seq2seq: Seq2seq = None,
    schedule: Schedule = None,
    transform: Transform = None,
    quiet: Quiet = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write results as JSON.")] = None,
) -> None:
    """Backtest models on a temporal split and print the leaderboard."""
    series = resolve_data(
        data, target=target, feature=feature, time_col=time_col, id_col=id_col, fill=fill
    )
    splits = resolve_splits(series, val_size, val_frac, split_time)
    period = resolve_season(season, series, splits)
    options = _options(locals(), season=period)
    for name in model:
        create_for(name, options)  # unknown names fail before any work
    bar = _EpochBar(quiet)
    board = run_leaderboard(
        series,
        model,
        options,
        splits,
        stride=stride,
        refit=refit,
        on_start=lambda name: _say(quiet, f"backtesting {name} ..."),
        on_epoch=bar,
    )
    bar.close()
    out.print(_leaderboard_table(board))
    if json_out is not None:
        write_text(json_out, json.dumps(board.to_json(), indent=2) + "\n")
        _say(quiet, f"wrote {json_out}")


@app.command()
def fit(
    data: DataArg,
    model: Annotated[str, typer.Option("--model", "-m", help="Model name.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    target: Target = None,
    feature: Feature = None,
    time_col: TimeCol = None,
    id_col: IdCol = None,
    window: Window = 20,
    horizon: Horizon = 1,
    season: Season = None,
    fill: Fill = "error",
    seed: Seed = 0,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    hidden_size: Hidden = None,
    num_layers: Layers = None,
    cell: Cell = None,
    bidirectional: Bidir = None,
    dropout: Dropout = None,
    loss: Loss = None,
    optimizer: Optimizer = None,
    patience: Patience = None,
    seq2seq: Seq2seq = None,
    schedule: Schedule = None,
    transform: Transform = None,
    quiet: Quiet = False,
) -> None:
    """Fit a model on the whole series and save it to a folder."""
    series = resolve_data(
        data, target=target, feature=feature, time_col=time_col, id_col=id_col, fill=fill
    )
    lengths = [len(s) for s in series.series]
    period = resolve_season(season, series, lengths)
    options = _options(locals(), season=period)
    forecaster = create_for(model, options)
    check_destination(out_dir)  # before the training, not after it
    needed = forecaster.context_length + horizon
    for s, n in zip(series.series, lengths, strict=True):
        if n < needed:
            label = series.label(s)
            raise DataError(f"{label} has {n} points; {model} needs at least {needed}")
    started = time.perf_counter()
    _say(quiet, f"fitting {model} on {series.source} ...")
    bar = _EpochBar(quiet)
    forecaster.fit([s.values for s in series.series], series.n_targets, on_epoch=bar)
    bar.close()
    save_model(forecaster, out_dir, series)
    _say(quiet, f"saved {model} to {out_dir} ({time.perf_counter() - started:.2f} s)")


@app.command()
def predict(
    model_dir: Annotated[Path, typer.Argument(help="Model folder written by 'seqcast fit'.")],
    data: Annotated[
        str | None, typer.Option("--data", help="Newer data to forecast from (same columns).")
    ] = None,
    horizon: Annotated[int | None, typer.Option("--horizon", help="Steps to forecast.")] = None,
    fill: Fill = "error",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="CSV file (default: stdout).")
    ] = None,
) -> None:
    """Forecast past the end of the series with a saved model."""
    saved = load_model(model_dir)
    forecaster = saved.forecaster
    description = saved.data
    steps = forecaster.horizon if horizon is None else horizon
    if steps < 1:
        raise DataError(f"--horizon must be at least 1, got {steps}")
    contexts, indexes, ids = [], [], []
    if data is None:
        for i, context in enumerate(saved.contexts):
            contexts.append(context)
            indexes.append(saved.future_index(i, steps))
            ids.append(description["series"][i]["id"])
    else:
        n_targets = description["n_targets"]
        columns = description["columns"]
        fresh = resolve_data(
            data,
            target=columns[:n_targets],
            feature=columns[n_targets:],
            time_col=description["time_col"],
            id_col=description["id_col"],
            fill=fill,
        )
        fresh = _at_training_spacing(fresh, description, data)
        for s in fresh.series:
            if len(s) < forecaster.context_length:
                label = fresh.label(s)
                raise DataError(
                    f"--data {data}: {label} has {len(s)} points; the model needs the "
                    f"last {forecaster.context_length}"
                )
            contexts.append(s.values[-forecaster.context_length :])
            indexes.append(fresh.future_time(s, steps))
            ids.append(s.series_id)
    forecast = forecaster.predict(np.stack(contexts), steps)  # (S, T, Ft)
    frames = []
    time_name = description["time_col"] or "step"
    for i, index in enumerate(indexes):
        frame = pd.DataFrame(forecast[i], columns=saved.targets)
        frame.insert(0, time_name, np.asarray(index))
        if description["id_col"]:
            frame.insert(0, description["id_col"], ids[i])
        frames.append(frame)
    csv = pd.concat(frames, ignore_index=True).to_csv(index=False)
    if out_file is None:
        sys.stdout.write(csv)
    else:
        write_text(out_file, csv)
        err.print(f"wrote {steps} steps for {len(frames)} series to {out_file}", highlight=False)


def _at_training_spacing(fresh: SeriesData, description: dict[str, Any], source: str) -> SeriesData:
    """``fresh`` with the saved model's frequency and step, after checking that its timestamps
    follow them (a single row shows no spacing of its own, so the model's is the only one)."""
    freq, step = description["freq"], float(description["step"])
    spaced = [(s, s.time) for s in fresh.series if s.time is not None and len(s) >= 2]
    if freq is None and spaced and not np.isclose(fresh.step, step, rtol=1e-9, atol=1e-9):
        raise DataError(
            f"--data {source}: {fresh.label(spaced[0][0])} steps by {fresh.step:g} but the "
            f"model was trained on steps of {step:g}"
        )
    for s, stamps in spaced if freq is not None else []:
        expected = pd.date_range(start=stamps[0], periods=len(s), freq=freq)
        wrong = np.flatnonzero(expected != stamps)
        if len(wrong):
            i = int(wrong[0])
            raise DataError(
                f"--data {source}: {fresh.label(s)} has {stamps[i]} where the model's frequency "
                f"'{freq}' expects {expected[i]}; send data at the frequency it was trained on"
            )
    return replace(fresh, freq=freq, step=step)


@app.command("lr-find")
def lr_find(
    data: DataArg,
    model: Annotated[str, typer.Option("--model", "-m", help="Neural model name.")] = "rnn",
    target: Target = None,
    feature: Feature = None,
    time_col: TimeCol = None,
    id_col: IdCol = None,
    window: Window = 20,
    horizon: Horizon = 1,
    val_size: ValSize = None,
    val_frac: ValFrac = None,
    split_time: SplitTime = None,
    season: Season = None,
    fill: Fill = "error",
    seed: Seed = 0,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    hidden_size: Hidden = None,
    num_layers: Layers = None,
    cell: Cell = None,
    bidirectional: Bidir = None,
    dropout: Dropout = None,
    loss: Loss = None,
    optimizer: Optimizer = None,
    patience: Patience = None,
    seq2seq: Seq2seq = None,
    schedule: Schedule = None,
    transform: Transform = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG of loss against lr.")] = None,
    quiet: Quiet = False,
) -> None:
    """Sweep the learning rate on the training part and suggest one.

    Takes fit's options, so a fit command line sweeps the same network and loss; the sweep sets
    the rate and its own length, so --epochs, --lr, --patience and --schedule are not used.
    """
    unused = {"--epochs": epochs, "--lr": lr, "--patience": patience, "--schedule": schedule}
    if given := [name for name, value in unused.items() if value is not None]:
        warnings.warn(
            f"lr-find sweeps the learning rate itself; {', '.join(given)} not used",
            UserWarning,
            stacklevel=1,
        )

    series = resolve_data(
        data, target=target, feature=feature, time_col=time_col, id_col=id_col, fill=fill
    )
    splits = resolve_splits(series, val_size, val_frac, split_time)
    period = resolve_season(season, series, splits)
    options = _options(locals(), season=period)
    forecaster = create_for(model, options)
    if not forecaster.trained_by_gradient:
        raise DataError(f"lr-find needs a neural model; '{model}' has no learning rate")
    _say(quiet, f"sweeping the learning rate of {model} on the training part ...")
    parts = [s.values[:split] for s, split in zip(series.series, splits, strict=True)]
    try:
        result = forecaster.lr_find(parts, series.n_targets)
    except DataError as exc:
        raise DataError(f"{series.source}: {exc}") from exc
    best = int(np.argmin(result.smoothed))
    out.print(
        f"steps: {len(result.lrs)}, lowest smoothed loss {result.smoothed[best]:.4g} at lr "
        f"{result.lrs[best]:.3g}"
    )
    out.print(f"suggested lr: {result.suggestion:.3g}")
    if plot is not None:
        from seqcast.plotting import plot_lr_finder

        plot_lr_finder(result, plot, title=f"{model} on {series.source}: learning-rate sweep")
        _say(quiet, f"wrote {plot}")


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the reports.")] = Path(
        "seqcast-demo"
    ),
    datasets_: Annotated[
        list[str] | None, typer.Option("--dataset", help="Built-in dataset; repeatable.")
    ] = None,
    seed: Seed = 0,
    quiet: Quiet = False,
) -> None:
    """Run the whole ladder on the built-in course series and sunspots; write the reports."""
    from seqcast.report import LADDER

    started = time.perf_counter()
    for name in datasets_ or ["synthetic", "sunspots"]:
        if name not in DATASETS:
            raise DataError(f"unknown dataset '{name}'; choose from {', '.join(DATASETS)}")
        series = DATASETS[name].load()
        splits = resolve_splits(series, None, None, None)
        options = dict(window=20, horizon=1, season=resolve_season(None, series, splits), seed=seed)
        _run_report(series, splits, options, list(LADDER), out_dir / name, quiet)
    _say(quiet, f"demo finished in {time.perf_counter() - started:.0f} s")


@app.command()
def report(
    data: DataArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the report.")],
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Model; repeatable (default: ladder).")
    ] = None,
    target: Target = None,
    feature: Feature = None,
    time_col: TimeCol = None,
    id_col: IdCol = None,
    window: Window = 20,
    horizon: Horizon = 1,
    val_size: ValSize = None,
    val_frac: ValFrac = None,
    split_time: SplitTime = None,
    season: Season = None,
    fill: Fill = "error",
    seed: Seed = 0,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    hidden_size: Hidden = None,
    num_layers: Layers = None,
    cell: Cell = None,
    bidirectional: Bidir = None,
    dropout: Dropout = None,
    loss: Loss = None,
    optimizer: Optimizer = None,
    patience: Patience = None,
    schedule: Schedule = None,
    transform: Transform = None,
    quiet: Quiet = False,
) -> None:
    """Backtest models on your data and write an HTML report with figures."""
    from seqcast.report import LADDER

    series = resolve_data(
        data, target=target, feature=feature, time_col=time_col, id_col=id_col, fill=fill
    )
    splits = resolve_splits(series, val_size, val_frac, split_time)
    period = resolve_season(season, series, splits)
    options = _options(locals(), season=period)
    names = model or [
        m for m in LADDER if period > 1 or m not in ("snaive", "diff-ma", "diff-ma-smooth")
    ]
    for name in names:
        create_for(name, options)
    _run_report(series, splits, options, names, out_dir, quiet)


def _run_report(
    series: SeriesData,
    splits: list[int],
    options: dict[str, Any],
    models: list[str],
    out_dir: Path,
    quiet: bool,
) -> None:
    from seqcast.report import build_report

    steps = len(models) + 2
    counter = iter(range(1, steps + 1))
    bar = _EpochBar(quiet)
    result = build_report(
        series,
        splits,
        out_dir,
        models=models,
        settings=options,
        on_epoch=bar,
        on_start=lambda what: _say(
            quiet, f"[{series.source} {next(counter, steps)}/{steps}] {what} ..."
        ),
    )
    bar.close()
    out.print(_leaderboard_table(result.board))
    out.print(f"report: {result.html_path} ({result.seconds:.0f} s)")


@app.command()
def serve(
    model_dir: Annotated[
        list[Path],
        typer.Argument(help="Model folders from 'seqcast fit'; each is served by folder name."),
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = DEFAULT_PORT,
    max_horizon: Annotated[
        int, typer.Option("--max-horizon", help="Largest horizon a request may ask for.")
    ] = DEFAULT_MAX_HORIZON,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", help="Largest request body; larger get 413.")
    ] = DEFAULT_MAX_BODY_BYTES,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log one line per request.")
    ] = True,
) -> None:
    """Serve saved models over HTTP (FastAPI + uvicorn) until SIGTERM or Ctrl-C."""
    try:
        from seqcast.serving.server import serve as run_server
    except ModuleNotFoundError as exc:
        raise SeqcastError(str(exc)) from exc  # the message already gives the install hint

    run_server(
        model_dir,
        host=host,
        port=port,
        max_horizon=max_horizon,
        max_body_bytes=max_body_bytes,
        access_log=access_log,
    )


# --------------------------------------------------------------------------- entry point
#: Library argument names whose flag is not the name with dashes.
FLAGS = {"targets": "--target", "features": "--feature"}


def in_flags(message: str, arguments: tuple[str, ...]) -> str:
    """A library message with the arguments it names spelt as this command line's flags:
    ``window must be at least 1`` -> ``--window must be at least 1``."""
    for name in arguments:
        flag = FLAGS.get(name, "--" + name.replace("_", "-"))
        message = re.sub(rf"(?<![-\w]){re.escape(name)}(?!\w)", flag, message)
    return message


def main(argv: list[str] | None = None) -> None:
    """Runs the command line; user mistakes become one line on stderr and exit code 2."""
    from typer._click import exceptions as click_exceptions

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]

    shown: set[str] = set()

    def one_line_warning(
        message: Warning | str, category: type[Warning], *_: object, **__: object
    ) -> None:
        # Settings are checked before any work and again by fit: say each thing once.
        text = in_flags(str(message), getattr(message, "arguments", ()))
        line = f"seqcast: warning: {text}"
        if line not in shown:
            shown.add(line)
            print(line, file=sys.stderr)

    warnings.showwarning = one_line_warning
    try:
        app(args=args, prog_name="seqcast", standalone_mode=False)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        print("seqcast: aborted", file=sys.stderr)
        raise SystemExit(130) from None
    except click_exceptions.ClickException as exc:
        if debug:
            raise
        print(f"seqcast: error: {exc.format_message()}", file=sys.stderr)
        raise SystemExit(2) from None
    except SeqcastError as exc:
        if debug:
            raise
        print(f"seqcast: error: {in_flags(str(exc), exc.arguments)}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("seqcast: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except OSError as exc:
        if debug:
            raise
        if exc.filename is None:
            _internal_error(exc)
        # A path the user gave that cannot be written or read (a missing folder, no rights);
        # for a failed rename of an atomic write, filename2 is the user's path.
        print(f"seqcast: error: '{exc.filename2 or exc.filename}': {exc.strerror}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as exc:
        if debug:
            raise
        _internal_error(exc)


def _internal_error(exc: Exception) -> NoReturn:
    print(
        f"seqcast: internal error: {type(exc).__name__}: {exc} (rerun with --debug for "
        "the traceback)",
        file=sys.stderr,
    )
    raise SystemExit(1) from None


if __name__ == "__main__":
    main()
