"""The daemon's HTTP connections: deadlines for a request's head and its response's reading, a cap on their number.

uvicorn closes a kept-alive connection left idle between requests (after 5 s), but not one that
never sends a request, nor one that sends its head a byte at a time: both stayed open for as
long as the client kept them (seen here: 20 s and counting). collector/connection_limits.py
says why that matters and sets the bounds: each connection must complete a request's head
within ``HEAD_WAIT_S`` of opening (and each later request on it within as long of its first
byte), or it is answered 408 and closed; and past the cap on open connections a new one is
answered 503 with a Retry-After and closed before anything of it is read. A response the
client stops reading is let go after ``WRITE_WAIT_S`` (below). Bodies have their own deadline
(collector.capped_body.BODY_WAIT_S).

A subclass of uvicorn's httptools protocol (the one uvicorn picks where httptools is
installed, as the project's dependencies make it): uvicorn offers none of these bounds as a
setting (its ``limit_concurrency`` answers 503 only once a head is complete, so idle
connections still pile up). tests/integration/test_connection_guard.py holds them on a real
server.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from collector.connection_limits import HEAD_WAIT_S, MAX_CONNECTIONS, connection_cap

# How long a response waiting in the transport's buffer (past its high-water mark, 64 KiB)
# may go without the client reading any of it. A client that read nothing held its response
# in memory for as long as it kept the connection (100 such requests for the UI's 4.6 MB
# plotly.min.js: +100 MiB, still held 12 s later); now the connection is aborted and the
# response let go. A slow reader is not cut: each time it reads, it has as long again.
WRITE_WAIT_S = 30.0

_REFUSED_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: 25\r\n\r\ntoo many open connections"
)
_HEAD_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 35\r\n\r\nrequest head not received in time\r\n"
)


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the connection cap and the head and write deadlines."""

    max_connections: ClassVar[int] = MAX_CONNECTIONS
    head_wait_s: ClassVar[float] = HEAD_WAIT_S
    write_wait_s: ClassVar[float] = WRITE_WAIT_S
    _refused = False  # past the cap: answered 503 and closed, never handed to uvicorn
    _head_deadline: asyncio.TimerHandle | None = None
    _head_pending = False  # a request's first bytes came, its head is not complete
    _write_deadline: asyncio.TimerHandle | None = None
    _unwritten_bytes = 0  # in the transport's buffer when the write deadline was armed

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self._refused = True
            transport.write(_REFUSED_BUSY)
            transport.close()
            return
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        self._disarm_write_deadline()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_pending = True
        # A kept-alive connection's next request: from its first byte. Not while the previous
        # response is being made (a pipelined head): a 408 then would cut into that response.
        if self.cycle is None or self.cycle.response_complete:
            self._arm_head_deadline()

    def on_headers_complete(self) -> None:
        self._head_pending = False
        self._disarm_head_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._head_pending and not self.transport.is_closing():
            self._arm_head_deadline()  # the pipelined head that began while the response was made

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_deadline is None:
            self._arm_write_deadline()

    def resume_writing(self) -> None:
        self._disarm_write_deadline()
        super().resume_writing()

    def _disarm_write_deadline(self) -> None:
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def _arm_write_deadline(self) -> None:
        self._unwritten_bytes = self.transport.get_write_buffer_size()
        self._write_deadline = self.loop.call_later(self.write_wait_s, self._write_overdue)

    def _write_overdue(self) -> None:
        self._write_deadline = None
        if self.transport.get_write_buffer_size() < self._unwritten_bytes:
            self._arm_write_deadline()  # the client read some: slow, not stopped
        else:
            self.transport.abort()  # it read nothing: what waited to be written goes with it

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.head_wait_s, self._head_overdue)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_overdue(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.write(_HEAD_TIMEOUT)
            self.transport.close()


def guarded_protocol(
    head_wait_s: float = HEAD_WAIT_S, max_connections: int | None = None, write_wait_s: float = WRITE_WAIT_S
) -> type[GuardedHttpProtocol]:
    """The protocol class for uvicorn.Config(http=...), with these bounds."""
    bounds = {
        "head_wait_s": head_wait_s,
        "max_connections": connection_cap() if max_connections is None else max_connections,
        "write_wait_s": write_wait_s,
    }
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), bounds)
