"""Running the service with uvicorn, and stopping it cleanly.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections, lets requests in flight finish
(for at most ``graceful_timeout`` seconds), and returns; :func:`serve` then returns normally,
so the process exits 0 after SIGTERM. Ctrl-C still ends in ``KeyboardInterrupt``.

Its one command line is ``seqcast serve`` (``python -m seqcast serve`` from any environment).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any

try:
    import uvicorn
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ModuleNotFoundError(
        "the forecasting service needs the 'serve' extra: pip install 'seqcast[serve]'"
    ) from exc

from seqcast.errors import SeqcastError
from seqcast.serving import (
    DEFAULT_HOST,
    DEFAULT_KEEP_ALIVE,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HORIZON,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_ROLLOUTS,
    DEFAULT_PORT,
    DEFAULT_READ_TIMEOUT,
)
from seqcast.serving.app import create_app
from seqcast.serving.connections import timed_protocol

__all__ = ["serve", "server_config"]


def serve(
    model_dirs: Sequence[str | os.PathLike[str]],
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    max_horizon: int = DEFAULT_MAX_HORIZON,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    max_rollouts: int = DEFAULT_MAX_ROLLOUTS,
    keep_alive: float = DEFAULT_KEEP_ALIVE,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    access_log: bool = True,
    torch_threads: int = 1,
    graceful_timeout: int = 10,
) -> None:
    """Loads the model folders and serves them until SIGTERM or Ctrl-C.

    Args:
        model_dirs: folders written by ``seqcast fit``; each is served under its folder's name.
        host: address to listen on; the loopback by default.
        port: port to listen on.
        max_horizon: the largest horizon a request may ask for.
        max_body_bytes: the largest request body; larger ones get 413.
        max_in_flight: forecasts computed at once; more get 503 with ``Retry-After``.
        max_rollouts: of those, forecasts of more than one pass (past the trained horizon);
            more get 503 with ``Retry-After``.
        keep_alive: seconds an idle connection is kept open, from its start or after a
            response.
        read_timeout: seconds a request's headers get from its first byte, and its body
            after them; then 408 and the connection is closed.
        access_log: log one line per request.
        torch_threads: PyTorch's intra-op threads. One suits serving: each forecast is
            small, and concurrent requests bring their own threads.
        graceful_timeout: seconds requests in flight get to finish at shutdown.

    Raises:
        SeqcastError: a folder cannot be served, or the address cannot be listened on.

    Example:
        >>> serve(["models/rnn"], port=8000)  # doctest: +SKIP
    """
    if not 0 <= port <= 65535:  # uvicorn would fail with a traceback, after loading the models
        raise SeqcastError(f"port must lie between 0 and 65535, got {port}", arguments=("port",))
    app = create_app(
        model_dirs,
        max_horizon=max_horizon,
        max_body_bytes=max_body_bytes,
        max_in_flight=max_in_flight,
        max_rollouts=max_rollouts,
        read_timeout=read_timeout,
    )
    if "torch" in sys.modules:  # imported by the neural forecasters, only when loaded
        import torch

        torch.set_num_threads(torch_threads)
    config = server_config(
        app,
        host,
        port,
        keep_alive=keep_alive,
        read_timeout=read_timeout,
        access_log=access_log,
        graceful_timeout=graceful_timeout,
    )
    server = uvicorn.Server(config)
    names = ", ".join(app.state.models)
    print(f"seqcast serve: models {names} on http://{host}:{port}/models", file=sys.stderr)
    with _sigterm_returns():
        try:
            server.run()
        except SystemExit:
            # uvicorn exits the process when it cannot bind; it has logged why.
            if server.started:
                raise
            raise SeqcastError(f"could not serve on {host}:{port} (see the log above)") from None


def server_config(
    app: Any,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    keep_alive: float = DEFAULT_KEEP_ALIVE,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    access_log: bool = True,
    graceful_timeout: int = 10,
    log_level: str = "info",
) -> uvicorn.Config:
    """uvicorn's settings for ``app``: its h11 protocol with deadlines on idle connections
    (``keep_alive`` seconds) and on requests whose headers trickle in (``read_timeout``).

    Raises:
        SeqcastError: a timeout is not positive.
    """
    for name, value in (("keep_alive", keep_alive), ("read_timeout", read_timeout)):
        if not value > 0:
            raise SeqcastError(f"{name} must be positive, got {value}", arguments=(name,))
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=timed_protocol(read_timeout),
        access_log=access_log,
        timeout_graceful_shutdown=graceful_timeout,
        timeout_keep_alive=keep_alive,  # type: ignore[arg-type]  # uvicorn takes a float too
        log_level=log_level,
    )


@contextlib.contextmanager
def _sigterm_returns() -> Iterator[None]:
    """Makes SIGTERM's default action a no-op while uvicorn runs.

    uvicorn handles SIGTERM itself, shuts down gracefully, then re-raises the signal to the
    handler that was installed before it; with the default one the process would die of it
    (exit status -15) instead of returning.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        return None

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
