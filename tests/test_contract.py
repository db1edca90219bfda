"""The contract of seqcast/forecasters/base.py, run on every registered forecaster alike.

Each name of ``model_names()`` is a case of every check: the constructor only stores its keyword
arguments; ``fit`` returns the model and changes no hyperparameter; ``predict`` before ``fit``,
and missing values in the training data or the context, are refused; forecasts have the shape
(B, T, F_target), are finite and read only the last ``context_length`` steps; forecasts past the
trained horizon roll out; a saved model forecasts exactly as the one saved.

Neural models are tiny (hidden size 4, one layer, two epochs). The oracles are the arguments
given and the constructor's signature, closed forms for naive, snaive, ma and drift, the direct
forecast from the context extended by the earlier blocks (roll-out), and the same model's
forecasts before a change that must not matter. Each family's own checks are in
tests/test_baselines.py and tests/test_neural.py.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from seqcast.data import load_series
from seqcast.errors import DataError, NotFittedError
from seqcast.forecasters.base import Forecaster, first_non_finite
from seqcast.forecasters.registry import forecaster_class, model_names
from seqcast.persistence import load_model, save_model

NAMES = model_names()
SEASON = 12
#: Settings that keep a network small and its training short; models without them ignore them.
TINY_NETWORK: dict[str, Any] = dict(
    epochs=2, hidden_size=4, num_layers=1, batch_size=64, lr=1e-2, patience=2, seed=0
)


def settings(name: str, window: int = 6, horizon: int = 1, season: int = SEASON) -> dict[str, Any]:
    """The arguments among the window, horizon, season and tiny network settings that ``name``
    takes."""
    wanted = dict(window=window, horizon=horizon, season=season, **TINY_NETWORK)
    taken = forecaster_class(name).param_names()
    return {key: value for key, value in wanted.items() if key in taken}


def make(name: str, window: int = 6, horizon: int = 1) -> Forecaster:
    return forecaster_class(name)(**settings(name, window, horizon))


def walk(n: int, f: int, seed: int = 0) -> np.ndarray:
    """(N, F) random walks around 50 with a season of 12, so that every model has something to
    learn."""
    rng = np.random.default_rng(seed)
    season = 5.0 * np.sin(2 * np.pi * np.arange(n) / SEASON)[:, None]
    return rng.normal(size=(n, f)).cumsum(axis=0) + season + 50.0


def contexts_ending_at(values: np.ndarray, ends: tuple[int, ...], steps: int) -> np.ndarray:
    """(B, steps, F) contexts of ``values`` that end just before each of ``ends``."""
    return np.stack([values[end - steps : end] for end in ends])


def defaults(cls: type[Forecaster]) -> dict[str, Any]:
    """The constructor's keyword arguments and their defaults, read from its signature."""
    return {
        p.name: p.default
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind is p.KEYWORD_ONLY
    }


# ---------------------------------------------------------------------------- oracles
def naive(context: np.ndarray, horizon: int, model: Any) -> np.ndarray:
    """The last value, repeated."""
    return np.repeat(context[:, -1:, : model.n_targets_], horizon, axis=1)


def seasonal_naive(context: np.ndarray, horizon: int, model: Any) -> np.ndarray:
    """The value one season (or as many as it takes) before each step."""
    season = context[:, -model.season :, : model.n_targets_]
    return season[:, np.arange(horizon) % model.season]


def moving_average(context: np.ndarray, horizon: int, model: Any) -> np.ndarray:
    """The mean of the last ``window`` values, repeated."""
    mean = context[:, -model.window :, : model.n_targets_].mean(axis=1, keepdims=True)
    return np.repeat(mean, horizon, axis=1)


def drift(context: np.ndarray, horizon: int, model: Any) -> np.ndarray:
    """The line through the first and the last of the last ``max(window, 2)`` values."""
    steps = max(model.window, 2)
    targets = context[:, -steps:, : model.n_targets_]
    slope = (targets[:, -1] - targets[:, 0]) / (steps - 1)
    ahead = np.arange(1, horizon + 1)[None, :, None]
    return targets[:, -1:] + ahead * slope[:, None, :]  # type: ignore[no-any-return]


ORACLES: dict[str, Callable[[np.ndarray, int, Any], np.ndarray]] = {
    "naive": naive,
    "snaive": seasonal_naive,
    "ma": moving_average,
    "drift": drift,
}


def test_every_model_is_a_case_of_this_contract() -> None:
    assert len(NAMES) == len(set(NAMES))
    assert {"naive", "linear", "rnn", "dnn"} <= set(NAMES)
    assert set(ORACLES) < set(NAMES)


