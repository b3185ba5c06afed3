"""The engine's housekeeping on a real (temporary) database."""

from __future__ import annotations

import time
from pathlib import Path

from pytest import MonkeyPatch

from collector import engine
from collector.engine import Collector, CollectorSettings
from collector.model import SpanBatchBuilder, SpanRow
from collector.storage.protocols import Statement, TimeWindow
from tests.factories import span_row


def row(span_id: int, start_ns: int) -> SpanRow:
    return span_row(trace_id=span_id.to_bytes(16, "big"), span_id=span_id, kind="SERVER", start_ns=start_ns)


def test_retention_keeps_only_the_configured_age(tmp_path: Path) -> None:
    collector = Collector(CollectorSettings(db_path=str(tmp_path / "r.duckdb"), retention_s=3600))
    now = time.time_ns()
    builder = SpanBatchBuilder()
    builder.add_span(row(1, now - 2 * 3600 * 10**9))
    builder.add_span(row(2, now - 60 * 10**9))
    collector.store.write([builder.build()])
    collector.apply_retention()
    window = TimeWindow(now - 3 * 3600 * 10**9, now)
    assert [s.spans for s in collector.reader.services(window)] == [1]
    collector.start()
    collector.stop()


def test_a_link_run_gives_the_freed_heap_back_once_it_has_linked(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    collector = Collector(CollectorSettings(db_path=str(tmp_path / "l.duckdb")))
    builder = SpanBatchBuilder()
    builder.add_span(row(1, time.time_ns()))
    collector.store.write([builder.build()])
    released_after: list[int] = []  # the calls stored when the heap was released
    monkeypatch.setattr(engine, "release_free_heap", lambda: released_after.append(_calls(collector)))
    collector.link()
    assert released_after == [1]  # the server span's entry call, linked before the release
    collector.stop()


def _calls(collector: Collector) -> int:
    return int(collector.store.reader.rows(Statement("SELECT count(*) FROM calls"))[0][0])
