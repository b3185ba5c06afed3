"""The ingest log on a real file: durable appends, replay, a torn or corrupt tail, failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collector.ingest import ingest_log
from collector.ingest.ingest_log import IngestLog
from collector.storage.protocols import StoreUnavailable

FIRST = b"P" + bytes(range(256)) * 40
SECOND = b"J" + b'{"resourceSpans": []}' * 30


def replayed(path: str) -> list[bytes]:
    """What a fresh start would replay from the log at `path` (opened and closed again)."""
    log = IngestLog(path)
    try:
        return log.replay()
    finally:
        log.close()


def test_records_come_back_whole_and_in_order_after_a_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "spans.ingest")
    log = IngestLog(path)
    log.append([FIRST])
    log.append([SECOND, b""])
    log.close()
    assert replayed(path) == [FIRST, SECOND, b""]


def test_sealed_segments_replay_before_the_open_one_until_dropped(tmp_path: Path) -> None:
    log = IngestLog(str(tmp_path / "spans.ingest"))
    assert log.seal() == []  # nothing to seal
    log.append([FIRST])
    first_size = log.size_bytes
    sealed = log.seal()
    assert sealed == [1] and os.path.getsize(log.path) == 0 and log.size_bytes == first_size
    log.append([SECOND])
    assert log.seal() == [1, 2]
    log.append([b"third"])
    log.close()
    reopened = IngestLog(log.path)  # as after a crash: sealed segments come first, in order
    assert reopened.replay() == [FIRST, SECOND, b"third"]
    reopened.drop([1])
    assert not os.path.exists(f"{log.path}.1") and reopened.replay() == [SECOND, b"third"]
    assert reopened.seal() == [2, 3]  # numbering goes on after the segments found at start
    reopened.drop([2, 3])
    assert reopened.size_bytes == 0 and reopened.replay() == []
    reopened.close()


def test_a_seal_that_cannot_open_a_new_segment_keeps_appending_to_the_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = IngestLog(str(tmp_path / "spans.ingest"))
    log.append([FIRST])

    def no_open(*args: object, **kwargs: object) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(ingest_log, "open", no_open, raising=False)
    with pytest.raises(StoreUnavailable, match="Too many open files"):
        log.seal()
    monkeypatch.undo()
    log.append([SECOND])
    assert sorted(os.listdir(tmp_path)) == ["spans.ingest", "spans.ingest.lock"]
    assert log.replay() == [FIRST, SECOND]
    log.close()


@pytest.mark.parametrize("cut_bytes", [1, 7, 500])
def test_a_torn_last_record_is_dropped_and_cut_off(tmp_path: Path, cut_bytes: int) -> None:
    log = IngestLog(str(tmp_path / "spans.ingest"))
    log.append([FIRST])
    whole = log.size_bytes
    log.append([SECOND])
    log.close()
    os.truncate(log.path, os.path.getsize(log.path) - cut_bytes)  # a crash in the middle of the append
    reopened = IngestLog(log.path)
    assert reopened.replay() == [FIRST]
    assert os.path.getsize(log.path) == whole == reopened.size_bytes
    reopened.append([b"third"])  # goes after the last whole record, not after the torn bytes
    assert reopened.replay() == [FIRST, b"third"]
    reopened.close()


def test_a_record_that_fails_its_checksum_ends_the_replay(tmp_path: Path) -> None:
    log = IngestLog(str(tmp_path / "spans.ingest"))
    log.append([FIRST])
    start_of_second = log.size_bytes
    log.append([SECOND, b"third"])
    log.close()
    with open(log.path, "r+b") as raw:
        raw.seek(start_of_second + 40)
        byte = raw.read(1)
        raw.seek(start_of_second + 40)
        raw.write(bytes([byte[0] ^ 0xFF]))
    assert replayed(log.path) == [FIRST]


def test_a_failed_append_leaves_no_partial_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = IngestLog(str(tmp_path / "spans.ingest"))
    log.append([FIRST])
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        monkeypatch.setattr(os, "fsync", real_fsync)  # the cut-back's own fsync succeeds
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StoreUnavailable, match="No space left"):
        log.append([SECOND])
    log.append([b"third"])
    assert log.replay() == [FIRST, b"third"]
    log.close()


def test_a_log_has_one_owner_at_a_time(tmp_path: Path) -> None:
    # In lake mode nothing else keeps two collectors off one log: they would replay and drop
    # each other's records.
    log = IngestLog(str(tmp_path / "spans.ingest"))
    with pytest.raises(StoreUnavailable, match="in use by another collector"):
        IngestLog(log.path)
    log.close()
    IngestLog(log.path).close()  # free again once its owner is gone


def test_an_unopenable_log_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="cannot open ingest log"):
        IngestLog(str(tmp_path / "missing-dir" / "spans.ingest"))
