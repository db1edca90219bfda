"""The ``seqcast`` command line: parse, call the library, print.

Options shared by several commands are declared once, in :mod:`seqcast.cli_options`; what is
shown (tables, progress, messages in flags) is in :mod:`seqcast.console`. A user mistake ends
with one line on stderr and exit code 2, the library's argument names spelt as this command
line's flags; ``--debug`` anywhere on the command line shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from seqcast.atomic import write_text
from seqcast.cli_options import (
    MAX_INPUT_BYTES,
    DataArg,
    Quiet,
    Seed,
    data_options,
    model_options,
    split_options,
    with_options,
)
from seqcast.console import EpochBar, csv_text, in_flags, leaderboard_table, one_line
from seqcast.data.datasets import DATASETS, default_splits, load_source
from seqcast.data.frame import SeriesData
from seqcast.data.seasonality import resolve_season
from seqcast.engines import get_engine
from seqcast.engines.distributed import (
    DEFAULT_TIMEOUT,
    PEER_LOST,
    PeerLost,
    launch,
    launched,
    launched_rank,
    launched_world,
    mark_spoken,
    process_group,
    rank_device,
)
from seqcast.errors import DataError, SeqcastError, SeqcastWarning
from seqcast.evaluation.conformal import calibrate, series_floors, series_scales
from seqcast.evaluation.leaderboard import run_leaderboard
from seqcast.evaluation.probabilistic import check_quantiles, levels_to_quantiles
from seqcast.forecasters.average import SmoothedDiffMovingAverage
from seqcast.forecasters.registry import NEURAL, create_for, model_names
from seqcast.persistence import check_destination, load_model, save_model
from seqcast.serving import (
    DEFAULT_HOST,
    DEFAULT_KEEP_ALIVE,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HORIZON,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_ROLLOUTS,
    DEFAULT_PORT,
    DEFAULT_READ_TIMEOUT,
)

if TYPE_CHECKING:
    from pandas import DataFrame

__all__ = ["app", "main"]

#: The --model help: every name it accepts.
MODELS = "Model: " + ", ".join(model_names())


#: The longest forecast ``predict`` makes unless told otherwise (``--max-horizon``).
MAX_HORIZON = 100_000

app = typer.Typer(
    name="seqcast",
    help="Forecast time series with recurrent networks, compared against honest baselines.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def _load(source: str, options: dict[str, Any]) -> SeriesData:
    """The data of a command: a built-in dataset or a file, with the data options."""
    return load_source(
        source,
        targets=options["target"],
        features=options["feature"],
        time_col=options["time_col"],
        id_col=options["id_col"],
        fill=options["fill"],
        date_format=options["date_format"],
        max_input_bytes=options["max_input_bytes"],
        future_features=options["future_feature"],
        calendar=options["calendar"],
        static_features=options["static_feature"],
    )


def _read_table(path: str, flag: str, max_bytes: int) -> DataFrame:
    """A small CSV or Parquet table given by ``flag``, read as it is."""
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise DataError(f"{flag} {path}: no such file")
    if file.stat().st_size > max_bytes:
        raise DataError(f"{flag} {path}: above --max-input-bytes {max_bytes:,}")
    try:
        if file.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(file)
        return pd.read_csv(file)
    except Exception as exc:  # pandas and pyarrow raise many types for a bad file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{flag} {path}: cannot read it ({reason})") from exc


def _settings(options: dict[str, Any], season: int) -> dict[str, Any]:
    """The forecaster settings that were given, with the resolved season."""
    given = {k: v for k, v in options.items() if v is not None}
    return {**given, "season": season}


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        err.print(message, highlight=False)


#: The intervals a report draws and scores unless told.
REPORT_LEVEL = "80,95"


def _quantile_levels(quantiles: str | None, level: str | None) -> tuple[float, ...] | None:
    """The quantile levels of ``--quantiles`` and ``--level`` together, or None for neither."""
    if quantiles is None and level is None:
        return None
    found: list[float] = []
    for flag, text in (("--quantiles", quantiles), ("--level", level)):
        if text is None:
            continue
        try:
            values = [float(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise DataError(f"{flag} takes numbers separated by commas, got {text!r}") from None
        if flag == "--level":
            values = list(levels_to_quantiles(values))
        else:
            values = list(check_quantiles(values, "quantiles"))
        found += values
    return check_quantiles(found)


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
@with_options(data_options, split_options, model_options)
def backtest_command(
    data: DataArg,
    model: Annotated[
        list[str], typer.Option("--model", "-m", help=f"{MODELS}; repeat for several.")
    ],
    data_options: dict[str, Any],
    split_options: dict[str, Any],
    model_options: dict[str, Any],
    stride: Annotated[int, typer.Option("--stride", help="Steps between forecast origins.")] = 1,
    n_windows: Annotated[
        int | None,
        typer.Option(
            "--n-windows",
            help="Forecast origins per series, --stride apart, the last --horizon steps before "
            "its end (instead of --val-size).",
        ),
    ] = None,
    refit: Annotated[bool, typer.Option("--refit", help="Refit before every origin.")] = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="Where --refit's per-series fits run: local, process, ray or dask (the same "
            "numbers on each).",
        ),
    ] = "local",
    engine_address: Annotated[
        str | None,
        typer.Option(
            "--engine-address",
            help="A Ray or Dask cluster to run on (ray://head:10001, tcp://scheduler:8786) "
            "instead of a local one.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", help="Worker processes of a local engine (default: one per core)."
        ),
    ] = None,
    quantiles: Annotated[
        str | None,
        typer.Option(
            "--quantiles",
            help="Also forecast these quantiles, e.g. 0.1,0.5,0.9 (a network's own with "
            "--likelihood, else conformal ones calibrated on the training part), scored by WQL "
            "and coverage.",
        ),
    ] = None,
    level: Annotated[
        str | None,
        typer.Option(
            "--level",
            help="Central intervals in percent, e.g. 80,95 (the quantiles that bound them).",
        ),
    ] = None,
    quiet: Quiet = False,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write results as JSON, with per-series scores."),
    ] = None,
    forecasts_out: Annotated[
        Path | None,
        typer.Option("--forecasts", help="Write every forecast and actual value as CSV."),
    ] = None,
) -> None:
    """Backtest models on a temporal split and print the leaderboard."""
    runner = get_engine(engine, workers=workers, address=engine_address)
    series = _load(data, data_options)
    horizon = model_options["horizon"]
    splits = default_splits(
        series, **split_options, n_windows=n_windows, horizon=horizon, stride=stride
    )
    settings = _settings(model_options, resolve_season(model_options["season"], series, splits))
    for name in model:
        create_for(name, settings)  # unknown names and bad settings fail before any work
    levels = _quantile_levels(quantiles, level)
    with runner, EpochBar(quiet, err) as bar:
        board = run_leaderboard(
            series,
            model,
            settings,
            splits,
            stride=stride,
            refit=refit,
            on_start=lambda name: _say(quiet, f"backtesting {name} ..."),
            on_epoch=bar,
            quantiles=levels,
            mapper=None if runner.name == "local" else runner.map,
        )
    out.print(leaderboard_table(board))
    if json_out is not None:
        write_text(json_out, json.dumps(board.to_json(), indent=2) + "\n")
        _say(quiet, f"wrote {json_out}")
    if forecasts_out is not None:
        write_text(forecasts_out, csv_text(board.forecast_frame(series)))
        _say(quiet, f"wrote {forecasts_out}")


@app.command()
@with_options(data_options, model_options)
def fit(
    data: DataArg,
    model: Annotated[str, typer.Option("--model", "-m", help=f"{MODELS}.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    data_options: dict[str, Any],
    model_options: dict[str, Any],
    intervals: Annotated[
        bool,
        typer.Option(
            "--intervals",
            help="Also calibrate conformal intervals on a backtest inside the data (one more "
            "fit), so that predict can give --quantiles and --level.",
        ),
    ] = False,
    interval_steps: Annotated[
        int | None,
        typer.Option(
            "--interval-steps",
            help="Steps the --intervals are calibrated for (default: the horizon); predict "
            "gives quantiles that far.",
        ),
    ] = None,
    nproc_per_node: Annotated[
        int | None,
        typer.Option(
            "--nproc-per-node",
            help="Train one model data-parallel on this many processes here (PyTorch's "
            "launcher, torchrun; gloo on the CPU, NCCL on CUDA). Rank 0 writes the model.",
        ),
    ] = None,
    nnodes: Annotated[
        int, typer.Option("--nnodes", help="Nodes of a data-parallel fit (each runs this command).")
    ] = 1,
    rdzv_endpoint: Annotated[
        str | None,
        typer.Option(
            "--rdzv-endpoint",
            help="host:port every node of a multi-node fit reaches to meet (c10d rendezvous).",
        ),
    ] = None,
    rdzv_id: Annotated[
        str, typer.Option("--rdzv-id", help="Job id of a multi-node fit, the same on every node.")
    ] = "seqcast",
    dist_timeout: Annotated[
        float,
        typer.Option(
            "--dist-timeout",
            help="Seconds the ranks of a data-parallel fit wait to meet (and in any exchange) "
            "before failing.",
        ),
    ] = DEFAULT_TIMEOUT,
    quiet: Quiet = False,
) -> None:
    """Fit a model on the whole series and save it to a folder."""
    single = nproc_per_node in (None, 1) and nnodes == 1  # one process: nothing to launch
    if not single and not launched():
        _launch_fit(nproc_per_node or 1, nnodes, rdzv_endpoint, rdzv_id, dist_timeout)
        return
    rank = launched_rank()  # a data-parallel rank: only rank 0 speaks and writes
    quiet = quiet or rank != 0
    series = _load(data, data_options)
    lengths = [len(s) for s in series.series]
    settings = _settings(model_options, resolve_season(model_options["season"], series, lengths))
    forecaster = create_for(model, settings)
    check_destination(out_dir)  # before the training, not after it
    if interval_steps is not None and interval_steps < 1:
        raise DataError(f"--interval-steps must be at least 1, got {interval_steps}")
    # A model that pads trains on series as short as its horizon + 1 (and says how many).
    needed = forecaster.horizon + 1 if forecaster.can_pad else forecaster.context_length
    needed += 0 if forecaster.can_pad else forecaster.horizon
    for s, n in zip(series.series, lengths, strict=True):
        if n < needed:
            raise DataError(f"{series.label(s)} has {n} points; {model} needs at least {needed}")
    started = time.perf_counter()
    _say(quiet, f"fitting {model} on {series.source} ...")
    series = forecaster.readable(series)  # gaps (fill mask) kept, or carried forward
    histories = [s.values for s in series.series]
    group: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if launched_world() > 1:
        group = process_group(rank_device(forecaster), dist_timeout)
    try:
        with group, EpochBar(quiet, err) as bar:
            forecaster.fit(histories, series.n_targets, n_future=series.n_future, on_epoch=bar)
    except PeerLost:
        raise typer.Exit(PEER_LOST) from None  # another rank failed first: its message counts
    if rank != 0:
        return
    extras = None
    if intervals and not forecaster.has_quantiles:
        _say(quiet, f"calibrating the intervals of {model} ...")
        steps = forecaster.horizon if interval_steps is None else interval_steps
        conformal = calibrate(
            forecaster, histories, series.n_targets, steps, n_future=series.n_future
        )
        extras = conformal.to_state()
        extras["conformal.scales"] = series_scales(histories, series.n_targets)
        extras["conformal.floors"] = series_floors(histories, series.n_targets)
    save_model(forecaster, out_dir, series, extras=extras)
    _say(quiet, f"saved {model} to {out_dir} ({time.perf_counter() - started:.2f} s)")


def _launch_fit(
    nproc_per_node: int, nnodes: int, rdzv_endpoint: str | None, rdzv_id: str, timeout: float
) -> None:
    """Runs this ``seqcast fit`` command line again on every rank of PyTorch's launcher.

    Raises:
        DataError: not run from the command line, or a rank other than local rank 0 failed
            (its message); where local rank 0 failed, it said why and the exit status is its.
    """
    arguments = list(_invocation)
    if "fit" not in arguments:
        raise DataError(
            "--nproc-per-node runs 'seqcast fit' again on every rank; run it from a shell"
        )
    ended = launch(
        arguments,
        nproc_per_node,
        nnodes=nnodes,
        rdzv_endpoint=rdzv_endpoint,
        rdzv_id=rdzv_id,
        timeout=timeout,
    )
    if ended.status == 0:
        return
    if ended.message is None:
        raise typer.Exit(ended.status)
    raise DataError(f"{ended.message}; no model was written")


@app.command()
def predict(
    model_dir: Annotated[Path, typer.Argument(help="Model folder written by 'seqcast fit'.")],
    data: Annotated[
        str | None, typer.Option("--data", help="Newer data to forecast from (same columns).")
    ] = None,
    horizon: Annotated[int | None, typer.Option("--horizon", help="Steps to forecast.")] = None,
    fill: Annotated[str, typer.Option("--fill", help="Missing values in --data.")] = "error",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="CSV file (default: stdout).")
    ] = None,
    max_horizon: Annotated[
        int, typer.Option("--max-horizon", help="Refuse a --horizon above this (bounded work).")
    ] = MAX_HORIZON,
    max_input_bytes: Annotated[
        int,
        typer.Option("--max-input-bytes", help="Refuse a --data file larger than this."),
    ] = MAX_INPUT_BYTES,
    future: Annotated[
        str | None,
        typer.Option(
            "--future",
            help="CSV or Parquet of the future features' values at the forecast steps (the "
            "time column, the id column in long format, and those columns).",
        ),
    ] = None,
    quantiles: Annotated[
        str | None,
        typer.Option(
            "--quantiles",
            help="Also forecast these quantiles, e.g. 0.1,0.5,0.9 (a model trained with "
            "--likelihood quantile, or fitted with --intervals).",
        ),
    ] = None,
    level: Annotated[
        str | None,
        typer.Option("--level", help="Central intervals in percent, e.g. 80,95."),
    ] = None,
) -> None:
    """Forecast past the end of the series with a saved model."""
    from seqcast.prediction import predict_saved

    if horizon is not None and horizon < 1:
        raise DataError(f"--horizon must be at least 1, got {horizon}")
    if horizon is not None and horizon > max_horizon:
        raise DataError(
            f"--horizon {horizon} is above --max-horizon {max_horizon}; raise --max-horizon "
            "if you mean it (the forecast is computed and held in memory whole)"
        )
    levels = _quantile_levels(quantiles, level)
    saved = load_model(model_dir)
    fresh = None
    if data is not None:
        description = saved.data
        n_targets, columns = description["n_targets"], description["columns"]
        known, cycles = description.get("n_future", 0), description.get("calendar", [])
        static = description.get("static", [])
        first_static = len(columns) - len(cycles) - len(static)
        fresh = load_source(
            data,
            targets=columns[:n_targets],
            features=columns[n_targets : len(columns) - known],
            future_features=columns[len(columns) - known : first_static],
            static_features=static,
            calendar="auto" if cycles else "none",
            time_col=description["time_col"],
            id_col=description["id_col"],
            fill=fill,
            date_format=description.get("date_format"),
            max_input_bytes=max_input_bytes,
        )
    known = None if future is None else _read_table(future, "--future", max_input_bytes)
    try:
        table = predict_saved(
            saved, horizon, fresh, levels, level_names=quantiles is None, future=known
        )
    except DataError as exc:
        if data is None:
            raise
        raise DataError(f"--data {data}: {exc}", arguments=exc.arguments) from exc
    csv = csv_text(table)
    if out_file is None:
        sys.stdout.write(csv)
    else:
        write_text(out_file, csv)
        steps = saved.forecaster.horizon if horizon is None else horizon
        groups = len(saved.data["series"]) if fresh is None else len(fresh.series)
        err.print(f"wrote {steps} steps for {groups} series to {out_file}", highlight=False)


@app.command("lr-find")
@with_options(data_options, split_options, model_options)
def lr_find(
    data: DataArg,
    data_options: dict[str, Any],
    split_options: dict[str, Any],
    model_options: dict[str, Any],
    model: Annotated[
        str, typer.Option("--model", "-m", help=f"Neural model: {', '.join(NEURAL)}.")
    ] = "rnn",
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG of loss against lr.")] = None,
    quiet: Quiet = False,
) -> None:
    """Sweep the learning rate on the training part and suggest one.

    Takes fit's options, so a fit command line sweeps the same network and loss; the sweep sets
    the rate and its own length, so --epochs, --lr, --patience and --schedule are not used.
    """
    ignored = ("epochs", "lr", "patience", "schedule")
    unused = [f"--{k}" for k in ignored if model_options[k] is not None]
    if unused:
        warnings.warn(
            f"lr-find sweeps the learning rate itself; {', '.join(unused)} not used",
            UserWarning,
            stacklevel=1,
        )
    series = _load(data, data_options)
    splits = default_splits(series, **split_options)
    settings = _settings(model_options, resolve_season(model_options["season"], series, splits))
    forecaster = create_for(model, settings)
    if not forecaster.trained_by_gradient:
        raise DataError(f"lr-find needs a neural model; '{model}' has no learning rate")
    _say(quiet, f"sweeping the learning rate of {model} on the training part ...")
    parts = [s.values[:split] for s, split in zip(series.series, splits, strict=True)]
    try:
        parts = [forecaster.readable_values(p) for p in parts]
        result = forecaster.lr_find(parts, series.n_targets, n_future=series.n_future)
    except DataError as exc:
        raise DataError(f"{series.source}: {exc}", arguments=exc.arguments) from exc
    best = min(range(len(result.smoothed)), key=result.smoothed.__getitem__)
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
        splits = default_splits(series)
        settings = {"window": 20, "horizon": 1, "seed": seed}
        settings["season"] = resolve_season(None, series, splits)
        levels = _quantile_levels(None, REPORT_LEVEL)
        _run_report(series, splits, settings, list(LADDER), out_dir / name, quiet, levels)
    _say(quiet, f"demo finished in {time.perf_counter() - started:.0f} s")


@app.command()
@with_options(data_options, split_options, model_options)
def report(
    data: DataArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the report.")],
    data_options: dict[str, Any],
    split_options: dict[str, Any],
    model_options: dict[str, Any],
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help=f"{MODELS}; repeatable (default: the ladder)."),
    ] = None,
    quantiles: Annotated[
        str | None,
        typer.Option("--quantiles", help="Quantiles every model forecasts (with --level)."),
    ] = None,
    level: Annotated[
        str | None,
        typer.Option(
            "--level", help="Central intervals drawn and scored, in percent (default 80,95)."
        ),
    ] = None,
    no_intervals: Annotated[
        bool, typer.Option("--no-intervals", help="Point forecasts only (no calibration).")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Backtest models on your data and write an HTML report with figures."""
    from seqcast.report import LADDER

    series = _load(data, data_options)
    splits = default_splits(series, **split_options)
    period = resolve_season(model_options["season"], series, splits)
    settings = _settings(model_options, period)
    seasonal = ("snaive", "diff-ma", "diff-ma-smooth")
    names = model or [m for m in LADDER if period > 1 or m not in seasonal]
    smoothing = SmoothedDiffMovingAverage().smooth
    if not model and 1 < period <= smoothing and "diff-ma-smooth" in names:
        names.remove("diff-ma-smooth")
        warnings.warn(
            SeqcastWarning(
                f"diff-ma-smooth is left out of the ladder: its smoothing over {smoothing} "
                f"values needs a seasonal period above {smoothing}, and this one is {period}"
            ),
            stacklevel=2,
        )
    for name in list(names):
        forecaster = create_for(name, settings)
        shortest = min(splits)
        if not model and not forecaster.can_pad and shortest < forecaster.context_length:
            # A baseline that cannot read the shortest series is left out, never an error.
            names.remove(name)
            warnings.warn(
                SeqcastWarning(
                    f"{name} is left out of the ladder: it reads {forecaster.context_length} "
                    f"past points, and the shortest training part has {shortest}"
                ),
                stacklevel=2,
            )
    levels = None if no_intervals else _quantile_levels(quantiles, level or REPORT_LEVEL)
    _run_report(series, splits, settings, names, out_dir, quiet, levels)


