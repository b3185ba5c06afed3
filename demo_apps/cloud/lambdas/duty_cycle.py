"""CPU share and memory size without cgroups: a controller that stops, continues and kills.

Where this process may not make cgroups (an unprivileged user, a container without delegation),
one thread watches every environment that is running a handler, each tick (5 ms):

- CPU: a token bucket as CFS bandwidth control keeps one. The process earns ``share`` seconds of
  CPU per second, holding at most one period's worth (100 ms, the burst a cgroup allows), and
  spends what it ran (``/proc/<pid>/task/*/schedstat``, nanoseconds, every thread). In debt, it
  is stopped (SIGSTOP) until the debt is earned back (SIGCONT). A handler waiting on a socket
  spends nothing, so it is not slowed, as under a cgroup.
- Memory: its resident set (``/proc/<pid>/statm``) past the function's size is killed (SIGKILL),
  as the kernel's OOM killer would, and remembered so the invocation fails as out of memory.

Less exact than the kernel (a tick's worth of overshoot; children of the handler are not
counted; memory is watched only while a handler runs and once after init) and it costs a read
per thread per tick while handlers run, which is why cgroups are preferred (``sandbox.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Final

from demo_apps.cloud.lambdas.cgroups import resident_peak_bytes

TICK_S: Final = 0.005
WINDOW_S: Final = 0.1  # the most CPU time saved up: one CFS period's quota, as a cgroup allows
_PAGE_BYTES: Final = os.sysconf("SC_PAGE_SIZE")


def process_cpu_s(pid: int) -> float:
    """CPU time of every thread of `pid` so far, from the scheduler's nanosecond counters."""
    total_ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that just ended
            total_ns += int((task / "schedstat").read_bytes().split()[0])
    return total_ns / 1e9


def resident_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_bytes().split()[1]) * _PAGE_BYTES


class DutyCycleLimits:
    """One environment under the controller."""

    def __init__(self, controller: DutyCycleSandbox, pid: int, memory_bytes: int) -> None:
        self.pid, self.memory_bytes = pid, memory_bytes
        self.share = 1.0
        self.killed_for_memory = False
        self.peak_bytes = 0
        self.budget_s = 0.0
        self.stopped = False
        self._controller = controller
        self._last_cpu_s = 0.0
        self._last_at = 0.0

    def share_cpu(self, share: float) -> None:
        self.share = share
        self.check_memory()  # init's imports may already be past the size

    def begin(self) -> None:
        self.budget_s = self.share * WINDOW_S
        self._last_cpu_s, self._last_at = process_cpu_s(self.pid), time.monotonic()
        self._controller.watch(self)

    def end(self) -> None:
        self._controller.unwatch(self)
        self._signal(signal.SIGCONT)  # never leave it stopped between invocations

    def tick(self, now: float) -> None:
        """Earn, spend, and stop or continue; kill past the memory size."""
        cpu_s = process_cpu_s(self.pid)
        earned = self.share * (now - self._last_at)
        self.budget_s = min(self.share * WINDOW_S, self.budget_s + earned) - (cpu_s - self._last_cpu_s)
        self._last_cpu_s, self._last_at = cpu_s, now
        if self.budget_s < 0 and not self.stopped:
            self._signal(signal.SIGSTOP)
        elif self.budget_s >= 0 and self.stopped:
            self._signal(signal.SIGCONT)
        self.check_memory()

    def check_memory(self) -> None:
        try:
            used = resident_bytes(self.pid)
        except (OSError, ValueError, IndexError):
            return  # gone
        self.peak_bytes = max(self.peak_bytes, used)
        if used > self.memory_bytes:
            self.killed_for_memory = True
            self._signal(signal.SIGKILL)

    def _signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, number)
        if number in (signal.SIGSTOP, signal.SIGCONT):
            self.stopped = number == signal.SIGSTOP

    def out_of_memory(self) -> bool:
        return self.killed_for_memory

    def peak_memory_bytes(self) -> int:
        return max(self.peak_bytes, resident_peak_bytes(self.pid))

    def close(self) -> None:
        self._controller.unwatch(self)


class DutyCycleSandbox:
    """The controller thread, running only while some handler runs."""

    kind = "duty cycle"

    def __init__(self) -> None:
        self._watched: set[DutyCycleLimits] = set()
        self._changed = threading.Condition()
        self._closed = False
        self._ticking = threading.Lock()  # held through a tick: unwatch waits for one in flight
        self._thread = threading.Thread(target=self._run, name="lambda-duty-cycle", daemon=True)
        self._thread.start()

    def enclose(self, pid: int, name: str, memory_bytes: int) -> DutyCycleLimits:
        return DutyCycleLimits(self, pid, memory_bytes)

    def watch(self, limits: DutyCycleLimits) -> None:
        with self._changed:
            self._watched.add(limits)
            self._changed.notify()

    def unwatch(self, limits: DutyCycleLimits) -> None:
        """After this, no tick touches `limits` (so a SIGCONT sent next is the last signal)."""
        with self._changed:
            self._watched.discard(limits)
        with self._ticking:
            pass

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._watched and not self._closed:
                    self._changed.wait()
                if self._closed:
                    return
            with self._ticking:
                now = time.monotonic()
                for limits in list(self._watched):  # a set changed only under `_changed`; copied
                    with contextlib.suppress(OSError):  # the process ended between ticks
                        limits.tick(now)
            time.sleep(TICK_S)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join(timeout=1)
