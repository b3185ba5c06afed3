"""Running ``fluoro serve`` as a separate process on free loopback ports.

Demo apps never import the collector (DESIGN §2): they start it the way a user would, as its
own process, and talk to it over OTLP/HTTP and the query API. The example, the ingest
benchmark and the tests share this module.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FLUORO = [sys.executable, "-c", "from ui.entry import main; main()"]


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


# Ports handed out below the kernel's ephemeral range, from a random start per process: a port
# the kernel picked (bind to 0) can be taken as the source port of any outgoing connection in the
# second before the server listens on it (then listen fails: address in use); ports below the
# range are never chosen for a connection, and walking them in order never hands one out twice.
_LOWEST_PORT = 10000
_port_offsets = itertools.count(random.randrange(1 << 16))


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A loopback port nothing holds right now (TCP, or UDP with SOCK_DGRAM), below the ephemeral range."""
    span = max(_ephemeral_floor() - _LOWEST_PORT, 1)
    for _ in range(span):
        port = _LOWEST_PORT + next(_port_offsets) % span
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free loopback port between {_LOWEST_PORT} and {_LOWEST_PORT + span}")


def get_json(url: str, timeout_s: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.load(response)


@dataclass(frozen=True)
class LocalCollector:
    """A running collector process and where to reach it."""

    pid: int
    traces_url: str
    api_url: str
    xray_address: str  # host:port of the X-Ray daemon protocol (UDP)
    grpc_address: str  # host:port of OTLP/gRPC


@contextlib.contextmanager
def run_collector(
    db_path: Path,
    *,
    start_timeout_s: float = 30.0,
    ports: tuple[int, int, int] | None = None,
    log_level: str = "warning",
    extra_args: tuple[str, ...] = (),
) -> Iterator[LocalCollector]:
    """`fluoro serve` on `db_path` until the block ends (then SIGTERM: it drains and closes).
    `ports`: (OTLP, UI and API, X-Ray UDP); free loopback ports when not given; `extra_args`
    go to `fluoro serve` as they are (a lake's, for one)."""
    otlp_port, api_port, xray_port = ports or (free_port(), free_port(), free_port(socket.SOCK_DGRAM))
    grpc_port = free_port()
    process = subprocess.Popen(
        [
            *FLUORO,
            "serve",
            "--db",
            str(db_path),
            "--otlp-port",
            str(otlp_port),
            "--ui-port",
            str(api_port),
            "--xray-port",
            str(xray_port),
            "--otlp-grpc-port",
            str(grpc_port),
            "--log-level",
            log_level,
            *extra_args,
        ],
        cwd=ROOT,
    )
    api = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                get_json(f"{api}/healthz", timeout_s=1)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the collector did not start") from None
                time.sleep(0.1)
        yield LocalCollector(
            process.pid,
            f"http://127.0.0.1:{otlp_port}/v1/traces",
            api,
            f"127.0.0.1:{xray_port}",
            f"127.0.0.1:{grpc_port}",
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
