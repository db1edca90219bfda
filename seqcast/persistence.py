"""Saved models: a folder of ``model.json`` and ``weights.safetensors``. Never pickle.

``model.json`` holds the format version, the seqcast version, the model name and its
configuration, what it learned that is not an array (training history, scaler kind), a
description of the data it was trained on, and the SHA-256 of the weights file, so that a
tampered or truncated folder is refused. ``weights.safetensors`` holds the learned arrays and
the last context of every training series, so that ``predict`` works without the data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

from seqcast._version import __version__
from seqcast.atomic import atomic_directory, holds_current_folder, set_aside
from seqcast.data.frame import SeriesData, future_index
from seqcast.errors import ModelFormatError, SeqcastError
from seqcast.forecasters.base import Forecaster
from seqcast.forecasters.registry import forecaster_class

__all__ = [
    "FORMAT_VERSION",
    "ModelSpec",
    "SavedModel",
    "check_destination",
    "description_checksum",
    "forecaster_from_spec",
    "load_model",
    "model_spec",
    "save_model",
]

FORMAT = "seqcast-model"
FORMAT_VERSION = 1
CONFIG_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"


@dataclass
class SavedModel:
    """A loaded model folder.

    Attributes:
        forecaster: the fitted forecaster.
        data: description of the training data (columns, targets, frequency, series ends).
        contexts: per training series, its last ``context_length`` rows (C, F).
        metadata: the rest of ``model.json`` (versions, time of training, metrics).
        extras: arrays saved beside the model by name (the conformal calibration of
            ``seqcast fit --intervals``), read by the layers that wrote them.
    """

    forecaster: Forecaster
    data: dict[str, Any]
    contexts: list[np.ndarray]
    metadata: dict[str, Any]
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def targets(self) -> list[str]:
        return list(self.data["columns"][: self.data["n_targets"]])

    def future_index(self, series_index: int, horizon: int) -> pd.Index:
        """Timestamps (or steps) of the ``horizon`` steps after a training series ends."""
        entry = self.data["series"][series_index]
        return future_index(
            entry["last_time"],
            horizon,
            length=entry["length"],
            freq=self.data["freq"],
            step=self.data["step"],
            name=self.data["time_col"],
        )


def describe_data(data: SeriesData, ends: list[int] | None = None) -> dict[str, Any]:
    """The JSON description of training data that ``predict`` and the service need.

    ``ends`` gives, per series, how many leading steps the model saw (default: all); the
    recorded length and last timestamp are those of that part.
    """
    series = []
    for s, end in zip(data.series, ends or [len(s) for s in data.series], strict=True):
        last: Any = None
        if s.time is not None:
            stamp = s.time[end - 1]
            last = stamp.isoformat() if isinstance(stamp, pd.Timestamp) else float(stamp)
        series.append({"id": s.series_id, "length": end, "last_time": last})
    return {
        "source": data.source,
        "columns": list(data.columns),
        "n_targets": data.n_targets,
        "time_col": data.time_col,
        "id_col": data.id_col,
        "freq": data.freq,
        "step": data.step,
        "season": data.season,
        "date_format": data.date_format,
        "n_future": data.n_future,
        "calendar": list(data.calendar),
        "static": list(data.static),
        "series": series,
    }


def check_destination(path: str | os.PathLike[str]) -> None:
    """Refuses a destination that saving would destroy: a file, or a folder with anything in it
    but a seqcast model's own two files (saving replaces the folder whole).

    Raises:
        ModelFormatError: ``path`` is a file, a non-empty folder without a seqcast
            ``model.json``, or a model folder that also holds other entries (named).
    """
    target = Path(path)
    if holds_current_folder(target):
        raise ModelFormatError(
            f"'{target}' is the current folder or holds it; saving replaces the folder whole: "
            "name a new folder for the model"
        )
    if not target.exists():
        return
    advice = "choose another folder or remove it first"
    if not target.is_dir():
        raise ModelFormatError(f"'{target}' is a file, not a model folder; {advice}")
    entries = sorted(p.name for p in target.iterdir())
    if not entries:
        return
    try:
        config = json.loads((target / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        config = None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFormatError(
            f"folder '{target}' is not empty and holds no seqcast model; saving replaces the "
            f"folder whole, so it was left alone: {advice}"
        )
    foreign = [name for name in entries if name not in (CONFIG_FILE, WEIGHTS_FILE)]
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        shown = ", ".join(foreign[:5]) + more
        raise ModelFormatError(
            f"model folder '{target}' also holds {shown}, which seqcast did not write; saving "
            f"replaces the folder whole, so it was left alone: {advice}"
        )


def save_model(
    forecaster: Forecaster,
    path: str | os.PathLike[str],
    data: SeriesData,
    *,
    training_ends: list[int] | None = None,
    metrics: dict[str, Any] | None = None,
    extras: dict[str, np.ndarray] | None = None,
) -> Path:
    """Writes a fitted forecaster to a model folder, atomically.

    Args:
        forecaster: a fitted forecaster.
        path: the folder; an earlier model folder there is replaced whole.
        data: the data it was fitted on.
        training_ends: per series, how many leading steps were used (default: all); the stored
            context is the end of that part.
        metrics: validation scores to keep with the model.
        extras: named arrays to keep beside the weights (:attr:`SavedModel.extras`).

    Returns:
        The folder's path.

    Raises:
        ModelFormatError: the forecaster is not fitted, or ``path`` is a file or a non-empty
            folder that holds no seqcast model (see :func:`check_destination`).
    """
    if not getattr(forecaster, "is_fitted_", False):
        raise ModelFormatError("cannot save a forecaster that is not fitted")
    check_destination(path)
    ends = training_ends or [len(s) for s in data.series]
    arrays = {f"state.{k}": np.ascontiguousarray(v) for k, v in forecaster.get_state().items()}
    arrays.update({f"extra.{k}": np.ascontiguousarray(v) for k, v in (extras or {}).items()})
    steps = forecaster.context_length
    description = describe_data(data, ends)
    for i, (series, end) in enumerate(zip(data.series, ends, strict=True)):
        arrays[f"context.{i}"] = np.ascontiguousarray(series.values[max(0, end - steps) : end])
    weights = save_safetensors(arrays)
    config = {
        **_forecaster_fields(forecaster),
        "data": description,
        "metrics": metrics or {},
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    config[DESCRIPTION_KEY] = description_checksum(config)
    target = Path(path)
    with atomic_directory(target) as tmp:
        (tmp / WEIGHTS_FILE).write_bytes(weights)
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=_json_default) + "\n")
    return target


#: Where ``model.json`` keeps the checksum of the rest of itself.
DESCRIPTION_KEY = "description_sha256"


def description_checksum(config: dict[str, Any]) -> str:
    """The SHA-256 of a model description (``model.json`` without its own checksum), over its
    canonical JSON (keys sorted, no spaces): any change of a value changes it, a change of
    layout alone does not."""
    rest = {k: v for k, v in config.items() if k != DESCRIPTION_KEY}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in model.json")


def load_model(path: str | os.PathLike[str]) -> SavedModel:
    """Loads a model folder written by :func:`save_model`, checking its format and integrity.

    Raises:
        ModelFormatError: the folder is missing, incomplete, tampered with, or of another
            format version.
    """
    folder = Path(path)
    label = f"model folder '{folder}'"
    if folder.is_file():
        raise ModelFormatError(f"'{folder}' is a file, not a model folder written by 'seqcast fit'")
    if not folder.is_dir():
        aside = set_aside(folder)
        if aside is not None:
            raise ModelFormatError(
                f"{label} does not exist: a save to it was interrupted and left the previous "
                f"model in '{aside}'; the next save to '{folder}' puts it back first, or rename "
                "it yourself"
            )
        raise ModelFormatError(f"{label} does not exist")
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise ModelFormatError(f"{label} has no {name}; it is not a seqcast model")
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{label}: {CONFIG_FILE} is not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise ModelFormatError(
            f"{label}: {CONFIG_FILE} is nested too deeply to be a seqcast model description"
        ) from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFormatError(f"{label}: {CONFIG_FILE} is not a seqcast model description")
    version = config.get("format_version")
    if type(version) is not int:
        raise ModelFormatError(
            f"{label}: {CONFIG_FILE} gives format_version {version!r}, which is not an integer"
        )
    if version != FORMAT_VERSION:
        raise ModelFormatError(
            f"{label} uses model format version {version!r} (written by seqcast "
            f"{config.get('seqcast_version', '?')}); this seqcast {__version__} reads version "
            f"{FORMAT_VERSION}: refit the model"
        )
    if config.get(DESCRIPTION_KEY) != description_checksum(config):
        raise ModelFormatError(
            f"{label}: {CONFIG_FILE} was changed after seqcast wrote it (its checksum, "
            f"{DESCRIPTION_KEY}, does not match its content); restore the file or refit the model"
        )
    weights = (folder / WEIGHTS_FILE).read_bytes()
    if hashlib.sha256(weights).hexdigest() != config.get("weights_sha256"):
        raise ModelFormatError(
            f"{label}: {WEIGHTS_FILE} does not match the checksum in {CONFIG_FILE}; "
            "the folder was modified or is incomplete"
        )
    cls = _forecaster_class(config, label)
    try:
        arrays = load_safetensors(weights)
        forecaster = _fitted_forecaster(cls, config, arrays)
        data = config["data"]
        contexts = [arrays[f"context.{i}"] for i in range(len(data["series"]))]
        metadata = {k: v for k, v in config.items() if k not in ("config", "data", "info")}
        extras = {k.removeprefix("extra."): v for k, v in arrays.items() if k.startswith("extra.")}
        saved = SavedModel(forecaster, data, contexts, metadata, extras)
        _check_description(saved)
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, SafetensorError) as exc:
        detail = " ".join(str(exc).split())  # one line: torch lists mismatches on several
        raise ModelFormatError(f"{label} is inconsistent ({type(exc).__name__}: {detail})") from exc
    return saved


def _check_description(saved: SavedModel) -> None:
    """Checks that the data description and stored contexts agree with the model, so that an
    edited ``model.json`` (not covered by the checksum) is refused here and not mid-forecast.

    Raises:
        ValueError: they disagree.
    """
    forecaster, data = saved.forecaster, saved.data
    known = int(getattr(forecaster, "n_future_", 0))
    if data.get("n_future", 0) != known or len(data.get("calendar", [])) > known:
        raise ValueError("the data description's known-ahead columns do not match the model's")
    if data["n_targets"] != forecaster.n_targets_ or len(data["columns"]) != forecaster.n_features_:
        raise ValueError("the data description's columns do not match the model's channels")
    if not saved.contexts:
        raise ValueError("the data description lists no series")
    steps = forecaster.context_length
    for i, (entry, context) in enumerate(zip(data["series"], saved.contexts, strict=True)):
        expected = (min(steps, int(entry["length"])), forecaster.n_features_)
        if context.shape != expected:
            raise ValueError(f"context.{i} has shape {context.shape}, the model reads {expected}")
        saved.future_index(i, 1)  # the timestamps that predict will need


def _forecaster_fields(forecaster: Forecaster) -> dict[str, Any]:
    """What ``model.json`` says of a fitted forecaster itself (its data apart)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "seqcast_version": __version__,
        "model": forecaster.name,
        "config": forecaster.get_config(),
        "fitted": {
            "n_features": forecaster.n_features_,
            "n_targets": forecaster.n_targets_,
            "n_future": int(getattr(forecaster, "n_future_", 0)),
        },
        "info": forecaster.get_info(),
    }


