"""Neural models trained for quantiles (``likelihood="quantile"``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seqcast.data import load_series
from seqcast.errors import DataError
from seqcast.evaluation.backtest import backtest
from seqcast.forecasters.registry import create
from seqcast.networks import DenseConfig, DenseNet, PinballLoss, QuantileNet, RecurrentConfig
from seqcast.networks.recurrent import RecurrentNet
from seqcast.persistence import load_model, save_model

LEVELS = (0.1, 0.5, 0.9)


def noisy_sine(n: int = 700, sigma: float = 1.0, seed: int = 0) -> np.ndarray:
    """A sine of period 25 plus Gaussian noise of known spread: (N, 1)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (20.0 + 5.0 * np.sin(2 * np.pi * t / 25) + sigma * rng.normal(size=n))[:, None]


def quick(name: str = "rnn", **settings: object) -> object:
    base = dict(window=12, horizon=2, epochs=15, hidden_size=8, batch_size=64,
                likelihood="quantile")  # fmt: skip
    return create(name, **{**base, **settings})


def test_pinball_loss_by_hand() -> None:
    loss = PinballLoss((0.1, 0.9))
    forecast = torch.tensor([[[[8.0, 12.0]]]])  # (1, 1, 1, 2)
    target = torch.tensor([[[10.0]]])
    # q0.1 under by 2: 0.1·2; q0.9 over by 2: 0.1·2.
    assert float(loss(forecast, target)) == pytest.approx((0.2 + 0.2) / 2)


@pytest.mark.parametrize("network", ["recurrent", "dense"])
def test_quantile_outputs_never_cross_whatever_the_weights(network: str) -> None:
    torch.manual_seed(0)
    levels = (0.05, 0.25, 0.5, 0.75, 0.95)
    if network == "recurrent":
        base: torch.nn.Module = RecurrentNet(RecurrentConfig(3, 6, 0, 4, 2 * len(levels)))
    else:
        base = DenseNet(DenseConfig(input_size=3, window=6, season_size=0, horizon=4,
                                    n_targets=2 * len(levels)))  # fmt: skip
    net = QuantileNet(base, levels)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 3.0)
    out = net(torch.randn(50, 6, 3), torch.zeros(50, 0))
    assert out.shape == (50, 4, 2, 5)
    assert bool((out.diff(dim=-1) >= 0).all())


def test_the_start_is_the_least_squares_fit_with_gaussian_gaps() -> None:
    torch.manual_seed(0)
    window = torch.randn(400, 5, 1)
    target = (window[:, -1:, :] * 2.0 + 0.5 * torch.randn(400, 1, 1)).float()  # (N, 1, 1)
    net = QuantileNet(RecurrentNet(RecurrentConfig(1, 5, 0, 1, 3)), LEVELS)
    net.init_linear(window, torch.zeros(400, 0), target)
    with torch.no_grad():
        out = net(window, torch.zeros(400, 0))  # (N, 1, 1, 3)
    residual = (target[:, 0, 0] - out[:, 0, 0, 1]).std()
    gap = (out[:, 0, 0, 2] - out[:, 0, 0, 1]).mean()
    assert float(gap) == pytest.approx(1.2816 * float(residual), rel=0.1)
    inside = ((target[:, 0, 0] >= out[:, 0, 0, 0]) & (target[:, 0, 0] <= out[:, 0, 0, 2])).float()
    assert 0.7 <= float(inside.mean()) <= 0.9


def test_the_median_is_the_point_forecast_and_levels_interpolate() -> None:
    model = quick(calibrate_intervals=False)  # the network's own levels, unmoved
    series = noisy_sine()
    model.fit([series[:500]])  # type: ignore[attr-defined]
    contexts = np.stack([series[i - model.context_length : i] for i in range(500, 560)])  # type: ignore[attr-defined]
    point = model.predict(contexts)  # type: ignore[attr-defined]
    q = model.predict_quantiles(contexts, (0.1, 0.25, 0.5, 0.9))  # type: ignore[attr-defined]
    assert q.shape == (60, 2, 1, 4)
    np.testing.assert_allclose(q[..., 2], point)
    assert np.all(np.diff(q, axis=-1) >= 0)
    # 0.25 is not trained: halfway between 0.2 and 0.3.
    trained = model.predict_quantiles(contexts, (0.2, 0.3))  # type: ignore[attr-defined]
    np.testing.assert_allclose(q[..., 1], 0.5 * (trained[..., 0] + trained[..., 1]))


