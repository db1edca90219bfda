"""The DataFrame entry point: many series in long format in, forecasts in long format out.

The field's conventions (Nixtla's utilsforecast, StatsForecast, NeuralForecast): one row per
series and time step, with the series id, the time and the target in columns named
``unique_id``, ``ds`` and ``y`` by default (configurable). Every model is fitted once across
all series (a global model) and forecasts every series in one batched call::

    forecast = seqcast.Forecast([seqcast.RNNForecaster(window=24, horizon=18, season=12)])
    future = forecast.fit(train).predict(18)            # unique_id, ds, rnn
    bands = forecast.predict(18, level=[80, 95])        # ... rnn-lo-80, rnn-hi-80, ...
    cv = forecast.cross_validation(train, h=18, n_windows=3)
    scores = seqcast.evaluate(cv, train_df=train, season=12)   # unique_id, metric, rnn

Cross-validation refits every model at each cutoff on the data up to it and never shows it a
later value; cutoffs count back from each series' own end, so series of different lengths and
end dates are cut alike.

Intervals (``level``) and quantiles (``quantiles``) come from every model: a network trained for
them (``likelihood="quantile"``, ``"studentt"`` or ``"negbin"``) gives its own, every other model
conformal ones calibrated on a backtest inside the data it was fitted on
(:mod:`seqcast.evaluation.conformal`); either way cross-validation's intervals never see past
their cutoff.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Self

import numpy as np
import pandas as pd

from seqcast.data.frame import Series, SeriesData
from seqcast.data.known import future_names, future_rows, known_ahead
from seqcast.data.loading import load_series
from seqcast.data.seasonality import season_from_freq
from seqcast.engines import Engine, engine_for
from seqcast.errors import DataError, NotFittedError, SeqcastWarning
from seqcast.evaluation import metrics as scores_of
from seqcast.evaluation import probabilistic
from seqcast.evaluation.conformal import Conformal, calibrate, series_floors, series_scales
from seqcast.evaluation.probabilistic import check_quantiles, levels_to_quantiles, quantile_name
from seqcast.forecasters.base import Forecaster
from seqcast.persistence import ModelSpec, forecaster_from_spec, model_spec

__all__ = ["METRICS", "Forecast", "evaluate"]

#: The values known ahead for a number of steps: (S, steps, F_k), or None without them.
Known = Callable[[int], np.ndarray | None]

#: The metrics :func:`evaluate` computes, by name.
METRICS = ("mae", "mse", "rmse", "mape", "smape", "mase", "wql", "coverage")


class Forecast:
    """Several forecasters fitted on one long DataFrame, forecasting it in long format.

    Args:
        models: unfitted forecasters (each is copied, never changed), named by their
            ``name`` (``rnn``, ``naive``, ...; a repeated name gets ``_2``, ``_3``), or a
            mapping of column names to forecasters.
        id_col: the series id column.
        time_col: the time column (dates or numeric steps).
        target_col: the column to forecast.
        fill: missing values: ``error``, ``ffill``, ``interpolate``, ``drop`` or ``mask``
            (see :func:`~seqcast.data.loading.load_series`); a row not observed is never
            scored: its actual value is NaN in :meth:`cross_validation`.
        future_features: columns of ``df`` known ahead (planned prices, promotions): models
            that read them (linear, the networks) see their values at the forecast steps, so
            :meth:`predict` needs them for the horizon (``X_df``).
        calendar: ``auto`` gives the models the calendar cycles of the frequency as inputs
            known ahead (:mod:`seqcast.data.calendar`); ``none`` (the default) does not.
        engine: where :meth:`cross_validation`'s refits run, one task per model and cutoff:
            ``local`` (the default: here, one after another), ``process``, ``ray``, ``dask``
            or an engine (:func:`seqcast.engines.get_engine`, e.g. a Dask cluster by its
            address). The forecasts are the same on every engine.

    Raises:
        DataError: no models, or a model that is not a forecaster.
    """

    def __init__(
        self,
        models: Sequence[Forecaster] | Mapping[str, Forecaster],
        *,
        id_col: str = "unique_id",
        time_col: str = "ds",
        target_col: str = "y",
        fill: str = "error",
        future_features: Sequence[str] = (),
        calendar: str = "none",
        engine: str | Engine | None = None,
    ) -> None:
        named = dict(models) if isinstance(models, Mapping) else _named(list(models))
        if not named:
            raise DataError("models needs at least one forecaster", arguments=("models",))
        for alias, model in named.items():
            if not isinstance(model, Forecaster):
                raise DataError(
                    f"models['{alias}'] is a {type(model).__name__}, not a seqcast forecaster",
                    arguments=("models",),
                )
        self.models = named
        self.id_col = id_col
        self.time_col = time_col
        self.target_col = target_col
        self.fill = fill
        self.future_features = list(future_features)
        self.calendar = calendar
        self.engine = engine

    # ------------------------------------------------------------------------------ fitting
    def fit(self, df: pd.DataFrame, static_df: pd.DataFrame | None = None) -> Self:
        """Fits every model across all series of ``df`` (long format).

        Args:
            df: the series.
            static_df: one row per series id (``id_col``) and numeric columns that do not
                change in time (a store's size, a product's category code): each reaches the
                models as an input channel, constant along the series. Forecasts past a
                model's trained horizon then need a refit with that horizon.

        Raises:
            DataError: a column is missing, a value or a timestamp is wrong (the message names
                the column and row), or a model cannot learn from the series.
        """
        data = self._load(df, static_df)
        self.data_ = data
        self.columns_ = _Columns.of(df, self.id_col, self.time_col)
        self._check_seasons(data)
        self.fitted_ = self._fit_all([s.values for s in data.series], data.n_future)
        self.conformal_: dict[tuple[str, int], Conformal] = {}
        return self

    def predict(
        self,
        h: int | None = None,
        ids: Sequence[Any] | None = None,
        level: Sequence[float] | None = None,
        quantiles: Sequence[float] | None = None,
        X_df: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Forecasts ``h`` steps past the end of every series (or of ``ids``).

        Args:
            h: the horizon (default: each model's own; models with different horizons need
                it); past a model's trained horizon its forecasts are rolled out.
            ids: the series to forecast, by id (default: all, in the order of ``fit``).
            level: central intervals in percent (``[80, 95]``): columns ``<model>-lo-80``
                and ``<model>-hi-80`` ...
            quantiles: levels in (0, 1): columns ``<model>-q0.1`` ...; a network trained for
                quantiles gives its own, the other models conformal ones, calibrated on a
                backtest inside the fitted data the first time a horizon asks for them (one
                more fit of each).
            X_df: the values of the ``future_features`` at the forecast steps: ``id_col``,
                ``time_col`` and those columns, a row for every series and step (for a
                model's whole trained horizon at least).

        Returns:
            One row per series and step: ``id_col``, ``time_col`` (the timestamps after each
            series' end, at its frequency or step) and one column per model, followed by its
            interval and quantile columns.

        Raises:
            NotFittedError: before :meth:`fit`.
            DataError: ``h`` below 1, an unknown id, or a series shorter than a model's context.
        """
        if not hasattr(self, "fitted_"):
            raise NotFittedError("Forecast is not fitted yet; call fit() first")
        horizon = self._horizon(h)
        _check_bands(level, quantiles)
        data = self.data_
        chosen = list(data.series) if ids is None else [self._series(i) for i in ids]
        ends = [len(s) for s in chosen]
        frame = self._frame(data, chosen, ends, horizon, self.columns_)
        histories = [s.values for s in data.series]
        known = self._known(data, chosen, ends, X_df)
        for alias, model in self.fitted_.items():
            point = _forecast(model, data, chosen, ends, horizon, known)
            frame[alias] = point.ravel()
            if level is None and quantiles is None:
                continue
            if model.quantiles_reach(horizon):
                bands = _native_bands(model, data, chosen, ends, horizon, known)
            else:
                key = (alias, horizon)
                if key not in self.conformal_:
                    self.conformal_[key] = calibrate(
                        self.models[alias],
                        _readable(model, histories),
                        1,
                        horizon,
                        n_future=data.n_future,
                    )
                seen = [s.values for s in chosen]
                bands = _conformal_bands(self.conformal_[key], point, seen)
            _add_bands(frame, alias, bands, level, quantiles)
        return frame

    def cross_validation(
        self,
        df: pd.DataFrame,
        h: int,
        n_windows: int = 1,
        step_size: int | None = None,
        refit: bool = True,
        static_df: pd.DataFrame | None = None,
        level: Sequence[float] | None = None,
        quantiles: Sequence[float] | None = None,
    ) -> pd.DataFrame:
        """Rolling-origin evaluation: ``n_windows`` cutoffs, ``step_size`` steps apart (default
        ``h``), the last one ``h`` steps before each series' end; from each cutoff every model
        forecasts the next ``h`` steps.

        Args:
            df: the series (long format).
            h: steps forecast from each cutoff.
            n_windows: how many cutoffs.
            step_size: steps between cutoffs.
            refit: fit every model again at every cutoff on the data up to it; without, fit
                once at the first cutoff and forecast the later ones from their true history.
            static_df: static columns per series id, as in :meth:`fit`.
            level, quantiles: intervals and quantiles as in :meth:`predict`, calibrated on the
                data up to each cutoff the models were fitted on.

        Returns:
            One row per series, cutoff and step: ``id_col``, ``time_col``, ``cutoff`` (the last
            time a model saw), ``target_col`` (the actual value) and one column per model.

        Raises:
            DataError: impossible settings, or a series too short for its first cutoff.
        """
        horizon = self._horizon(h)
        _check_bands(level, quantiles)
        if n_windows < 1:
            raise DataError(
                f"n_windows must be at least 1, got {n_windows}", arguments=("n_windows",)
            )
        step = horizon if step_size is None else step_size
        if step < 1:
            raise DataError(f"step_size must be at least 1, got {step}", arguments=("step_size",))
        data = self._load(df, static_df)
        seen = data.observed()  # the actual values: NaN where a row was not observed
        self._check_seasons(data)
        columns = _Columns.of(df, self.id_col, self.time_col)
        reach = max([horizon, *(m.horizon for m in self.models.values() if m.reads_known)])
        if self.future_features and reach > horizon:
            raise DataError(
                f"a model reads future features over its horizon of {reach} steps; "
                f"cross-validate with h={reach} at least, so that every cutoff has their values",
                arguments=("h",),
            )
        offsets = [horizon + (n_windows - 1 - k) * step for k in range(n_windows)]
        for s in data.series:
            if len(s) - offsets[0] < 1:
                raise DataError(
                    f"{data.label(s)} has {len(s)} points; {n_windows} window(s) of {horizon} "
                    f"step(s), {step} apart, need more than {offsets[0]}",
                    arguments=("n_windows", "step_size"),
                )
        bands = level is not None or quantiles is not None
        needed = _needed_levels(level, quantiles) if bands else ()
        cuts = [[len(s) - offset for s in data.series] for offset in offsets]  # first steps
        labels = [data.label(s) for s in data.series]

        tasks = []
        for ends in cuts:  # the same rows and known values for every model at a cutoff
            parts = [s.values[:end] for s, end in zip(data.series, ends, strict=True)]
            known = self._known(data, list(data.series), ends, None)(reach)  # inside the data
            tasks += [CutoffTask(alias, model, parts, labels, horizon, data.n_future, known,
                                 needed) for alias, model in self.models.items()]  # fmt: skip
        with engine_for(self.engine) as engine:  # (named, it is checked even unused)
            if not refit:  # fitted once, at the first cutoff: the later ones forecast with them
                first = [_fit_cutoff(t) for t in tasks[: len(self.models)]]
                results = [_forecast_cutoff(first[i % len(first)], t) for i, t in enumerate(tasks)]
            elif engine.name == "local":
                results = [forecast_cutoff(t) for t in tasks]
            else:  # fits side by side: models go as specs
                shipped = [replace(t, model=model_spec(t.model)) for t in tasks]  # type: ignore[arg-type]
                results = engine.map(forecast_cutoff, shipped)
        pieces = []
        for k, ends in enumerate(cuts):
            frame = self._frame(data, list(data.series), ends, horizon, columns)
            frame.insert(2, "cutoff", columns.times(_cutoffs(data.series, ends, horizon)))
            # NaN where a row was not observed (filled, or a gap): never scored by evaluate.
            actual = [s.values[end : end + horizon, 0] for s, end in zip(seen.series, ends,
                                                                          strict=True)]  # fmt: skip
            frame.insert(3, self.target_col, np.concatenate(actual))
            for i, alias in enumerate(self.models):
                found = results[k * len(self.models) + i]
                frame[alias] = found.point.ravel()
                if found.bands is not None:
                    _add_bands(frame, alias, _given_bands(found.bands, needed), level, quantiles)
            pieces.append(frame)
        result = pd.concat(pieces, ignore_index=True)
        return result.sort_values(
            [self.id_col, "cutoff", self.time_col], kind="stable"
        ).reset_index(drop=True)

    # ------------------------------------------------------------------------------ helpers
    def _load(self, df: pd.DataFrame, static_df: pd.DataFrame | None = None) -> SeriesData:
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"df must be a pandas DataFrame, got {type(df).__name__}")
        missing = [c for c in (self.id_col, self.time_col, self.target_col) if c not in df.columns]
        if missing:
            raise DataError(
                f"df has no column {', '.join(repr(c) for c in missing)} (columns: "
                f"{', '.join(map(str, df.columns))}); name them with id_col, time_col, target_col",
                arguments=("id_col", "time_col", "target_col"),
            )
        absent = [c for c in self.future_features if c not in df.columns]
        if absent:
            raise DataError(
                f"df has no future feature column '{absent[0]}'", arguments=("future_features",)
            )
        frame = df[[self.id_col, self.time_col, self.target_col, *self.future_features]]
        statics: list[str] = []
        if static_df is not None:
            frame, statics = _with_statics(
                frame, static_df, self.id_col, (self.time_col, self.target_col)
            )
        return load_series(
            frame,
            targets=[self.target_col],
            features=statics,
            time_col=self.time_col,
            id_col=self.id_col,
            fill=self.fill,  # type: ignore[arg-type]
            future_features=self.future_features,
            calendar=self.calendar,
        )

    def _check_seasons(self, data: SeriesData) -> None:
        """Warns of a model left without a season on data whose frequency has one (a monthly
        frame and ``season=1``): the model is fitted as given, never changed."""
        period = season_from_freq(data.freq)
        if period is None or period < 2:
            return
        for alias, model in self.models.items():
            if "season" in model.param_names() and model.get_params()["season"] == 1:
                warnings.warn(
                    SeqcastWarning(
                        f"{alias} has season 1, but the data's frequency ({data.freq}) has a "
                        f"season of {period}: pass season={period} to model it",
                        arguments=("season",),
                    ),
                    stacklevel=3,
                )

    def _fit_all(self, parts: list[np.ndarray], n_future: int) -> dict[str, Forecaster]:
        return {alias: _fresh_fit(model, parts, n_future) for alias, model in self.models.items()}

    def _known(
        self,
        data: SeriesData,
        chosen: list[Series],
        ends: list[int],
        future: pd.DataFrame | None,
    ) -> Known:
        """The values known ahead from position ``ends[i]`` of each chosen series, for any
        number of steps: (S, steps, F_k), or None without such inputs. Inside the data they
        are its own; past its end, the future features come from ``future`` (``X_df``), the
        static ones repeat and the calendar is computed."""
        width = len(data.columns)
        named = future_names(data.columns, data.n_future, data.static, data.calendar)

        def values(steps: int) -> np.ndarray | None:
            if data.n_future == 0:
                return None
            out = []
            for s, end in zip(chosen, ends, strict=True):
                if end + steps <= len(s):
                    out.append(s.values[end : end + steps, width - data.n_future :])
                    continue
                index = _times(data, s, end, steps)
                given = None
                if named:
                    given = future_rows(future, named, index, self.time_col, self.id_col,
                                        s.series_id, data.label(s), data.date_format,
                                        "X_df")  # fmt: skip
                out.append(known_ahead(s.values[end - 1], index, given, data.static,
                                       data.calendar))  # fmt: skip
            return np.stack(out)

        return values

    def _horizon(self, h: int | None) -> int:
        if h is None:
            horizons = {m.horizon for m in self.models.values()}
            if len(horizons) > 1:
                raise DataError(
                    f"the models have different horizons ({sorted(horizons)}); pass h",
                    arguments=("h",),
                )
            h = horizons.pop()
        if h < 1:
            raise DataError(f"h must be at least 1, got {h}", arguments=("h",))
        return int(h)

    def _series(self, series_id: Any) -> Series:
        wanted = str(series_id)
        for s in self.data_.series:
            if str(s.series_id) == wanted:
                return s
        raise DataError(f"ids: no series '{wanted}' was fitted", arguments=("ids",))

    def _frame(
        self,
        data: SeriesData,
        chosen: list[Series],
        ends: list[int],
        horizon: int,
        columns: _Columns,
    ) -> pd.DataFrame:
        """The id and time columns of forecasts of ``horizon`` steps from position ``ends[i]``
        of each chosen series, in the caller's id values and time type."""
        ids = np.repeat([columns.ids[str(s.series_id)] for s in chosen], horizon)
        times = [_times(data, s, end, horizon) for s, end in zip(chosen, ends, strict=True)]
        stacked = np.concatenate([np.asarray(t) for t in times])
        return pd.DataFrame({self.id_col: ids, self.time_col: columns.times(stacked)})


