"""Quantiles through the less travelled paths: refit backtests, several targets, newer data,
cross-validation of a quantile network beside conformal models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_runner import run_main

from seqcast.data import load_series
from seqcast.evaluation.backtest import backtest
from seqcast.forecasters.registry import create
from seqcast.frames import Forecast

LEVELS = (0.1, 0.5, 0.9)


def sine(n: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 30.0 + 5.0 * np.sin(np.arange(n) * 2 * np.pi / 20) + rng.normal(size=n)


def tiny_quantile(**settings: object) -> object:
    base: dict[str, object] = dict(window=10, horizon=2, epochs=3, hidden_size=4, batch_size=64,
                                   likelihood="quantile")  # fmt: skip
    return create("rnn", **{**base, **settings})


def test_a_refit_backtest_gives_every_origin_its_quantiles() -> None:
    data = load_series(sine(140))
    refit = backtest(tiny_quantile(epochs=1), data, [130], refit=True, stride=4, quantiles=LEVELS)  # type: ignore[arg-type]
    once = backtest(tiny_quantile(epochs=1), data, [130], stride=4, quantiles=LEVELS)  # type: ignore[arg-type]
    assert refit.quantile_source == once.quantile_source == "network"
    assert refit.quantile_forecasts[0].shape == (len(refit.origins[0]), 2, 1, 3)
    np.testing.assert_allclose(refit.quantile_forecasts[0][..., 1], refit.forecasts[0])


def test_conformal_quantiles_of_several_targets_are_each_in_their_own_units() -> None:
    both = np.stack([sine(300), 1000.0 * sine(300, seed=1)], axis=1)
    data = load_series(pd.DataFrame(both, columns=["a", "b"]), targets=["a", "b"])
    result = backtest(create("naive", horizon=3), data, [240], quantiles=LEVELS)
    q = result.quantile_forecasts[0]  # (origins, 3, 2, 3)
    assert q.shape[2:] == (2, 3)
    width = (q[..., 2] - q[..., 0]).mean(axis=(0, 1))
    assert 300 < width[1] / width[0] < 3000  # b is 1000 × a
    assert 0.6 <= result.probabilistic["coverage_80"] <= 0.95  # type: ignore[operator]


def test_predict_from_newer_data_with_a_quantile_network(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dates = pd.date_range("2020-01-01", periods=200, freq="D")
    frame = pd.DataFrame({"date": dates, "y": sine(200)})
    frame.to_csv(tmp_path / "old.csv", index=False)
    frame.iloc[-40:].assign(y=lambda f: f["y"] + 100).to_csv(tmp_path / "new.csv", index=False)
    folder = tmp_path / "m"
    run = run_main(capsys, "fit", str(tmp_path / "old.csv"), "-m", "rnn", "--likelihood",
                   "quantile", "--horizon", "2", "--epochs", "2", "--hidden-size", "4",
                   "--season", "1", "--out", str(folder), "--quiet")  # fmt: skip
    assert run.code == 0, run.err
    run = run_main(capsys, "predict", str(folder), "--data", str(tmp_path / "new.csv"),
                   "--quantiles", "0.1,0.9")  # fmt: skip
    assert run.code == 0, run.err
    rows = [line.split(",") for line in run.out.splitlines()[1:]]
    assert len(rows) == 2
    for _, point, low, high in rows:
        assert float(low) <= float(point) <= float(high)
        assert float(point) > 100  # from the newer, shifted data


def test_cross_validation_mixes_a_quantile_network_and_conformal_models() -> None:
    frames = [pd.DataFrame({"unique_id": k, "ds": np.arange(150), "y": sine(150, seed=k)})
              for k in range(3)]  # fmt: skip
    train = pd.concat(frames, ignore_index=True)
    forecast = Forecast({"net": tiny_quantile(), "naive": create("naive", horizon=2)})  # type: ignore[dict-item]
    cv = forecast.cross_validation(train, h=2, n_windows=2, level=[80])
    for model in ("net", "naive"):
        assert (cv[f"{model}-lo-80"] <= cv[model]).all() and (
            cv[model] <= cv[f"{model}-hi-80"]
        ).all()
    # The network's bands are its own: refitting at each cutoff gives the same as fitting there.
    last = train[train["ds"] < 148]
    alone = Forecast({"net": tiny_quantile()}).fit(last).predict(2, level=[80])
    np.testing.assert_allclose(cv[cv["cutoff"] == 147]["net-lo-80"], alone["net-lo-80"])
