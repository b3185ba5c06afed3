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
would wait on that process's GIL, busy with every service. SIGTERM sends what waits, then ends it.

    python -m demo_apps.cloud.lambdas.telemetry_relay PORT TRACES_URL
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Final

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from demo_apps.cloud.lambdas.log_lines import LogShipper, logs_url
from demo_apps.local_collector import free_port

_logger = logging.getLogger(__name__)
MAX_BODY_BYTES: Final = 4 * 1024 * 1024
TRIES: Final = 5
PASSED_HEADERS: Final = ("content-type", "content-encoding")


@dataclass(frozen=True)
class _Body:
    signal: str  # "traces" or "logs"
    content: bytes
    headers: dict[str, str]


class TelemetryRelay:
    """A loopback OTLP/HTTP endpoint that answers at once and forwards to `traces_url`'s collector."""

    def __init__(self, traces_url: str, max_pending: int = 2000) -> None:
        self._targets = {"traces": traces_url, "logs": traces_url.rsplit("/v1/traces", 1)[0] + "/v1/logs"}
        self._pending: queue.Queue[_Body | None] = queue.Queue(max_pending)
        self.forwarded = self.dropped = 0
        routes = [Route(f"/v1/{signal}", self._receive, methods=["POST"]) for signal in self._targets]
        self.app = Starlette(routes=routes)
        self._sender = threading.Thread(target=self._send_forever, name="lambda-telemetry-sender", daemon=True)
        self._sender.start()

    async def _receive(self, request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return Response(status_code=413)
        content = await request.body()
        if len(content) > MAX_BODY_BYTES:
            return Response(status_code=413)
        headers = {name: request.headers[name] for name in PASSED_HEADERS if name in request.headers}
        try:
            self._pending.put_nowait(_Body(request.url.path.rsplit("/", 1)[-1], content, headers))
        except queue.Full:
            return Response(status_code=503, headers={"Retry-After": "1"})
        json_body = headers.get("content-type", "").startswith("application/json")
        return Response(b"{}" if json_body else b"", 200, media_type=headers.get("content-type"))

    def _send_forever(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while (body := self._pending.get()) is not None:
                self._forward(client, body)

    def _forward(self, client: httpx.Client, body: _Body) -> None:
        for attempt in range(TRIES):
            try:
                answer = client.post(self._targets[body.signal], content=body.content, headers=body.headers)
                if answer.status_code < 300 or answer.status_code in (400, 413):  # refused for good: not resent
                    self.forwarded += 1
                    return
            except httpx.HTTPError:
                pass
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


class RelayProcess:
    """The relay as a process of its own on a loopback port; `traces_url` is what functions use."""

    def __init__(self, target_traces_url: str, start_timeout_s: float = 20.0) -> None:
        port = free_port()
        command = [sys.executable, "-m", __name__, str(port), target_traces_url]
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        self.traces_url = f"http://127.0.0.1:{port}/v1/traces"
        deadline = time.monotonic() + start_timeout_s
        while not _listening(port):
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


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def main() -> None:
    port, target = int(sys.argv[1]), sys.argv[2]
    relay = TelemetryRelay(target)
    uvicorn.run(relay.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)  # until SIGTERM
    relay.drain()


class FunctionTelemetry:
    """Where the functions' telemetry goes: spans through the relay (or straight to the collector
    with `relay` off), log lines naming a trace through the log shipper (log_lines.py)."""

    def __init__(self, otlp_endpoint: str | None, relay: bool = True) -> None:
        self.logs = LogShipper(logs_url(otlp_endpoint)) if otlp_endpoint else None
        self.relay = RelayProcess(otlp_endpoint) if otlp_endpoint and relay else None
        self.traces_url = self.relay.traces_url if self.relay is not None else otlp_endpoint

    def close(self) -> None:
        if self.relay is not None:
            self.relay.close()
        if self.logs is not None:
            self.logs.close()


if __name__ == "__main__":
    main()
