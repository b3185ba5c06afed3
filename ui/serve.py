"""Running ``fluoro serve``: the collector's listeners and the query API in one process.

Sockets are bound here, before anything else starts, so a busy port is reported as one clear
line; the two HTTP apps then run on uvicorn servers in one event loop, the OTLP/gRPC server on
the same loop, and the X-Ray UDP socket is read by the collector's thread for it. SIGINT and
SIGTERM stop the servers, then the collector drains its queue, commits and closes the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from collector.engine import Collector
from ui.connection_guard import guarded_protocol

_logger = logging.getLogger("fluoro")


class PortBusy(RuntimeError):
    """A port the daemon needs is taken."""


@dataclass(frozen=True)
class Listeners:
    host: str
    otlp_port: int
    xray_port: int
    ui_port: int
    receivers: bool = True  # a read-only collector binds the UI's port only
    grpc_port: int = 0  # 0: no OTLP/gRPC


@dataclass
class BoundSockets:
    otlp: socket.socket | None
    xray: socket.socket | None
    ui: socket.socket
    # gRPC binds its own socket: this one, bound and never listening, only proves the port free
    # (a busy port is one clear line before anything starts); closed just before gRPC binds.
    grpc_probe: socket.socket | None = None

    def close(self) -> None:
        for sock in (self.otlp, self.xray, self.ui, self.grpc_probe):
            if sock is not None:
                sock.close()


def _bind(host: str, port: int, kind: socket.SocketKind, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    if kind == socket.SOCK_STREAM:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortBusy(f"cannot listen for {what} on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def bind_all(listeners: Listeners) -> BoundSockets:
    """Bind every listener's socket, or raise PortBusy naming the one that failed."""
    bound: list[socket.socket] = []
    otlp = xray = grpc_probe = None
    try:
        if listeners.receivers:
            otlp = _bind(listeners.host, listeners.otlp_port, socket.SOCK_STREAM, "OTLP/HTTP")
            bound.append(otlp)
            xray = _bind(listeners.host, listeners.xray_port, socket.SOCK_DGRAM, "the X-Ray daemon protocol (UDP)")
            bound.append(xray)
            if listeners.grpc_port:
                grpc_probe = _bind(listeners.host, listeners.grpc_port, socket.SOCK_STREAM, "OTLP/gRPC")
                bound.append(grpc_probe)
        ui = _bind(listeners.host, listeners.ui_port, socket.SOCK_STREAM, "the UI and query API")
    except PortBusy:
        for sock in bound:
            sock.close()
        raise
    return BoundSockets(otlp, xray, ui, grpc_probe)


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to us (two servers share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _server(app: ASGIApp, log_level: str) -> _QuietServer:
    config = uvicorn.Config(
        app,
        http=guarded_protocol(),  # connection_guard.py: a deadline for request heads, a cap on connections
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=10,
    )
    return _QuietServer(config)


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


async def serve(collector: Collector, api_app: ASGIApp, sockets: BoundSockets, log_level: str = "warning") -> None:
    """Serve until SIGINT/SIGTERM (or a server fails), then stop everything cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    collector.start()
    api = _server(api_app, log_level)
    servers = [api]
    sockets.ui.listen(1024)
    tasks = [asyncio.create_task(api.serve(sockets=[sockets.ui]))]
    grpc_started = False
    if sockets.otlp is not None and sockets.xray is not None:
        collector.start_xray(sockets.xray)  # read on a thread of its own, never on this loop
        otlp = _server(collector.otlp_app, log_level)
        servers.append(otlp)
        sockets.otlp.listen(1024)
        tasks.append(asyncio.create_task(otlp.serve(sockets=[sockets.otlp])))
        _logger.info("OTLP/HTTP receiver on http://%s/v1/traces", _address(sockets.otlp))
        grpc_started = await _start_grpc(collector, sockets)
        _logger.info("X-Ray daemon protocol on udp://%s", _address(sockets.xray))
    else:
        _logger.info("read-only: no receivers, no ingest log")
    _logger.info("query API on http://%s/api (OpenAPI docs at /docs)", _address(sockets.ui))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    _logger.info("shutting down: draining the ingest queue")
    for server in servers:
        server.should_exit = True
    if grpc_started:
        await _stop_grpc(collector)
    await asyncio.gather(*tasks, return_exceptions=True)
    stopper.cancel()
    await loop.run_in_executor(None, collector.stop)
    if sockets.xray is not None:
        sockets.xray.close()
    _logger.info("stopped; database closed")


async def _start_grpc(collector: Collector, sockets: BoundSockets) -> bool:
    """Start OTLP/gRPC on the probed port (False when it is off)."""
    probe, sockets.grpc_probe = sockets.grpc_probe, None
    if probe is None or collector.ingest is None:
        return False
    host, port = probe.getsockname()[:2]
    probe.close()
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        await collector.ingest.grpc_receiver.start(address)
    except OSError as exc:  # taken in the instant between the probe and the bind
        _logger.error("cannot listen for OTLP/gRPC on %s: %s; serving without it", address, exc)
        return False
    _logger.info("OTLP/gRPC receiver on %s", address)
    return True


async def _stop_grpc(collector: Collector) -> None:
    if collector.ingest is not None:
        await collector.ingest.grpc_receiver.stop()
