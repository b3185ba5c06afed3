"""How execution environments are held apart: CPU share, memory size, and a /tmp of their own.

AWS gives a function ``MemorySize`` of memory and ``MemorySize / 1,769 MB`` of a vCPU (one vCPU at
1,769 MB). Here that is real while the handler runs: CPU time past the share waits, inside the
function's own span, and memory past the size kills the environment, the invocation failing as
AWS's does (``Runtime.OutOfMemory``, "Runtime exited with error: signal: killed").

Two mechanisms behind one Protocol, the first the machine allows (``choose_sandbox``):
``cgroups.py`` (the kernel's CPU bandwidth and memory controllers; v2, else v1) and
``duty_cycle.py`` (a controller thread that stops, continues and kills). The fallback is named in
one warning line when the service starts.

The share is applied when init has finished: AWS's init is slowed by a small size too, but this
machine's cold import of the OpenTelemetry SDK would take seconds at 7% of a core, a cost of the
emulator rather than of the function's code. Memory is held from the start.

Each environment's /tmp is its own, of the function's EphemeralStorage (``mount_namespace.py``), where
the machine allows; otherwise its TMPDIR, measured after each invocation, and one warning line
at the first deploy says so (``Isolation``).
"""

from __future__ import annotations

import logging
import threading
from typing import Final, Literal, Protocol

from demo_apps.cloud.lambdas.cgroups import open_cgroups
from demo_apps.cloud.lambdas.duty_cycle import DutyCycleSandbox
from demo_apps.cloud.lambdas.mount_namespace import probe

_logger = logging.getLogger(__name__)
SandboxKind = Literal["auto", "cgroup", "duty-cycle"]
KINDS: Final = ("auto", "cgroup", "duty-cycle")


class EnvironmentLimits(Protocol):
    """One environment's limits, from its process's start to its end."""

    def share_cpu(self, share: float) -> None:
        """Hold the process to `share` of a core from now on (called when init is done)."""

    def begin(self) -> None:
        """A handler starts running."""

    def end(self) -> None:
        """The handler answered."""

    def out_of_memory(self) -> bool:
        """Whether the process was killed for passing its memory size."""

    def peak_memory_bytes(self) -> int:
        """The most memory it has held (AWS's "Max Memory Used")."""

    def close(self) -> None:
        """The process is gone: release what held it."""


class Sandbox(Protocol):
    kind: str

    def enclose(self, pid: int, name: str, memory_bytes: int) -> EnvironmentLimits:
        """Limits for the process `pid` (an environment named `name`), memory held from now."""

    def close(self) -> None:
        """Every environment is gone: release the mechanism."""


def choose_sandbox(kind: SandboxKind = "auto") -> Sandbox:
    """cgroups where this process may make them (or when asked), else the duty cycle."""
    if kind == "duty-cycle":
        return DutyCycleSandbox()
    try:
        return open_cgroups()
    except OSError as exc:
        if kind == "cgroup":
            raise
        _logger.warning(
            "local Lambda: no cgroup for the environments (%s); CPU share and memory size are held by a "
            "duty cycle (SIGSTOP/SIGCONT, memory checked every 5 ms while a handler runs)",
            exc,
        )
        return DutyCycleSandbox()


class Stoppable(Protocol):
    def stop(self) -> None: ...


class Isolation:
    """The service's sandbox, whether its environments get a /tmp of their own, and every
    environment alive (so closing the service ends busy ones too, not only idle ones)."""

    def __init__(self, kind: SandboxKind = "auto", private_tmp: bool = True) -> None:
        self.sandbox = choose_sandbox(kind)
        self._alive: set[Stoppable] = set()
        self._tmp_wanted = private_tmp
        self._tmp_allowed: bool | None = None  # probed at the first deploy
        self._lock = threading.Lock()

    def private_tmp(self) -> bool:
        """Whether each environment's /tmp is its own (probed once, the fallback warned once)."""
        with self._lock:
            if self._tmp_allowed is None:
                refusal = probe() if self._tmp_wanted else "turned off in the settings"
                if refusal is not None:
                    _logger.warning(
                        "local Lambda: environments share the host's /tmp (%s); each has its own TMPDIR, "
                        "measured against EphemeralStorage after each invocation",
                        refusal,
                    )
                self._tmp_allowed = refusal is None
            return self._tmp_allowed

    def track(self, environment: Stoppable, alive: bool) -> None:
        with self._lock:
            if alive:
                self._alive.add(environment)
            else:
                self._alive.discard(environment)

    def close(self) -> None:
        with self._lock:
            alive = list(self._alive)
        for environment in alive:  # busy when the service closed: an invocation still running
            environment.stop()
        self.sandbox.close()
