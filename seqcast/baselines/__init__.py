"""The ladder of baselines every neural model must beat."""

from seqcast.baselines.average import DiffMovingAverage, MovingAverage, SmoothedDiffMovingAverage
from seqcast.baselines.linear import LinearRegression
from seqcast.baselines.naive import Drift, Naive, SeasonalNaive

__all__ = [
    "DiffMovingAverage",
    "Drift",
    "LinearRegression",
    "MovingAverage",
    "Naive",
    "SeasonalNaive",
    "SmoothedDiffMovingAverage",
]