@dataclass(frozen=True)
class _Columns:
    """How the caller's frame spells ids and times: forecasts come back in the same values and
    type (loading reads ids as text and numeric steps as floats)."""

    ids: dict[str, Any]
    integer_time: bool

    @classmethod
    def of(cls, df: pd.DataFrame, id_col: str, time_col: str) -> _Columns:
        ids = {str(value): value for value in pd.unique(df[id_col])}
        return cls(ids, pd.api.types.is_integer_dtype(df[time_col]))

    def times(self, values: np.ndarray) -> np.ndarray:
        return values.astype(np.int64) if self.integer_time else values


def _with_statics(
    frame: pd.DataFrame, static_df: pd.DataFrame, id_col: str, reserved: tuple[str, str]
) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with each series' static values repeated on its rows, and their columns.

    Raises:
        DataError: ``static_df`` is not a frame with ``id_col``, a column is not numeric or
            clashes with the time or target column, an id appears twice or has no row.
    """
    if not isinstance(static_df, pd.DataFrame) or id_col not in static_df.columns:
        raise DataError(f"static_df must be a DataFrame with the id column '{id_col}'",
                        arguments=("static_df",))  # fmt: skip
    columns = [c for c in static_df.columns if c != id_col]
    for column in columns:
        if column in reserved:
            raise DataError(f"static_df has a column '{column}', the name of the time or target "
                            "column; rename it", arguments=("static_df",))  # fmt: skip
        values = static_df[column]
        if not pd.api.types.is_numeric_dtype(values) or not np.isfinite(values).all():
            raise DataError(f"static_df column '{column}' must hold finite numbers (encode a "
                            "category as numbers first)", arguments=("static_df",))  # fmt: skip
    ids = static_df[id_col].astype(str)
    repeated = ids[ids.duplicated()]
    if len(repeated):
        raise DataError(f"static_df has several rows for series '{repeated.iloc[0]}'",
                        arguments=("static_df",))  # fmt: skip
    absent = sorted(set(frame[id_col].astype(str)) - set(ids))
    if absent:
        raise DataError(f"static_df has no row for series '{absent[0]}' ({len(absent)} series "
                        "without one)", arguments=("static_df",))  # fmt: skip
    table = static_df[columns].set_axis(ids.to_numpy())
    merged = frame.copy()
    for column in columns:
        merged[column] = table[column].reindex(frame[id_col].astype(str).to_numpy()).to_numpy()
    return merged, columns


def _named(models: list[Forecaster]) -> dict[str, Forecaster]:
    named: dict[str, Forecaster] = {}
    for model in models:
        alias, count = getattr(model, "name", type(model).__name__), 1
        while alias in named:
            count += 1
            alias = f"{model.name}_{count}"
        named[alias] = model
    return named


def _times(data: SeriesData, series: Series, end: int, horizon: int) -> pd.Index:
    """The ``horizon`` timestamps from position ``end`` of ``series``: its own where it has
    them, continued at the data's frequency or step past its end."""
    if series.time is None:
        return pd.RangeIndex(end, end + horizon)
    if end + horizon <= len(series):
        return series.time[end : end + horizon]
    head = Series(series.values[:end], series.time[:end], series.series_id)
    return data.future_time(head, horizon)


