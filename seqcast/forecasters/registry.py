"""Model names, as the command line and saved models spell them, and how to build each."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping
from typing import Any

from seqcast.errors import SeqcastError, SeqcastWarning
from seqcast.forecasters.average import (
    DiffMovingAverage,
    MovingAverage,
    SmoothedDiffMovingAverage,
)
from seqcast.forecasters.base import Forecaster
from seqcast.forecasters.linear import LinearRegression
from seqcast.forecasters.naive import Drift, Naive, SeasonalNaive

__all__ = ["BASELINES", "NEURAL", "create", "create_for", "forecaster_class", "model_names"]

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


def create(name: str, /, **params: Any) -> Forecaster:
    """Builds the unfitted forecaster registered as ``name`` from its constructor's keyword
    arguments, its settings checked.

    Raises:
        SeqcastError: the name is unknown, or an argument is not one the model takes (the
            message names it and lists those it takes), or a setting is impossible.

    Example:
        >>> create("ma", window=30).window
        30
    """
    cls = forecaster_class(name)
    cls.check_param_names(params)
    return cls(**params).validate()


#: Settings that only a recurrent network uses: a dense network is told it ignores them (and
#: ``seq2seq`` only when on); the baselines ignore every training setting without a word (a
#: leaderboard passes one set of settings to all its models).
RECURRENT_ONLY = ("cell", "bidirectional", "seq2seq")


def create_for(name: str, settings: Mapping[str, Any]) -> Forecaster:
    """Builds ``name`` from settings shared by several models (a leaderboard's): each model
    takes those its constructor has and leaves the rest.

    Example:
        >>> create_for("naive", {"window": 30, "epochs": 5}).window
        30
    """
    accepted = forecaster_class(name).param_names()
    taken = {key: value for key, value in settings.items() if key in accepted}
    if "hidden_size" in accepted and "cell" not in accepted:  # a network, not a recurrent one
        unused = [
            key for key in RECURRENT_ONLY if key in settings and (key != "seq2seq" or settings[key])
        ]
        if unused:
            warnings.warn(
                SeqcastWarning(
                    f"{name} has no recurrent layers; {', '.join(unused)} not used",
                    arguments=tuple(unused),
                ),
                stacklevel=2,
            )
        taken = {key: value for key, value in taken.items() if key not in RECURRENT_ONLY}
    return create(name, **taken)
