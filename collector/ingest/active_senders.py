"""Who has sent lately, so the writer knows when waiting for more batches is pointless.

A commit has a large fixed cost (~9 ms of a 512-span write's ~13 ms, bench/ingest.py), so a
small group lingers for company. But most senders are closed loops: OpenTelemetry's batch
processor waits for each acknowledgement before it exports again. Once every sender seen in
the last ``active_s`` has a batch in the queue, nothing more can come until this group is
committed: waiting would only stall them (a single exporter was held to ~8k spans/s by the
old fixed 50 ms linger). A sender is one client connection (host and port).

A sender of *heavy* requests (bodies of over ``heavy_bytes``, on a weighted average) is not
waited for: each of its requests takes tens of milliseconds to read and decode, so it is never
back within a linger, and waiting for it held every other client's acknowledgements for the
whole linger (bench/hostile.py, two senders of 1 MiB bodies: a normal client's acknowledgement
p50 11-45 ms, p99 60-65 ms). An exporter's batch of 512 spans is ~100 KiB.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

MAX_SENDERS = 10_000  # past this (connections that never come back), forget them all
HEAVY_BYTES = 512 * 1024


class ActiveSenders:
    """The senders seen within the last `active_s` seconds (times from the caller's clock).
    Not thread-safe: the writer's lock guards it."""

    def __init__(self, active_s: float, heavy_bytes: int = HEAVY_BYTES) -> None:
        self._active_s = active_s
        self._heavy_bytes = heavy_bytes
        self._last_seen: dict[Hashable, float] = {}
        self._request_bytes: dict[Hashable, float] = {}  # a weighted mean of its requests' bodies

    def saw(self, sender: Hashable, request_bytes: int, now: float) -> None:
        if len(self._last_seen) >= MAX_SENDERS:
            self._last_seen.clear()
            self._request_bytes.clear()
        self._last_seen[sender] = now
        previous = self._request_bytes.get(sender, request_bytes)
        self._request_bytes[sender] = (previous + request_bytes) / 2

    def refused(self, sender: Hashable) -> None:
        """`sender`'s batch was turned away (the queue full): it is told to retry after a delay
        (429, RESOURCE_EXHAUSTED) and does not come back within a linger, so it is not waited
        for until it is let in again. Waiting for it held every other sender's acknowledgement
        for the whole linger (bench/ingest.py floods with refusals: p99 104-106 ms)."""
        self._last_seen.pop(sender, None)
        self._request_bytes.pop(sender, None)

    def all_waiting(self, queued: Iterable[Hashable | None], now: float) -> bool:
        """True when every active sender but heavy ones has a batch among `queued` (the queue's senders)."""
        cutoff = now - self._active_s
        waiting = set(queued)
        stale = [s for s, seen in self._last_seen.items() if seen < cutoff]
        for sender in stale:
            del self._last_seen[sender]
            del self._request_bytes[sender]
        heavy = self._heavy_bytes
        return all(s in waiting for s in self._last_seen if self._request_bytes[s] <= heavy)
