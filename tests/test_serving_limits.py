"""The service under load: forecasts beyond the limit in flight get 503 with Retry-After at
once, and /health answers while forecasts run."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI

from seqcast.data import load_dataset
from seqcast.errors import SeqcastError
from seqcast.forecasters.registry import create
from seqcast.persistence import save_model
from seqcast.serving import create_app
from seqcast.serving.models import ServedModel


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    data = load_dataset("sunspots")
    model = create("naive").fit([data.series[0].values], 1)
    return save_model(model, tmp_path / "naive", data)


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Serves ``app`` with uvicorn in a thread of this process (so that a test can slow its
    forecasts down) on a free loopback port: yields the base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


def test_forecasts_beyond_the_limit_get_503_and_health_stays_fast(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, entered = threading.Event(), []
    original = ServedModel.forecast

    def slow(self: ServedModel, context: np.ndarray, horizon: int) -> np.ndarray:
        entered.append(1)
        release.wait(10)
        return original(self, context, horizon)

    app = create_app([folder], max_in_flight=2)  # loading tries one forecast: not slowed
    monkeypatch.setattr(ServedModel, "forecast", slow)
    body = {"history": [1.0, 2.0, 3.0]}
    answers: list[Any] = []
    with running(app) as url:

        def post() -> None:
            answers.append(httpx.post(f"{url}/models/naive/forecast", json=body, timeout=30))

        workers = [threading.Thread(target=post) for _ in range(2)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 10
        while len(entered) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(entered) == 2, "two forecasts should be in flight"
        started = time.perf_counter()
        refused = httpx.post(f"{url}/models/naive/forecast", json=body, timeout=30)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "retry" in refused.json()["detail"]
        health = httpx.get(f"{url}/health", timeout=30)
        assert health.status_code == 200
        assert time.perf_counter() - started < 2.0  # neither waited for the forecasts in flight
        assert httpx.get(f"{url}/models", timeout=30).status_code == 200
        release.set()
        for worker in workers:
            worker.join(10)
        assert [a.status_code for a in answers] == [200, 200]
        # The slots are free again.
        again = httpx.post(f"{url}/models/naive/forecast", json=body, timeout=30)
        assert again.status_code == 200


def test_the_limit_must_be_positive(folder: Path) -> None:
    with pytest.raises(SeqcastError, match="max_in_flight must be at least 1"):
        create_app([folder], max_in_flight=0)