@dataclass(frozen=True)
class CutoffTask:
    """One model at one cross-validation cutoff, as plain data for any engine's worker.

    Attributes:
        alias: the model's column name.
        model: the forecaster (unfitted to fit here; fitted to forecast only), or its spec
            (:func:`~seqcast.persistence.model_spec`) when it goes to another process.
        parts: per series, its (N_i, F) rows before the cutoff: all the model may see.
        labels: how errors name each series.
        horizon: steps T forecast from the cutoff.
        n_future: channels known ahead (the last ones).
        known: (S, T', F_k) their values at the steps after the cutoff, or None.
        levels: quantile levels to forecast too (empty: points only).
    """

    alias: str
    model: Forecaster | ModelSpec
    parts: list[np.ndarray]
    labels: list[str]
    horizon: int
    n_future: int
    known: np.ndarray | None
    levels: tuple[float, ...] = ()


@dataclass(frozen=True)
class CutoffResult:
    """(S, T) point forecasts and (S, T, 1, Q) quantiles of the task's levels (or None)."""

    point: np.ndarray
    bands: np.ndarray | None


@dataclass(frozen=True)
class _Fitted:
    """A model fitted at a cutoff, with its conformal calibration where it needs one."""

    model: Forecaster
    conformal: Conformal | None


