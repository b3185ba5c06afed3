"""Driving an architecture with traffic shaped so every phenomenon shows within a minute.

Each architecture supplies a ``Traffic``: seed data, one user action (``act``) answering an
HTTP status, and a mid-run change (``midway``: a new function version shifted onto an alias).
The driver repeats a 40-second cycle (``CYCLE``) — 15 s of steady traffic, a 5 s burst at 5x
the rate (past the stage throttle, 429, and the reserved concurrency, which API Gateway answers
500: each at its real source on the map), a 14 s idle gap longer than the environments' idle
timeout plus the reaper's period (every environment reaped, so the next request is a cold
start), 6 s steady again — and counts what came back. It stops by itself after ``duration_s``
or when asked (``stop``).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, Protocol

import httpx

Phase = tuple[str, float, float]  # (name, seconds, rate multiplier)
# The demo's environments' idle timeout (architectures.DemoSettings) plus the reaper's period
# must stay below the idle gap: tests/unit/cloud checks it.
CYCLE: Final[tuple[Phase, ...]] = (
    ("steady", 15.0, 1.0),
    ("burst", 5.0, 5.0),
    ("idle", 14.0, 0.0),
    ("steady", 6.0, 1.0),
)


class Traffic(Protocol):
    name: str

    def act(self, client: httpx.Client, rng: random.Random) -> int: ...

    def midway(self) -> None: ...


@dataclass(frozen=True)
class LoadSettings:
    rps: float = 5.0
    duration_s: float = 60.0
    workers: int = 24
    seed: int = 7
    cycle: tuple[Phase, ...] = CYCLE


def phase_at(elapsed_s: float, cycle: tuple[Phase, ...] = CYCLE) -> tuple[str, float]:
    """The cycle's phase at `elapsed_s` and its rate multiplier."""
    position = elapsed_s % sum(length for _, length, _ in cycle)
    for name, length, multiplier in cycle:
        if position < length:
            return name, multiplier
        position -= length
    return cycle[-1][0], cycle[-1][2]


class LoadDriver:
    """Runs one Traffic on a thread; `counts` is live (ok, 4xx, 5xx, 429, failed)."""

    def __init__(self, traffic: Traffic, settings: LoadSettings) -> None:
        self.traffic, self.settings = traffic, settings
        self.counts: Counter[str] = Counter()
        self.phase = "starting"
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load-{traffic.name}", daemon=True)

    def start(self) -> LoadDriver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()

    def join(self, timeout_s: float | None = None) -> None:
        self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        rng = random.Random(self.settings.seed)
        started = time.monotonic()
        shifted = False
        with httpx.Client(timeout=30.0) as client, ThreadPoolExecutor(self.settings.workers) as pool:
            while not self._stopping.is_set():
                elapsed = time.monotonic() - started
                if elapsed >= self.settings.duration_s:
                    break
                if not shifted and elapsed >= self.settings.duration_s / 2:
                    shifted = True
                    pool.submit(self._guarded, self.traffic.midway)
                self.phase, multiplier = phase_at(elapsed, self.settings.cycle)
                rate = self.settings.rps * multiplier
                if rate <= 0:
                    self._stopping.wait(0.25)
                    continue
                pool.submit(self._act, client, random.Random(rng.random()))
                self._stopping.wait(rng.expovariate(rate))
        self.phase = "done"

    def _act(self, client: httpx.Client, rng: random.Random) -> None:
        try:
            status = self.traffic.act(client, rng)
            kind = "429" if status == 429 else "5xx" if status >= 500 else "4xx" if status >= 400 else "ok"
        except Exception:  # noqa: BLE001 - a request that could not be made counts as failed
            kind = "failed"
        with self._lock:
            self.counts[kind] += 1
            self.counts["requests"] += 1

    def _guarded(self, action: object) -> None:
        try:
            action()  # type: ignore[operator]
        except Exception:  # noqa: BLE001 - a failed mid-run change must not stop the load
            with self._lock:
                self.counts["midway_failed"] += 1
