"""The PyTorch modules against hand-written numpy recurrences, and the ridge warm start."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from torch import nn

from seqcast.networks import (
    DenseConfig,
    DenseNet,
    RecurrentConfig,
    RecurrentNet,
    ridge_fit,
)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def set_known_weights(module: nn.Module, seed: int = 0, scale: float = 0.5) -> None:
    """Every parameter drawn from a seeded numpy generator: known values, not torch's init."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.from_numpy(rng.normal(scale=scale, size=parameter.shape)))


def weights(net: RecurrentNet, name: str) -> np.ndarray:
    return getattr(net.rnn, name).detach().double().numpy()  # type: ignore[no-any-return]


def oracle_rnn_layer(x: np.ndarray, w_ih, w_hh, b_ih, b_hh) -> np.ndarray:  # type: ignore[no-untyped-def]
    """h_t = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh), h_0 = 0: (B, L, in) -> (B, L, H)."""
    batch, length, _ = x.shape
    out = np.zeros((batch, length, w_hh.shape[0]))
    for b in range(batch):
        state = np.zeros(w_hh.shape[0])
        for t in range(length):
            state = np.tanh(w_ih @ x[b, t] + b_ih + w_hh @ state + b_hh)
            out[b, t] = state
    return out


def oracle_rnn_stack(net: RecurrentNet, x: np.ndarray) -> np.ndarray:
    """The top layer's sequence of a (possibly bidirectional) tanh stack: (B, L, H·dirs)."""
    layer_input = x
    for layer in range(net.config.num_layers):
        names = [f"_l{layer}"] + ([f"_l{layer}_reverse"] if net.config.bidirectional else [])
        outputs = []
        for suffix in names:
            params = [weights(net, p + suffix) for p in ("weight_ih", "weight_hh", "bias_ih")]
            params.append(weights(net, "bias_hh" + suffix))
            if suffix.endswith("reverse"):
                out = oracle_rnn_layer(layer_input[:, ::-1], *params)[:, ::-1]
            else:
                out = oracle_rnn_layer(layer_input, *params)
            outputs.append(out)
        layer_input = np.concatenate(outputs, axis=2)
    return layer_input


def oracle_head(
    net: RecurrentNet, last: np.ndarray, season: np.ndarray, window: np.ndarray
) -> np.ndarray:
    """Dense output layer on [last state, season vector, flat window], reshaped to (B, T, Ft)."""
    head_w = net.head.weight.detach().double().numpy()
    head_b = net.head.bias.detach().double().numpy()
    batch = window.shape[0]
    rows = []
    for b in range(batch):
        features = np.concatenate([last[b], season[b], window[b].reshape(-1)])
        rows.append(head_w @ features + head_b)
    return np.array(rows).reshape(batch, net.config.horizon, net.config.n_targets)


def inputs(batch: int, config: RecurrentConfig | DenseConfig, seed: int = 1):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    window = rng.normal(size=(batch, config.window, config.input_size))
    season = rng.normal(size=(batch, config.season_size))
    return window, season


def forward(net: nn.Module, window: np.ndarray, season: np.ndarray) -> np.ndarray:
    net.eval()
    with torch.no_grad():
        out = net(torch.from_numpy(window).float(), torch.from_numpy(season).float())
    return out.double().numpy()  # type: ignore[no-any-return]


