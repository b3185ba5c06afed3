"""Finding a run's spans by (trace_id, span_id): exact, whatever the 64-bit mix of the keys does;
and the rows built in memory laid out as the tables they go into."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa

from collector.service_map.keys import _MIX_A, KeyIndex, trace_words
from collector.service_map.roles import CALL_SCHEMA, WANT_COLUMNS
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.protocols import Statement


def traces(*words: tuple[int, int]) -> pa.Array:
    raw = b"".join(np.array(pair, dtype=np.uint64).tobytes() for pair in words)
    storage = pa.Array.from_buffers(pa.binary(16), len(words), [None, pa.py_buffer(raw)])
    return pa.ExtensionArray.from_storage(pa.uuid(), storage)


def test_keys_are_found_by_trace_and_span_and_others_are_not() -> None:
    ids = [uuid.uuid4().bytes for _ in range(5)]
    index = KeyIndex(pa.array(ids, pa.uuid()), pa.array([1, 2, 3, 1, 2], pa.uint64()))
    probe_traces = pa.array([ids[3], ids[0], ids[1], ids[4]], pa.uuid())
    found = index.find(probe_traces, np.array([1, 1, 1, 2], dtype=np.uint64))
    assert found.tolist() == [3, 0, -1, 4]  # span 1 of trace 1 is not there: its span is 2


def test_keys_whose_mixes_collide_are_told_apart_by_the_full_key() -> None:
    first_high, second_high, low, span = 7, 1_000_003, 42, 99
    with np.errstate(over="ignore"):
        colliding_span = int(np.uint64(span) ^ (np.uint64(first_high) * _MIX_A) ^ (np.uint64(second_high) * _MIX_A))
    stored = traces((first_high, low), (second_high, low), (5, 5))
    index = KeyIndex(stored, pa.array([span, colliding_span, 1], pa.uint64()))
    absent_high = 3
    with np.errstate(over="ignore"):
        absent_span = int(np.uint64(span) ^ (np.uint64(first_high) * _MIX_A) ^ (np.uint64(absent_high) * _MIX_A))
    probes = traces((second_high, low), (first_high, low), (absent_high, low))
    found = index.find(probes, np.array([colliding_span, span, absent_span], dtype=np.uint64))
    assert found.tolist() == [1, 0, -1]


def test_trace_words_follow_a_slice_of_an_array() -> None:
    whole = traces((1, 2), (3, 4), (5, 6))
    assert trace_words(whole.slice(1, 2)).tolist() == [[3, 4], [5, 6]]
    assert trace_words(pa.chunked_array([whole.slice(0, 1), whole.slice(2, 1)])).tolist() == [[1, 2], [5, 6]]


def test_rows_built_in_memory_follow_the_tables_they_are_inserted_into(tmp_path: Path) -> None:
    # `INSERT INTO calls SELECT *` and `INSERT INTO pending SELECT w.*, ?` go by position.
    store = DuckDBStore(str(tmp_path / "columns.duckdb"))
    try:

        def columns(table: str) -> list[str]:
            rows = store.reader.rows(
                Statement(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                    (table,),
                )
            )
            return [name for (name,) in rows]

        assert CALL_SCHEMA.names == columns("calls")
        assert [*WANT_COLUMNS[:-1], "since_ns", "weight"] == columns("pending")
    finally:
        store.close()