def test_backtest_intervals_of_a_quantile_network_cover_known_noise() -> None:
    data = load_series(noisy_sine(1500, seed=1))
    model = quick(epochs=40, horizon=1, window=25)
    result = backtest(model, data, [1000], quantiles=(0.1, 0.5, 0.9))  # type: ignore[arg-type]
    assert result.quantile_source == "network"
    assert 0.72 <= result.probabilistic["coverage_80"] <= 0.88  # type: ignore[operator]


def test_quantile_models_are_saved_and_loaded_whole(tmp_path: Path) -> None:
    model = quick(ensemble=2)
    series = noisy_sine(300)
    model.fit([series])  # type: ignore[attr-defined]
    save_model(model, tmp_path / "m", load_series(series))  # type: ignore[arg-type]
    loaded = load_model(tmp_path / "m").forecaster
    contexts = series[None, -model.context_length :]  # type: ignore[attr-defined]
    np.testing.assert_array_equal(
        loaded.predict_quantiles(contexts, LEVELS),
        model.predict_quantiles(contexts, LEVELS),  # type: ignore[attr-defined]
    )


def test_same_seed_same_quantiles() -> None:
    series = noisy_sine(300)
    runs = []
    for _ in range(2):
        model = quick()
        model.fit([series])  # type: ignore[attr-defined]
        runs.append(model.predict_quantiles(series[None, -40:], LEVELS))  # type: ignore[attr-defined]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_bad_quantile_settings_are_named() -> None:
    with pytest.raises(DataError, match="unknown likelihood 'gauss'"):
        quick(likelihood="gauss").validate()  # type: ignore[attr-defined]
    with pytest.raises(DataError, match="quantile_levels must lie"):
        quick(quantile_levels=(0.1, 1.0)).validate()  # type: ignore[attr-defined]
    with pytest.raises(DataError, match="cannot train seq2seq"):
        quick(seq2seq=True).validate()  # type: ignore[attr-defined]
    with_feature = quick()
    both = np.concatenate([noisy_sine(200), noisy_sine(200, seed=5)], axis=1)  # target, feature
    with_feature.fit([both], 1)  # type: ignore[attr-defined]
    with pytest.raises(DataError, match="input features have no future values"):
        with_feature.predict_quantiles(both[None, -40:], LEVELS, 3)  # type: ignore[attr-defined]
    point = create("linear", window=5)
    point.fit([noisy_sine(100)])
    with pytest.raises(DataError, match="forecasts points only"):
        point.predict_quantiles(noisy_sine(100)[None, -5:], LEVELS)


def test_student_t_loss_is_the_negative_log_density_by_hand() -> None:
    from seqcast.networks import StudentTLoss

    params = torch.tensor([[[[1.0, 2.0, 5.0]]]])  # loc 1, scale 2, 5 degrees of freedom
    target = torch.tensor([[[3.0]]])
    # t density with ν = 5 at z = (3 − 1)/2 = 1: Γ(3)/(√(5π)Γ(2.5))·(1 + 1/5)^(−3) / scale.
    density = 2.0 / (np.sqrt(5 * np.pi) * 1.329340388) * (1.2**-3) / 2.0
    assert float(StudentTLoss()(params, target)) == pytest.approx(-np.log(density), rel=1e-6)


def test_a_student_t_network_gives_quantiles_of_its_distribution() -> None:
    from scipy import stats

    model = quick(likelihood="studentt", calibrate_intervals=False)
    series = noisy_sine()
    model.fit([series[:500]])  # type: ignore[attr-defined]
    contexts = np.stack([series[i - 40 : i] for i in range(500, 520)])
    q = model.predict_quantiles(contexts, (0.1, 0.5, 0.9))  # type: ignore[attr-defined]
    np.testing.assert_allclose(q[..., 1], model.predict(contexts))  # type: ignore[attr-defined]
    assert np.all(np.diff(q, axis=-1) > 0)
    # In the scaled space the quantiles are loc + scale · t_ν⁻¹(q): check one by hand.
    from seqcast.forecasters.inputs import build_inputs

    inputs = build_inputs(contexts[:, -model.context_length :], model.spec, model.scaler_)  # type: ignore[attr-defined]
    loc, scale, df = model.forward_scaled(inputs)[0, 0, 0]  # type: ignore[attr-defined]
    want = model.scaler_.inverse_transform(  # type: ignore[attr-defined]
        np.array([[[loc + scale * stats.t.ppf(0.9, df)]]]), slice(0, 1)
    )
    assert q[0, 0, 0, 2] == pytest.approx(float(want[0, 0, 0]))