def _forecaster_class(config: dict[str, Any], label: str) -> type[Forecaster]:
    try:
        return forecaster_class(str(config.get("model")))
    except SeqcastError as exc:
        raise ModelFormatError(f"{label}: {exc}") from exc


def _fitted_forecaster(
    cls: type[Forecaster], config: dict[str, Any], arrays: dict[str, np.ndarray]
) -> Forecaster:
    """The forecaster a description and its arrays (``state.*``) give."""
    forecaster = cls(**config["config"])
    forecaster.n_features_ = int(config["fitted"]["n_features"])
    forecaster.n_targets_ = int(config["fitted"]["n_targets"])
    forecaster.n_future_ = int(config["fitted"].get("n_future", 0))  # 0 before it existed
    forecaster.set_info(config.get("info", {}))
    forecaster.set_state(
        {k.removeprefix("state."): v for k, v in arrays.items() if k.startswith("state.")}
    )
    forecaster.is_fitted_ = True
    return forecaster


@dataclass(frozen=True)
class ModelSpec:
    """A forecaster as the bytes of a model folder, for engines' workers: ``config`` is the
    JSON of ``model.json`` (without the data description), ``weights`` the safetensors of its
    learned arrays (empty for an unfitted forecaster, which the JSON then gives by its name and
    settings alone). Workers rebuild the forecaster from these bytes with
    :func:`forecaster_from_spec`, never from a pickled object."""

    config: bytes
    weights: bytes = b""


