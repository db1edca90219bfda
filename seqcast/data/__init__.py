"""Loading, validation, synthetic series, windowing, scaling and splits."""

from seqcast.data.datasets import DATASETS, load_dataset
from seqcast.data.frame import Series, SeriesData
from seqcast.data.loading import load_series
from seqcast.data.scaling import Scaler
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
    "iterate_batches",
    "load_dataset",
    "load_series",
    "make_windows",
    "sliding_windows",
    "split_indices",
    "split_point",
    "synthetic_series",
]
