"""The forecasters: every fit/predict class, baselines and neural, under one contract.

The baselines import with the package; the neural forecasters (PyTorch is slow to import) only
when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from seqcast.forecasters.average import (
    DiffMovingAverage,
    MovingAverage,
    SmoothedDiffMovingAverage,
)
from seqcast.forecasters.base import Forecaster
from seqcast.forecasters.linear import LinearRegression
from seqcast.forecasters.naive import Drift, Naive, SeasonalNaive

__all__ = [
    "CNNLSTMForecaster",
    "DenseForecaster",
    "DiffMovingAverage",
    "Drift",
    "Forecaster",
    "GRUForecaster",
    "LSTMForecaster",
    "LinearRegression",
    "MovingAverage",
    "Naive",
    "NeuralForecaster",
    "RNNForecaster",
    "SeasonalNaive",
    "SmoothedDiffMovingAverage",
]

_LAZY = {
    "NeuralForecaster": "seqcast.forecasters.neural",
    "DenseForecaster": "seqcast.forecasters.dense",
    "RNNForecaster": "seqcast.forecasters.recurrent",
    "LSTMForecaster": "seqcast.forecasters.recurrent",
    "GRUForecaster": "seqcast.forecasters.recurrent",
    "CNNLSTMForecaster": "seqcast.forecasters.recurrent",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seqcast.forecasters' has no attribute {name!r}")