def forecast_cutoff(task: CutoffTask) -> CutoffResult:
    """Fits the task's model on the rows before the cutoff and forecasts from it: a pure
    function of the task, so every engine gives the same numbers."""
    return _forecast_cutoff(_fit_cutoff(task), task)


def _fit_cutoff(task: CutoffTask) -> _Fitted:
    template = (
        task.model if isinstance(task.model, Forecaster) else forecaster_from_spec(task.model)
    )
    model = _fresh_fit(template, task.parts, task.n_future)
    conformal = None
    if task.levels and not model.quantiles_reach(task.horizon):
        conformal = calibrate(
            template, _readable(model, task.parts), 1, task.horizon, n_future=task.n_future
        )
    return _Fitted(model, conformal)


def _forecast_cutoff(fitted: _Fitted, task: CutoffTask) -> CutoffResult:
    model = fitted.model
    contexts = model.last_contexts(_readable(model, task.parts), task.labels)
    future = None
    if model.n_known and task.known is not None:
        future = task.known[:, : max(task.horizon, model.horizon)]
    point = model.predict(contexts, task.horizon, future=future)[:, :, 0]  # (S, T)
    if not task.levels:
        return CutoffResult(point, None)
    if fitted.conformal is not None:
        bands = _conformal_bands(fitted.conformal, point, task.parts)(task.levels)
    else:
        bands = model.predict_quantiles(contexts, task.levels, task.horizon, future=future)
    return CutoffResult(point, bands)


