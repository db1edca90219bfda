"""Metrics, rolling-origin backtests and leaderboards."""

from seqcast.evaluation.backtest import METRIC_NAMES, BacktestResult, backtest
from seqcast.evaluation.metrics import mae, mape, mase, mse, rmse, smape

__all__ = [
    "METRIC_NAMES",
    "BacktestResult",
    "backtest",
    "mae",
    "mape",
    "mase",
    "mse",
    "rmse",
    "smape",
]
