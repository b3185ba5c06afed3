"""The engine's housekeeping on a real (temporary) database."""

from __future__ import annotations

import time
from pathlib import Path

from collector.engine import Collector, CollectorSettings
from collector.model import SpanBatchBuilder, SpanRow
from collector.storage.protocols import TimeWindow
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
