"""Starting the real ``fluoro serve`` daemon as a subprocess on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from demo_apps.local_collector import FLUORO, ROOT, free_port
from tests.waiting import wait_until

__all__ = ["FLUORO", "ROOT", "Daemon", "free_port"]


PORT_TRIES = 3


class PortTaken(AssertionError):
    """The daemon exited because a port picked for it was taken meanwhile."""


@dataclass
class Daemon:
    """A running daemon and where to reach it."""

    db_path: Path
    token: str | None = None
    extra_args: tuple[str, ...] = ()
    otlp_port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    xray_port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    grpc_port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    log_path: Path = field(default_factory=Path)
    descriptor_limit: int | None = None  # the process's soft limit on open files, when lowered

    @property
    def traces_url(self) -> str:
        return f"http://127.0.0.1:{self.otlp_port}/v1/traces"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def args(self) -> list[str]:
        args = [
            *FLUORO,
            "serve",
            "--db",
            str(self.db_path),
            "--otlp-port",
            str(self.otlp_port),
            "--xray-port",
            str(self.xray_port),
            "--ui-port",
            str(self.ui_port),
            "--otlp-grpc-port",
            str(self.grpc_port),
            *self.extra_args,
        ]
        return args + (["--token", self.token] if self.token else [])

    def start(self, timeout_s: float = 20.0) -> Daemon:
        # A port free_port() found can be taken by another test worker before the daemon binds
        # it: the daemon then exits saying so, and starts again on other ports.
        for _ in range(PORT_TRIES - 1):
            with contextlib.suppress(PortTaken):
                return self._started(timeout_s)
            self._pick_new_ports()
        return self._started(timeout_s)

    def _started(self, timeout_s: float) -> Daemon:
        self._spawn()
        wait_until(self._healthy, timeout_s, poll_s=0.1, describe=lambda: "daemon did not become healthy")
        return self

    def _spawn(self) -> None:
        # Output goes to a file, not a pipe nobody drains, which could block the daemon.
        self.log_path = self.db_path.with_suffix(f".{time.monotonic_ns()}.log")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                self.args(),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                preexec_fn=self._lower_descriptor_limit if self.descriptor_limit else None,
            )

    def _pick_new_ports(self) -> None:
        self.otlp_port, self.ui_port, self.grpc_port = free_port(), free_port(), free_port()
        self.xray_port = free_port(socket.SOCK_DGRAM)

    def _lower_descriptor_limit(self) -> None:
        assert self.descriptor_limit is not None
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.descriptor_limit, hard))

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            log = self.log_path.read_text()
            if "cannot listen for" in log and "Address already in use" in log:
                raise PortTaken(log)
            raise AssertionError(f"daemon exited: {log}")
        try:
            return httpx.get(f"{self.api_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> tuple[int, str]:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.process.wait(timeout=timeout_s)
        return self.process.returncode, self.log_path.read_text()

    def get(self, path: str, **params: object) -> httpx.Response:
        return httpx.get(f"{self.api_url}{path}", params=params, headers=self.headers, timeout=10)  # type: ignore[arg-type]

    def trace(self, trace_id: str) -> list[dict[str, object]]:
        response = self.get(f"/api/traces/{trace_id}")
        spans: list[dict[str, object]] = response.json()["spans"] if response.status_code == 200 else []
        return spans

    def wait_for_trace(self, trace_id: str, spans: int, timeout_s: float = 10.0) -> list[dict[str, object]]:
        def enough() -> list[dict[str, object]]:
            found = self.trace(trace_id)
            return found if len(found) >= spans else []

        return wait_until(
            enough,
            timeout_s,
            poll_s=0.1,
            describe=lambda: f"trace {trace_id} has {len(self.trace(trace_id))} spans, expected {spans}",
        )
