"""Limits enforced before anything parses a request: the body's size, the time it takes to
arrive, and the forecasts in flight.

:class:`BodySizeLimit` reads the body itself, counting bytes as they arrive, so a chunked body
(no ``Content-Length``) is cut off as soon as it passes the limit; a declared length above the
limit is refused without reading at all. Bodies within the limit are replayed to the app.
Memory held per request is therefore bounded by the limit, and its time by ``read_timeout``:
a body still incomplete then (a client trickling it, or stalled) gets 408.

:class:`ConcurrencyLimit` answers 503 with ``Retry-After`` at once to a forecast beyond the
number allowed in flight, instead of queueing it behind the others (where every client would
wait longer and longer); everything else, ``/health`` first, passes untouched.

:class:`RolloutLimit` is the per-request work budget: a forecast's work is counted before it
starts (:meth:`~seqcast.serving.models.ServedModel.passes`), and those of more than one pass
(rolled out past the trained horizon, or sampled) share a few slots of their own; one more is
answered 503 at once. Expensive requests thus never hold every slot, and one-pass forecasts,
which take no lock, never wait behind them.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodySizeLimit", "ConcurrencyLimit", "RolloutLimit"]


class BodySizeLimit:
    """ASGI middleware answering 413 to a request whose body exceeds ``max_bytes``, and 408
    to one whose body is not all there ``read_timeout`` seconds after its headers.

    Args:
        app: the application to protect.
        max_bytes: the largest body accepted, in bytes.
        read_timeout: seconds the whole body gets to arrive.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout: float = 10.0) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        if not read_timeout > 0:
            raise ValueError(f"read_timeout must be positive, got {read_timeout}")
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, f"request body of {declared} bytes")
            return
        try:
            async with asyncio.timeout(self.read_timeout):
                body = await self._read(receive)
        except TimeoutError:
            detail = f"the request body did not arrive within {self.read_timeout:g} s"
            await _answer(send, 408, detail, [(b"connection", b"close")])
            return
        except _TooLarge:
            await self._refuse(send, "request body")
            return
        if body is not None:
            await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None when the client went away before sending it all.

        Raises:
            _TooLarge: the body passed ``max_bytes``.
        """
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None  # the client went away: nothing to answer
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _refuse(self, send: Send, what: str) -> None:
        detail = f"{what} is larger than the limit of {self.max_bytes} bytes"
        # The rest of the body is never read, so the connection cannot be reused.
        await _answer(send, 413, detail, [(b"connection", b"close")])


class _TooLarge(Exception):
    """A body passed the size limit while being read."""


class ConcurrencyLimit:
    """ASGI middleware answering 503 (``Retry-After: 1``) to a forecast request beyond
    ``max_in_flight`` forecasts being computed.

    Args:
        app: the application to protect.
        max_in_flight: forecasts computed at once, at least 1.
    """

    def __init__(self, app: ASGIApp, max_in_flight: int) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limited = scope["type"] == "http" and scope.get("method") == "POST"
        if not limited:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:  # one event loop: no lock needed
            detail = f"the server is computing {self.in_flight} forecasts, its limit; retry soon"
            await _answer(send, 503, detail, [(b"retry-after", b"1")])
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class RolloutLimit:
    """Slots for forecasts of more than one pass; the caller answers 503 when none is free.

    Used from the event loop only, so a plain counter is enough.

    Args:
        max_rollouts: such forecasts computed at once, at least 1.
    """

    def __init__(self, max_rollouts: int) -> None:
        if max_rollouts < 1:
            raise ValueError(f"max_rollouts must be at least 1, got {max_rollouts}")
        self.max_rollouts = max_rollouts
        self.in_flight = 0

    def enter(self) -> bool:
        """Takes a slot; False when all are taken (nothing taken then)."""
        if self.in_flight >= self.max_rollouts:
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        """Gives a slot taken by :meth:`enter` back."""
        self.in_flight -= 1


async def _answer(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    """Sends a JSON error ``{"detail": ...}`` with ``status`` and extra ``headers``."""
    body = json.dumps({"detail": detail}).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": start + headers})
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that returns the buffered body once, then defers to the server's (which
    reports the client's disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
