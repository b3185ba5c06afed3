"""Calls run on threads at once, each one's result or exception kept (for tests and demos)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def run_concurrently(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run callables on threads at once; each result or the exception it raised."""
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            results[index] = calls[index]()
        except Exception as exc:  # noqa: BLE001 - each call's outcome, whatever it raised
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
