"""Per-thread CPU for /metrics: a busy thread shows its time under its own name."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from collector.thread_cpu import TASKS, ThreadCpuCollector, cpu_by_thread_name
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(not TASKS.exists(), reason="per-thread CPU is read from Linux's /proc")


def spin(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(1000))


def test_a_busy_thread_is_counted_under_its_name_and_an_idle_one_barely() -> None:
    stop = threading.Event()
    busy = threading.Thread(target=spin, args=(stop,), name="spinner")
    idle = threading.Thread(target=stop.wait, name="sleeper")
    busy.start()
    idle.start()
    try:
        wait_until(lambda: cpu_by_thread_name().get("spinner", 0.0) >= 0.2, timeout_s=10, poll_s=0.05)
        cpu = cpu_by_thread_name()
    finally:
        stop.set()
        busy.join()
        idle.join()
    assert cpu["spinner"] >= 0.2
    assert cpu["sleeper"] < 0.05


def test_the_family_is_in_the_exposition_and_empty_without_proc(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    registry.register(ThreadCpuCollector())
    assert 'fluoro_thread_cpu_seconds_total{thread="MainThread"}' in generate_latest(registry).decode()
    assert cpu_by_thread_name(tmp_path / "no-such-proc") == {}
