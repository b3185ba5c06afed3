"""The housekeeping thread runs its tasks on time, survives a failing one and stops."""

from __future__ import annotations

import threading
import time

from collector.housekeeping import Housekeeper
from collector.ingest.periodic import PeriodicTask
from tests.waiting import wait_until


def test_tasks_run_repeatedly_a_failure_is_retried_and_stop_ends_the_thread() -> None:
    runs: list[str] = []
    failed = threading.Event()

    def flaky() -> None:
        runs.append("flaky")
        if not failed.is_set():
            failed.set()
            raise RuntimeError("store busy")

    keeper = Housekeeper((PeriodicTask(0.02, lambda: runs.append("link")), PeriodicTask(0.03, flaky)))
    keeper.start()
    wait_until(lambda: runs.count("link") >= 3 and runs.count("flaky") >= 2, timeout_s=5)  # ran again after raising
    assert keeper.stop(timeout_s=5)
    settled = len(runs)
    time.sleep(0.1)
    assert len(runs) == settled  # nothing runs after stop
