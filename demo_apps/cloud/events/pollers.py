"""The threads an event source mapping reads with (SQS pollers, one reader per Kinesis shard),
started together and stopped together by one event their loops watch."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Pollers:
    def __init__(self) -> None:
        self.stopping = threading.Event()  # loops wait on it between reads, so a stop is prompt
        self._threads: list[threading.Thread] = []
        self._started = False

    def add(self, loop: Callable[..., None], name: str, *args: object) -> None:
        """A thread running `loop`; started at once when the others already run (scaling up)."""
        thread = threading.Thread(target=loop, args=args, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive() or not self._started]  # the retired go
        self._threads.append(thread)
        if self._started:
            thread.start()

    def start(self) -> None:
        self._started = True
        for thread in self._threads:
            thread.start()

    def stop(self, join_timeout_s: float) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(join_timeout_s)
