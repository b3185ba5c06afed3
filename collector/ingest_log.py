"""The ingest log: acknowledged batches made durable before they reach DuckDB.

An OTLP request is answered 200 once its spans are appended here and fsync'd; the writer folds
what the log holds into DuckDB about once a second, then empties the log. A DuckDB commit has a
fixed cost of 4 to 5 ms however few rows it carries, so committing there per request kept the
collector near 30% of a core at a steady 10,000 spans/s, while an append here costs ~0.5 ms of
CPU (bench/ingest.py steady; the OpenTelemetry Collector's persistent queue is the same idea).
At start the log is replayed: whatever it still holds was acknowledged but may not be in
DuckDB (a crash between the two), and the store skips the spans it already has.

Written by hand, not with a library, because it is small and nothing here fits better: a
SQLite table would write every byte twice (its WAL, then its pages), and a DuckDB table of
blobs cost more than the commits it replaced (measured). Each record is one batch::

    [payload length: u32 LE][CRC-32 of payload: u32 LE][payload]
    payload = ([table length: u32 LE][Arrow IPC stream]) for spans, annotations, links

Replay stops at the first record that is short or fails its CRC: only the last, unfinished
append (never acknowledged) can be torn, and a failed append is cut off at once.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Sequence

import pyarrow as pa

from collector.model import SpanBatch
from collector.storage.protocols import StoreUnavailable

_logger = logging.getLogger(__name__)
_RECORD_HEADER = struct.Struct("<II")
_TABLE_HEADER = struct.Struct("<I")


class IngestLog:
    """An append-only file of SpanBatches: ``append`` is durable when it returns."""

    def __init__(self, path: str) -> None:
        self.path = path
        existed = os.path.exists(path)
        try:
            # O_APPEND: every write lands at the end, which is always the last whole record.
            self._file = open(path, "a+b", buffering=0)  # noqa: SIM115 - held open for the log's life
            if not existed:  # the new file's name must survive a crash too
                _fsync_directory(os.path.dirname(os.path.abspath(path)))
        except OSError as exc:
            raise StoreUnavailable(f"cannot open ingest log {path}: {exc}") from exc
        self._size = 0

    def replay(self) -> list[SpanBatch]:
        """Every whole record in the file, oldest first; a torn tail is cut off."""
        self._file.seek(0)
        data = self._file.read()
        batches: list[SpanBatch] = []
        offset = 0
        while offset + _RECORD_HEADER.size <= len(data):
            length, crc = _RECORD_HEADER.unpack_from(data, offset)
            payload = memoryview(data)[offset + _RECORD_HEADER.size : offset + _RECORD_HEADER.size + length]
            if len(payload) < length or zlib.crc32(payload) != crc:
                break
            batches.append(_decode(payload))
            offset += _RECORD_HEADER.size + length
        if offset < len(data):
            _logger.warning("ingest log %s: %d bytes of an unfinished append dropped", self.path, len(data) - offset)
            self._cut_to(offset)
        self._size = offset
        return batches

    def append(self, batches: Sequence[SpanBatch]) -> None:
        """Write the batches and fsync; on failure cut the file back, so no torn record stays."""
        records = bytearray()
        for batch in batches:
            payload = _encode(batch)
            records += _RECORD_HEADER.pack(len(payload), zlib.crc32(payload))
            records += payload
        try:
            self._file.write(records)
            os.fsync(self._file.fileno())
        except OSError as exc:
            self._cut_to(self._size)
            raise StoreUnavailable(f"appending to the ingest log failed: {exc}") from exc
        self._size += len(records)

    def clear(self) -> None:
        """Empty the log: everything in it is committed to the store."""
        try:
            self._cut_to(0)
        except OSError as exc:  # the records stay; replaying them later stores nothing twice
            raise StoreUnavailable(f"emptying the ingest log failed: {exc}") from exc
        self._size = 0

    @property
    def size_bytes(self) -> int:
        return self._size

    def close(self) -> None:
        self._file.close()

    def _cut_to(self, size: int) -> None:
        self._file.truncate(size)
        os.fsync(self._file.fileno())


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode(batch: SpanBatch) -> bytearray:
    parts = bytearray()
    for table in (batch.spans, batch.annotations, batch.links):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        stream = sink.getvalue()
        parts += _TABLE_HEADER.pack(stream.size)
        parts += memoryview(stream)
    return parts


def _decode(payload: memoryview) -> SpanBatch:
    tables: list[pa.Table] = []
    offset = 0
    for _ in range(3):
        (size,) = _TABLE_HEADER.unpack_from(payload, offset)
        offset += _TABLE_HEADER.size
        tables.append(pa.ipc.open_stream(pa.py_buffer(payload[offset : offset + size])).read_all())
        offset += size
    return SpanBatch(tables[0], tables[1], tables[2])
