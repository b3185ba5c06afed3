"""What the pipeline holds in memory (waiting, logged, folding), bounded in spans and in bytes."""

from __future__ import annotations

import threading


class HeldBudget:
    """Spans and bytes held, taken at submit and given back once folded (or refused).

    Thread-safe. One batch is always let in when nothing is held, so a batch larger than a
    bound still passes alone rather than never.
    """

    def __init__(self, max_spans: int, max_bytes: int) -> None:
        self.max_spans = max_spans
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self.spans = 0
        self.byte_count = 0

    def try_take(self, spans: int, byte_count: int) -> bool:
        """Count a batch in, or False when it would pass a bound."""
        with self._lock:
            over = self.spans + spans > self.max_spans or self.byte_count + byte_count > self.max_bytes
            if self.spans and over:
                return False
            self.spans += spans
            self.byte_count += byte_count
            return True

    def take(self, spans: int, byte_count: int) -> None:
        """Count in what must be held whatever the bounds (the log's records at start)."""
        with self._lock:
            self.spans += spans
            self.byte_count += byte_count

    def give_back(self, spans: int, byte_count: int) -> None:
        with self._lock:
            self.spans -= spans
            self.byte_count -= byte_count
