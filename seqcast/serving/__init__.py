"""The forecasting HTTP service: saved model folders behind a FastAPI app.

``seqcast serve MODEL_DIR ...`` (or :func:`serve`) loads each folder once and answers
``POST /models/{name}/forecast``; :func:`create_app` builds the app alone, for tests or for
another ASGI server. Both need the ``serve`` extra (FastAPI, uvicorn); the defaults below do
not, so that the command line can show them without importing the web stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_KEEP_ALIVE",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_HORIZON",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_ROLLOUTS",
    "DEFAULT_PORT",
    "DEFAULT_READ_TIMEOUT",
    "create_app",
    "serve",
]

#: Loopback only unless asked: a model endpoint is not meant to face a network by accident.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: Largest horizon T a request may ask for; past the trained horizon forecasts roll out step
#: by step, so this bounds the work one request can cause.
DEFAULT_MAX_HORIZON = 1000
#: Largest request body, 1 MiB: about 50,000 history values.
DEFAULT_MAX_BODY_BYTES = 1 << 20
#: Forecasts computed at once; more are answered 503 with Retry-After at once.
DEFAULT_MAX_IN_FLIGHT = 8
#: Forecasts of more than one pass (rolled out past the trained horizon, or sampled paths)
#: computed at once: a share of the slots, so that one-pass forecasts always find one.
DEFAULT_MAX_ROLLOUTS = 2
#: Seconds an idle connection is kept open, from its start or after a response.
DEFAULT_KEEP_ALIVE = 5
#: Seconds a request's headers get from its first byte, and its body after them; then 408.
DEFAULT_READ_TIMEOUT = 10

if TYPE_CHECKING:
    from seqcast.serving.app import create_app
    from seqcast.serving.server import serve


def __getattr__(name: str) -> Any:
    # FastAPI and uvicorn are imported only when the service itself is used.
    if name == "create_app":
        from seqcast.serving.app import create_app

        return create_app
    if name == "serve":
        from seqcast.serving.server import serve

        return serve
    raise AttributeError(f"module 'seqcast.serving' has no attribute '{name}'")
