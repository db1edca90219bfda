"""The forecasting service, against a real server on a free loopback port.

Three tiny models are trained once per session: ``uni`` (one column, no timestamps),
``seasonal`` (its context is longer than its window) and ``multi`` (two targets and one input
feature, daily dates). A server subprocess serves them for the module, with small limits so
that each refusal is cheap to provoke.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from signal import SIGTERM
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient

from seqcast.data import load_dataset
from seqcast.data.loading import load_series
from seqcast.errors import DataError, ModelFormatError, SeqcastError
from seqcast.forecasters.registry import create_for
from seqcast.persistence import load_model, save_model
from seqcast.serving import create_app
from seqcast.serving.server import serve

MAX_HORIZON = 50
MAX_BODY_BYTES = 20_000
#: Every wait on a server is bounded by this many seconds.
STARTUP_SECONDS = 90.0


# ------------------------------------------------------------------------------ helpers
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def train_models(root: Path) -> dict[str, Path]:
    """Fits the three tiny models in one second or so and saves them under ``root``."""

    def tiny(window: int, horizon: int, season: int) -> dict[str, Any]:
        return dict(
            window=window, horizon=horizon, season=season, epochs=1, batch_size=256,
            hidden_size=8, num_layers=1, patience=0,
        )  # fmt: skip

    synthetic = load_dataset("synthetic")
    days = pd.date_range("2021-01-01", periods=240, freq="D")
    step = np.arange(len(days))
    frame = pd.DataFrame(
        {
            "ds": days,
            "a": np.sin(step / 7),
            "b": np.cos(step / 5) + step / 100,
            "x": (step % 7 == 0).astype(float),
        }
    )
    dated = load_series(frame, targets=["a", "b"], features=["x"], time_col="ds")
    specs = {
        "uni": (synthetic, tiny(window=8, horizon=2, season=1)),
        "seasonal": (synthetic, tiny(window=4, horizon=1, season=12)),
        "multi": (dated, tiny(window=6, horizon=2, season=1)),
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks train faster on one thread, above all on busy CI
    try:
        dirs = {}
        for name, (data, options) in specs.items():
            forecaster = create_for("rnn", options).fit(
                [s.values for s in data.series], data.n_targets
            )
            dirs[name] = save_model(forecaster, root / name, data)
    finally:
        torch.set_num_threads(threads)
    return dirs


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]

    def stop(self, timeout: float = 30.0, signal: bool = True) -> tuple[int, str]:
        """Sends SIGTERM (unless ``signal`` is false) and waits; returns exit code and log."""
        if signal and self.process.poll() is None:
            self.process.send_signal(SIGTERM)
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, out


def start_server(dirs: list[Path], *options: str) -> Server:
    """``python -m seqcast serve`` on a free port, once ``/health`` answers."""
    port = free_port()
    command = [sys.executable, "-m", "seqcast", "serve", *map(str, dirs)]
    process = subprocess.Popen(
        [*command, "--port", str(port), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    server = Server(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, log = server.stop()
            raise AssertionError(f"the server exited with {process.returncode}:\n{log}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    _, log = server.stop()
    raise AssertionError(f"the server did not answer within {STARTUP_SECONDS} s:\n{log}")


@contextmanager
def running(dirs: list[Path], *options: str) -> Iterator[Server]:
    server = start_server(dirs, *options)
    try:
        yield server
    finally:
        server.stop()


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return train_models(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def server(model_dirs: dict[str, Path]) -> Iterator[Server]:
    options = ("--max-horizon", str(MAX_HORIZON), "--max-body-bytes", str(MAX_BODY_BYTES))
    with running(list(model_dirs.values()), *options, "--no-access-log") as server:
        yield server


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def series() -> np.ndarray:
    """The synthetic series as (N, 1)."""
    return load_dataset("synthetic").series[0].values


def expected(model_dir: Path, history: np.ndarray, horizon: int) -> np.ndarray:
    """The forecast straight from the model folder: (T, Ft)."""
    forecaster = load_model(model_dir).forecaster
    out: np.ndarray = forecaster.predict(history[None], horizon)[0]
    return out


def multi_history(steps: int) -> list[list[float]]:
    rng = np.random.default_rng(0)
    rows: list[list[float]] = rng.normal(size=(steps, 3)).round(3).tolist()
    return rows


# ------------------------------------------------------------------------ what it serves
def test_health(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "models": 3}


def test_models_lists_every_folder_by_name(
    client: httpx.Client, model_dirs: dict[str, Path]
) -> None:
    listed = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert list(listed) == ["uni", "seasonal", "multi"]
    multi = listed["multi"]
    assert multi["model"] == "rnn"
    assert (multi["window"], multi["horizon"]) == (6, 2)
    assert (multi["targets"], multi["features"]) == (["a", "b"], ["x"])
    assert multi["freq"] == "D"
    # Input features have no future values: this model cannot roll out.
    assert multi["max_horizon"] == 2
    assert listed["uni"]["max_horizon"] == MAX_HORIZON
    seasonal = load_model(model_dirs["seasonal"]).forecaster
    assert listed["seasonal"]["context_length"] == seasonal.context_length > 4
    for entry in listed.values():
        assert set(entry) >= {"name", "model", "window", "horizon", "targets", "features"}
        assert entry["trained_at"] and isinstance(entry["metrics"], dict)
    assert client.get("/models/uni").json() == listed["uni"]


def test_openapi_schema_is_served(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/health", "/models", "/models/{name}", "/models/{name}/forecast"} <= set(
        schema["paths"]
    )
    post = schema["paths"]["/models/{name}/forecast"]["post"]
    assert {"404", "413", "422"} <= set(post["responses"])
    assert post["parameters"][0]["schema"]["enum"] == ["uni", "seasonal", "multi"]
    request = schema["components"]["schemas"]["ForecastRequest"]
    assert len(request["properties"]["history"]["anyOf"]) == 2


# -------------------------------------------------------------------------- forecasting
def test_univariate_forecast_matches_the_model(
    client: httpx.Client, model_dirs: dict[str, Path], series: np.ndarray
) -> None:
    history = series[-30:, 0]
    response = client.post("/models/uni/forecast", json={"history": history.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["horizon"] == 2 and body["targets"] == ["y"]
    assert body["timestamps"] == [1, 2]  # no timestamps sent: step numbers
    want = expected(model_dirs["uni"], series[-8:], 2)[:, 0]
    np.testing.assert_allclose(body["forecast"], want, rtol=1e-6)


def test_univariate_model_accepts_rows_of_one(client: httpx.Client, series: np.ndarray) -> None:
    flat = client.post("/models/uni/forecast", json={"history": series[-8:, 0].tolist()})
    rows = client.post("/models/uni/forecast", json={"history": series[-8:].tolist()})
    assert rows.status_code == 200
    assert rows.json()["forecast"] == flat.json()["forecast"]


def test_multivariate_forecast_gives_rows_of_targets(
    client: httpx.Client, model_dirs: dict[str, Path]
) -> None:
    history = multi_history(10)
    response = client.post("/models/multi/forecast", json={"history": history, "horizon": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["targets"] == ["a", "b"]
    want = expected(model_dirs["multi"], np.asarray(history)[-6:], 1)
    np.testing.assert_allclose(body["forecast"], want, rtol=1e-6)


def test_forecast_past_the_trained_horizon_rolls_out(
    client: httpx.Client, model_dirs: dict[str, Path], series: np.ndarray
) -> None:
    response = client.post(
        "/models/uni/forecast", json={"history": series[-8:, 0].tolist(), "horizon": 7}
    )
    assert response.status_code == 200
    assert len(response.json()["forecast"]) == 7
    want = expected(model_dirs["uni"], series[-8:], 7)[:, 0]
    np.testing.assert_allclose(response.json()["forecast"], want, rtol=1e-6)


def test_a_whole_float_horizon_counts_as_an_integer(client: httpx.Client) -> None:
    response = client.post(UNI, json={"history": EIGHT, "horizon": 3.0})
    assert response.status_code == 200
    assert response.json()["horizon"] == 3


def test_dated_timestamps_continue_at_the_model_frequency(client: httpx.Client) -> None:
    days = pd.date_range("2024-02-20", periods=8, freq="D")
    body = {
        "history": multi_history(8),
        "timestamps": [d.isoformat() for d in days],
    }
    response = client.post("/models/multi/forecast", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["timestamps"] == ["2024-02-28T00:00:00", "2024-02-29T00:00:00"]


def test_numeric_timestamps_continue_their_spacing(
    client: httpx.Client, series: np.ndarray
) -> None:
    history = series[-8:, 0].tolist()
    body = {"history": history, "timestamps": [10.0 * i for i in range(8)], "horizon": 3}
    response = client.post("/models/uni/forecast", json=body)
    assert response.json()["timestamps"] == [80.0, 90.0, 100.0]


def test_dates_for_an_undated_model_continue_their_inferred_frequency(
    client: httpx.Client, series: np.ndarray
) -> None:
    hours = pd.date_range("2024-01-01", periods=8, freq="h")
    body = {"history": series[-8:, 0].tolist(), "timestamps": [h.isoformat() for h in hours]}
    response = client.post("/models/uni/forecast", json=body)
    assert response.json()["timestamps"] == ["2024-01-01T08:00:00", "2024-01-01T09:00:00"]


def test_concurrent_requests_are_answered_correctly(
    server: Server, model_dirs: dict[str, Path], series: np.ndarray
) -> None:
    origins = list(range(100, 1400, 37))
    wanted = {o: expected(model_dirs["uni"], series[o - 8 : o], 2)[:, 0] for o in origins}
    failures: list[str] = []

    def worker(offset: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(offset, offset + len(origins)):
                origin = origins[i % len(origins)]
                history = series[origin - 8 : origin, 0].tolist()
                response = client.post("/models/uni/forecast", json={"history": history})
                if response.status_code != 200:
                    failures.append(response.text)
                elif not np.allclose(response.json()["forecast"], wanted[origin], rtol=1e-6):
                    failures.append(f"origin {origin}: {response.json()['forecast']}")

    threads = [threading.Thread(target=worker, args=(k * 5,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []


# ----------------------------------------------------------------------------- refusals
UNI = "/models/uni/forecast"
MULTI = "/models/multi/forecast"
SEASONAL = "/models/seasonal/forecast"
EIGHT = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
DAYS = [f"2024-01-{d:02d}" for d in range(1, 9)]

REFUSALS: list[tuple[str, str, Any, int, str]] = [
    # (case, path, body, status, message)
    ("short", SEASONAL, {"history": [1.0] * 5}, 422,
     r"history has 5 steps; model 'seasonal' needs at least \d+ \(its window of 4"),
    ("short-uni", UNI, {"history": [1.0] * 7}, 422,
     "history has 7 steps; model 'uni' needs at least 8$"),
    ("empty", UNI, {"history": []}, 422, "history: is empty"),
    ("string", UNI, {"history": [*EIGHT[:7], "9"]}, 422, r"history: step 7 is '9', not a number"),
    ("bool", UNI, {"history": [True, *EIGHT]}, 422, "step 0 is True, not a number"),
    ("null", UNI, {"history": [*EIGHT, None]}, 422, "step 8 is None, not a number"),
    ("long-text", UNI, {"history": ["x" * 5000]}, 422, r"step 0 is 'x{36}\.\.\., not a number$"),
    ("object", UNI, {"history": {"y": EIGHT}}, 422, "history: must be a list of numbers, or"),
    ("huge", UNI, {"history": [*EIGHT, 10**400]}, 422, "step 8 is too large"),
    ("mixed", UNI, {"history": [*EIGHT, [1.0]]}, 422, "step 8 is a list but step 0 is a number"),
    ("ragged", MULTI, {"history": [[1.0, 2.0, 3.0]] * 6 + [[1.0, 2.0]]}, 422,
     "step 6 has 2 values but step 0 has 3"),
    ("flat-for-multi", MULTI, {"history": EIGHT}, 422,
     r"model 'multi' takes 3 values per step \(a, b, x\): send history as rows"),
    ("columns", MULTI, {"history": [[1.0, 2.0]] * 8}, 422,
     "history rows have 2 values; model 'multi' takes 3 per step"),
    ("columns-uni", UNI, {"history": [[1.0, 2.0]] * 8}, 422, "model 'uni' takes 1 per step"),
    ("horizon-0", UNI, {"history": EIGHT, "horizon": 0}, 422,
     "horizon: Input should be greater than or equal to 1"),
    ("horizon-negative", UNI, {"history": EIGHT, "horizon": -3}, 422, "greater than or equal"),
    ("horizon-fraction", UNI, {"history": EIGHT, "horizon": 1.5}, 422, "valid integer"),
    ("horizon-text", UNI, {"history": EIGHT, "horizon": "2"}, 422, "valid integer"),
    ("horizon-max", UNI, {"history": EIGHT, "horizon": MAX_HORIZON + 1}, 422,
     f"horizon {MAX_HORIZON + 1} is above the maximum of {MAX_HORIZON} for model 'uni'"),
    ("horizon-features", MULTI, {"history": multi_history(6), "horizon": 3}, 422,
     "above the maximum of 2 for model 'multi': it has input features"),
    ("extreme", UNI, {"history": [1e300] * 8}, 422,
     "model 'uni' cannot forecast from this history: the context of window 0 overflows when "
     "scaled"),
    ("extra-field", UNI, {"history": EIGHT, "horizn": 2}, 422,
     "horizn: Extra inputs are not permitted"),
    ("missing-history", UNI, {"horizon": 2}, 422, "history: Field required"),
    ("body-list", UNI, [EIGHT], 422, "body: Input should be a valid dictionary"),
    ("timestamps-count", UNI, {"history": EIGHT, "timestamps": [1, 2, 3]}, 422,
     "timestamps has 3 entries but history has 8 steps"),
    ("timestamps-mixed", UNI, {"history": EIGHT, "timestamps": [*range(7), "x"]}, 422,
     "timestamp 7 is 'x', not a number"),
    ("timestamps-order", UNI, {"history": EIGHT, "timestamps": [1, 2, 3, 4, 5, 6, 8, 7]}, 422,
     "timestamp 7 is not after timestamp 6"),
    ("timestamps-date", MULTI, {"history": multi_history(8), "timestamps": [*DAYS[:7], "soon"]},
     422, "timestamps must be ISO 8601 dates"),
    ("timestamps-numbers-for-dates", MULTI,
     {"history": multi_history(8), "timestamps": list(range(8))}, 422,
     "trained on dated rows \\(frequency 'D'\\); send timestamps as ISO 8601 dates"),
    ("timestamps-frequency", MULTI,
     {"history": multi_history(8), "timestamps": [f"2024-01-{d:02d}" for d in range(1, 17, 2)]},
     422, "timestamp 1 is 2024-01-03T00:00:00, expected 2024-01-02T00:00:00"),
    ("unknown-model", "/models/nope/forecast", {"history": EIGHT}, 404,
     "unknown model 'nope'; this server serves: uni, seasonal, multi"),
    ("traversal", "/models/..%2F..%2Fetc%2Fpasswd/forecast", {"history": EIGHT}, 404, ""),
    ("dotdot", "/models/%2E%2E/forecast", {"history": EIGHT}, 404, ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_bad_requests_are_refused_with_a_json_reason(
    client: httpx.Client, path: str, body: Any, status: int, message: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    if message:
        assert re.search(message, detail), detail


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinite_values_are_refused(client: httpx.Client, value: str) -> None:
    # Python's JSON parser reads these non-standard tokens: they must not reach the model.
    raw = '{"history": [1, 2, 3, 4, ' + value + ", 6, 7, 8]}"
    response = client.post(UNI, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "step 4 is" in response.json()["detail"]
    assert "send finite numbers" in response.json()["detail"]


def test_malformed_json_is_refused(client: httpx.Client) -> None:
    response = client.post(
        UNI, content=b'{"history": [1, 2', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("the body is not valid JSON")


def test_a_body_above_the_limit_is_refused(client: httpx.Client) -> None:
    history = [1.0] * (MAX_BODY_BYTES // 4)
    response = client.post(UNI, json={"history": history})
    assert response.status_code == 413
    assert f"limit of {MAX_BODY_BYTES} bytes" in response.json()["detail"]


def test_a_chunked_body_above_the_limit_is_refused(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"history": ['
        for _ in range(MAX_BODY_BYTES // 1000 + 2):
            yield b"1.0, " * 200
        yield b"1.0]}"

    response = client.post(UNI, content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


def test_the_server_still_answers_after_refusals(client: httpx.Client) -> None:
    assert client.get("/health").status_code == 200


# ---------------------------------------------------------------------- start and stop
def test_sigterm_stops_the_server_cleanly(model_dirs: dict[str, Path]) -> None:
    server = start_server([model_dirs["uni"]])
    signalled = threading.Event()

    def slow_body() -> Iterator[bytes]:
        # Half the body before SIGTERM, the rest after: the request is surely in flight.
        yield b'{"history": [1, 2, 3, 4, '
        signalled.wait(timeout=30)
        time.sleep(0.5)
        yield b'5, 6, 7, 8], "horizon": 3}'

    answers: list[httpx.Response] = []

    def send() -> None:
        headers = {"content-type": "application/json"}
        answers.append(httpx.post(f"{server.url}{UNI}", content=slow_body(), headers=headers))

    request = threading.Thread(target=send)
    try:
        request.start()
        time.sleep(0.5)
        server.process.send_signal(SIGTERM)
        signalled.set()
        request.join(timeout=60)
        code, log = server.stop(signal=False)
    finally:
        if server.process.poll() is None:
            server.process.kill()
    assert code == 0, log
    assert "seqcast serve: models uni on http://127.0.0.1:" in log
    assert "Shutting down" in log and "Finished server process" in log
    assert len(answers) == 1 and answers[0].status_code == 200, log
    assert len(answers[0].json()["forecast"]) == 3


def test_startup_refuses_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="does not exist"):
        create_app([tmp_path / "missing"])
    done = subprocess.run(
        [sys.executable, "-m", "seqcast", "serve", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("seqcast: error: model folder")


def test_startup_refuses_two_folders_with_one_name(
    tmp_path: Path, model_dirs: dict[str, Path]
) -> None:
    copy = tmp_path / "uni"
    copy.mkdir()
    for file in model_dirs["uni"].iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    with pytest.raises(SeqcastError, match="are both named 'uni'"):
        create_app([model_dirs["uni"], copy])


@pytest.mark.parametrize(
    ("options", "message"),
    [({"max_horizon": 0}, "max_horizon must be at least 1"),
     ({"max_body_bytes": 0}, "max_body_bytes must be at least 1")],
)  # fmt: skip
def test_startup_refuses_bad_limits(
    model_dirs: dict[str, Path], options: dict[str, int], message: str
) -> None:
    with pytest.raises(SeqcastError, match=message):
        create_app([model_dirs["uni"]], **options)


def test_a_port_in_use_is_a_clear_error(model_dirs: dict[str, Path]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        threads = torch.get_num_threads()
        try:
            with pytest.raises(SeqcastError, match=f"could not serve on 127.0.0.1:{port}"):
                serve([model_dirs["uni"]], port=port, access_log=False)
        finally:
            torch.set_num_threads(threads)


def test_importing_the_package_does_not_import_the_web_stack() -> None:
    # The command line reads the defaults from seqcast.serving on every start.
    code = "import sys, seqcast.serving; print(sorted({'fastapi', 'uvicorn'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


def test_a_bug_answers_a_json_500(
    model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app([model_dirs["uni"]])

    def broken(context: np.ndarray, horizon: int | None = None, *rest: Any) -> np.ndarray:
        raise RuntimeError("a bug")

    monkeypatch.setattr(app.state.models["uni"].forecaster, "predict", broken)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(UNI, json={"history": EIGHT})

    response = asyncio.run(call())
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (RuntimeError); see the server log"}


def test_error_bodies_are_json_objects(client: httpx.Client) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert json.loads(response.text) == {"detail": "Not Found"}


# ------------------------------------------------- in process: a numeric and an undated model
@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    root = tmp_path_factory.mktemp("served")
    numeric = load_series(
        pd.DataFrame({"t": 0.5 * np.arange(30), "y": np.arange(30.0) % 5}), time_col="t"
    )
    rows = load_series(np.arange(30.0) % 5)
    for name, data in (("numeric", numeric), ("rows", rows)):
        model = create_for("naive", dict()).fit([data.series[0].values], 1)
        save_model(model, root / name, data)
    return TestClient(create_app([root / "numeric", root / "rows"]))


@pytest.mark.parametrize(
    ("model", "timestamps", "step"),
    [("numeric", [1.0, 2.0, 3.0, 4.0], 0.5), ("rows", [10.0, 20.0, 35.0, 45.0], 10.0)],
)
def test_numeric_timestamps_must_be_evenly_spaced(
    app_client: TestClient, model: str, timestamps: list[float], step: float
) -> None:
    # Oracle: the first timestamp off the step, for a model trained on a numeric time column
    # its step; else the step of the last two timestamps, as the answer continues them.
    step = step if model == "numeric" else timestamps[-1] - timestamps[-2]
    wrong = next(i for i in range(1, len(timestamps)) if timestamps[i] - timestamps[i - 1] != step)
    body = {"history": [1.0, 2.0, 3.0, 4.0], "timestamps": timestamps, "horizon": 2}
    # Before: 200, continuing [1, 2, 3, 4] at the model's 0.5 (4.5, 5.0) and [.., 35, 45] at 10.
    response = app_client.post(f"/models/{model}/forecast", json=body)
    assert response.status_code == 422, response.text
    expected = (
        f"timestamp {wrong} is {timestamps[wrong]:g}, expected {timestamps[wrong - 1] + step:g}"
    )
    assert expected in response.json()["detail"]


def test_evenly_spaced_numeric_timestamps_still_continue(app_client: TestClient) -> None:
    body = {"history": [1.0, 2.0, 3.0], "timestamps": [0.1, 0.2, 0.3], "horizon": 2}
    response = app_client.post("/models/rows/forecast", json=body)
    assert response.status_code == 200, response.text
    step = 0.3 - 0.2
    assert response.json()["timestamps"] == pytest.approx([0.3 + step, 0.3 + 2 * step])


@pytest.mark.parametrize(
    "timestamps",
    [
        ["01/02/2020", "01/03/2020", "01/04/2020"],
        ["2020-01-01T00:00+01:00", "2020-01-02T00:00+02:00", "2020-01-03T00:00+01:00"],
    ],
)
def test_bad_dates_get_one_sentence_without_pandas_advice(
    app_client: TestClient, timestamps: list[str]
) -> None:
    body = {"history": [1.0, 2.0, 3.0], "timestamps": timestamps}
    response = app_client.post("/models/rows/forecast", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("timestamps must be ISO 8601 dates")
    # Before: pandas' advice to its own callers ("passing `format='mixed'`", "Pass utc=True").
    assert "\n" not in detail and "utc=True" not in detail and "format=" not in detail


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"history": [1, ' + b"9" * 5000 + b"]}", "Exceeds the limit (4300 digits)"),
        (b'{"history": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested too deeply"),
        (b'{"history": [1], "caf\xe9": 1}', "send JSON encoded as UTF-8"),
    ],
    ids=["long-integer", "deep-nesting", "latin-1"],
)
def test_an_undecodable_body_is_told_why(app_client: TestClient, body: bytes, reason: str) -> None:
    # Oracle: only the Latin-1 body fails to decode as UTF-8.
    try:
        body.decode("utf-8")
        is_utf8 = True
    except UnicodeDecodeError:
        is_utf8 = False
    headers = {"content-type": "application/json"}
    response = app_client.post("/models/rows/forecast", content=body, headers=headers)
    assert response.status_code == 400
    detail = response.json()["detail"]
    # Before: "send JSON encoded as UTF-8" for all three, though two of them are UTF-8.
    assert reason in detail
    assert ("UTF-8" in detail) is not is_utf8
    assert "sys.set_int_max_str_digits" not in detail


def test_a_model_trained_with_padding_serves_a_history_shorter_than_its_context(
    tmp_path: Path,
) -> None:
    """The service pads a short history as `predict` does, for a model that trained on padded
    series; a model that did not still names the steps it needs."""
    from seqcast.data import load_series
    from seqcast.forecasters import RNNForecaster
    from seqcast.persistence import load_model, save_model
    from seqcast.serving.models import ServedModel

    rng = np.random.default_rng(0)
    long, short = rng.normal(size=(80, 1)).cumsum(axis=0), rng.normal(size=(5, 1))
    model = RNNForecaster(window=8, horizon=2, epochs=1, hidden_size=3)
    with pytest.warns(Warning, match="shorter than its context"):
        model.fit([long, short], 1)
    save_model(model, tmp_path / "padded", load_series(long[:, 0]))
    served = ServedModel("padded", tmp_path / "padded", load_model(tmp_path / "padded"), 2)
    assert served.info().padded and served.info().context_length == model.context_length
    context = served.context(short[:, 0])
    assert context.shape == (model.context_length, 1) and np.isnan(context[:3]).all()
    with pytest.warns(Warning, match="shorter than its context"):
        want = model.predict(model.last_contexts([short], ["s"]))
    np.testing.assert_array_equal(served.forecaster.predict(context[None]), want)
    plain = RNNForecaster(window=8, horizon=2, epochs=1, hidden_size=3).fit([long], 1)
    save_model(plain, tmp_path / "plain", load_series(long[:, 0]))
    refusing = ServedModel("plain", tmp_path / "plain", load_model(tmp_path / "plain"), 2)
    assert not refusing.info().padded
    with pytest.raises(DataError, match="history has 5 steps; model 'plain' needs at least 8"):
        refusing.context(short[:, 0])
