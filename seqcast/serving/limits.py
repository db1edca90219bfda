"""Limits on a request: its body's size and the time it takes to arrive (enforced before
anything parses it), and the forecasts computed at once.

:class:`BodySizeLimit` reads the body itself, counting bytes as they arrive, so a chunked body
(no ``Content-Length``) is cut off as soon as it passes the limit; a declared length above the
limit is refused without reading at all. Bodies within the limit are replayed to the app.
Memory held per request is therefore bounded by the limit, and its time by ``read_timeout``:
a body still incomplete then (a client trickling it, or stalled) gets 408.

:class:`ForecastSlots` is the per-request work budget: a forecast's work is counted before it
starts (:meth:`~seqcast.serving.models.ServedModel.passes`); every forecast takes one of
``max_in_flight`` slots, and those of more than one pass (rolled out past the trained horizon,
or sampled) only one of ``max_rollouts``. Expensive requests thus never hold every slot, and
one-pass forecasts, which take no lock, never wait behind them.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodySizeLimit", "ForecastSlots"]


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


class ForecastSlots:
    """Slots for forecasts being computed: ``max_in_flight`` in all, of which at most
    ``max_rollouts`` for forecasts of more than one pass. A request that finds none free is
    answered 503 at once by the caller, instead of queueing behind the others (where every
    client would wait longer and longer).

    A request takes its slot once it has been read and checked, so requests being refused
    (invalid, or expensive ones beyond their share) never hold one. Used from the event loop
    only: plain counters are enough.

    Args:
        max_in_flight: forecasts computed at once, at least 1.
        max_rollouts: of those, forecasts of more than one pass, at least 1.
    """

    def __init__(self, max_in_flight: int, max_rollouts: int) -> None:
        for name, value in (("max_in_flight", max_in_flight), ("max_rollouts", max_rollouts)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.max_in_flight = max_in_flight
        self.max_rollouts = max_rollouts
        self.in_flight = 0
        self.rollouts = 0

    def enter(self, passes: int) -> str | None:
        """Takes a slot for a forecast of ``passes`` passes; or, when none is free, takes
        nothing and returns why (the 503's detail)."""
        if self.in_flight >= self.max_in_flight:
            return f"the server is computing {self.in_flight} forecasts, its limit; retry soon"
        if passes > 1:
            if self.rollouts >= self.max_rollouts:
                return (
                    f"the server is computing {self.rollouts} forecasts past their trained "
                    f"horizon, its limit; this one needs {passes} passes; retry soon"
                )
            self.rollouts += 1
        self.in_flight += 1
        return None

    def leave(self, passes: int) -> None:
        """Gives back the slot :meth:`enter` took for the same ``passes``."""
        self.in_flight -= 1
        if passes > 1:
            self.rollouts -= 1


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
