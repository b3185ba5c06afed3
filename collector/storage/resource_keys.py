"""Resources stored once: spans keep a 64-bit key, ``resources`` keeps the JSON text.

Every span of a ResourceSpans carries the same resource (service.name, SDK, host, Lambda
environment: ~200 characters of JSON). Stored on each row it was half of what a span cost to
insert and compress (bench/ingest.py: ~14.5 -> ~9.3 us a span for the insert alone). A write
dictionary-encodes its group's resource column (a few distinct values in thousands of rows),
keys each distinct text by a content hash, and adds only the texts the store has not seen.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

RESOURCE_SCHEMA = pa.schema([("resource_id", pa.uint64()), ("resource", pa.string())])
# Keys known to be stored; a bound, not a need: a miss only costs an INSERT OR IGNORE.
MAX_KNOWN_RESOURCES = 100_000


def resource_key(text: str) -> int:
    """A stable 64-bit key for a resource's JSON text (the same text, the same key)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class KeyedSpans:
    """A group's spans with ``resource_id`` in place of ``resource``, and its distinct resources."""

    spans: pa.Table
    resources: pa.Table


def key_resources(spans: pa.Table) -> KeyedSpans:
    """Replace the resource text column by its key, in its place, keeping every other column as it is."""
    encoded = pc.dictionary_encode(spans.column("resource").combine_chunks())
    texts = encoded.dictionary.to_pylist()
    keys = pa.array([resource_key(text) for text in texts], pa.uint64())
    at = spans.schema.get_field_index("resource")
    keyed = spans.set_column(at, "resource_id", pc.take(keys, encoded.indices))
    return KeyedSpans(keyed, pa.table([keys, encoded.dictionary], schema=RESOURCE_SCHEMA))


class KnownResources:
    """The resource keys already committed, bounded; forgotten whole when full or after retention."""

    def __init__(self, limit: int = MAX_KNOWN_RESOURCES) -> None:
        self._keys: set[int] = set()
        self._limit = limit

    def unknown(self, resources: pa.Table) -> pa.Table:
        """The rows of `resources` whose key is not known to be stored."""
        keys = resources.column("resource_id").to_pylist()
        return resources.take(pa.array([i for i, key in enumerate(keys) if key not in self._keys], pa.int32()))

    def remember(self, resources: pa.Table) -> None:
        """Call after the commit that stored them."""
        if len(self._keys) + resources.num_rows > self._limit:
            self._keys.clear()
        self._keys.update(resources.column("resource_id").to_pylist())

    def forget(self) -> None:
        self._keys.clear()
