"""A real uvicorn server for ``app`` in a thread of the test process (so that a test can slow
its forecasts down), with the service's own settings."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from seqcast.serving.server import server_config


@contextmanager
def running(app: FastAPI, **settings: Any) -> Iterator[tuple[str, int]]:
    """Serves ``app`` on a free loopback port until the block ends: yields (base URL, port).
    ``settings`` go to :func:`~seqcast.serving.server.server_config`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = server_config(app, "127.0.0.1", port, access_log=False, log_level="error", **settings)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        server.should_exit = True
        thread.join(20)
