"""A thread of its own for the service map's upkeep: linking, orphan expiry, the rollup.

They run beside the ingest writer rather than between its commits, so a run of linking
never holds up an acknowledgement (bench/ingest.py: ack latency and throughput).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from collector.ingest.periodic import PeriodicTask, next_due, run_due, schedule_from


class Housekeeper:
    """Runs `tasks` every their interval until stopped; a failing task is logged and retried."""

    def __init__(self, tasks: Sequence[PeriodicTask], name: str = "fluoro-housekeeping") -> None:
        self._tasks = list(tasks)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        schedule_from(self._tasks, time.monotonic())
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Finish the task at hand and stop; True if the thread ended in time."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            now = time.monotonic()
            if self._stopping.wait(max(0.0, next_due(self._tasks, now + 1.0) - now)):
                return
            run_due(self._tasks, time.monotonic())