def model_spec(forecaster: Forecaster) -> ModelSpec:
    """The spec of a forecaster, fitted (with its weights) or not (its settings alone)."""
    if not getattr(forecaster, "is_fitted_", False):
        fields = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": forecaster.name,
                  "config": forecaster.get_config()}  # fmt: skip
        return ModelSpec(json.dumps(fields, default=_json_default).encode())
    arrays = {f"state.{k}": np.ascontiguousarray(v) for k, v in forecaster.get_state().items()}
    weights = save_safetensors(arrays)
    fields = {
        **_forecaster_fields(forecaster),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    return ModelSpec(json.dumps(fields, default=_json_default).encode(), weights)


def forecaster_from_spec(spec: ModelSpec) -> Forecaster:
    """The forecaster of a :func:`model_spec`: fitted, with the same weights, when the spec
    has them; else unfitted with the same settings.

    Raises:
        ModelFormatError: the spec is not a seqcast model's, or its weights do not match.
    """
    label = "model spec"
    try:
        config = json.loads(spec.config)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{label}: its JSON is not valid ({exc})") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFormatError(f"{label}: not a seqcast model description")
    if config.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(f"{label}: format version {config.get('format_version')!r}")
    cls = _forecaster_class(config, label)
    fitted = "fitted" in config
    if fitted and hashlib.sha256(spec.weights).hexdigest() != config.get("weights_sha256"):
        raise ModelFormatError(f"{label}: its weights do not match their checksum")
    try:
        if not fitted:
            return cls(**config["config"])
        return _fitted_forecaster(cls, config, load_safetensors(spec.weights))
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, SafetensorError) as exc:
        detail = " ".join(str(exc).split())
        raise ModelFormatError(f"{label} is inconsistent ({type(exc).__name__}: {detail})") from exc