def test_first_non_finite() -> None:
    assert first_non_finite(np.zeros((0, 3))) is None
    assert first_non_finite(np.ones((2, 3, 4))) is None
    values = np.ones((3, 4, 2))
    values[2, 0, 0] = np.nan
    values[1, 3, 1] = -np.inf
    values[1, 2, 1] = np.inf
    assert first_non_finite(values) == (1, 2, 1)
    assert first_non_finite(values.astype(np.float32)) == (1, 2, 1)
    assert first_non_finite(np.array([1.0, np.nan])) == (1,)


# ------------------------------------------------------------------------ constructor
@pytest.mark.parametrize("name", NAMES)
def test_constructor_only_stores_and_config_round_trips(name: str) -> None:
    cls = forecaster_class(name)
    passed = settings(name, window=7, horizon=3)
    model = cls(**passed)
    assert model.window == 7 and model.horizon == 3
    # Only the arguments, under their own names: nothing learned, nothing derived.
    assert sorted(vars(model)) == sorted(cls.param_names()) == sorted(defaults(cls))
    assert model.get_params() == {**defaults(cls), **passed}
    assert cls().get_params() == defaults(cls)
    assert model.epochs_run is None and model.n_params is None
    config = model.get_config()
    assert config == model.get_params()
    assert type(model)(**config).get_params() == config
    broken = type(model)(window=0)  # no validation in the constructor ...
    with pytest.raises(DataError, match="window must be at least 1, got 0"):
        broken.fit([walk(100, 1)], 1)  # ... but in fit


@pytest.mark.parametrize("name", NAMES)
def test_set_params_changes_known_arguments_and_refuses_unknown_ones(name: str) -> None:
    model = make(name)
    assert model.set_params(window=9, horizon=2) is model
    assert model.get_params() == {**defaults(type(model)), **settings(name, 9, 2)}
    before = model.get_params()
    with pytest.raises(DataError, match=f"^{type(model).__name__} has no argument 'colour'"):
        model.set_params(colour="red")
    assert model.get_params() == before and not hasattr(model, "colour")


# -------------------------------------------------------------------------------- fit
@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_keeps_hyperparameters(name: str) -> None:
    model = make(name, horizon=3)
    before = model.get_config()
    assert model.fit([walk(120, 3)], n_targets=2) is model
    assert model.get_config() == before
    assert model.is_fitted_ and model.n_features_ == 3 and model.n_targets_ == 2
    # What fit learns goes into attributes ending in "_"; nothing else is left behind.
    learned = set(vars(model)) - set(type(model).param_names())
    assert learned and all(key.endswith("_") for key in learned), sorted(learned)


@pytest.mark.parametrize("name", NAMES)
def test_predict_before_fit_is_refused(name: str) -> None:
    model = make(name)
    cls_name = type(model).__name__
    with pytest.raises(
        NotFittedError, match=f"^{cls_name} is not fitted yet; call fit\\(\\) first"
    ):
        model.predict(np.zeros((1, 40, 1)))


@pytest.mark.parametrize("name", NAMES)
def test_bad_training_data_is_refused(name: str) -> None:
    model = make(name)
    values = walk(100, 2)
    with pytest.raises(DataError, match="fit needs at least one series"):
        model.fit([], 1)
    with pytest.raises(DataError, match=r"every series must have shape \(N, F\) with the same F"):
        model.fit([values, values[:, :1]], 1)
    with pytest.raises(DataError, match=r"n_targets must lie in 1..2, got 3"):
        model.fit([values], 3)
    broken = values.copy()
    broken[5, 1] = np.inf
    with pytest.raises(DataError, match="missing or infinite"):
        model.fit([broken], 1)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("where", ["target", "feature"])
def test_nan_in_the_training_data_is_refused_unless_a_target_gap_the_model_reads(
    name: str, where: str
) -> None:
    model = make(name)
    first, second = walk(100, 2), walk(80, 2, seed=1)
    second[40, 0 if where == "target" else 1] = np.nan
    if model.can_pad and where == "target":  # a gap (fill mask): read as one
        model.fit([first, second], 1)
        assert model.reads_gaps
        model = make(name)
    else:
        with pytest.raises(DataError, match=r"^the training data has missing or infinite values$"):
            model.fit([first, second], 1)
        assert not hasattr(model, "is_fitted_")
    model.fit([first, second[:40]], 1)  # the same data without the NaN is accepted
    assert model.is_fitted_


