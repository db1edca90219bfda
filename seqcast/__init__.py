"""seqcast: time-series forecasting with recurrent networks and honest baselines.

The public API, imported on first use (PyTorch is slow to import, and the command line needs
little of it)::

    import seqcast

    data = seqcast.load_series("sales.csv", time_col="date")
    model = seqcast.RNNForecaster(window=20, season=12).fit([s.values for s in data.series])
    seqcast.save(model, "models/sales", data)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from seqcast._version import __version__

if TYPE_CHECKING:
    from seqcast.batch import forecast_partitions
    from seqcast.data import (
        SeriesData,
        load_dataset,
        load_series,
        make_windows,
        split_indices,
        synthetic_series,
    )
    from seqcast.engines import get_engine
    from seqcast.errors import DataError, NotFittedError, SeqcastError
    from seqcast.evaluation import backtest
    from seqcast.evaluation.leaderboard import run_leaderboard
    from seqcast.forecasters import (
        CNNLSTMForecaster,
        DenseForecaster,
        DiffMovingAverage,
        Drift,
        Forecaster,
        GRUForecaster,
        LinearRegression,
        LSTMForecaster,
        MovingAverage,
        Naive,
        RNNForecaster,
        SeasonalNaive,
        SmoothedDiffMovingAverage,
    )
    from seqcast.forecasters.registry import create, model_names
    from seqcast.frames import Forecast, evaluate
    from seqcast.persistence import SavedModel
    from seqcast.persistence import load_model as load
    from seqcast.persistence import save_model as save

#: Public name -> (module, attribute).
_EXPORTS: dict[str, tuple[str, str]] = {
    "SeriesData": ("seqcast.data", "SeriesData"),
    "load_dataset": ("seqcast.data", "load_dataset"),
    "load_series": ("seqcast.data", "load_series"),
    "make_windows": ("seqcast.data", "make_windows"),
    "split_indices": ("seqcast.data", "split_indices"),
    "synthetic_series": ("seqcast.data", "synthetic_series"),
    "DataError": ("seqcast.errors", "DataError"),
    "NotFittedError": ("seqcast.errors", "NotFittedError"),
    "SeqcastError": ("seqcast.errors", "SeqcastError"),
    "backtest": ("seqcast.evaluation", "backtest"),
    "run_leaderboard": ("seqcast.evaluation.leaderboard", "run_leaderboard"),
    "CNNLSTMForecaster": ("seqcast.forecasters", "CNNLSTMForecaster"),
    "DenseForecaster": ("seqcast.forecasters", "DenseForecaster"),
    "DiffMovingAverage": ("seqcast.forecasters", "DiffMovingAverage"),
    "Drift": ("seqcast.forecasters", "Drift"),
    "Forecaster": ("seqcast.forecasters", "Forecaster"),
    "GRUForecaster": ("seqcast.forecasters", "GRUForecaster"),
    "LSTMForecaster": ("seqcast.forecasters", "LSTMForecaster"),
    "LinearRegression": ("seqcast.forecasters", "LinearRegression"),
    "MovingAverage": ("seqcast.forecasters", "MovingAverage"),
    "Naive": ("seqcast.forecasters", "Naive"),
    "RNNForecaster": ("seqcast.forecasters", "RNNForecaster"),
    "SeasonalNaive": ("seqcast.forecasters", "SeasonalNaive"),
    "SmoothedDiffMovingAverage": ("seqcast.forecasters", "SmoothedDiffMovingAverage"),
    "create": ("seqcast.forecasters.registry", "create"),
    "model_names": ("seqcast.forecasters.registry", "model_names"),
    "SavedModel": ("seqcast.persistence", "SavedModel"),
    "Forecast": ("seqcast.frames", "Forecast"),
    "evaluate": ("seqcast.frames", "evaluate"),
    "forecast_partitions": ("seqcast.batch", "forecast_partitions"),
    "get_engine": ("seqcast.engines", "get_engine"),
    "save": ("seqcast.persistence", "save_model"),
    "load": ("seqcast.persistence", "load_model"),
}

__all__ = [
    "CNNLSTMForecaster",
    "DataError",
    "DenseForecaster",
    "DiffMovingAverage",
    "Drift",
    "Forecast",
    "Forecaster",
    "GRUForecaster",
    "LSTMForecaster",
    "LinearRegression",
    "MovingAverage",
    "Naive",
    "NotFittedError",
    "RNNForecaster",
    "SavedModel",
    "SeasonalNaive",
    "SeqcastError",
    "SeriesData",
    "SmoothedDiffMovingAverage",
    "__version__",
    "backtest",
    "create",
    "evaluate",
    "forecast_partitions",
    "get_engine",
    "load",
    "load_dataset",
    "load_series",
    "make_windows",
    "model_names",
    "run_leaderboard",
    "save",
    "split_indices",
    "synthetic_series",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, attribute = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'seqcast' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
