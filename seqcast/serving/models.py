"""The models a server holds: loaded once at start, looked up by name.

A model's name is its folder's name. Requests only ever look names up in the table built
here, so a name in a URL never becomes a file path. Forecasts of one model run side by side
on the server's threads without a lock: a forecaster's ``predict`` only reads its fitted state
(``tests/test_serving_threads.py`` checks every kind against the same forecasts made one at a
time), so a cheap request never waits behind an expensive one.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqcast.data.calendar import calendar_values
from seqcast.data.known import future_names, known_ahead
from seqcast.errors import DataError, ModelFormatError, SeqcastError, SeqcastWarning
from seqcast.forecasters.base import Forecaster
from seqcast.persistence import SavedModel, load_model
from seqcast.prediction import future_times, parse_dates, quantiles_refused, saved_quantiles
from seqcast.serving.schemas import ModelInfo

__all__ = ["ServedModel", "load_served_models"]


@dataclass
class ServedModel:
    """A loaded model folder and what serving it needs.

    Attributes:
        name: the folder's name; the ``{name}`` of its URLs.
        path: the folder.
        saved: the loaded folder.
        max_horizon: the largest horizon T a request may ask for.
    """

    name: str
    path: Path
    saved: SavedModel
    max_horizon: int

    @property
    def forecaster(self) -> Forecaster:
        return self.saved.forecaster

    @property
    def columns(self) -> list[str]:
        """Input columns C_in, targets first, then features."""
        return list(self.saved.data["columns"])

    @property
    def context_length(self) -> int:
        return self.forecaster.context_length

    def info(self) -> ModelInfo:
        """The entry of ``GET /models``."""
        data, metadata = self.saved.data, self.saved.metadata
        targets = self.saved.targets
        return ModelInfo(
            name=self.name,
            model=self.forecaster.name,
            window=self.forecaster.window,
            horizon=self.forecaster.horizon,
            context_length=self.context_length,
            padded=self.forecaster.accepts_padding,
            quantiles=self.quantile_source,
            quantile_steps=self.quantile_steps,
            max_horizon=self.max_horizon,
            targets=targets,
            features=self.columns[len(targets) : len(self.columns) - len(data.get("calendar", []))],
            future_features=self.future_features,
            calendar=list(data.get("calendar", [])) if self.forecaster.n_known else [],
            freq=data.get("freq"),
            trained_at=metadata.get("trained_at"),
            metrics=_json_safe(dict(metadata.get("metrics") or {})),
        )

    def context(
        self, history: np.ndarray, timestamps: list[str] | list[float] | None = None
    ) -> np.ndarray:
        """The (C, F) context of a request's history: :meth:`last` of :meth:`rows`."""
        return self.last(self.rows(history, timestamps))

    def rows(
        self, history: np.ndarray, timestamps: list[str] | list[float] | None = None
    ) -> np.ndarray:
        """A request's history as (N, F) rows of the model's columns, with the calendar of
        its ``timestamps`` for a model that reads one.

        Args:
            history: (N,) values of one input column, or (N, F') rows (every column but the
                calendar).
            timestamps: N timestamps of the history steps.

        Returns:
            (N, F) float64 rows.

        Raises:
            DataError: the history has the wrong number of columns, or no timestamps for a
                model reading the calendar.
        """
        cycles = list(self.saved.data.get("calendar", []))
        sent = self.columns[: len(self.columns) - len(cycles)]  # the calendar is computed
        n_features = len(sent)
        values = history
        if values.ndim == 1:
            if n_features != 1:
                raise DataError(
                    f"model '{self.name}' takes {n_features} values per step "
                    f"({', '.join(sent)}): send history as rows, one per step"
                )
            values = values[:, None]  # (N,) -> (N, 1)
        elif values.shape[1] != n_features:
            raise DataError(
                f"history rows have {values.shape[1]} values; model '{self.name}' takes "
                f"{n_features} per step ({', '.join(sent)})"
            )
        if cycles and not self.forecaster.n_known:  # never read: any value will do
            values = np.hstack([values, np.zeros((len(values), len(cycles)))])
        elif cycles:  # the calendar of the history's own steps, from its timestamps
            if timestamps is None or len(timestamps) != len(values):
                raise DataError(
                    f"model '{self.name}' reads the calendar: send timestamps, one per history step"
                )
            if not all(isinstance(t, str) for t in timestamps):
                raise DataError(f"model '{self.name}' reads the calendar: send ISO 8601 dates")
            stamps = parse_dates([str(t) for t in timestamps])
            values = np.hstack([values, calendar_values(stamps, cycles)])
        return values

    def last(self, values: np.ndarray) -> np.ndarray:
        """The (C, F) context of a request's (N, F) rows (:meth:`rows`): its last
        ``context_length`` steps, padded in front for a model trained with padding.

        Raises:
            DataError: too few steps.
        """
        steps = self.context_length
        if len(values) < steps and self.forecaster.accepts_padding and len(values) > 0:
            # A model trained on padded short series forecasts from a padded past (the note
            # that says so is for a command line, not for every request).
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SeqcastWarning)
                padded: np.ndarray = self.forecaster.last_contexts([values], ["the history"])[0]
            return padded
        if len(values) < steps:
            reason = ""
            if steps > self.forecaster.window:
                reason = f" (its window of {self.forecaster.window} plus its seasonal lags)"
            raise DataError(
                f"history has {len(values)} steps; model '{self.name}' needs at least "
                f"{steps}{reason}"
            )
        return values[len(values) - steps :]

    @property
    def future_features(self) -> list[str]:
        """The inputs known ahead whose values a request sends (not the calendar or static
        ones, which the service computes)."""
        data = self.saved.data
        if not self.forecaster.n_known:  # a model that reads none (a baseline)
            return []
        known, static = int(data.get("n_future", 0)), data.get("static", [])
        return future_names(self.columns, known, static, data.get("calendar", []))

    def known(
        self,
        context: np.ndarray,
        horizon: int,
        future: np.ndarray | None,
        timestamps: list[str] | list[float] | None,
    ) -> np.ndarray | None:
        """(1, max(T, T0), F_k) values of the model's inputs known ahead for a request: its
        ``future`` rows, the static values of the last history step, and the calendar of the
        steps after its ``timestamps``; None for a model without such inputs.

        Raises:
            DataError: ``future`` or ``timestamps`` are needed and missing or too short.
        """
        if not self.forecaster.n_known:
            return None
        data = self.saved.data
        span = max(horizon, self.forecaster.horizon)
        named, cycles = self.future_features, list(data.get("calendar", []))
        static = list(data.get("static", []))
        given = None
        if named:
            rows = None if future is None else (future[:, None] if future.ndim == 1 else future)
            if rows is None or rows.shape[1] != len(named) or len(rows) < span:
                got = "none" if rows is None else f"{rows.shape[0]} row(s) of {rows.shape[1]}"
                raise DataError(
                    f"model '{self.name}' reads {', '.join(named)} at the forecast steps: send "
                    f"future with {span} row(s) of {len(named)} value(s), got {got}"
                )
            given = rows[:span]
        index: pd.Index = pd.RangeIndex(span)  # steps only, without a calendar
        if cycles:
            if timestamps is None:
                raise DataError(
                    f"model '{self.name}' reads the calendar of the forecast steps: send "
                    "timestamps, one per history step"
                )
            index = future_times([str(t) for t in timestamps], span, data, f"model '{self.name}'")
        return known_ahead(context[-1], index, given, static, cycles)[None]

    def check_horizon(self, horizon: int) -> None:
        """Refuses a horizon above the maximum, or one the model cannot roll out to.

        Raises:
            DataError: the horizon is not allowed; the message gives the limit.
        """
        if horizon <= self.max_horizon:
            return
        reason = ""
        if not self.forecaster.can_roll_out and self.max_horizon == self.forecaster.horizon:
            reason = (
                ": it has input features, whose future values are unknown, so it cannot "
                "forecast past the horizon it was trained for"
            )
        raise DataError(
            f"horizon {horizon} is above the maximum of {self.max_horizon} for model "
            f"'{self.name}'{reason}"
        )

    def passes(self, horizon: int, quantiles: bool) -> int:
        """The request's work: forecasts made one after another to answer it.

        One for a horizon the model forecasts directly; past its trained horizon T0, one per
        block of T0 steps rolled out, and as many again when quantiles come from sampled paths.

        Args:
            horizon: steps T asked for, already checked by :meth:`check_horizon`.
            quantiles: whether quantiles are asked for too.
        """
        forecaster = self.forecaster
        if forecaster.any_horizon or horizon <= forecaster.horizon:
            return 1
        blocks = math.ceil(horizon / forecaster.horizon)
        sampled = quantiles and self.quantile_source == "network"
        return 2 * blocks if sampled else blocks

    @property
    def quantile_source(self) -> str | None:
        if self.forecaster.has_quantiles:
            return "network"
        return "conformal" if "conformal.widths" in self.saved.extras else None

    @property
    def quantile_steps(self) -> int:
        if self.forecaster.has_quantiles:
            return self.max_horizon if self.forecaster.quantiles_reach(self.max_horizon) else (
                self.forecaster.horizon)  # fmt: skip
        widths = self.saved.extras.get("conformal.widths")
        return 0 if widths is None or widths.ndim != 3 else int(widths.shape[1])

    def check_quantiles(self, horizon: int) -> None:
        """Refuses quantiles ``horizon`` steps ahead that the model cannot give, before any
        work.

        Raises:
            DataError: it gives none, or not that far.
        """
        refusal = quantiles_refused(self.saved, horizon)
        if refusal is not None:
            raise refusal
        if horizon > self.quantile_steps:
            raise DataError(
                f"model '{self.name}' forecasts quantiles up to step {self.quantile_steps}; "
                f"horizon {horizon} is beyond"
            )

    def forecast_quantiles(
        self,
        context: np.ndarray,
        point: np.ndarray,
        levels: tuple[float, ...],
        known: np.ndarray | None = None,
        history: np.ndarray | None = None,
    ) -> np.ndarray:
        """(T, F_target, Q) quantiles around the point forecasts (T, F_target) of one
        context (C, F).

        Raises:
            DataError: the model forecasts no quantiles, or not that far.
        """
        with np.errstate(over="ignore", invalid="ignore"):
            ready = self.forecaster.last_contexts([context], ["the history"])
            # Conformal intervals scale by the whole history sent, as predict --data does.
            seen = context if history is None else history
            bands = saved_quantiles(self.saved, ready, point[None], [seen], False, levels, known)
        if not np.isfinite(bands).all():
            raise DataError(f"model '{self.name}' produced non-finite quantiles")
        one: np.ndarray = bands[0]
        return one

    def forecast(
        self, context: np.ndarray, horizon: int, known: np.ndarray | None = None
    ) -> np.ndarray:
        """Forecasts from one context.

        Args:
            context: (C, F) past values, as :meth:`context` returns.
            horizon: steps T, already checked by :meth:`check_horizon`.

        Returns:
            (T, F_target) forecasts.

        Raises:
            DataError: the forecast is not finite (an extreme history).
        """
        # Extreme but finite histories may overflow inside the scaler; the result is then
        # refused as non-finite by ``predict``, so the warnings would only be noise.
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                forecast: np.ndarray = self.forecaster.predict(context[None], horizon, known)
        except DataError as exc:
            raise DataError(
                f"model '{self.name}' cannot forecast from this history: {exc} (are the values "
                "far outside the range it was trained on?)"
            ) from exc
        one: np.ndarray = forecast[0]  # (1, T, Ft) -> (T, Ft)
        return one


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None: JSON has no such numbers, and a response
    holding them could not be encoded."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _max_horizon(forecaster: Forecaster, limit: int) -> int:
    return limit if forecaster.can_roll_out else min(limit, forecaster.horizon)


