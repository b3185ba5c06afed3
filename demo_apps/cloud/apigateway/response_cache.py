"""A bounded cache of HTTP responses with a time to live per entry (API Gateway stages, the CDN).

Least recently used entries leave first past ``max_entries``, so a flood of distinct keys
cannot grow memory; ``invalidate`` drops keys by pattern (``*`` matches anything), as a
CloudFront invalidation does.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class CachedResponse:
    expires_at: float
    status: int
    headers: dict[str, str]
    body: bytes
    stored_at: float = field(default_factory=time.monotonic)

    @property
    def age_s(self) -> float:
        return time.monotonic() - self.stored_at


class ResponseCache:
    def __init__(self, ttl_s: float, max_entries: int = 1000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, CachedResponse] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedResponse | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None or found.expires_at < time.monotonic():
                self._entries.pop(key, None)
                return None
            self._entries.move_to_end(key)
            return found

    def put(self, key: str, status: int, headers: dict[str, str], body: bytes, ttl_s: float | None = None) -> None:
        with self._lock:
            expires_at = time.monotonic() + (self.ttl_s if ttl_s is None else ttl_s)
            self._entries[key] = CachedResponse(expires_at, status, headers, body)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def invalidate(self, pattern: str) -> int:
        """Drop every key matching `pattern`; how many."""
        with self._lock:
            gone = [k for k in self._entries if fnmatch.fnmatchcase(k, pattern.replace("[", "[[]").replace("?", "[?]"))]
            for key in gone:
                del self._entries[key]
        return len(gone)

    def __len__(self) -> int:
        return len(self._entries)