def _needed_levels(
    level: Sequence[float] | None, quantiles: Sequence[float] | None
) -> tuple[float, ...]:
    """Every quantile level the columns of ``level`` and ``quantiles`` need, sorted: what
    :func:`_add_bands` asks its bands for."""
    asked = check_quantiles(quantiles) if quantiles else ()
    bounds = [q for value in level or () for q in levels_to_quantiles([value])[0::2]]
    return tuple(check_quantiles([*asked, *bounds]))


def _given_bands(values: np.ndarray, levels: Sequence[float]) -> Bands:
    """Quantiles (S, T, 1, Q) forecast for ``levels``, as the bands of any subset of them."""
    return lambda wanted: values[..., [list(levels).index(q) for q in wanted]]


def _check_bands(level: Sequence[float] | None, quantiles: Sequence[float] | None) -> None:
    """Refuses bad levels and quantiles before any work."""
    if level is not None:
        levels_to_quantiles(level)
    if quantiles is not None:
        check_quantiles(quantiles)


#: Quantile forecasts (S, T, 1, Q) of the levels given.
Bands = Callable[[Sequence[float]], np.ndarray]


def _conformal_bands(conformal: Conformal, point: np.ndarray, seen: list[np.ndarray]) -> Bands:
    """Conformal quantiles around point forecasts (S, T) of the series whose past is
    ``seen`` (its scale sets the widths; a series never negative keeps quantiles ≥ 0)."""
    scales, floors = series_scales(seen, 1), series_floors(seen, 1)
    return lambda levels: conformal.quantiles(point[:, :, None], scales, levels, floors)


