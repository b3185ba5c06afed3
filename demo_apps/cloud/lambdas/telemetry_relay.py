"""The functions' OTLP relay: what the ADOT Lambda layer's collector extension is on AWS.

A function's tracer flushes its spans before the handler returns (a frozen sandbox sends
nothing), and against the real collector that flush waits for the acknowledgement after fsync,
tens of milliseconds under load, added to every invocation. On AWS the extension in the sandbox
answers the function at once and exports after the response (ADOT's ``decouple`` processor);
here one relay per Lambda service does the same: it takes ``POST /v1/traces`` and
``/v1/logs`` bodies as they are (protobuf or JSON, gzip or not), answers 200 with an empty
export response, and a sender thread posts them on to the collector, retrying a refusal or a
lost connection with backoff (5 tries) before dropping the body with a warning.

Bounded: at most ``max_pending`` bodies wait (then 503 with Retry-After, so the SDK exporter
backs off and retries) and a body over 4 MiB is refused 413. It runs as a process of its own
(``RelayProcess``), as the extension runs beside the function: in the local cloud's process it
would wait on that process's GIL, busy with every service; on the standard library's HTTP server,
so that process stays small. SIGTERM sends what waits, then ends it.

    python -m demo_apps.cloud.lambdas.telemetry_relay PORT TRACES_URL
"""

from __future__ import annotations

import http.client
import logging
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from demo_apps.cloud.lambdas.log_lines import LogShipper

_logger = logging.getLogger(__name__)
MAX_BODY_BYTES: Final = 4 * 1024 * 1024
TRIES: Final = 5
PASSED_HEADERS: Final = ("content-type", "content-encoding")


@dataclass(frozen=True)
class _Body:
    signal: str  # "traces" or "logs"
    content: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


class TelemetryRelay:
    """Takes OTLP/HTTP bodies, answers at once, and forwards them to `traces_url`'s collector."""

    def __init__(self, traces_url: str, max_pending: int = 2000) -> None:
        self._targets = {"traces": traces_url, "logs": traces_url.rsplit("/v1/traces", 1)[0] + "/v1/logs"}
        self._pending: queue.Queue[_Body | None] = queue.Queue(max_pending)
        self.forwarded = self.dropped = 0
        self._sender = threading.Thread(target=self._send_forever, name="lambda-telemetry-sender", daemon=True)
        self._sender.start()

    def receive(self, path: str, headers: dict[str, str], content: bytes) -> Answer:
        """One POST: queued and answered 200 with an empty export response, or refused."""
        signal_name = path.rsplit("/", 1)[-1]
        if path not in ("/v1/traces", "/v1/logs"):
            return Answer(404)
        if len(content) > MAX_BODY_BYTES:
            return Answer(413)
        passed: dict[str, str] = {name: headers[name] for name in PASSED_HEADERS if name in headers}
        try:
            self._pending.put_nowait(_Body(signal_name, content, passed))
        except queue.Full:
            return Answer(503, headers=(("Retry-After", "1"),))
        content_type = passed.get("content-type", "application/x-protobuf")
        return Answer(
            200, b"{}" if content_type.startswith("application/json") else b"", (("Content-Type", content_type),)
        )

    def _send_forever(self) -> None:
        connections: dict[str, http.client.HTTPConnection] = {}
        while (body := self._pending.get()) is not None:
            self._forward(connections, body)

    def _forward(self, connections: dict[str, http.client.HTTPConnection], body: _Body) -> None:
        target = urllib.parse.urlsplit(self._targets[body.signal])
        for attempt in range(TRIES):
            connection = connections.get(target.netloc) or http.client.HTTPConnection(target.netloc, timeout=10)
            connections[target.netloc] = connection
            try:
                connection.request("POST", target.path, body=body.content, headers=body.headers)
                answer = connection.getresponse()
                answer.read()
                if answer.status < 300 or answer.status in (400, 413):  # refused for good: not resent
                    self.forwarded += 1
                    return
            except (OSError, http.client.HTTPException):
                connection.close()
                connections.pop(target.netloc, None)
            time.sleep(min(2.0, 0.1 * 2**attempt))
        self.dropped += 1
        _logger.warning("lambda telemetry relay: dropped a %s body after %d tries", body.signal, TRIES)

    def drain(self, timeout_s: float = 10.0) -> None:
        """Send what waits (up to `timeout_s`), then stop sending."""
        try:
            self._pending.put(None, timeout=timeout_s)
        except queue.Full:
            return  # the collector is not taking them: the daemon sender goes with the process
        self._sender.join(timeout_s)