def _run_report(
    series: SeriesData,
    splits: list[int],
    settings: dict[str, Any],
    models: list[str],
    out_dir: Path,
    quiet: bool,
    quantiles: tuple[float, ...] | None,
) -> None:
    from seqcast.report import build_report, check_report_destination

    if check_report_destination(out_dir):
        warnings.warn(SeqcastWarning(f"replacing the earlier report in '{out_dir}'"), stacklevel=2)
    steps = len(models) + 2
    counter = iter(range(1, steps + 1))
    with EpochBar(quiet, err) as bar:
        result = build_report(
            series,
            splits,
            out_dir,
            models=models,
            settings=settings,
            on_epoch=bar,
            on_start=lambda what: _say(
                quiet, f"[{series.source} {next(counter, steps)}/{steps}] {what} ..."
            ),
            quantiles=quantiles,
        )
    out.print(leaderboard_table(result.board))
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
    max_in_flight: Annotated[
        int,
        typer.Option(
            "--max-in-flight",
            help="Forecasts computed at once; more are answered 503 with Retry-After.",
        ),
    ] = DEFAULT_MAX_IN_FLIGHT,
    max_rollouts: Annotated[
        int,
        typer.Option(
            "--max-rollouts",
            help=(
                "Of those, forecasts past a model's trained horizon (several passes) computed "
                "at once; more are answered 503 with Retry-After."
            ),
        ),
    ] = DEFAULT_MAX_ROLLOUTS,
    keep_alive: Annotated[
        float,
        typer.Option(
            "--keep-alive", help="Seconds an idle connection is kept open (new or after a reply)."
        ),
    ] = DEFAULT_KEEP_ALIVE,
    read_timeout: Annotated[
        float,
        typer.Option(
            "--read-timeout",
            help="Seconds a request's headers get from its first byte, and its body after "
            "them; then 408.",
        ),
    ] = DEFAULT_READ_TIMEOUT,
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
        max_in_flight=max_in_flight,
        max_rollouts=max_rollouts,
        keep_alive=keep_alive,
        read_timeout=read_timeout,
        access_log=access_log,
    )


