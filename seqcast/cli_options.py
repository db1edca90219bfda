"""The command line's options, declared once: each group is a signature that :func:`with_options`
adds to the commands that take it; the command receives the group's values as one dict."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

__all__ = [
    "DataArg",
    "Quiet",
    "Seed",
    "data_options",
    "model_options",
    "split_options",
    "with_options",
]

Command = TypeVar("Command", bound=Callable[..., None])

DataArg = Annotated[str, typer.Argument(help="CSV/Parquet file, or a built-in dataset name.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress output.")]
Opt = typer.Option

#: The largest data file a command reads unless told otherwise (``--max-input-bytes``): 1 GiB.
MAX_INPUT_BYTES = 1 << 30


def data_options(
    target: Annotated[
        list[str] | None, Opt("--target", help="Column to forecast; repeatable.")
    ] = None,
    feature: Annotated[
        list[str] | None, Opt("--feature", help="Extra input column; repeatable.")
    ] = None,
    future_feature: Annotated[
        list[str] | None,
        Opt(
            "--future-feature",
            help="Input column known ahead (planned prices, holidays); repeatable. Models read "
            "its values at the forecast steps; predict then needs them: --future FILE.",
        ),
    ] = None,
    static_feature: Annotated[
        list[str] | None,
        Opt(
            "--static-feature",
            help="Column constant within each series (a store's size); repeatable. Known "
            "ahead: its own value.",
        ),
    ] = None,
    calendar: Annotated[
        str,
        Opt(
            "--calendar",
            help="auto|none: calendar cycles of the frequency (hour, weekday, day of year, "
            "month, quarter) as inputs known ahead.",
        ),
    ] = "none",
    time_col: Annotated[str | None, Opt("--time-col", help="Timestamp column.")] = None,
    id_col: Annotated[str | None, Opt("--id-col", help="Series id column (long format).")] = None,
    date_format: Annotated[
        str | None,
        Opt(
            "--date-format",
            help="How the dates are written, e.g. %d/%m/%Y; needed only where they read two ways.",
        ),
    ] = None,
    fill: Annotated[
        str,
        Opt(
            "--fill",
            help="Missing values and timestamps: error|ffill|interpolate|drop|mask (all but "
            "error and drop also add timestamps missing from the frequency; the rows not "
            "observed are never scored). ffill looks back only (a leading gap takes the first "
            "value); interpolate reads the value after each gap, so backtest forecasts from "
            "filled points have seen a later value; mask leaves target gaps missing: neural "
            "models read them as such and never train on them, the others carry the last "
            "value forward.",
        ),
    ] = "error",
    max_input_bytes: Annotated[
        int,
        Opt("--max-input-bytes", help="Refuse a data file larger than this (bounded work)."),
    ] = MAX_INPUT_BYTES,
) -> None:
    """How a file is read (the arguments of :func:`seqcast.data.datasets.load_source`)."""


def split_options(
    val_size: Annotated[int | None, Opt("--val-size", help="Validation points per series.")] = None,
    val_frac: Annotated[float | None, Opt("--val-frac", help="Validation fraction.")] = None,
    split_time: Annotated[str | None, Opt("--split-time", help="First validation time.")] = None,
) -> None:
    """Where validation starts (the arguments of :func:`seqcast.data.datasets.default_splits`)."""


def model_options(
    window: Annotated[int, Opt("--window", help="Input window length L.")] = 20,
    horizon: Annotated[int, Opt("--horizon", help="Forecast horizon T.")] = 1,
    season: Annotated[
        str | None, Opt("--season", help="Seasonal period P, 'auto', or 1 for none.")
    ] = None,
    seed: Seed = 0,
    epochs: Annotated[
        int | None, Opt("--epochs", help="Training epochs (maximum; 0: untrained).")
    ] = None,
    batch_size: Annotated[int | None, Opt("--batch-size", help="Mini-batch size.")] = None,
    lr: Annotated[float | None, Opt("--lr", help="Learning rate.")] = None,
    hidden_size: Annotated[int | None, Opt("--hidden-size", help="Units H.")] = None,
    num_layers: Annotated[int | None, Opt("--num-layers", help="Layers.")] = None,
    cell: Annotated[str | None, Opt("--cell", help="Recurrent cell: rnn|lstm|gru.")] = None,
    bidirectional: Annotated[
        bool | None,
        Opt("--bidirectional/--unidirectional", help="Bidirectional layers."),
    ] = None,
    dropout: Annotated[float | None, Opt("--dropout", help="Dropout between layers.")] = None,
    loss: Annotated[str | None, Opt("--loss", help="Loss: huber|mse|mae.")] = None,
    optimizer: Annotated[str | None, Opt("--optimizer", help="Optimiser: adam|adamw|sgd.")] = None,
    patience: Annotated[
        int | None, Opt("--patience", help="Early-stopping patience; 0 trains all epochs.")
    ] = None,
    seq2seq: Annotated[bool | None, Opt("--seq2seq", help="Loss at every input step.")] = None,
    schedule: Annotated[
        str | None,
        Opt("--schedule", help="Learning-rate schedule: plateau|onecycle|none."),
    ] = None,
    transform: Annotated[
        str | None,
        Opt(
            "--transform",
            help="Neural models: auto|none|sqrt|log (auto: per channel, a root or log where the "
            "noise grows with the level; sqrt and log: the targets).",
        ),
    ] = None,
    ensemble: Annotated[
        int | None,
        Opt(
            "--ensemble", help="Neural models: networks trained from successive seeds and averaged."
        ),
    ] = None,
    sampling: Annotated[
        str | None,
        Opt("--sampling", help="Neural models: windows|series (series: each series as often)."),
    ] = None,
    scaling: Annotated[
        str | None,
        Opt(
            "--scaling",
            help="Neural models: auto|pooled|window|mean (auto: pooled, or window where the "
            "series' sizes lie more than three decades apart, mean with --likelihood negbin; "
            "window: each window also divided by its context's spread; mean: by its mean "
            "absolute value, as DeepAR).",
        ),
    ] = None,
    likelihood: Annotated[
        str | None,
        Opt(
            "--likelihood",
            help="Neural models: none|quantile|studentt|negbin (quantile: a network trained "
            "with the pinball loss forecasts quantiles that never cross; studentt: a Student-t "
            "distribution per step, trained by likelihood; negbin: a negative binomial per "
            "step for counts, non-negative integers; the median is the point forecast).",
        ),
    ] = None,
    device: Annotated[
        str | None,
        Opt(
            "--device",
            help="Neural models: where training runs: cpu (default; the compiled recurrence), "
            "cuda (PyTorch's layers on the GPU; cuda:N) or auto (cuda where present).",
        ),
    ] = None,
) -> None:
    """Forecaster settings: constructor arguments, passed to each model that takes them
    (``--season`` is resolved first: a number, 'auto', or the data's own)."""


def with_options(*groups: Callable[..., None]) -> Callable[[Command], Command]:
    """Adds the options of ``groups`` to a command, which receives each group's given values
    as one dict argument named after it (``data_options``, ``split_options``,
    ``model_options``)."""

    def decorate(command: Command) -> Command:
        own = inspect.signature(command, eval_str=True)
        parameters = [p for p in own.parameters.values() if not p.name.endswith("_options")]
        members = {}
        for group in groups:
            added = list(inspect.signature(group, eval_str=True).parameters.values())
            members[group.__name__] = [p.name for p in added]
            parameters += added

        @functools.wraps(command)
        def run(**arguments: Any) -> None:
            for group, names in members.items():
                arguments[group] = {name: arguments.pop(name) for name in names}
            command(**arguments)

        run.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return run  # type: ignore[return-value]

    return decorate
