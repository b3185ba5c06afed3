"""The exporter's HTTP/1.1 connection against a raw socket server answering scripted bytes."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tracer.http_post import MAX_BODY_BYTES, HttpConnection, ResponseError, request_head
from tracer.sdk_exporters import OtlpHttpExporter


@dataclass
class RawServer:
    """Accepts connections; answers each request with the next scripted bytes; closes after a
    reply that ends in a close (``None`` follows it in the script)."""

    replies: list[bytes | None] = field(default_factory=list)
    requests: list[tuple[int, bytes]] = field(default_factory=list)  # (connection number, request)
    listener: socket.socket = field(default_factory=socket.socket)

    def start(self) -> RawServer:
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _serve(self) -> None:
        number = 0
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            number += 1
            with conn:
                self._answer(conn, number)

    def _answer(self, conn: socket.socket, number: int) -> None:
        buffer = b""
        while self.replies:
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))[15:])
            while len(rest) < length:
                rest += conn.recv(65536)
            self.requests.append((number, head + b"\r\n\r\n" + rest[:length]))
            buffer = rest[length:]
            conn.sendall(self.replies.pop(0) or b"")
            if self.replies and self.replies[0] is None:
                self.replies.pop(0)
                return


@pytest.fixture
def server() -> Iterator[RawServer]:
    raw = RawServer().start()
    yield raw
    raw.listener.close()


def post(connection: HttpConnection, body: bytes = b"spans") -> tuple[int, str | None, bool]:
    head = request_head("/v1/traces", "127.0.0.1", {"Content-Type": "application/x-protobuf"}, len(body))
    return tuple(connection.post(head, body, timeout_s=5))  # type: ignore[return-value]


def test_a_connection_carries_requests_while_bodies_end_by_length_or_chunks(server: RawServer) -> None:
    server.replies = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n" * 8 + b"HTTP/1.1 503 Busy\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n",
    ]
    connection = HttpConnection("127.0.0.1", server.port, https=False)
    assert [post(connection) for _ in range(3)] == [(200, None, True), (200, None, True), (503, "2", True)]
    connection.close()
    assert [number for number, _ in server.requests] == [1, 1, 1]
    request = server.requests[0][1]
    assert request.startswith(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n")
    assert request.endswith(b"\r\n\r\nspans")


def test_a_body_ended_by_the_close_or_a_close_header_is_not_reused(server: RawServer) -> None:
    server.replies = [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        None,
        b"HTTP/1.0 200 OK\r\n\r\nbody until the end",
        None,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ]
    connection = HttpConnection("127.0.0.1", server.port, https=False)
    assert post(connection) == (200, None, False)
    connection.close()
    assert post(connection) == (200, None, False)
    connection.close()
    assert post(connection) == (200, None, True)
    connection.close()
    assert [number for number, _ in server.requests] == [1, 2, 3]


@pytest.mark.parametrize(
    "reply",
    [
        b"SPDY/3 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 \xb2\xb2\xb2 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n name: leading space\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: \xc2\xb2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (MAX_BODY_BYTES + 1),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"T: x\r\n" * 101 + b"\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200",
        b"HTTP/1.1 100 Continue\r\n\r\n" * 9 + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ],
)
def test_a_response_outside_the_protocol_is_a_connection_error(server: RawServer, reply: bytes) -> None:
    server.replies = [reply, None]
    connection = HttpConnection("127.0.0.1", server.port, https=False)
    with pytest.raises(ResponseError):
        post(connection)
    connection.close()


def test_a_header_that_would_split_the_request_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="invalid HTTP header"):
        OtlpHttpExporter("http://127.0.0.1:9/v1/traces", headers={"x-tenant": "a\r\nInjected: yes"})
    with pytest.raises(ValueError, match="invalid HTTP header"):
        OtlpHttpExporter("http://127.0.0.1:9/v1/traces", headers={"bad name": "v"})


def test_the_exporter_recovers_from_a_broken_answer_on_its_next_attempt(server: RawServer) -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\ncut"
    server.replies = [cut, None, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]
    exporter = OtlpHttpExporter(f"http://user:pw@127.0.0.1:{server.port}/v1/traces?x=1", timeout_s=5)
    assert exporter.send(b"payload")
    exporter.shutdown()
    assert [number for number, _ in server.requests] == [1, 2]
    assert server.requests[1][1].startswith(b"POST /v1/traces?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % server.port)


def test_a_server_trickling_its_answer_cannot_hold_a_post_past_its_timeout() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            while not stop.wait(0.05):  # a byte a read, each well inside the per-read timeout
                with contextlib.suppress(OSError):
                    conn.sendall(b"x")

    threading.Thread(target=trickle, daemon=True).start()
    connection = HttpConnection("127.0.0.1", int(listener.getsockname()[1]), https=False)
    started = time.monotonic()
    try:
        with pytest.raises(ResponseError, match="within the timeout"):
            post_with_timeout(connection, 0.5)
        elapsed_s = time.monotonic() - started
    finally:
        stop.set()
        connection.close()
        listener.close()
    assert 0.4 < elapsed_s < 2.0


def post_with_timeout(connection: HttpConnection, timeout_s: float) -> None:
    head = request_head("/v1/traces", "127.0.0.1", {}, 5)
    connection.post(head, b"spans", timeout_s=timeout_s)