# ------------------------------------------------------------------ recurrence oracles
@pytest.mark.parametrize("bidirectional", [False, True])
def test_two_layer_tanh_rnn_matches_the_numpy_loop(bidirectional: bool) -> None:
    config = RecurrentConfig(
        input_size=2, window=5, season_size=3, horizon=2, n_targets=2, cell="rnn",
        hidden_size=3, num_layers=2, bidirectional=bidirectional,
    )  # fmt: skip
    net = RecurrentNet(config)
    set_known_weights(net)
    window, season = inputs(4, config)
    sequence = oracle_rnn_stack(net, window)  # (B, L, H·dirs)
    if bidirectional:
        # Forward direction after the last step, backward direction after the first step.
        last = np.concatenate([sequence[:, -1, :3], sequence[:, 0, 3:]], axis=1)
    else:
        last = sequence[:, -1]
    want = oracle_head(net, last, season, window)
    got = forward(net, window, season)
    assert got.shape == (4, 2, 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        seq = net.sequence(torch.from_numpy(window).float()).double().numpy()
    np.testing.assert_allclose(seq, sequence, atol=1e-5)


def test_bidirectional_last_state_is_not_the_last_step_of_both_directions() -> None:
    """The backward half must come from step 0 (where it has seen everything), not step L−1."""
    config = RecurrentConfig(
        input_size=1, window=6, season_size=0, horizon=1, n_targets=1, hidden_size=2,
        num_layers=1, bidirectional=True, skip=False,
    )  # fmt: skip
    net = RecurrentNet(config)
    set_known_weights(net, seed=3)
    window, season = inputs(2, config)
    window_changed = window.copy()
    window_changed[:, 0] += 1.0  # the backward state at the last step never sees step 0 ...
    sequence = oracle_rnn_stack(net, window)
    changed = oracle_rnn_stack(net, window_changed)
    np.testing.assert_allclose(sequence[:, -1, 2:], changed[:, -1, 2:])
    # ... but the forecast depends on it through the backward state at step 0.
    assert not np.allclose(forward(net, window, season), forward(net, window_changed, season))


def test_one_lstm_layer_matches_the_numpy_loop() -> None:
    config = RecurrentConfig(
        input_size=2, window=4, season_size=0, horizon=1, n_targets=1, cell="lstm",
        hidden_size=3, num_layers=1,
    )  # fmt: skip
    net = RecurrentNet(config)
    set_known_weights(net, seed=5)
    window, season = inputs(3, config)
    w_ih, w_hh = weights(net, "weight_ih_l0"), weights(net, "weight_hh_l0")
    bias = weights(net, "bias_ih_l0") + weights(net, "bias_hh_l0")
    last = np.zeros((3, 3))
    for b in range(3):
        h, c = np.zeros(3), np.zeros(3)
        for t in range(4):
            z = w_ih @ window[b, t] + w_hh @ h + bias
            i, f, g, o = sigmoid(z[0:3]), sigmoid(z[3:6]), np.tanh(z[6:9]), sigmoid(z[9:12])
            c = f * c + i * g
            h = o * np.tanh(c)
        last[b] = h
    np.testing.assert_allclose(
        forward(net, window, season), oracle_head(net, last, season, window), atol=1e-5
    )


def test_one_gru_layer_matches_the_numpy_loop() -> None:
    config = RecurrentConfig(
        input_size=2, window=4, season_size=2, horizon=3, n_targets=1, cell="gru",
        hidden_size=3, num_layers=1,
    )  # fmt: skip
    net = RecurrentNet(config)
    set_known_weights(net, seed=6)
    window, season = inputs(3, config)
    w_ih, w_hh = weights(net, "weight_ih_l0"), weights(net, "weight_hh_l0")
    b_ih, b_hh = weights(net, "bias_ih_l0"), weights(net, "bias_hh_l0")
    last = np.zeros((3, 3))
    for b in range(3):
        h = np.zeros(3)
        for t in range(4):
            gi, gh = w_ih @ window[b, t] + b_ih, w_hh @ h + b_hh
            r = sigmoid(gi[0:3] + gh[0:3])
            z = sigmoid(gi[3:6] + gh[3:6])
            n = np.tanh(gi[6:9] + r * gh[6:9])
            h = (1 - z) * n + z * h
        last[b] = h
    np.testing.assert_allclose(
        forward(net, window, season), oracle_head(net, last, season, window), atol=1e-5
    )


def test_seq2seq_step_forecasts_come_from_every_step_state() -> None:
    config = RecurrentConfig(
        input_size=1, window=5, season_size=0, horizon=2, n_targets=1, hidden_size=3,
        num_layers=2,
    )  # fmt: skip
    net = RecurrentNet(config)
    set_known_weights(net, seed=7)
    window, season = inputs(2, config)
    with torch.no_grad():
        final, per_step = net(
            torch.from_numpy(window).float(), torch.from_numpy(season).float(), steps=True
        )
    sequence = oracle_rnn_stack(net, window)  # (B, L, H)
    step_w = net.step_head.weight.detach().double().numpy()
    step_b = net.step_head.bias.detach().double().numpy()
    want = (sequence @ step_w.T + step_b).reshape(2, 5, 2, 1)
    assert per_step.shape == (2, 5, 2, 1)
    np.testing.assert_allclose(per_step.double().numpy(), want, atol=1e-5)
    np.testing.assert_allclose(final.double().numpy(), forward(net, window, season), atol=1e-6)


# ---------------------------------------------------------------------- causal Conv1D
def test_cnn_front_is_causal_and_matches_a_numpy_convolution() -> None:
    config = RecurrentConfig(
        input_size=2, window=8, season_size=0, horizon=1, n_targets=1, cell="lstm",
        hidden_size=3, num_layers=1, conv_channels=4, conv_kernel=3,
    )  # fmt: skip
    net = RecurrentNet(config)
    set_known_weights(net, seed=8)
    captured: list[torch.Tensor] = []
    assert net.conv is not None
    net.conv.register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
    window, season = inputs(2, config)
    forward(net, window, season)
    conv = captured[-1].double().numpy()  # (B, C_conv, L) before the ReLU
    kernel = net.conv.weight.detach().double().numpy()  # (C_conv, F, k)
    bias = net.conv.bias.detach().double().numpy()
    assert conv.shape == (2, 4, 8)  # as long as the window: left padding only
    for b in range(2):
        for t in range(8):
            value = bias.copy()
            for k in range(3):
                step = t - 2 + k  # the kernel ends at step t: it never sees t + 1
                if step >= 0:
                    value += kernel[:, :, k] @ window[b, step]
            np.testing.assert_allclose(conv[b, :, t], value, atol=1e-5)


@pytest.mark.parametrize("changed", [0, 3, 7])
def test_changing_step_s_never_changes_earlier_outputs(changed: int) -> None:
    config = RecurrentConfig(
        input_size=1, window=8, season_size=0, horizon=1, n_targets=1, cell="lstm",
        hidden_size=3, num_layers=2, conv_channels=4,
    )  # fmt: skip
    net = RecurrentNet(config)
    set_known_weights(net, seed=9)
    captured: list[torch.Tensor] = []
    assert net.conv is not None
    net.conv.register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
    window, _ = inputs(2, config)
    other = window.copy()
    other[:, changed] += 3.0
    with torch.no_grad():
        seq_a = net.sequence(torch.from_numpy(window).float())
        seq_b = net.sequence(torch.from_numpy(other).float())
    conv_a, conv_b = captured
    torch.testing.assert_close(conv_a[:, :, :changed], conv_b[:, :, :changed], rtol=0, atol=0)
    torch.testing.assert_close(seq_a[:, :changed], seq_b[:, :changed], rtol=0, atol=0)
    assert not torch.allclose(conv_a[:, :, changed], conv_b[:, :, changed])


# ------------------------------------------------------------------- ridge warm start
def ridge_oracle(x: np.ndarray, y: np.ndarray, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """argmin ‖y − x·Wᵀ − b‖² + strength·N·‖W‖² by least squares on an augmented system."""
    n, d = x.shape
    design = np.block([[x, np.ones((n, 1))], [np.sqrt(strength * n) * np.eye(d), np.zeros((d, 1))]])
    rhs = np.vstack([y, np.zeros((d, y.shape[1]))])
    solution, *_ = np.linalg.lstsq(design, rhs, rcond=None)
    return solution[:d].T, solution[d]


@pytest.mark.parametrize("strength", [0.0, 0.01, 1.0])
def test_ridge_fit_matches_the_closed_form(strength: float) -> None:
    rng = np.random.default_rng(10)
    x = rng.normal(size=(60, 4)) + 3.0
    y = x @ rng.normal(size=(4, 2)) + 5.0 + rng.normal(scale=0.1, size=(60, 2))
    weight, bias = ridge_fit(torch.from_numpy(x).float(), torch.from_numpy(y).float(), strength)
    want_w, want_b = ridge_oracle(x, y, strength)
    assert weight.shape == (2, 4) and bias.shape == (2,)
    assert weight.dtype == torch.float32
    np.testing.assert_allclose(weight.numpy(), want_w, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bias.numpy(), want_b, rtol=1e-4, atol=1e-4)


#: The strength init_linear uses: ridge_fit's default, whatever it is today.
STRENGTH = inspect.signature(ridge_fit).parameters["strength"].default


def warm_start_data(config: RecurrentConfig | DenseConfig):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    window, season = inputs(50, config, seed=12)
    target = rng.normal(size=(50, config.horizon, config.n_targets))
    target += window[:, -1:, : config.n_targets]  # something linear to find
    return window, season, target


def test_dense_init_linear_starts_exactly_at_the_ridge_forecast() -> None:
    config = DenseConfig(input_size=2, window=4, season_size=3, horizon=2, n_targets=2)
    net = DenseNet(config)
    window, season, target = warm_start_data(config)
    as_t = [torch.from_numpy(a).float() for a in (window, season, target)]
    net.init_linear(*as_t)
    flat = np.concatenate([window.reshape(50, -1), season], axis=1)
    want_w, want_b = ridge_oracle(flat, target.reshape(50, -1), STRENGTH)
    want = (flat @ want_w.T + want_b).reshape(50, 2, 2)
    np.testing.assert_allclose(forward(net, window, season), want, atol=1e-4)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_recurrent_init_linear_is_the_ridge_forecast_plus_a_tenth_of_the_state(cell: str) -> None:
    config = RecurrentConfig(
        input_size=2, window=4, season_size=3, horizon=2, n_targets=1, cell=cell,
        hidden_size=3, num_layers=2,
    )  # fmt: skip
    net = RecurrentNet(config)
    state_weight = net.head.weight.detach().double().numpy()[:, :3].copy()
    window, season, target = warm_start_data(config)
    net.init_linear(*[torch.from_numpy(a).float() for a in (window, season, target)])
    np.testing.assert_allclose(
        net.head.weight.detach().double().numpy()[:, :3], 0.1 * state_weight, rtol=1e-6
    )
    flat = np.concatenate([season, window.reshape(50, -1)], axis=1)
    want_w, want_b = ridge_oracle(flat, target.reshape(50, -1), STRENGTH)
    linear = (flat @ want_w.T + want_b).reshape(50, 2, 1)
    with torch.no_grad():
        last = net.sequence(torch.from_numpy(window).float())[:, -1].double().numpy()
    state_part = (last @ (0.1 * state_weight).T).reshape(50, 2, 1)
    np.testing.assert_allclose(forward(net, window, season), linear + state_part, atol=1e-4)
    # The state's share is small next to the linear forecast it starts from.
    assert np.abs(state_part).max() < 0.2 * np.abs(linear).max()


@pytest.mark.parametrize(("bidirectional", "skip"), [(False, True), (True, True), (False, False)])
def test_output_layer_gradients_equal_those_of_one_product_on_all_inputs(
    bidirectional: bool, skip: bool
) -> None:
    """forward gives autograd dL/d(state) alone (not the unneeded gradient of the seasonal
    values and the window): the value and every gradient must still be those of the plain
    ``head(cat(state, season, window))``, computed here in float64 as the oracle."""
    config = RecurrentConfig(
        input_size=2, window=6, season_size=3, horizon=2, n_targets=1, cell="lstm",
        hidden_size=5, num_layers=2, bidirectional=bidirectional, skip=skip,
    )  # fmt: skip
    torch.manual_seed(0)
    net = RecurrentNet(config)
    oracle = RecurrentNet(config).double()
    oracle.load_state_dict({k: v.double() for k, v in net.state_dict().items()})
    window, season = torch.randn(4, 6, 2), torch.randn(4, 3)
    target = torch.randn(4, 2, 1)

    got = net(window, season)
    ((got - target) ** 2).mean().backward()

    sequence, _ = oracle.rnn(window.double())  # nn.LSTM itself: (B, L, H·dirs)
    if bidirectional:
        last = torch.cat([sequence[:, -1, :5], sequence[:, 0, 5:]], dim=1)
    else:
        last = sequence[:, -1]
    parts = [last, season.double()] + ([window.double().flatten(1)] if skip else [])
    want = oracle.head(torch.cat(parts, dim=1)).reshape(-1, 2, 1)
    ((want - target.double()) ** 2).mean().backward()

    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)
    for (name, mine), (_, theirs) in zip(
        net.named_parameters(), oracle.named_parameters(), strict=True
    ):
        if name.startswith("step_head"):
            continue  # read only with steps=True
        assert mine.grad is not None, name
        torch.testing.assert_close(mine.grad.double(), theirs.grad, rtol=1e-4, atol=1e-6)