# ---------------------------------------------------------------------------- predict
#: (window, horizon, n_features, n_targets)
SHAPES = [(3, 1, 1, 1), (6, 3, 2, 1), (5, 2, 3, 2), (1, 4, 2, 2)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("window", "horizon", "n_features", "n_targets"), SHAPES)
def test_forecasts_have_the_shape_of_the_targets_and_are_finite(
    name: str, window: int, horizon: int, n_features: int, n_targets: int
) -> None:
    values = walk(150, n_features)
    model = make(name, window, horizon).fit([values[:100], values[100:]], n_targets)
    steps = model.context_length
    batch = contexts_ending_at(values, (steps, 80, 117, 150), steps)
    before = batch.copy()
    forecast = model.predict(batch)
    np.testing.assert_array_equal(batch, before)  # the input is not modified
    assert forecast.shape == (4, horizon, n_targets)
    assert forecast.dtype == np.float64 and np.isfinite(forecast).all()
    if name in ORACLES:
        np.testing.assert_allclose(forecast, ORACLES[name](batch, horizon, model), rtol=1e-12)
    assert model.predict(batch[0]).shape == (1, horizon, n_targets)  # one (C, F) context


@pytest.mark.parametrize("name", NAMES)
def test_only_the_last_context_steps_are_used(name: str) -> None:
    values = walk(150, 2)
    model = make(name, horizon=2).fit([values[:120]], 1)
    steps = model.context_length
    long = values[None, :120]
    forecast = model.predict(long)
    np.testing.assert_array_equal(forecast, model.predict(long[:, -steps:]))
    np.testing.assert_array_equal(model.predict(values[120 - steps : 120]), forecast)
    # Anything before the last steps, even a missing value, changes nothing ...
    earlier = long.copy()
    earlier[:, :-steps] = np.random.default_rng(1).normal(0.0, 1e3, earlier[:, :-steps].shape)
    earlier[0, 0, 0] = np.nan
    np.testing.assert_array_equal(model.predict(earlier), forecast)
    # ... while the last steps are read: a ramp added to the target there moves the forecast.
    later = long.copy()
    later[0, -steps:, 0] += np.linspace(10.0, 40.0, steps)
    assert not np.allclose(model.predict(later), forecast)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy, then ours
def test_a_missing_value_in_the_context_is_refused(name: str, bad: float) -> None:
    values = walk(100, 2)
    model = make(name).fit([values], 1)
    steps = model.context_length
    batch = contexts_ending_at(values, (steps, 60, 100), steps)
    assert np.isfinite(model.predict(batch)).all()
    batch[1, -1, 0] = bad  # the last target value: every model reads it
    with pytest.raises(DataError, match=r"missing or infinite values.*\(first in window 1\b"):
        model.predict(batch)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("n_features", "n_targets"), [(1, 1), (2, 2), (2, 1)])
def test_forecasts_past_the_trained_horizon_roll_out(
    name: str, n_features: int, n_targets: int
) -> None:
    values = walk(150, n_features)
    model = make(name, horizon=2).fit([values[:120]], n_targets)
    steps = model.context_length
    batch = contexts_ending_at(values, (steps + 10, 120, 150), steps)
    forecast = model.predict(batch)
    if n_features != n_targets and not model.any_horizon:
        # The input features have no future values to feed back.
        with pytest.raises(DataError, match=r"trained for 2: .*; refit with horizon 7$"):
            model.predict(batch, 7)
        return
    rolled = model.predict(batch, 7)
    assert rolled.shape == (3, 7, n_targets) and np.isfinite(rolled).all()
    np.testing.assert_allclose(rolled[:, :2], forecast, rtol=1e-12)
    np.testing.assert_allclose(model.predict(batch, 1), forecast[:, :1], rtol=1e-12)
    if name in ORACLES:
        np.testing.assert_allclose(rolled, ORACLES[name](batch, 7, model), rtol=1e-12)
    if not model.any_horizon:
        # Oracle: each block is the direct forecast from the context extended by the earlier ones.
        extended = batch
        for start in range(0, 7, 2):
            block = model.predict(extended[:, -steps:])
            np.testing.assert_allclose(rolled[:, start : start + 2], block[:, : 7 - start])
            extended = np.concatenate([extended, block], axis=1)


# ------------------------------------------------------------------------ saving
@pytest.mark.parametrize("name", NAMES)
def test_a_saved_model_forecasts_exactly_as_the_one_saved(name: str, tmp_path: Path) -> None:
    values = walk(120, 2)
    frame = pd.DataFrame(
        {"date": pd.date_range("2021-01-01", periods=120, freq="D"), "y": values[:, 0]}
    )
    frame["x"] = values[:, 1]
    data = load_series(frame, targets=["y"])
    assert data.columns == ("y", "x")
    model = make(name, horizon=2).fit([data.series[0].values], 1)
    folder = save_model(model, tmp_path / "model", data)
    saved = load_model(folder)
    loaded = saved.forecaster
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    assert (loaded.n_features_, loaded.n_targets_) == (2, 1)
    steps = model.context_length
    np.testing.assert_array_equal(saved.contexts[0], values[-steps:])
    batch = contexts_ending_at(values, (steps, 77, 120), steps)
    np.testing.assert_array_equal(loaded.predict(batch), model.predict(batch))
    np.testing.assert_array_equal(loaded.predict(saved.contexts[0]), model.predict(values))
