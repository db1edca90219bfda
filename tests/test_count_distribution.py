"""The negative binomial output for counts (``likelihood="negbin"``): its loss against scipy
(its compiled step is checked against autograd in test_quantile_network.py), quantiles that
are whole counts, coverage of simulated counts, refusals of data that are not counts, saving,
sampled paths and the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_runner import assert_one_error_line, run_main
from scipy import stats

from seqcast.data import load_series
from seqcast.errors import DataError
from seqcast.evaluation.backtest import backtest
from seqcast.forecasters.registry import create
from seqcast.networks import NegativeBinomialLoss
from seqcast.networks.distribution import negative_binomial_moments
from seqcast.persistence import load_model, save_model

LEVELS = (0.1, 0.5, 0.9)


def seasonal_counts(n: int = 400, level: float = 30.0, successes: float = 8.0, seed: int = 0):  # type: ignore[no-untyped-def]
    """Counts drawn from a negative binomial of known mean (a season of 12 around ``level``)
    and ``successes`` r (variance μ + μ²/r): (N, 1), and the means (N,)."""
    rng = np.random.default_rng(seed)
    mean = level * (1.0 + 0.5 * np.sin(2 * np.pi * np.arange(n) / 12))
    counts = rng.negative_binomial(successes, successes / (successes + mean))
    return counts.astype(np.float64)[:, None], mean


def quick(**settings: object) -> object:
    base = dict(window=12, horizon=3, season=12, epochs=12, hidden_size=8, batch_size=64,
                likelihood="negbin")  # fmt: skip
    return create("rnn", **{**base, **settings})


def test_the_loss_is_scipys_negative_binomial_log_probability() -> None:
    # Location 0.5 and spread 0.2 in a window whose unit is 10 counts from 40: μ = softplus(45),
    # variance μ + (10 · 0.2)² = μ + 4, so r = μ² / 4.
    params = torch.tensor([[[[0.5, 0.2]], [[-2.0, 1.5]]]], dtype=torch.float64)  # (1, 2, 1, 2)
    unit = torch.tensor([10.0, 40.0], dtype=torch.float64)
    counts = torch.tensor([[[47.0], [22.0]]], dtype=torch.float64)
    target = torch.cat([((counts - 40.0) / 10.0)[..., None], unit.expand(1, 2, 1, 2)], dim=-1)
    got = float(NegativeBinomialLoss()(params, target))
    want = []
    means, successes = negative_binomial_moments(params, unit.expand(1, 2, 1, 2))
    for k, ((loc, spread), y) in enumerate((((0.5, 0.2), 47.0), ((-2.0, 1.5), 22.0))):
        mean = float(np.log1p(np.exp(10.0 * loc + 40.0))) + 1e-8
        r = mean**2 / (10.0 * spread) ** 2  # variance μ + μ²/r = μ + (a·σ)²
        assert float(means[0, k, 0]) == pytest.approx(mean, rel=1e-12)
        assert float(successes[0, k, 0]) == pytest.approx(r, rel=1e-12)
        want.append(-stats.nbinom.logpmf(y, r, r / (r + mean)))
    assert got == pytest.approx(float(np.mean(want)), rel=1e-9)


def test_quantiles_are_whole_counts_of_the_networks_distribution() -> None:
    counts, _ = seasonal_counts()
    model = quick(calibrate_intervals=False)
    model.fit([counts[:300]])  # type: ignore[attr-defined]
    contexts = np.stack([counts[i - 40 : i] for i in range(300, 330)])
    q = model.predict_quantiles(contexts, LEVELS)  # type: ignore[attr-defined]
    assert q.shape == (30, 3, 1, 3)
    np.testing.assert_allclose(q, np.round(q), atol=1e-6)  # whole counts
    assert q.min() >= 0 and np.all(np.diff(q, axis=-1) >= 0)
    np.testing.assert_allclose(q[..., 1], model.predict(contexts))  # type: ignore[attr-defined]
    # By hand for one window and step: scipy's quantiles of the network's μ and r.
    from seqcast.forecasters.inputs import build_inputs

    inputs = build_inputs(contexts[:, -model.context_length :], model.spec, model.scaler_)  # type: ignore[attr-defined]
    unit = model._units(inputs.level, inputs.spread)  # type: ignore[attr-defined]  # (B, 2, Ft)
    params = model._outputs(inputs.window, inputs.season)  # type: ignore[attr-defined]
    mean, r = negative_binomial_moments(
        torch.from_numpy(params[4, 1, 0]), torch.from_numpy(unit[4, :, 0])
    )
    want = stats.nbinom.ppf(LEVELS, float(r), float(r / (r + mean)))
    np.testing.assert_allclose(q[4, 1, 0], want, atol=1e-6)
    # The unit maps the window's units back to counts: 0 is the window's mean level, and one
    # unit its mean absolute value times the scaling's relative step (mean scaling, DeepAR's).
    assert model.scaling_ == "mean"  # type: ignore[attr-defined]
    window = contexts[4, -12:, 0]
    assert unit[4, 1, 0] == pytest.approx(window.mean())
    assert unit[4, 0, 0] == pytest.approx(window.mean() * model.mean_unit_)  # type: ignore[attr-defined]


def test_intervals_cover_simulated_counts() -> None:
    counts, _ = seasonal_counts(1200, level=15.0, successes=4.0, seed=2)
    model = quick(epochs=25, horizon=1, window=24)
    data = load_series(counts)
    result = backtest(model, data, [900], quantiles=(0.1, 0.5, 0.9))  # type: ignore[arg-type]
    assert result.quantile_source == "network"
    assert 0.72 <= result.probabilistic["coverage_80"] <= 0.88  # type: ignore[operator]


def test_series_of_very_different_sizes_share_one_network() -> None:
    small, _ = seasonal_counts(300, level=3.0, seed=3)
    large, _ = seasonal_counts(300, level=3000.0, successes=50.0, seed=4)
    model = quick(epochs=8)
    model.fit([small[:250], large[:250]])  # type: ignore[attr-defined]
    q = model.predict_quantiles(  # type: ignore[attr-defined]
        np.stack([small[200:250], large[200:250]]), (0.05, 0.5, 0.95)
    )
    width = q[:, :, 0, 2] - q[:, :, 0, 0]  # (2, T)
    assert np.all(width[0] < 30) and np.all(width[1] > 100)  # each of its own size
    assert np.all(q[1, :, 0, 1] > 1000)


@pytest.mark.parametrize(
    ("values", "what"),
    [
        (np.array([3.0, 4.0, 2.5, 6.0] * 30), "2.5 in target channel 0 at row 2"),
        (np.array([3.0, 4.0, -1.0, 6.0] * 30), "-1 in target channel 0 at row 2"),
    ],
)
def test_values_that_are_not_counts_are_refused_by_name(values: np.ndarray, what: str) -> None:
    model = quick()
    with pytest.raises(DataError, match=what) as caught:
        model.fit([values[:, None]])  # type: ignore[attr-defined]
    assert "likelihood" in caught.value.arguments


def test_a_transform_of_the_counts_is_refused() -> None:
    counts, _ = seasonal_counts(120)
    with pytest.raises(DataError, match="transform log") as caught:
        quick(transform="log").fit([counts])  # type: ignore[attr-defined]
    assert set(caught.value.arguments) == {"likelihood", "transform"}
    model = quick(epochs=1)  # auto: none, whatever the counts' growth
    model.fit([counts * np.arange(1, 121)[:, None]])  # type: ignore[attr-defined]
    assert model.scaler_.power_[0] == 1.0  # type: ignore[attr-defined]


def test_a_saved_count_model_gives_the_same_quantiles(tmp_path: Path) -> None:
    counts, _ = seasonal_counts(300)
    model = quick(epochs=4, ensemble=2)
    model.fit([counts[:250]])  # type: ignore[attr-defined]
    save_model(model, tmp_path / "m", load_series(counts[:250]))  # type: ignore[arg-type]
    loaded = load_model(tmp_path / "m").forecaster
    contexts = np.stack([counts[i - 40 : i] for i in range(250, 260)])
    np.testing.assert_array_equal(
        loaded.predict_quantiles(contexts, LEVELS),  # type: ignore[attr-defined]
        model.predict_quantiles(contexts, LEVELS),  # type: ignore[attr-defined]
    )


def test_sampled_paths_past_the_horizon_are_counts_and_follow_the_seed() -> None:
    counts, _ = seasonal_counts(300)
    model = quick(epochs=4)
    model.fit([counts[:250]])  # type: ignore[attr-defined]
    contexts = np.stack([counts[i - 40 : i] for i in range(250, 260)])
    far = model.predict_quantiles(contexts, LEVELS, 9)  # type: ignore[attr-defined]
    assert far.shape == (10, 9, 1, 3) and far.min() >= 0
    paths = model.sample_paths(contexts, 9, n_paths=5, seed=1)  # type: ignore[attr-defined]
    assert paths.min() >= 0
    np.testing.assert_allclose(paths, np.round(paths), atol=1e-6)
    np.testing.assert_array_equal(paths, model.sample_paths(contexts, 9, 5, seed=1))  # type: ignore[attr-defined]
    assert not np.array_equal(paths, model.sample_paths(contexts, 9, 5, seed=2))  # type: ignore[attr-defined]


def test_the_command_line_backtests_counts_and_names_the_flag_for_others(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    counts, _ = seasonal_counts(200)
    path = tmp_path / "counts.csv"
    pd.DataFrame({"t": np.arange(200), "y": counts[:, 0].astype(int)}).to_csv(path, index=False)
    out = tmp_path / "out.json"
    run = run_main(capsys, "backtest", str(path), "--time-col", "t", "-m", "rnn",
                   "--likelihood", "negbin", "--horizon", "3", "--season", "12", "--window",
                   "12", "--epochs", "3", "--hidden-size", "4", "--val-size", "30",
                   "--quantiles", "0.1,0.5,0.9", "--json", str(out), "--quiet")  # fmt: skip
    assert run.code == 0, run.err
    import json

    fields = json.loads(out.read_text())["results"][0]
    assert 0.0 < fields["wql"] < 1.0 and "coverage_80" in fields
    pd.DataFrame({"t": np.arange(200), "y": counts[:, 0] + 0.5}).to_csv(path, index=False)
    run = run_main(capsys, "backtest", str(path), "--time-col", "t", "-m", "rnn",
                   "--likelihood", "negbin", "--horizon", "3", "--season", "12", "--window",
                   "12", "--epochs", "1", "--val-size", "30", "--quiet")  # fmt: skip
    assert_one_error_line(run, "--likelihood", "counts")


def test_the_service_answers_whole_count_quantiles(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from seqcast.serving import create_app

    counts, _ = seasonal_counts(200)
    path = tmp_path / "counts.csv"
    pd.DataFrame({"t": np.arange(200), "y": counts[:, 0].astype(int)}).to_csv(path, index=False)
    run = run_main(capsys, "fit", str(path), "--time-col", "t", "-m", "rnn", "--likelihood",
                   "negbin", "--horizon", "3", "--season", "12", "--window", "12", "--epochs",
                   "3", "--hidden-size", "4", "--out", str(tmp_path / "m"), "--quiet")  # fmt: skip
    assert run.code == 0, run.err
    client = TestClient(create_app([tmp_path / "m"]))
    history = counts[-40:, 0].tolist()
    body = client.post("/models/m/forecast", json={"history": history, "quantiles": [0.1, 0.9]})
    assert body.status_code == 200, body.text
    answer = body.json()["quantiles"]
    low, high = np.array(answer["0.1"]), np.array(answer["0.9"])
    assert len(low) == 3 and np.all(low <= high) and low.min() >= 0
    np.testing.assert_array_equal(low, np.round(low))
    model = load_model(tmp_path / "m").forecaster
    want = model.predict_quantiles(counts[None, -40:], (0.1, 0.9))  # type: ignore[attr-defined]
    np.testing.assert_allclose(high, want[0, :, 0, 1])