def _native_bands(
    model: Forecaster,
    data: SeriesData,
    chosen: list[Series],
    ends: list[int],
    horizon: int,
    known: Known,
) -> Bands:
    """A quantile model's own quantiles of every chosen series from before ``ends[i]``."""
    contexts, future = _inputs(model, data, chosen, ends, horizon, known)
    return lambda levels: model.predict_quantiles(contexts, levels, horizon, future=future)


def _add_bands(
    frame: pd.DataFrame,
    alias: str,
    bands: Bands,
    level: Sequence[float] | None,
    quantiles: Sequence[float] | None,
) -> None:
    """Adds ``alias``'s interval columns (``-lo-80``, ``-hi-80``) and quantile columns
    (``-q0.1``) from its quantile forecasts, asked for once for every level needed."""
    asked = check_quantiles(quantiles) if quantiles else ()
    intervals = {value: levels_to_quantiles([value])[0::2] for value in sorted(level or ())}
    needed = _needed_levels(level, quantiles)
    values = bands(needed)  # (S, T, 1, Q)

    def column(q: float) -> np.ndarray:
        return values[:, :, 0, needed.index(q)].ravel()

    for value, (low, high) in intervals.items():
        frame[f"{alias}-lo-{value:g}"] = column(low)
        frame[f"{alias}-hi-{value:g}"] = column(high)
    for q in asked:
        frame[quantile_name(alias, q)] = column(q)


def _fresh_fit(template: Forecaster, parts: list[np.ndarray], n_future: int) -> Forecaster:
    """A new forecaster with ``template``'s settings, fitted on the series ``parts`` (N_i, F)
    as it reads them."""
    model = type(template)(**template.get_params())
    return model.fit(_readable(model, parts), 1, n_future=n_future)