def load_served_models(
    model_dirs: Sequence[str | os.PathLike[str]], max_horizon: int
) -> dict[str, ServedModel]:
    """Loads every folder, checks names are unique, and runs one forecast on each.

    Args:
        model_dirs: model folders written by ``seqcast fit``.
        max_horizon: the largest horizon a request may ask for.

    Returns:
        The models by name, in the order given.

    Raises:
        SeqcastError: no folder, a bad maximum, or two folders with the same name.
        ModelFormatError: a folder cannot be loaded or its model cannot forecast.
    """
    if not model_dirs:
        raise SeqcastError("give at least one model folder to serve")
    if max_horizon < 1:
        raise SeqcastError(
            f"max_horizon must be at least 1, got {max_horizon}", arguments=("max_horizon",)
        )
    served: dict[str, ServedModel] = {}
    for entry in model_dirs:
        path = Path(entry).resolve()
        name = path.name
        if name in served:
            raise SeqcastError(
                f"model folders '{served[name].path}' and '{path}' are both named '{name}'; "
                "models are served by folder name, so rename one"
            )
        saved = load_model(path)
        model = ServedModel(
            name=name,
            path=path,
            saved=saved,
            max_horizon=_max_horizon(saved.forecaster, max_horizon),
        )
        _warm_up(model)
        served[name] = model
    return served


def _warm_up(model: ServedModel) -> None:
    """One forecast from the stored context: proves the folder works and keeps the first
    request's latency free of one-time initialisation."""
    if not model.saved.contexts or len(model.saved.contexts[0]) < model.context_length:
        return
    known = model.forecaster.n_known
    dummy = np.zeros((1, model.forecaster.horizon, known)) if known else None
    try:
        model.forecast(model.saved.contexts[0][-model.context_length :], 1, dummy)
    except DataError as exc:
        raise ModelFormatError(
            f"model folder '{model.path}' cannot forecast from its own stored context ({exc})"
        ) from exc
