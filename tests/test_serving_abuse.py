"""The service under abuse, on loopback, bounded in time: idle sockets, headers and bodies
that trickle in or stall, expensive forecasts and oversized bodies. Each is answered 4xx or
503 (or closed) within its deadline, while ``/health`` and cheap forecasts stay fast."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from serving_thread import running

from seqcast.data import load_dataset
from seqcast.errors import SeqcastError
from seqcast.forecasters.linear import LinearRegression
from seqcast.forecasters.registry import create
from seqcast.persistence import save_model
from seqcast.serving import create_app
from seqcast.serving.server import server_config

#: Short deadlines keep the suite quick; the margins below allow a busy CI machine.
KEEP_ALIVE = 0.5
READ_TIMEOUT = 0.8
MARGIN = 3.0


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A linear model of horizon 1: a longer horizon is rolled out, one pass per step."""
    data = load_dataset("sunspots")
    model = create("linear", window=4, horizon=1).fit([data.series[0].values], 1)
    return save_model(model, tmp_path_factory.mktemp("abuse") / "linear", data)


@pytest.fixture(scope="module")
def served(folder: Path) -> Iterator[tuple[str, int]]:
    app = create_app([folder], max_in_flight=4, max_rollouts=1, read_timeout=READ_TIMEOUT)
    with running(app, keep_alive=KEEP_ALIVE, read_timeout=READ_TIMEOUT) as where:
        yield where


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed
    (seconds from now); fails the test if it is still open after ``limit`` seconds."""
    started = time.monotonic()
    sock.settimeout(0.1)
    received = b""
    while time.monotonic() - started < limit:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    else:
        pytest.fail(f"the server kept the connection open for {limit} s")
    return received, time.monotonic() - started


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_an_idle_connection_is_closed_after_keep_alive(served: tuple[str, int]) -> None:
    with connect(served[1]) as sock:
        received, after = read_until_closed(sock, KEEP_ALIVE + MARGIN)
    assert received == b""  # closed without a word: nothing was asked
    assert after >= KEEP_ALIVE * 0.8


def test_half_sent_headers_get_408_then_close(served: tuple[str, int]) -> None:
    with connect(served[1]) as sock:
        sock.sendall(b"POST /models/linear/forecast HTTP/1.1\r\nHost: a\r\n")
        received, after = read_until_closed(sock, READ_TIMEOUT + MARGIN)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b"headers did not arrive in time" in received
    assert after >= READ_TIMEOUT * 0.8


def test_trickled_headers_do_not_extend_the_deadline(served: tuple[str, int]) -> None:
    line = b"GET /health HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"a" * 200
    started = time.monotonic()
    with connect(served[1]) as sock:
        try:
            for byte in line:  # one byte every 50 ms: 10 s for the whole line
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed under the client's feet, as it should be
        received, _ = read_until_closed(sock, MARGIN)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < READ_TIMEOUT + MARGIN


def test_a_stalled_body_gets_408(served: tuple[str, int]) -> None:
    head = (
        b"POST /models/linear/forecast HTTP/1.1\r\nHost: a\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    with connect(served[1]) as sock:
        sock.sendall(head + b'{"history": [1')
        received, after = read_until_closed(sock, READ_TIMEOUT + MARGIN)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b"body did not arrive within" in received
    assert after >= READ_TIMEOUT * 0.8


def test_a_connection_still_serves_several_requests(served: tuple[str, int]) -> None:
    url = served[0]
    with httpx.Client(timeout=10) as client:
        first = client.post(f"{url}/models/linear/forecast", json={"history": [1, 2, 3, 4, 5]})
        time.sleep(KEEP_ALIVE / 3)  # within the keep-alive: the same connection is reused
        second = client.get(f"{url}/health")
    assert first.status_code == 200 and second.status_code == 200


def test_many_idle_and_half_sent_sockets_are_all_closed_and_health_stays_fast(
    served: tuple[str, int],
) -> None:
    url, port = served
    idle = [connect(port) for _ in range(60)]
    half = [connect(port) for _ in range(40)]
    for sock in half:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
    try:
        started = time.perf_counter()
        health = httpx.get(f"{url}/health", timeout=10)
        assert health.status_code == 200
        assert time.perf_counter() - started < 1.0
        for sock in idle + half:
            read_until_closed(sock, max(KEEP_ALIVE, READ_TIMEOUT) + MARGIN)
    finally:
        for sock in idle + half:
            sock.close()


def test_oversized_bodies_get_413_without_being_read(served: tuple[str, int]) -> None:
    url = served[0]
    body = {"history": list(np.arange(300_000, dtype=float))}  # ~ 3 MB of JSON, limit 1 MiB
    answer = httpx.post(f"{url}/models/linear/forecast", json=body, timeout=10)
    assert answer.status_code == 413
    assert "larger than the limit" in answer.json()["detail"]


def test_expensive_forecasts_beyond_their_share_get_503_while_cheap_ones_answer(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One slot for rolled-out forecasts: a second one is refused at once, while forecasts of
    the trained horizon from the same model answer, never waiting behind the expensive one
    (a lock per model made them wait)."""
    release, entered = threading.Event(), []
    original = LinearRegression._rollout

    def slow(self: LinearRegression, context: np.ndarray, horizon: int, *rest: Any) -> np.ndarray:
        entered.append(1)  # only a horizon past the trained one is rolled out
        release.wait(10)
        return original(self, context, horizon, *rest)

    app = create_app([folder], max_in_flight=8, max_rollouts=1)
    monkeypatch.setattr(LinearRegression, "_rollout", slow)
    answers: list[Any] = []
    history = {"history": [1.0, 2.0, 3.0, 4.0, 5.0]}
    expensive = {**history, "horizon": 50}
    with running(app) as (url, _):

        def post() -> None:
            answers.append(httpx.post(f"{url}/models/linear/forecast", json=expensive, timeout=30))

        worker = threading.Thread(target=post)
        worker.start()
        deadline = time.monotonic() + 10
        while not entered and time.monotonic() < deadline:
            time.sleep(0.01)
        assert entered, "the expensive forecast should be in flight"
        started = time.perf_counter()
        refused = httpx.post(f"{url}/models/linear/forecast", json=expensive, timeout=30)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "needs 50 passes" in refused.json()["detail"]
        cheap = [
            httpx.post(f"{url}/models/linear/forecast", json=history, timeout=30) for _ in range(5)
        ]
        assert [c.status_code for c in cheap] == [200] * 5
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200
        assert time.perf_counter() - started < 2.0  # none waited for the expensive forecast
        release.set()
        worker.join(10)
        assert [a.status_code for a in answers] == [200]
        assert len(answers[0].json()["forecast"]) == 50
        # Its slot is free again.
        assert httpx.post(f"{url}/models/linear/forecast", json=expensive).status_code == 200


def test_the_share_for_expensive_forecasts_must_be_positive(folder: Path) -> None:
    with pytest.raises(SeqcastError, match="max_rollouts must be at least 1"):
        create_app([folder], max_rollouts=0)


@pytest.mark.parametrize("name", ["keep_alive", "read_timeout"])
def test_timeouts_must_be_positive(name: str) -> None:
    app = FastAPI()
    with pytest.raises(SeqcastError, match=f"{name} must be positive"):
        server_config(app, **{name: 0})
