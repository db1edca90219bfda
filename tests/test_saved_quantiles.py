"""Quantiles from saved models: ``fit --intervals``, ``predict --quantiles/--level`` and the
service's ``quantiles``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_runner import assert_one_error_line, run_main
from fastapi.testclient import TestClient
from safetensors.numpy import load_file, save_file

from seqcast.data import load_dataset, load_series
from seqcast.evaluation.conformal import calibrate, series_scales
from seqcast.forecasters.registry import create
from seqcast.persistence import load_model
from seqcast.prediction import predict_saved
from seqcast.serving import create_app

TARGET = "Monthly Mean Total Sunspot Number"


def fit(capsys: pytest.CaptureFixture[str], folder: Path, *options: str) -> None:
    run = run_main(capsys, "fit", "sunspots", "--out", str(folder), "--quiet", *options)
    assert run.code == 0, run.err


def test_fit_intervals_saves_the_calibration_predict_reads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "m"
    fit(capsys, folder, "-m", "linear", "--window", "12", "--intervals", "--interval-steps", "3")
    saved = load_model(folder)
    # The same calibration, computed here on the same data, is what was saved.
    values = load_dataset("sunspots").series[0].values
    conformal = calibrate(create("linear", window=12), [values], 1, 3)
    np.testing.assert_array_equal(saved.extras["conformal.widths"], conformal.widths)
    np.testing.assert_allclose(saved.extras["conformal.scales"], series_scales([values], 1))

    out = tmp_path / "f.csv"
    run = run_main(capsys, "predict", str(folder), "--horizon", "3", "--level", "80,95",
                   "--out", str(out))  # fmt: skip
    assert run.code == 0, run.err
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["Date", TARGET, f"{TARGET}-lo-80", f"{TARGET}-hi-80",
                                   f"{TARGET}-lo-95", f"{TARGET}-hi-95"]  # fmt: skip
    scale = float(saved.extras["conformal.scales"][0, 0, 0])
    for step in range(3):
        width = conformal.half_width(0.8)[step, 0] * scale
        assert frame[f"{TARGET}-hi-80"][step] - frame[TARGET][step] == pytest.approx(width)
        # Sunspots are never negative: a lower bound below 0 is raised to 0.
        low = max(frame[TARGET][step] - width, 0.0)
        assert frame[f"{TARGET}-lo-80"][step] == pytest.approx(low)
    run = run_main(capsys, "predict", str(folder), "--horizon", "2", "--quantiles", "0.9,0.1")
    assert run.code == 0, run.err
    assert run.out.splitlines()[0] == f"Date,{TARGET},{TARGET}-q0.1,{TARGET}-q0.9"


def test_predict_from_new_data_scales_the_intervals_by_that_data(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "m"
    fit(capsys, folder, "-m", "naive", "--intervals")
    values = load_dataset("sunspots").series[0].values[:, 0]
    dates = pd.date_range("2000-01-31", periods=60, freq="ME")
    newer = tmp_path / "newer.csv"
    pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), TARGET: values[-60:] * 10}).to_csv(
        newer, index=False
    )
    run = run_main(capsys, "predict", str(folder), "--data", str(newer), "--level", "80")
    assert run.code == 0, run.err
    rows = run.out.splitlines()[1].split(",")
    half = float(rows[3]) - float(rows[1])
    conformal_width = load_model(folder).extras["conformal.widths"][79, 0, 0]  # level 0.8
    expected = conformal_width * np.abs(np.diff(values[-60:] * 10)).mean()
    assert half == pytest.approx(expected)


def test_a_model_without_intervals_names_the_way_to_get_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "m"
    fit(capsys, folder, "-m", "naive")
    run = run_main(capsys, "predict", str(folder), "--level", "80")
    assert_one_error_line(run, "--quantiles:", "fitted without intervals", "--intervals")
    fit(capsys, tmp_path / "k", "-m", "naive", "--intervals")
    run = run_main(capsys, "predict", str(tmp_path / "k"), "--horizon", "4", "--level", "80")
    assert_one_error_line(run, "calibrated for 1 step(s), not 4", "--interval-steps")


def test_a_tampered_calibration_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "m"
    fit(capsys, folder, "-m", "naive", "--intervals")
    weights = folder / "weights.safetensors"
    arrays = load_file(weights)
    arrays["extra.conformal.widths"] = arrays["extra.conformal.widths"][::-1].copy()
    save_file(arrays, weights)
    run = run_main(capsys, "predict", str(folder), "--level", "80")
    assert run.code != 0  # the checksum refuses the edited weights before anything else
    assert "Traceback" not in run.err


def test_the_service_answers_requested_quantiles(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fit(capsys, tmp_path / "conformal", "-m", "linear", "--window", "12", "--intervals")
    fit(capsys, tmp_path / "plain", "-m", "linear", "--window", "12")
    tiny = ("--epochs", "2", "--hidden-size", "4", "--season", "1")
    fit(capsys, tmp_path / "network", "-m", "rnn", "--window", "12", "--horizon", "2",
        "--likelihood", "quantile", *tiny)  # fmt: skip
    app = create_app([tmp_path / "conformal", tmp_path / "plain", tmp_path / "network"])
    client = TestClient(app)
    listed = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert (listed["conformal"]["quantiles"], listed["conformal"]["quantile_steps"]) == (
        "conformal", 1)  # fmt: skip
    assert listed["plain"]["quantiles"] is None
    # Past its horizon of 2 a quantile network samples paths: as far as any request may ask.
    network = listed["network"]
    assert (network["quantiles"], network["quantile_steps"]) == ("network", network["max_horizon"])

    history = load_dataset("sunspots").series[0].values[-40:, 0].tolist()
    body = client.post("/models/conformal/forecast",
                       json={"history": history, "quantiles": [0.9, 0.1, 0.5]}).json()  # fmt: skip
    assert list(body["quantiles"]) == ["0.1", "0.5", "0.9"]
    assert body["quantiles"]["0.5"] == body["forecast"]
    assert body["quantiles"]["0.1"][0] < body["forecast"][0] < body["quantiles"]["0.9"][0]
    # Oracle: predict --data's quantiles from the same 40 values (scaled by all of them, not
    # by the model's last 12 alone).
    fresh = load_series(np.asarray(history), targets=None)
    table = predict_saved(load_model(tmp_path / "conformal"), 1, fresh, (0.1, 0.5, 0.9))
    quantile_columns = [c for c in table.columns if "-q" in str(c) or "q0" in str(c)]
    expected = table[quantile_columns].to_numpy()[0]
    np.testing.assert_allclose([body["quantiles"][q][0] for q in ("0.1", "0.5", "0.9")], expected)
    body = client.post("/models/network/forecast",
                       json={"history": history, "quantiles": [0.1, 0.9]}).json()  # fmt: skip
    assert len(body["quantiles"]["0.1"]) == 2
    assert all(lo <= hi for lo, hi in zip(body["quantiles"]["0.1"], body["quantiles"]["0.9"],
                                          strict=True))  # fmt: skip

    refused = client.post("/models/plain/forecast", json={"history": history, "quantiles": [0.5]})
    assert refused.status_code == 422
    assert "fitted without intervals" in refused.text
    for bad in ([0.0], [1.5], [0.5] * 100, ["x"]):
        answer = client.post("/models/conformal/forecast",
                             json={"history": history, "quantiles": bad})  # fmt: skip
        assert answer.status_code == 422, bad


def test_bad_interval_steps_are_refused_before_training(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = run_main(capsys, "fit", "sunspots", "-m", "rnn", "--intervals", "--interval-steps",
                   "0", "--out", str(tmp_path / "m"), "--quiet")  # fmt: skip
    assert_one_error_line(run, "--interval-steps must be at least 1, got 0")
    assert "fitting" not in run.err and not (tmp_path / "m").exists()
