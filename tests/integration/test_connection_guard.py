"""The daemon's HTTP connections are bounded (ui/connection_guard.py): a connection that sends no
request head, or sends it too slowly, is answered 408 and closed at the head deadline; past the
cap on open connections a new one is answered 503 with a Retry-After and closed, and the server
goes on serving. A real uvicorn server on loopback with the guard's bounds lowered to fit a
test, raw sockets for the misbehaving clients, and the real daemon for the wiring."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from collector.connection_limits import MAX_CONNECTIONS, MIN_CONNECTIONS, connection_cap
from tests.integration.daemon import Daemon
from tests.integration.in_thread import uvicorn_in_thread
from tests.waiting import wait_until
from ui.connection_guard import guarded_protocol

HEAD_WAIT_S = 0.5
WRITE_WAIT_S = 0.5
CAP = 4
BIG = b"x" * 16_000_000  # past what the kernel buffers for a reader with a small window (~4 MB)


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] == "/slow":  # longer than the head deadline
        await asyncio.sleep(HEAD_WAIT_S * 3)
    body = BIG if scope["path"] == "/big" else b"ok"
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]}
    )
    await send({"type": "http.response.body", "body": body})


def serving(
    head_wait_s: float = HEAD_WAIT_S, cap: int = CAP, write_wait_s: float = WRITE_WAIT_S
) -> contextlib.AbstractContextManager[tuple[int, uvicorn.Server]]:
    """A guarded server on a loopback port, in a thread of its own: its port, and the server."""
    protocol = guarded_protocol(head_wait_s, cap, write_wait_s)
    return uvicorn_in_thread(uvicorn.Config(ok_app, log_level="warning", lifespan="off", http=protocol))


def answer_of(sock: socket.socket, timeout_s: float = 5.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection (closed here too), and how
    long that took."""
    with sock:
        sock.settimeout(timeout_s)
        started = time.monotonic()
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
        return received, time.monotonic() - started


def connect(port: int, sent: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if sent:
        sock.sendall(sent)
    return sock


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"G"],
    ids=["nothing", "half a head", "one byte"],
)
def test_a_connection_without_a_whole_head_is_closed_at_the_deadline(sent: bytes) -> None:
    with serving() as (port, _):
        answer, waited_s = answer_of(connect(port, sent))
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"request head not received in time" in answer
        assert HEAD_WAIT_S * 0.8 <= waited_s < HEAD_WAIT_S + 3
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "ok"


def test_a_head_sent_in_pieces_within_the_deadline_is_served() -> None:
    with serving() as (port, _):
        sock = connect(port, b"GET / HTTP/1.1\r\n")
        time.sleep(HEAD_WAIT_S / 4)
        sock.sendall(b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer, _ = answer_of(sock)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"ok")


def test_a_kept_alive_connection_gets_the_deadline_for_its_next_head() -> None:
    with serving() as (port, _):
        sock = connect(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200 "), first
        time.sleep(HEAD_WAIT_S * 2)  # idle between requests is uvicorn's keep-alive (5 s), not the head's
        sock.sendall(b"GET / HTTP/1.1\r\n")  # and a next request that stops halfway
        answer, waited_s = answer_of(sock)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert waited_s < HEAD_WAIT_S + 3


def test_a_pipelined_head_does_not_cut_into_the_response_before_it() -> None:
    with serving() as (port, _):
        sock = connect(port, b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET / HTTP/1.1\r\n")
        with sock:
            sock.settimeout(HEAD_WAIT_S * 6)
            received = b""
            while not received.endswith(b"ok") and (chunk := sock.recv(4096)):
                received += chunk
            assert received.startswith(b"HTTP/1.1 200 ") and received.endswith(b"ok"), received
            # and the stalled head then has its deadline, however it trickles
            sock.settimeout(0.1)
            started, after, ended = time.monotonic(), b"", ""
            while time.monotonic() - started < HEAD_WAIT_S + 3:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X")
                try:
                    if not (chunk := sock.recv(4096)):
                        ended = "closed"
                        break
                    after += chunk
                except TimeoutError:
                    pass
                except ConnectionResetError:  # an X met the closed socket: its reset may drop the 408
                    ended = "reset"
                    break
            assert ended, "the trickled head was never cut off"
            assert after.startswith(b"HTTP/1.1 408 ") or (ended == "reset" and not after), (ended, after)


def test_a_response_the_client_stops_reading_is_let_go() -> None:
    """A client with a small receive window that reads nothing: the kernel's buffers take a few
    MB of the response, the rest waits in the server's transport until the write deadline
    drops the connection (without it, the connection and its 16 MB stay as long as the client)."""
    with serving() as (port, server), socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window stays small
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        connections = server.server_state.connections
        wait_until(lambda: any(c.transport.get_write_buffer_size() for c in connections), timeout_s=5, poll_s=0.01)
        wait_until(lambda: not connections, timeout_s=WRITE_WAIT_S + 5, poll_s=0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "ok"


def test_a_slow_reader_that_keeps_reading_gets_it_all() -> None:
    """The deadline is on a reader that stopped, not on the response: read a little every 20 ms,
    the response takes longer than the deadline and arrives whole."""
    with serving(write_wait_s=3.0) as (port, _):
        sock = connect(port, b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        received = bytearray()
        started = time.monotonic()
        with sock:
            sock.settimeout(5)
            while chunk := sock.recv(1 << 16):
                received += chunk
                time.sleep(0.02)
        assert time.monotonic() - started > 3.0
        assert received.endswith(BIG)


def test_past_the_cap_a_connection_is_refused_and_the_server_goes_on() -> None:
    with serving(head_wait_s=30) as (port, server):
        held = [connect(port) for _ in range(CAP)]
        wait_until(lambda: len(server.server_state.connections) == CAP, timeout_s=5, poll_s=0.01)
        answer, waited_s = answer_of(connect(port))
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"retry-after: 1" in answer and answer.endswith(b"too many open connections")
        assert waited_s < 2  # at once, not at any deadline
        for sock in held:
            sock.close()
        wait_until(lambda: not server.server_state.connections, timeout_s=5, poll_s=0.01)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "ok"


@pytest.mark.parametrize(
    ("limit", "cap"),
    [(1024, 256), (20_000, MAX_CONNECTIONS), (40, MIN_CONNECTIONS), (256, 64)],
)
def test_the_cap_is_a_quarter_of_the_descriptors_within_bounds(limit: int, cap: int) -> None:
    assert connection_cap(limit) == cap


def test_the_daemon_refuses_connections_past_a_quarter_of_its_descriptors(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "guard.duckdb", descriptor_limit=256).start()  # 64 connections a server
    held: list[socket.socket] = []
    try:
        held = [connect(daemon.otlp_port) for _ in range(64)]
        answer, _ = answer_of(connect(daemon.otlp_port))
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert httpx.get(f"{daemon.api_url}/healthz", timeout=5).status_code == 200  # the UI's server is apart
        for sock in held:
            sock.close()
        held = []

        def accepted() -> bool:
            response = httpx.post(daemon.traces_url, json={"resourceSpans": []}, timeout=5)
            return response.status_code == 200

        wait_until(accepted, timeout_s=10, poll_s=0.1)
    finally:
        for sock in held:
            sock.close()
        code, log = daemon.stop()
        assert code == 0, log
        assert "Traceback" not in log
