"""Limits enforced before anything parses a request: the body's size and the forecasts in
flight.

:class:`BodySizeLimit` reads the body itself, counting bytes as they arrive, so a chunked body
(no ``Content-Length``) is cut off as soon as it passes the limit; a declared length above the
limit is refused without reading at all. Bodies within the limit are replayed to the app.
Memory held per request is therefore bounded by the limit.

:class:`ConcurrencyLimit` answers 503 with ``Retry-After`` at once to a forecast beyond the
number allowed in flight, instead of queueing it behind the others (where every client would
wait longer and longer); everything else, ``/health`` first, passes untouched.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodySizeLimit", "ConcurrencyLimit"]


class BodySizeLimit:
    """ASGI middleware answering 413 to a request whose body exceeds ``max_bytes``.

    Args:
        app: the application to protect.
        max_bytes: the largest body accepted, in bytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, f"request body of {declared} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away before sending the whole body: nothing to answer.
                return
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send, "request body")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, send: Send, what: str) -> None:
        detail = f"{what} is larger than the limit of {self.max_bytes} bytes"
        # The rest of the body is never read, so the connection cannot be reused.
        await _answer(send, 413, detail, [(b"connection", b"close")])


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
