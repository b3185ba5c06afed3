"""The storage contract, continued: a trace's summary and its reading by id, over every write of
its spans (the parts each write leaves, collector/storage/trace_parts_sql.py), on every backend."""

from __future__ import annotations

from collector.storage.protocols import SpanLink, Store
from spanlang.filter_parser import parse_filter
from tests.contract.test_store_contract import SECOND, T0, WINDOW, batch, trace_bytes
from tests.factories import at as span


def test_a_searched_trace_is_summarised_over_every_write_of_its_spans_each_span_once(store: Store) -> None:
    # Its spans come in three writes, one of them resent, one in progress and then completed.
    in_progress = span(9, 91, 90, 0.1, service="ledger", in_progress=True, source="xray")
    store.write([batch(span(9, 90, None, 0, service="api"), in_progress)])
    store.write([batch(span(9, 90, None, 0, service="api"), span(9, 92, 90, 0.2, service="db", fault=True))])
    completed = span(9, 91, 90, 0.1, service="ledger", error=True, duration_ns=2_500_000_000, source="xray")
    store.write([batch(completed)])
    store.write([batch(in_progress)])  # a late copy: ignored
    (found,) = store.reader.search_traces(WINDOW, None, limit=10)
    spans = store.reader.trace_spans(trace_bytes(9))
    assert (found.span_count, len(spans)) == (3, 3)
    assert found.services == ("api", "db", "ledger")
    assert (found.error, found.fault, found.throttle, found.cold_start) == (True, True, False, False)
    assert found.trace_duration_ms == 2600.0  # from the root's start to the completed span's end
    assert store.reader.search_traces(WINDOW, parse_filter("partial"), limit=10) == []


def test_a_trace_read_by_id_finds_spans_its_writes_left_far_apart(store: Store) -> None:
    store.write([batch(span(11, 110, None, 0), annotations=((11, 110, "k", "root"),))])
    store.write([batch(span(12, 120, None, 300))])  # another trace between them
    store.write([batch(span(11, 111, 110, 600, duration_s=5), links=((11, 111, 12, 120),))])
    spans = store.reader.trace_spans(trace_bytes(11))
    assert [s.span_id for s in spans] == [f"{110:016x}", f"{111:016x}"]
    assert (spans[0].annotations, spans[1].links) == ({"k": "root"}, (SpanLink(f"{12:032x}", f"{120:016x}"),))
    # Retention takes a root and leaves the rest of its write (and a later one's span) readable.
    store.write([batch(span(13, 130, None, 0), span(13, 131, 130, 200))])
    store.write([batch(span(13, 132, 130, 400))])
    assert store.delete_older_than(T0 + 100 * SECOND) == 2
    assert [s.span_id for s in store.reader.trace_spans(trace_bytes(11))] == [f"{111:016x}"]
    assert [s.span_id for s in store.reader.trace_spans(trace_bytes(13))] == [f"{131:016x}", f"{132:016x}"]


def test_a_trace_with_a_span_still_in_progress_is_partial_and_counts_it(store: Store) -> None:
    waiting = span(10, 101, 100, 0.1, service="q", in_progress=True, source="xray")
    store.write([batch(span(10, 100, None, 0, service="api"), waiting)])
    (found,) = store.reader.search_traces(WINDOW, parse_filter("partial"), limit=10)
    assert (found.span_count, found.services) == (2, ("api", "q"))