def test_backtest_intervals_of_a_student_t_network_cover_known_noise() -> None:
    data = load_series(noisy_sine(1500, seed=1))
    model = quick(epochs=40, horizon=1, window=25, likelihood="studentt")
    result = backtest(model, data, [1000], quantiles=(0.1, 0.5, 0.9))  # type: ignore[arg-type]
    assert result.quantile_source == "network"
    assert 0.72 <= result.probabilistic["coverage_80"] <= 0.88  # type: ignore[operator]


@pytest.mark.parametrize("likelihood", ["quantile", "studentt"])
def test_quantiles_past_the_horizon_come_from_sampled_paths(likelihood: str) -> None:
    model = quick(likelihood=likelihood, epochs=10)
    series = noisy_sine(400)
    model.fit([series])  # type: ignore[attr-defined]
    contexts = np.stack([series[i - 40 : i] for i in range(300, 340)])
    near = model.predict_quantiles(contexts, LEVELS)  # type: ignore[attr-defined]
    far = model.predict_quantiles(contexts, LEVELS, 8)  # type: ignore[attr-defined]
    assert far.shape == (40, 8, 1, 3)
    np.testing.assert_allclose(far[:, :2], near)  # the network's own up to its horizon
    assert np.all(np.diff(far, axis=-1) >= 0)
    width = (far[..., 2] - far[..., 0]).mean(axis=(0, 2))  # (8,) mean 80 % width per step
    assert width[2:].mean() > width[0]  # fed-back draws widen the later steps
    again = model.predict_quantiles(contexts, LEVELS, 8)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(again, far)  # the model's seed: the same paths
    paths = model.sample_paths(contexts[:2], 5, n_paths=7, seed=3)  # type: ignore[attr-defined]
    assert paths.shape == (2, 7, 5, 1)
    np.testing.assert_array_equal(paths, model.sample_paths(contexts[:2], 5, 7, seed=3))  # type: ignore[attr-defined]
    assert not np.array_equal(paths, model.sample_paths(contexts[:2], 5, 7, seed=4))  # type: ignore[attr-defined]


@pytest.mark.parametrize("likelihood", ["quantile", "studentt"])
def test_interval_calibration_moves_bounds_by_the_held_out_misses(likelihood: str) -> None:
    series = noisy_sine(800, sigma=2.0)
    raw = quick(likelihood=likelihood, calibrate_intervals=False, epochs=8)
    raw.fit([series[:600]])  # type: ignore[attr-defined]
    tuned = quick(likelihood=likelihood, epochs=8)
    tuned.fit([series[:600]])  # type: ignore[attr-defined]
    calibration = tuned.calibration_  # type: ignore[attr-defined]
    from seqcast.forecasters.levels import GRID

    assert calibration.shape == (len(GRID), 2, 1)
    contexts = np.stack([series[i - 40 : i] for i in range(600, 700)])
    levels = (0.1, 0.5, 0.9)
    a = raw.predict_quantiles(contexts, levels)  # type: ignore[attr-defined]
    b = tuned.predict_quantiles(contexts, levels)  # type: ignore[attr-defined]
    np.testing.assert_allclose(b[..., 1], a[..., 1])  # the median never moves
    # The 80 % interval widens (or narrows) by twice the calibrated move of level 0.8, in each
    # window's own units times its spread: the same sign for every window.
    change = (b[..., 2] - b[..., 0]) - (a[..., 2] - a[..., 0])
    move = calibration[79, :, 0]  # level 0.80
    assert np.all(np.sign(change[:, :, 0]) == np.sign(move)[None, :])


