"""The ingest log: acknowledged requests made durable before their spans reach DuckDB.

An OTLP request is answered 200 once its body is appended here and fsync'd; the pipeline
folds the decoded spans into DuckDB later (a row group at a time, see folder.py). For a fold
the open segment (``PATH``) is sealed (renamed ``PATH.<n>``) and appends go on into a new one;
once the fold is committed its sealed segments are deleted. A DuckDB commit has a
fixed cost of 4 to 5 ms however few rows it carries, so committing there per request kept the
collector near 30% of a core at a steady 10,000 spans/s, while an append here costs ~0.3 ms of
CPU (bench/ingest.py steady; the OpenTelemetry Collector's persistent queue is the same idea).
At start the log is replayed: whatever it still holds was acknowledged but may not be in
DuckDB (a crash between the two), and the store skips the spans it already has.

Records are the request bodies as received (decompressed), not the decoded spans: writing a
body is a third of the bytes and needs no encoding (Arrow IPC of the batch cost 1.35 ms a
512-span request against 0.3 ms, measured), and replaying it through the same decoder gives
the same spans. Written by hand, not with a library, because it is small and nothing fits
better: a SQLite table would write every byte twice (its WAL, then its pages), and a DuckDB
table of blobs cost more than the commits it replaced (measured). Each record::

    [payload length: u32 LE][CRC-32 of payload: u32 LE][payload]

Replay reads the sealed segments, oldest first, then the open one, each up to its first record
that is short or fails its CRC: only the last, unfinished append (never acknowledged) can be
torn, and a failed append is cut off at once. A log of the single-file kind that came before
segments is an open segment, so it is replayed as it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import zlib
from collections.abc import Sequence
from typing import BinaryIO

from collector.storage.protocols import StoreUnavailable

_logger = logging.getLogger(__name__)
_RECORD_HEADER = struct.Struct("<II")


class IngestLog:
    """Append-only records (bytes) in an open segment and the sealed segments before it.

    ``append`` is durable when it returns. ``seal`` closes the open segment (renamed to
    ``PATH.<n>``) and opens a new one at ``PATH``, so a fold can store what was sealed while
    appends go on; ``drop`` deletes sealed segments once their spans are stored. ``replay``
    reads the sealed segments, oldest first, then the open one.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._directory = os.path.dirname(os.path.abspath(path))
        self._owner = self._take_ownership()
        self._file = self._open()
        self._sealed = self._sealed_on_disk()
        self._next_seal = max(self._sealed, default=0) + 1
        self._size = os.path.getsize(path)
        self._sealed_bytes = sum(_size_or_zero(self._sealed_path(n)) for n in self._sealed)

    def _take_ownership(self) -> BinaryIO:
        """An exclusive lock on PATH.lock for the log's life: two collectors on one log would
        replay and drop each other's records (in lake mode nothing else keeps them apart)."""
        try:
            owner = open(f"{self.path}.lock", "a+b")  # noqa: SIM115 - held open for the log's life
        except OSError as exc:
            raise StoreUnavailable(f"cannot open ingest log {self.path}: {exc}") from exc
        try:
            fcntl.flock(owner.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner.close()
            raise StoreUnavailable(f"ingest log {self.path} is in use by another collector") from exc
        return owner

    def _open(self) -> BinaryIO:
        existed = os.path.exists(self.path)
        try:
            # O_APPEND: every write lands at the end, which is always the last whole record.
            opened = open(self.path, "a+b", buffering=0)  # noqa: SIM115 - held open for the log's life
            if not existed:  # the new file's name must survive a crash too
                _fsync_directory(self._directory)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open ingest log {self.path}: {exc}") from exc
        return opened

    def _sealed_path(self, number: int) -> str:
        return f"{self.path}.{number}"

    def _sealed_on_disk(self) -> list[int]:
        prefix = os.path.basename(self.path) + "."
        try:
            names = os.listdir(self._directory)
        except OSError as exc:
            raise StoreUnavailable(f"cannot list the ingest log's directory {self._directory}: {exc}") from exc
        suffixes = (name[len(prefix) :] for name in names if name.startswith(prefix))
        return sorted(int(suffix) for suffix in suffixes if suffix.isascii() and suffix.isdigit())  # "²".isdigit()

    def replay(self) -> list[bytes]:
        """Every whole record, sealed segments first; the open segment's torn tail is cut off."""
        records: list[bytes] = []
        for number in self._sealed:
            with open(self._sealed_path(number), "rb") as sealed:
                records += _whole_records(sealed.read(), self._sealed_path(number))[0]
        self._file.seek(0)
        data = self._file.read()
        own, whole_bytes = _whole_records(data, self.path)
        if whole_bytes < len(data):
            self._cut_to(whole_bytes)
        self._size = whole_bytes
        return records + own

    def append(self, records: Sequence[bytes]) -> None:
        """Write the records and fsync; on failure cut the file back, so no torn record stays."""
        framed = bytearray()
        for payload in records:
            framed += _RECORD_HEADER.pack(len(payload), zlib.crc32(payload))
            framed += payload
        try:
            self._file.write(framed)
            os.fsync(self._file.fileno())
        except OSError as exc:
            self._cut_to(self._size)
            raise StoreUnavailable(f"appending to the ingest log failed: {exc}") from exc
        self._size += len(framed)

    def seal(self) -> list[int]:
        """Close the open segment (if it holds anything) and start a new one; every sealed
        segment not yet dropped, for ``drop`` once their records are stored."""
        if self._size:
            sealed = self._sealed_path(self._next_seal)
            try:
                os.replace(self.path, sealed)
            except OSError as exc:
                raise StoreUnavailable(f"sealing the ingest log failed: {exc}") from exc
            try:
                opened = self._open()  # its directory fsync makes the rename durable too
            except StoreUnavailable:
                os.replace(sealed, self.path)  # as it was: appends go on into the same segment
                raise
            self._file.close()
            self._file = opened
            self._sealed.append(self._next_seal)
            self._next_seal += 1
            self._sealed_bytes += self._size
            self._size = 0
        return list(self._sealed)

    def drop(self, sealed: Sequence[int]) -> None:
        """Delete sealed segments: everything in them is in the store."""
        try:
            for number in sealed:
                # The size goes down last: a size of zero means the segments are gone from the list too.
                size = _size_or_zero(self._sealed_path(number))
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self._sealed_path(number))
                self._sealed.remove(number)
                self._sealed_bytes -= size
            _fsync_directory(self._directory)
        except OSError as exc:  # the records stay; replaying them later stores nothing twice
            raise StoreUnavailable(f"deleting stored ingest log segments failed: {exc}") from exc

    @property
    def size_bytes(self) -> int:
        return self._size + self._sealed_bytes

    def close(self) -> None:
        self._file.close()
        self._owner.close()

    def _cut_to(self, size: int) -> None:
        self._file.truncate(size)
        os.fsync(self._file.fileno())


def _whole_records(data: bytes, path: str) -> tuple[list[bytes], int]:
    """The records up to the first short or corrupt one, and how many bytes they take."""
    records: list[bytes] = []
    offset = 0
    while offset + _RECORD_HEADER.size <= len(data):
        length, crc = _RECORD_HEADER.unpack_from(data, offset)
        payload = memoryview(data)[offset + _RECORD_HEADER.size : offset + _RECORD_HEADER.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        records.append(bytes(payload))
        offset += _RECORD_HEADER.size + length
    if offset < len(data):
        _logger.warning("ingest log %s: %d bytes of an unfinished append dropped", path, len(data) - offset)
    return records, offset


def _size_or_zero(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
