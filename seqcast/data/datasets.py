"""Built-in datasets, shipped with the package or generated: no download ever."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from seqcast.data.frame import SeriesData
from seqcast.data.loading import load_series
from seqcast.data.splits import split_indices
from seqcast.data.synthetic import course_series
from seqcast.errors import DataError

__all__ = ["DATASETS", "DatasetInfo", "default_splits", "load_dataset", "load_source"]


@dataclass(frozen=True)
class DatasetInfo:
    """A built-in dataset and its natural settings.

    Attributes:
        name: the name used on the command line.
        description: one line for ``seqcast datasets``.
        val_size: points per series in the natural validation part.
        season: natural seasonal period in steps.
        targets: default target columns.
        source: where the data comes from, with its licence.
    """

    name: str
    description: str
    val_size: int
    season: int
    targets: tuple[str, ...]
    source: str
    _load: Callable[..., SeriesData]

    def load(self, **options: Any) -> SeriesData:
        """Loads the dataset; ``options`` are those of :func:`load_series` (targets, ...)."""
        options = {k: v for k, v in options.items() if v is not None}
        options.setdefault("targets", list(self.targets))
        data = self._load(**options)
        return replace(data, source=self.name, season=self.season)


def _file(name: str) -> Path:
    return Path(str(resources.files("seqcast.data").joinpath("files", name)))


def _synthetic(**options: Any) -> SeriesData:
    return load_series(course_series().astype("float64"), **options)


def _csv(name: str, time_col: str) -> Callable[..., SeriesData]:
    def load(**options: Any) -> SeriesData:
        options.setdefault("time_col", time_col)
        return load_series(_file(name), **options)

    return load


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="synthetic",
            description="the course series: trend + yearly pattern + noise, 1,461 daily steps",
            val_size=461,
            season=365,
            targets=("y",),
            source="generated (TensorFlow course 'Sequences, Time Series and Prediction')",
            _load=_synthetic,
        ),
        DatasetInfo(
            name="sunspots",
            description="monthly mean total sunspot number, 1749-01 to 2018-07, 3,235 months",
            val_size=235,
            season=132,
            targets=("Monthly Mean Total Sunspot Number",),
            source="WDC-SILSO, Royal Observatory of Belgium (TensorFlow course, Apache-2.0)",
            _load=_csv("sunspots.csv", "Date"),
        ),
        DatasetInfo(
            name="etth1",
            description="transformer 1: hourly load and oil temperature, 7 channels, target OT",
            val_size=17420 - 11520,
            season=24,
            targets=("OT",),
            source="zhouhaoyi/ETDataset, CC BY-ND 4.0; Zhou et al., Informer, AAAI 2021",
            _load=_csv("ETTh1.csv.gz", "date"),
        ),
        DatasetInfo(
            name="etth2",
            description="transformer 2: hourly load and oil temperature, 7 channels, target OT",
            val_size=17420 - 11520,
            season=24,
            targets=("OT",),
            source="zhouhaoyi/ETDataset, CC BY-ND 4.0; Zhou et al., Informer, AAAI 2021",
            _load=_csv("ETTh2.csv.gz", "date"),
        ),
    )
}


def load_dataset(name: str, **options: Any) -> SeriesData:
    """Loads a built-in dataset by name (``seqcast datasets`` lists them).

    Example:
        >>> load_dataset("synthetic").series[0].values.shape
        (1461, 1)
    """
    if name not in DATASETS:
        raise KeyError(name)
    return DATASETS[name].load(**options)


def load_source(
    source: str,
    *,
    targets: list[str] | None = None,
    features: list[str] | None = None,
    time_col: str | None = None,
    id_col: str | None = None,
    fill: str = "error",
    date_format: str | None = None,
    max_input_bytes: int | None = None,
    future_features: list[str] | None = None,
    calendar: str = "none",
    static_features: list[str] | None = None,
) -> SeriesData:
    """A built-in dataset by name (unless a file of that name exists), else a CSV or Parquet
    file, loaded with :func:`seqcast.data.loading.load_series`'s options.

    Example:
        >>> load_source("synthetic").season
        365
    """
    options: dict[str, Any] = dict(
        targets=targets or None, features=features, time_col=time_col, id_col=id_col, fill=fill
    )
    if date_format is not None:
        options["date_format"] = date_format
    if future_features:
        options["future_features"] = future_features
    if calendar != "none":
        options["calendar"] = calendar
    if static_features:
        options["static_features"] = static_features
    if source in DATASETS and not Path(source).exists():
        return DATASETS[source].load(**options)
    return load_series(source, max_input_bytes=max_input_bytes, **options)


def default_splits(
    data: SeriesData,
    val_size: int | None = None,
    val_frac: float | None = None,
    split_time: str | None = None,
    *,
    n_windows: int | None = None,
    horizon: int = 1,
    stride: int = 1,
) -> list[int]:
    """Per series, the first validation index: from whichever of ``val_size``, ``val_frac``,
    ``split_time`` and ``n_windows`` is given; else a built-in dataset's natural split, else
    the last 20 %. ``n_windows`` forecast origins, ``stride`` steps apart, the last one
    ``horizon`` steps before each series' end, take ``horizon + (n_windows - 1) * stride``
    validation points."""
    if n_windows is not None:
        if val_size is not None or val_frac is not None or split_time is not None:
            raise DataError(
                "give n_windows or one of val_size, val_frac, split_time, not both",
                arguments=("n_windows", "val_size", "val_frac", "split_time"),
            )
        if n_windows < 1:
            raise DataError(
                f"n_windows must be at least 1, got {n_windows}", arguments=("n_windows",)
            )
        val_size = horizon + (n_windows - 1) * stride
    if val_size is None and val_frac is None and split_time is None:
        if data.source in DATASETS:
            val_size = DATASETS[data.source].val_size
        else:
            val_frac = 0.2
    return split_indices(data, val_size=val_size, val_frac=val_frac, split_time=split_time)
