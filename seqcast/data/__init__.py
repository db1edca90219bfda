"""Loading, validation, synthetic series, windowing, scaling and splits."""

from seqcast.data.datasets import DATASETS, default_splits, load_dataset, load_source
from seqcast.data.frame import Series, SeriesData
from seqcast.data.loading import load_series
from seqcast.data.scaling import Scaler
from seqcast.data.seasonality import resolve_season
from seqcast.data.splits import split_indices, split_point
from seqcast.data.synthetic import course_series, synthetic_series
from seqcast.data.windows import Windows, iterate_batches, make_windows, sliding_windows

__all__ = [
    "DATASETS",
    "Scaler",
    "Series",
    "SeriesData",
    "Windows",
    "course_series",
    "default_splits",
    "iterate_batches",
    "load_dataset",
    "load_series",
    "load_source",
    "make_windows",
    "resolve_season",
    "sliding_windows",
    "split_indices",
    "split_point",
    "synthetic_series",
]