@pytest.mark.parametrize("output", ["quantile", "studentt", "negbin"])
@pytest.mark.parametrize(
    "changes",
    [{}, {"cell": "lstm"}, {"cell": "gru", "num_layers": 1}, {"skip": False, "season_size": 0}],
)
def test_the_distribution_step_gives_autograds_loss_and_gradients(
    output: str, changes: dict[str, object]
) -> None:
    from seqcast.networks import NegativeBinomialNet, StudentTNet
    from seqcast.training.compiled_step import CompiledStep, DistributionStep
    from seqcast.training.loop import TrainData, loss_function
    from seqcast.training.optimizer import FlatParameters

    outputs = {"quantile": len(LEVELS), "studentt": 3, "negbin": 2}[output]
    settings: dict[str, object] = dict(input_size=2, window=6, season_size=3, horizon=2,
                                       n_targets=2 * outputs, hidden_size=5)  # fmt: skip
    settings.update(changes)
    torch.manual_seed(0)
    base = RecurrentNet(RecurrentConfig(**settings))  # type: ignore[arg-type]
    net = {"quantile": lambda: QuantileNet(base, LEVELS), "studentt": lambda: StudentTNet(base),
           "negbin": lambda: NegativeBinomialNet(base)}[output]()  # fmt: skip
    generator = torch.Generator().manual_seed(1)
    window = torch.randn(9, 6, 2, generator=generator)
    season = torch.randn(9, int(settings["season_size"]), generator=generator)  # type: ignore[call-overload]
    target = 3 * torch.randn(9, 2, 2, generator=generator)
    if output == "negbin":  # counts, each window's unit beside its targets in window units
        size = 0.5 + 3 * torch.rand(9, 1, 2, generator=generator, dtype=torch.float64)
        origin = 20 * torch.rand(9, 1, 2, generator=generator, dtype=torch.float64)
        counts = torch.poisson(origin.expand(9, 2, 2), generator=generator)
        target = TrainData(window, season, ((counts - origin) / size).float(),
                           unit=torch.cat([size, origin], dim=1)).loss_target  # fmt: skip
    tensors = [getattr(base.rnn, n) for n in base.weight_names] + [base.head.weight, base.head.bias]
    levels = LEVELS if output == "quantile" else ()
    distribution = "" if output == "quantile" else output
    net.zero_grad()
    want_value = loss_function("mae", levels, distribution)(net(window, season), target)
    want_value.backward()
    want = [t.grad.clone() for t in tensors]  # type: ignore[union-attr]
    parameters = FlatParameters(net, tensors)
    try:
        step = CompiledStep.create(net, parameters, distribution or "pinball", seq2seq=False)
        assert isinstance(step, DistributionStep)
        parameters.grad.fill_(float("nan"))  # every gradient must be written
        value = step(window, season, target)
        got = [t.grad.clone() for t in tensors]  # type: ignore[union-attr]
    finally:
        parameters.release()
    assert value == pytest.approx(float(want_value.detach()), rel=1e-5)
    for ours, theirs in zip(got, want, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("likelihood", ["quantile", "studentt"])
def test_a_series_never_negative_gets_no_negative_quantile(likelihood: str) -> None:
    # Sparse counts near 0, no transform: an unbounded distribution would reach below 0.
    rng = np.random.default_rng(0)
    counts = rng.poisson(0.4, size=(400, 1)).astype(np.float64)
    model = quick(likelihood=likelihood, transform="none", epochs=5)
    model.fit([counts])  # type: ignore[attr-defined]
    contexts = np.stack([counts[i - 40 : i] for i in range(300, 340)])
    q = model.predict_quantiles(contexts, (0.025, 0.5, 0.975), 6)  # type: ignore[attr-defined]
    assert q.min() >= 0.0
    np.testing.assert_allclose(q[:, :2, :, 1], model.predict(contexts))  # type: ignore[attr-defined]
    # A target that was negative in training keeps its unbounded quantiles.
    shifted = quick(likelihood=likelihood, transform="none", epochs=5)
    shifted.fit([counts - 1.0])  # type: ignore[attr-defined]
    low = shifted.predict_quantiles(contexts - 1.0, (0.025,))  # type: ignore[attr-defined]
    assert low.min() < -1.0