def _readable(model: Forecaster, histories: list[np.ndarray]) -> list[np.ndarray]:
    """Histories as ``model`` reads them (:meth:`Forecaster.readable_values`)."""
    return [model.readable_values(h) for h in histories]


def _inputs(
    model: Forecaster,
    data: SeriesData,
    chosen: list[Series],
    ends: list[int],
    horizon: int,
    known: Known,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The (S, C, F) contexts of every chosen series before ``ends[i]``, and the (S, T', F_k)
    values known ahead from there (None for a model that reads none)."""
    histories = _readable(model, [s.values[:end] for s, end in zip(chosen, ends, strict=True)])
    contexts = model.last_contexts(histories, [data.label(s) for s in chosen])
    return contexts, known(max(horizon, model.horizon)) if model.n_known else None


def _cutoffs(series: Sequence[Series], ends: list[int], horizon: int) -> np.ndarray:
    """The last time each model saw, repeated for the ``horizon`` rows of each series."""
    last = [
        end - 1 if s.time is None else s.time[end - 1] for s, end in zip(series, ends, strict=True)
    ]
    return np.repeat(np.asarray(last), horizon)


def _forecast(
    model: Forecaster,
    data: SeriesData,
    chosen: list[Series],
    ends: list[int],
    horizon: int,
    known: Known,
) -> np.ndarray:
    """(S, T) forecasts of every chosen series from its history before ``ends[i]`` (and the
    values ``known`` ahead from there), in one batched call."""
    contexts, future = _inputs(model, data, chosen, ends, horizon, known)
    return model.predict(contexts, horizon, future=future)[:, :, 0]  # (S, T, 1) -> (S, T)


def evaluate(
    df: pd.DataFrame,
    metrics: Sequence[str] = ("mae", "rmse", "smape", "mase"),
    *,
    models: Sequence[str] | None = None,
    train_df: pd.DataFrame | None = None,
    season: int = 1,
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_col: str = "y",
    aggregate: bool = False,
) -> pd.DataFrame:
    """Scores forecasts against actuals, per series (and, with a ``cutoff`` column, per cutoff,
    then averaged over the series' cutoffs).

    Args:
        df: forecasts with the actual values: :meth:`Forecast.cross_validation`'s output, or
            any frame with the id, time and target columns and one column per model.
        metrics: names among :data:`METRICS`. ``smape`` is 200·|y − ŷ| / (|y| + |ŷ|) in
            percent; ``mase`` divides by the in-sample MAE of the seasonal naive forecast on
            the series' values in ``train_df`` up to each cutoff (or all of them without one).
            ``wql`` (the weighted quantile loss of each series) reads a model's quantile
            columns (``rnn-q0.1`` ...) or its interval columns (``rnn-lo-80``, ``rnn-hi-80``,
            with the point forecast as the median); ``coverage`` gives one row per interval
            (``coverage_80``: the share of actual values inside it).
        models: the model columns (default: every column but id, time, cutoff, target and
            the models' quantile and interval columns).
        train_df: the training data (long format, same column names), for ``mase``.
        season: the seasonal period of the ``mase`` scale.
        aggregate: the mean over series of each per-series score instead (scale-dependent
            metrics, ``mae`` ``mse`` ``rmse``, then mix the series' units: compare models on
            ``smape``, ``mape`` or ``mase`` across series of different scales).

    Returns:
        Per series: ``id_col``, ``metric`` and one column per model; with ``aggregate``,
        ``metric`` and one column per model.

    Raises:
        DataError: an unknown metric or column, ``mase`` without ``train_df``, or a series
            whose training part cannot scale MASE.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise DataError(
            f"unknown metric {', '.join(map(repr, unknown))}; choose from {', '.join(METRICS)}",
            arguments=("metrics",),
        )
    missing = [c for c in (id_col, target_col) if c not in df.columns]
    if missing:
        raise DataError(f"df has no column {', '.join(map(repr, missing))}")
    fixed = {id_col, time_col, target_col, "cutoff"}
    candidates = [c for c in df.columns if c not in fixed]
    bands_of = {str(c): _band_columns(candidates, str(c)) for c in candidates}
    in_bands = {c for c in map(str, candidates) for m in bands_of if _band_level(c, m) is not None}
    names = list(models) if models is not None else [c for c in candidates if c not in in_bands]
    if not names or any(m not in df.columns for m in names):
        raise DataError(f"models: no forecast column {names!r} in df", arguments=("models",))
    for name in ("wql", "coverage"):
        bare = [m for m in names if name in metrics and not bands_of.get(m)]
        if bare:
            raise DataError(
                f"{name} needs quantile or interval columns of model '{bare[0]}' (such as "
                f"'{bare[0]}-q0.1' or '{bare[0]}-lo-80'): pass level or quantiles when forecasting",
                arguments=("metrics",),
            )
    if "mase" in metrics and train_df is None:
        raise DataError("mase needs train_df, the series' training values", arguments=("train_df",))
    history = {} if train_df is None else _histories(train_df, id_col, time_col, target_col)
    keys = [id_col] + (["cutoff"] if "cutoff" in df.columns else [])
    rows = []
    for key, window in df.groupby(keys, sort=False):
        series_id = key[0] if isinstance(key, tuple) else key
        window = window[window[target_col].notna()]  # a filled point or a gap is not scored
        if window.empty:
            continue
        actual = window[target_col].to_numpy(dtype=np.float64)
        for name in metrics:
            if name in ("wql", "coverage"):
                rows += _band_rows(window, actual, names, bands_of, name, id_col, series_id)
                continue
            row: dict[str, Any] = {id_col: series_id, "metric": name}
            for model in names:
                predicted = window[model].to_numpy(dtype=np.float64)
                if name == "mase":
                    if str(series_id) not in history:
                        raise DataError(
                            f"train_df has no series '{series_id}'", arguments=("train_df",)
                        )
                    times, values = history[str(series_id)]
                    seen = (
                        values
                        if "cutoff" not in window
                        else values[times <= window["cutoff"].iloc[0]]
                    )
                    row[model] = scores_of.mase(actual, predicted, seen, season)
                else:
                    row[model] = getattr(scores_of, name)(actual, predicted)
            rows.append(row)
    scores = pd.DataFrame(rows)
    per_series = scores.groupby([id_col, "metric"], sort=False)[names].mean().reset_index()
    if not aggregate:
        return per_series
    return per_series.groupby("metric", sort=False)[names].mean().reset_index()


def _band_columns(columns: Sequence[Any], model: str) -> dict[float, str]:
    """Quantile level -> column of ``model``'s quantile (``-q0.1``) and interval (``-lo-80``,
    ``-hi-80``) columns; the point forecast is the median where intervals alone are given."""
    found: dict[float, str] = {}
    for column in map(str, columns):
        level = _band_level(column, model)
        if level is not None:
            found.setdefault(level, column)
    if found and 0.5 not in found:
        found[0.5] = model
    return dict(sorted(found.items()))


def _band_level(column: str, model: str) -> float | None:
    """The quantile level of ``column`` when it is one of ``model``'s quantile (``-q0.1``) or
    interval (``-lo-80``: 0.1, ``-hi-80``: 0.9) columns, else None."""
    for prefix in ("-q", "-lo-", "-hi-"):
        if not column.startswith(model + prefix):
            continue
        try:
            value = float(column[len(model) + len(prefix) :])
        except ValueError:
            return None
        if prefix == "-q":
            return round(value, 6)
        low = round((100.0 - value) / 200.0, 6)
        return low if prefix == "-lo-" else round(1.0 - low, 6)
    return None


def _band_rows(
    window: pd.DataFrame,
    actual: np.ndarray,
    names: list[str],
    bands_of: dict[str, dict[float, str]],
    metric: str,
    id_col: str,
    series_id: Any,
) -> list[dict[str, Any]]:
    """The ``wql`` row, or one ``coverage_<level>`` row per interval, of one series window."""
    values: dict[str, dict[str, float]] = {}
    for model in names:
        bands = bands_of[model]
        levels = tuple(bands)
        predicted = window[list(bands.values())].to_numpy(dtype=np.float64)  # (T, Q)
        if metric == "wql":
            try:
                values.setdefault("wql", {})[model] = probabilistic.wql(actual, predicted, levels)
            except DataError:
                values.setdefault("wql", {})[model] = float("nan")
            continue
        for level, (low, high) in probabilistic.interval_bounds(levels).items():
            values.setdefault(f"coverage_{level}", {})[model] = probabilistic.coverage(
                actual, predicted[:, low], predicted[:, high]
            )
    return [{id_col: series_id, "metric": name, **row} for name, row in values.items()]


def _histories(
    train_df: pd.DataFrame, id_col: str, time_col: str, target_col: str
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per series id: its times and target values, in time order."""
    ordered = train_df.sort_values([id_col, time_col], kind="stable")
    return {
        str(key): (group[time_col].to_numpy(), group[target_col].to_numpy(dtype=np.float64))
        for key, group in ordered.groupby(id_col, sort=False)
    }
