"""Connections that cannot be held open for nothing: deadlines for idle and slow clients.

uvicorn closes a keep-alive connection that stays idle after a response, but it sets no timer
on a connection that has not sent a whole request yet: a client that connects and says
nothing, or sends half a header line and stalls (slowloris), holds its socket forever. The
protocol here, uvicorn's own h11 protocol with two timers added, closes

- a connection idle from the start, after ``keep_alive`` seconds (as after a response);
- a request whose headers have not all arrived ``read_timeout`` seconds after its first byte,
  with ``408 Request Timeout`` (trickling bytes does not extend the deadline).

The body's deadline is :class:`~seqcast.serving.limits.BodySizeLimit`'s, which reads it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["TimedH11Protocol", "timed_protocol"]

#: The answer to a request whose headers did not arrive in time; the connection is closed.
_TIMEOUT_BODY = json.dumps({"detail": "the request headers did not arrive in time"}).encode()
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + f"content-length: {len(_TIMEOUT_BODY)}\r\n\r\n".encode()
    + _TIMEOUT_BODY
)


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines on idle and half-sent requests.

    Attributes:
        read_timeout: seconds a request's headers get from its first byte.
    """

    read_timeout: ClassVar[float] = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading = False  # the deadline armed is the headers', not the idle one

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.timeout_keep_alive, reading=False)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            self._disarm()  # the headers are in (the body has its own deadline), or done
        elif data and not self._reading:
            self._arm(self.read_timeout, reading=True)  # part of a request: its clock starts

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float, *, reading: bool) -> None:
        self._disarm()
        self._reading = reading
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._reading = False

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self._reading:
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


def timed_protocol(read_timeout: float) -> type[TimedH11Protocol]:
    """The protocol class for uvicorn's ``http`` setting, with ``read_timeout`` seconds for a
    request's headers.

    Raises:
        ValueError: ``read_timeout`` is not positive.
    """
    if not read_timeout > 0:
        raise ValueError(f"read_timeout must be positive, got {read_timeout}")
    return type("TimedH11Protocol", (TimedH11Protocol,), {"read_timeout": float(read_timeout)})
