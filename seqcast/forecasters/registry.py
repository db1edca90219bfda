"""Model names, as the command line and saved models spell them, and how to build each."""

from __future__ import annotations

import importlib

from seqcast.errors import SeqcastError
from seqcast.forecasters.average import (
    DiffMovingAverage,
    MovingAverage,
    SmoothedDiffMovingAverage,
)
from seqcast.forecasters.base import Forecaster, ModelOptions
from seqcast.forecasters.linear import LinearRegression
from seqcast.forecasters.naive import Drift, Naive, SeasonalNaive

__all__ = ["BASELINES", "NEURAL", "create", "forecaster_class", "model_names"]

BASELINES: dict[str, type[Forecaster]] = {
    cls.name: cls
    for cls in (
        Naive,
        SeasonalNaive,
        MovingAverage,
        Drift,
        DiffMovingAverage,
        SmoothedDiffMovingAverage,
        LinearRegression,
    )
}

#: Neural forecasters, imported only when used (PyTorch is slow to import).
NEURAL: dict[str, tuple[str, str]] = {
    "dnn": ("seqcast.forecasters.dense", "DenseForecaster"),
    "rnn": ("seqcast.forecasters.recurrent", "RNNForecaster"),
    "lstm": ("seqcast.forecasters.recurrent", "LSTMForecaster"),
    "gru": ("seqcast.forecasters.recurrent", "GRUForecaster"),
    "cnn-lstm": ("seqcast.forecasters.recurrent", "CNNLSTMForecaster"),
}


def model_names() -> list[str]:
    """Every model name accepted by ``--model``."""
    return [*BASELINES, *NEURAL]


def forecaster_class(name: str) -> type[Forecaster]:
    """The class behind a model name.

    Raises:
        SeqcastError: the name is unknown; the message lists the known ones.
    """
    if name in BASELINES:
        return BASELINES[name]
    if name in NEURAL:
        module, attribute = NEURAL[name]
        cls: type[Forecaster] = getattr(importlib.import_module(module), attribute)
        return cls
    raise SeqcastError(f"unknown model '{name}'; choose from {', '.join(model_names())}")


def create(name: str, options: ModelOptions) -> Forecaster:
    """Builds an unfitted forecaster from command-line options, its settings checked.

    Example:
        >>> create("ma", ModelOptions(window=30)).window
        30
    """
    return forecaster_class(name).from_options(options).validate()
