"""Who has sent lately, so the writer knows when waiting for more batches is pointless.

A commit has a large fixed cost (~9 ms of a 512-span write's ~13 ms, bench/ingest.py), so a
small group lingers for company. But most senders are closed loops: OpenTelemetry's batch
processor waits for each acknowledgement before it exports again. Once every sender seen in
the last ``active_s`` has a batch in the queue, nothing more can come until this group is
committed: waiting would only stall them (a single exporter was held to ~8k spans/s by the
old fixed 50 ms linger). A sender is one client connection (host and port).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable

MAX_SENDERS = 10_000  # past this (connections that never come back), forget them all


class ActiveSenders:
    """The senders seen within the last `active_s` seconds. Not thread-safe: the pipeline's lock guards it."""

    def __init__(self, active_s: float) -> None:
        self._active_s = active_s
        self._last_seen: dict[Hashable, float] = {}

    def saw(self, sender: Hashable) -> None:
        if len(self._last_seen) >= MAX_SENDERS:
            self._last_seen.clear()
        self._last_seen[sender] = time.monotonic()

    def all_waiting(self, queued: Iterable[Hashable | None]) -> bool:
        """True when every active sender has a batch among `queued` (the senders of the queue)."""
        cutoff = time.monotonic() - self._active_s
        waiting = set(queued)
        stale = [s for s, seen in self._last_seen.items() if seen < cutoff]
        for sender in stale:
            del self._last_seen[sender]
        return all(sender in waiting for sender in self._last_seen)
