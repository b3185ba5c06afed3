"""Work a background thread runs every so often (retention, linking, the rollup)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from collector.storage.protocols import StoreUnavailable

_logger = logging.getLogger(__name__)


@dataclass
class PeriodicTask:
    """Work a thread runs every `interval_s` seconds; `due_at` is on that thread's clock."""

    interval_s: float
    run: Callable[[], None]
    due_at: float = 0.0


def schedule_from(tasks: Sequence[PeriodicTask], now: float) -> None:
    """Each task's first run comes one interval after `now`."""
    for task in tasks:
        task.due_at = now + task.interval_s


def next_due(tasks: Sequence[PeriodicTask], otherwise: float) -> float:
    return min((task.due_at for task in tasks), default=otherwise)


def any_due(tasks: Sequence[PeriodicTask], now: float) -> bool:
    return any(now >= task.due_at for task in tasks)


def run_due(tasks: Sequence[PeriodicTask], now: float) -> None:
    """Run the tasks whose time has come; one that raises is logged and tried again next time."""
    for task in tasks:
        if now >= task.due_at:
            task.due_at = now + task.interval_s
            try:
                task.run()
            except StoreUnavailable as exc:  # expected while a disk is full or failing: one line
                _logger.warning("periodic task failed: %s", exc)
            except Exception:
                _logger.exception("periodic task failed")