def serve(relay: TelemetryRelay, port: int = 0, listening: socket.socket | None = None) -> ThreadingHTTPServer:
    """The relay on a loopback port (or on `listening`, a socket already bound and listening),
    its requests on threads (the standard library's server: the relay's process stays ~20 MB
    where an ASGI stack would cost ~45 MB in a tight demo budget)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a function's exporter reuses its connection

        def do_POST(self) -> None:
            declared = self.headers.get("content-length", "0")
            length = int(declared) if declared.isascii() and declared.isdigit() else -1
            if not 0 <= length <= MAX_BODY_BYTES:
                self._answer(Answer(413 if length > MAX_BODY_BYTES else 411))
                self.close_connection = True
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            self._answer(relay.receive(self.path, headers, self.rfile.read(length)))

        def _answer(self, answer: Answer) -> None:
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: a request a line would be the demo's noise."""

    if listening is None:
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    else:
        server = ThreadingHTTPServer(listening.getsockname(), Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = listening
    server.daemon_threads = True
    return server


class RelayProcess:
    """The relay as a process of its own on a loopback port; `traces_url` is what functions use."""

    def __init__(self, target_traces_url: str, start_timeout_s: float = 20.0) -> None:
        # The socket is bound here, to a port the kernel picks, and handed to the process: a
        # port picked free and bound later could be taken meanwhile (tests run side by side).
        listening = socket.create_server(("127.0.0.1", 0))
        port = listening.getsockname()[1]
        command = [sys.executable, "-m", __name__, str(listening.fileno()), target_traces_url]
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, pass_fds=(listening.fileno(),))
        finally:
            listening.close()
        self.traces_url = f"http://127.0.0.1:{port}/v1/traces"
        deadline = time.monotonic() + start_timeout_s
        while not _answering(port):
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.close()
                raise RuntimeError(f"the Lambda telemetry relay did not start on port {port}")
            time.sleep(0.02)

    def close(self, timeout_s: float = 15.0) -> None:
        """SIGTERM: it sends what waits, then ends."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)


def _answering(port: int) -> bool:
    """Whether the relay answers HTTP (any status: it serves POSTs only): the socket listens
    from the start, so a connection alone says nothing of the process behind it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=0.2)
    try:
        connection.request("GET", "/")
        connection.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def main() -> None:
    listening_fd, target = int(sys.argv[1]), sys.argv[2]
    relay = TelemetryRelay(target)
    server = serve(relay, listening=socket.socket(fileno=listening_fd))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    relay.drain()


class FunctionTelemetry:
    """Where the functions' telemetry goes: spans through the relay (or straight to the collector
    with `relay` off), log lines naming a trace through the log shipper (log_lines.py)."""

    def __init__(self, otlp_endpoint: str | None, relay: bool = True) -> None:
        # imported here, not at the top: the relay's own process runs this module and stays small
        from demo_apps.cloud.lambdas.log_lines import LogShipper, logs_url

        self.logs: LogShipper | None = LogShipper(logs_url(otlp_endpoint)) if otlp_endpoint else None
        self.relay = RelayProcess(otlp_endpoint) if otlp_endpoint and relay else None
        self.traces_url = self.relay.traces_url if self.relay is not None else otlp_endpoint

    def close(self) -> None:
        if self.relay is not None:
            self.relay.close()
        if self.logs is not None:
            self.logs.close()


if __name__ == "__main__":
    main()
