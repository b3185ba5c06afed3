"""The ingest log on a real file: durable appends, replay, a torn or corrupt tail, failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collector.ingest_log import IngestLog
from collector.model import SpanBatch, SpanBatchBuilder
from collector.storage.protocols import StoreUnavailable
from tests.factories import span_row


def batch(first_span_id: int, spans: int = 3, annotated: bool = False) -> SpanBatch:
    builder = SpanBatchBuilder()
    for span_id in range(first_span_id, first_span_id + spans):
        builder.add_span(span_row(trace_id=bytes(15) + b"\x07", span_id=span_id, name=f"op-é-{span_id}"))
        if annotated:
            builder.add_annotation(bytes(15) + b"\x07", span_id, 1, "customer", "c-1")
    return builder.build()


def span_ids(batches: list[SpanBatch]) -> list[list[int]]:
    return [b.spans.column("span_id").to_pylist() for b in batches]


def test_batches_come_back_whole_and_in_order_after_a_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "spans.ingest")
    log = IngestLog(path)
    first, second = batch(1, annotated=True), batch(10)
    log.append([first])
    log.append([second])
    log.close()
    replayed = IngestLog(path).replay()
    assert span_ids(replayed) == [[1, 2, 3], [10, 11, 12]]
    assert replayed[0].spans.equals(first.spans) and replayed[0].annotations.equals(first.annotations)
    assert replayed[1].links.schema == second.links.schema


def test_clear_empties_the_log(tmp_path: Path) -> None:
    log = IngestLog(str(tmp_path / "spans.ingest"))
    log.append([batch(1)])
    log.clear()
    assert log.size_bytes == 0 and os.path.getsize(log.path) == 0
    log.append([batch(5)])
    assert span_ids(IngestLog(log.path).replay()) == [[5, 6, 7]]


@pytest.mark.parametrize("cut_bytes", [1, 9, 500])
def test_a_torn_last_record_is_dropped_and_cut_off(tmp_path: Path, cut_bytes: int) -> None:
    log = IngestLog(str(tmp_path / "spans.ingest"))
    log.append([batch(1)])
    whole = log.size_bytes
    log.append([batch(10)])
    log.close()
    os.truncate(log.path, os.path.getsize(log.path) - cut_bytes)  # a crash in the middle of the append
    reopened = IngestLog(log.path)
    assert span_ids(reopened.replay()) == [[1, 2, 3]]
    assert os.path.getsize(log.path) == whole == reopened.size_bytes
    reopened.append([batch(20)])  # goes after the last whole record, not after the torn bytes
    assert span_ids(IngestLog(log.path).replay()) == [[1, 2, 3], [20, 21, 22]]


def test_a_record_that_fails_its_checksum_ends_the_replay(tmp_path: Path) -> None:
    log = IngestLog(str(tmp_path / "spans.ingest"))
    log.append([batch(1)])
    start_of_second = log.size_bytes
    log.append([batch(10)])
    log.close()
    with open(log.path, "r+b") as raw:
        raw.seek(start_of_second + 40)
        byte = raw.read(1)
        raw.seek(start_of_second + 40)
        raw.write(bytes([byte[0] ^ 0xFF]))
    assert span_ids(IngestLog(log.path).replay()) == [[1, 2, 3]]


def test_a_failed_append_leaves_no_partial_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = IngestLog(str(tmp_path / "spans.ingest"))
    log.append([batch(1)])
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        monkeypatch.setattr(os, "fsync", real_fsync)  # the cut-back's own fsync succeeds
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StoreUnavailable, match="No space left"):
        log.append([batch(10)])
    log.append([batch(20)])
    assert span_ids(IngestLog(log.path).replay()) == [[1, 2, 3], [20, 21, 22]]


def test_an_unopenable_log_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="cannot open ingest log"):
        IngestLog(str(tmp_path / "missing-dir" / "spans.ingest"))
