"""CPU time of each of the collector's threads, for /metrics.

The process's CPU alone does not say which part spends it: the writer (inserts, commits and the
checkpoints they trigger), the linker (the service map's calls), the decoders (OTLP bodies, in
the event loop's executor) or the event loop itself (HTTP). Each Python thread's OS thread is
read from /proc at scrape time (Linux); where there is no /proc, the family is empty. Threads
of the same name (an executor's, say) are summed; a thread that has ended drops out.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

TASKS = Path("/proc/self/task")


def thread_cpu_s(native_id: int, tasks: Path = TASKS) -> float | None:
    """User + system CPU seconds of one OS thread of this process; None if it cannot be read."""
    try:
        stat = (tasks / str(native_id) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields count from its ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_thread_name(tasks: Path = TASKS) -> dict[str, float]:
    """CPU seconds of the live Python threads, summed by thread name."""
    totals: dict[str, float] = {}
    for thread in threading.enumerate():
        seconds = thread_cpu_s(thread.native_id, tasks) if thread.native_id is not None else None
        if seconds is not None:
            totals[thread.name] = totals.get(thread.name, 0.0) + seconds
    return totals


class ThreadCpuCollector(Collector):
    """`fluoro_thread_cpu_seconds_total{thread=...}`, read afresh at each scrape."""

    def __init__(self, tasks: Path = TASKS) -> None:
        self._tasks = tasks

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "fluoro_thread_cpu_seconds", "CPU time (user + system) of the collector's threads", labels=["thread"]
        )
        for name, seconds in sorted(cpu_by_thread_name(self._tasks).items()):
            family.add_metric([name], seconds)
        yield family
