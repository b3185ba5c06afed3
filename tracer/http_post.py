"""A keep-alive HTTP/1.1 POST over a socket: what the OTLP exporter needs, without ``http.client``.

Why by hand: ``http.client`` imports ``email`` (to parse headers) and ``ssl``, ~10 ms of every
cold start on this machine, a fifth of importing the OpenTelemetry SDK itself
(``bench/tracer_overhead.py`` prints ``import tracer`` + ``configure()`` against it). The
exporter needs little of it: send a POST, read the status and ``Retry-After``, and find where
the response's body ends (Content-Length, chunked, or the connection's close, RFC 9112 §6.3) so
the connection can carry the next request. ``ssl`` is imported only for an https endpoint.

A response that breaks the protocol raises :class:`ResponseError`, an ``OSError``: the exporter
treats it as a failed connection (drops it, retries within its deadline). Every read is bounded:
a status or header line at most 8 KiB, at most 100 header lines, at most 8 interim (1xx)
answers, a body read only to discard it and given up on past 1 MiB (the connection is then
closed, not reused), and the whole answer within the post's timeout (not each read alone).
"""

from __future__ import annotations

import socket
import time
from typing import NamedTuple

MAX_LINE_BYTES = 8192
MAX_HEADERS = 100
MAX_BODY_BYTES = 1 << 20
MAX_INTERIM_RESPONSES = 8
_READ_BYTES = 65536


class ResponseError(OSError):
    """The server's answer is not HTTP/1.x as RFC 9112 writes it (or is larger than allowed)."""


class Response(NamedTuple):
    status: int
    retry_after: str | None
    reusable: bool  # the connection may carry another request


def request_head(path: str, host: str, headers: dict[str, str], body_bytes: int) -> bytes:
    """A POST's request line and headers; ValueError for a header a request could be split by."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {body_bytes}"]
    for name, value in headers.items():
        if not name or any(c in name for c in ":\r\n ") or "\r" in value or "\n" in value:
            raise ValueError(f"invalid HTTP header {name!r}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class HttpConnection:
    """One keep-alive connection to `host`:`port` (TLS when `https`), opened on first use."""

    def __init__(self, host: str, port: int, *, https: bool) -> None:
        self.host, self.port, self.https = host, port, https
        self._sock: socket.socket | None = None
        self._reader: _LineReader | None = None

    def post(self, head: bytes, body: bytes, timeout_s: float) -> Response:
        """Send one request (`head` from request_head) and read its whole response."""
        sock, reader = self._connected(timeout_s)
        sock.settimeout(timeout_s)
        reader.deadline = time.monotonic() + timeout_s  # for the whole answer, not each read
        sock.sendall(head + body)
        status, headers = _read_head(reader)
        interim = 0
        while 100 <= status < 200:  # interim answers (100 Continue) precede the real one
            interim += 1
            if interim > MAX_INTERIM_RESPONSES:
                raise ResponseError("too many interim responses")
            status, headers = _read_head(reader)
        reusable = _skip_body(reader, status, headers) and "close" not in headers.get("connection", "").lower()
        return Response(status, headers.get("retry-after"), reusable)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = self._reader = None

    def _connected(self, timeout_s: float) -> tuple[socket.socket, _LineReader]:
        if self._sock is None or self._reader is None:
            sock = socket.create_connection((self.host, self.port), timeout=timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.https:
                import ssl  # only here: most endpoints are a local collector over plain HTTP

                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
            self._sock, self._reader = sock, _LineReader(sock)
        return self._sock, self._reader


class _LineReader:
    """Buffered reads from a socket: lines (bounded) and counted bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self.deadline = 0.0  # on the monotonic clock: a server trickling bytes cannot hold a post longer

    def _recv(self) -> bytes:
        remaining_s = self.deadline - time.monotonic()
        if remaining_s <= 0:
            raise ResponseError("no whole response within the timeout")
        self._sock.settimeout(remaining_s)
        try:
            return self._sock.recv(_READ_BYTES)
        except TimeoutError:
            raise ResponseError("no whole response within the timeout") from None

    def _fill(self) -> None:
        chunk = self._recv()
        if not chunk:
            raise ResponseError("connection closed mid-response")
        self._buffer += chunk

    def line(self) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > MAX_LINE_BYTES:
                raise ResponseError("response line too long")
            self._fill()
        if end > MAX_LINE_BYTES:
            raise ResponseError("response line too long")
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        return line.rstrip(b"\r\n")

    def skip(self, count: int) -> None:
        while len(self._buffer) < count:
            count -= len(self._buffer)
            self._buffer.clear()
            self._fill()
        del self._buffer[:count]

    def skip_to_close(self) -> None:
        skipped = 0
        while chunk := self._recv():
            skipped += len(chunk)
            if skipped > MAX_BODY_BYTES:
                raise ResponseError("response body too large")
        self._buffer.clear()


def _read_head(reader: _LineReader) -> tuple[int, dict[str, str]]:
    parts = reader.line().split(b" ", 2)
    version = parts[0]
    if len(parts) < 2 or version not in (b"HTTP/1.1", b"HTTP/1.0") or not (parts[1].isdigit() and len(parts[1]) == 3):
        raise ResponseError("not an HTTP/1.x status line")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = reader.line()
        if not line:
            if version == b"HTTP/1.0":
                headers["connection"] = "close"  # 1.0 keeps nothing alive unless asked; we never ask
            return int(parts[1]), headers
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise ResponseError("malformed response header")
        key = name.decode("latin-1").lower()
        text = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    raise ResponseError("too many response headers")


def _skip_body(reader: _LineReader, status: int, headers: dict[str, str]) -> bool:
    """Read past the body; False when its end is the connection's (so it cannot be reused)."""
    if status in (204, 304):
        return True
    if "chunked" in headers.get("transfer-encoding", "").lower():
        _skip_chunks(reader)
        return True
    length = headers.get("content-length")
    if length is None:
        reader.skip_to_close()
        return False
    if not (length.isascii() and length.isdigit()) or int(length) > MAX_BODY_BYTES:
        raise ResponseError(f"unusable Content-Length {length[:20]!r}")
    reader.skip(int(length))
    return True


def _skip_chunks(reader: _LineReader) -> None:
    total = 0
    while True:
        size_text = reader.line().split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ResponseError("malformed chunk size") from None
        if size < 0 or (total := total + size) > MAX_BODY_BYTES:
            raise ResponseError("response body too large")
        if size == 0:
            for _ in range(MAX_HEADERS + 1):  # trailer fields, up to the blank line
                if not reader.line():
                    return
            raise ResponseError("too many trailer fields")
        reader.skip(size + 2)  # the chunk and its CRLF