# --------------------------------------------------------------------------- entry point
#: The arguments of this run of :func:`main`, for ``fit --nproc-per-node`` to run on every rank.
_invocation: list[str] = []


def main(argv: list[str] | None = None) -> None:
    """Runs the command line; user mistakes become one line on stderr and exit code 2."""
    from typer._click import exceptions as click_exceptions

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    _invocation[:] = [*args, *(["--debug"] if debug else [])]  # what a launcher runs again

    shown: set[str] = set()

    def one_line_warning(
        message: Warning | str, category: type[Warning], *_: object, **__: object
    ) -> None:
        # Settings are checked before any work and again by fit: say each thing once.
        text = one_line(in_flags(str(message), getattr(message, "arguments", ())))
        line = f"seqcast: warning: {text}"
        if line not in shown:
            shown.add(line)
            print(line, file=sys.stderr)

    warnings.showwarning = one_line_warning
    # numpy's arithmetic warnings say nothing a user can act on: seqcast's own checks name
    # the value or the setting behind them.
    warnings.filterwarnings(
        "ignore", r"(overflow|invalid value|divide by zero) encountered", RuntimeWarning
    )
    try:
        code = app(args=args, prog_name="seqcast", standalone_mode=False)
        if code == 130:  # typer turns Ctrl-C into this exit code
            print("seqcast: interrupted", file=sys.stderr)
        if isinstance(code, int) and code:
            raise SystemExit(code)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        print("seqcast: aborted", file=sys.stderr)
        raise SystemExit(130) from None
    except click_exceptions.ClickException as exc:
        if debug:
            raise
        _error_line(f"seqcast: error: {one_line(exc.format_message())}")
        raise SystemExit(2) from None
    except SeqcastError as exc:
        if debug:
            raise
        _error_line(f"seqcast: error: {one_line(in_flags(str(exc), exc.arguments))}")
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
        _error_line(f"seqcast: error: '{exc.filename2 or exc.filename}': {exc.strerror}")
        raise SystemExit(2) from None
    except Exception as exc:
        if debug:
            raise
        _internal_error(exc)


def _internal_error(exc: Exception) -> NoReturn:
    _error_line(
        f"seqcast: internal error: {type(exc).__name__}: {one_line(str(exc))} (rerun with "
        "--debug for the traceback)"
    )
    raise SystemExit(1) from None


def _error_line(line: str) -> None:
    """Prints an error line; in a launched rank 0, marks that it spoke, so that the launcher
    adds nothing (:func:`seqcast.engines.distributed.mark_spoken`)."""
    print(line, file=sys.stderr)
    mark_spoken()


if __name__ == "__main__":
    main()
