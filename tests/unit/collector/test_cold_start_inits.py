"""A cold start's init is its own whichever link run brings which: the Initialization span
before the cold start's span, after it (into a call already stored, or already rolled up), or
while the cold start waits for its parent. Collectors of a lake split a trace's spans in any
way, and one collector's runs cut a Lambda's spans apart too, so the map must not depend on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.model import SpanBatch
from collector.query.figure_view import NodeFigures
from collector.query.service_map import MapQuery, service_map
from collector.service_map.linker import cold_starts, link, prepare
from collector.service_map.roles import LINKED_SPAN_COLUMNS, PARTNER_SCHEMA, WANT_SCHEMA
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.protocols import Statement, TimeWindow
from tests.factories import SECOND, T0, at, spans_batch

FN = {"service": "fn", "origin": "AWS::Lambda::Function"}
WINDOW = TimeWindow(T0 - 60 * SECOND, T0 + 3600 * SECOND)


def caller() -> SpanBatch:
    return spans_batch(
        at(7, 1, None, 100, 1.0, service="api", kind="SERVER"),
        at(7, 2, 1, 100.01, 0.9, service="api", kind="CLIENT", target_type="remote", target_name="fn"),
    )


def cold_start() -> SpanBatch:
    return spans_batch(at(7, 3, 2, 100.05, 0.2, kind="SERVER", cold_start=True, **FN))


def init_under_it() -> SpanBatch:  # X-Ray's Initialization subsegment: a child of the function
    return spans_batch(at(7, 4, 3, 99.6, 0.45, name="Initialization", **FN))


def init_beside_it() -> SpanBatch:  # an Initialization span beside the function's: the same parent
    return spans_batch(at(7, 5, 2, 99.6, 0.45, name="Initialization", **FN))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    opened = DuckDBStore(str(tmp_path / "inits.duckdb"))
    yield opened
    opened.close()


def runs(store: DuckDBStore, *groups: list[SpanBatch], roll_up_between: bool = False) -> None:
    for group in groups:
        for batch in group:
            store.write([batch])
        store.link_new_spans(T0 + 200 * SECOND)
        if roll_up_between:
            store.roll_up_calls(settled_before_ns=T0 + 3600 * SECOND)


def entry_init_ns(store: DuckDBStore) -> object:
    (row,) = store.reader.rows(Statement("SELECT init_ns FROM calls WHERE role = 'entry' AND callee = 'fn'"))
    return row[0]


def fn_figures(store: DuckDBStore) -> NodeFigures | None:
    return next(n.figures for n in service_map(store.reader, MapQuery(WINDOW)).nodes if n.name == "fn")


@pytest.fixture
def together(tmp_path: Path) -> Iterator[DuckDBStore]:
    one = DuckDBStore(str(tmp_path / "together.duckdb"))
    runs(one, [caller(), cold_start(), init_under_it()])
    yield one
    one.close()


@pytest.mark.parametrize(
    "order",
    [
        "init first",
        "init after the call was stored",
        "init while the cold start waits for its parent",
    ],
)
def test_the_init_finds_its_cold_start_in_any_run(store: DuckDBStore, together: DuckDBStore, order: str) -> None:
    groups = {
        "init first": ([init_under_it()], [caller(), cold_start()]),
        "init after the call was stored": ([caller(), cold_start()], [init_under_it()]),
        "init while the cold start waits for its parent": ([cold_start()], [init_under_it()], [caller()]),
    }[order]
    runs(store, *groups)
    assert entry_init_ns(store) == entry_init_ns(together) == 450_000_000
    assert fn_figures(store) == fn_figures(together)


def test_an_init_beside_a_stored_cold_start_finds_it(store: DuckDBStore, together: DuckDBStore) -> None:
    """The call keeps no parent id: its span's row gives it (the init and the call share it)."""
    runs(store, [caller(), cold_start()], [init_beside_it()])
    assert entry_init_ns(store) == entry_init_ns(together) == 450_000_000
    assert fn_figures(store) == fn_figures(together)


def test_an_init_after_its_cold_start_was_rolled_up_moves_the_rollup_too(
    store: DuckDBStore, together: DuckDBStore
) -> None:
    runs(store, [caller(), cold_start()], [init_under_it()], roll_up_between=True)
    assert store.reader.rows(Statement("SELECT count(*) FROM call_minutes"))[0][0] > 0
    together.roll_up_calls(settled_before_ns=T0 + 3600 * SECOND)
    assert entry_init_ns(store) == 450_000_000
    figures, expected = fn_figures(store), fn_figures(together)
    assert figures is not None and expected is not None
    assert (figures.requests, figures.p50_ms, figures.cold_starts) == (
        expected.requests,
        expected.p50_ms,
        expected.cold_starts,
    )


def test_a_run_with_both_asks_storage_nothing() -> None:
    # The common case: the cold start and its init in one run; no stored init is read and no
    # stored call is filled.
    both = spans_batch(
        at(7, 3, 2, 100.05, 0.2, kind="SERVER", cold_start=True, **FN),
        at(7, 4, 3, 99.6, 0.45, name="Initialization", **FN),
    )
    spans = both.spans.select(LINKED_SPAN_COLUMNS)
    assert cold_starts(spans).num_rows == 0
    prepared = prepare(spans, both.links)
    assert link(prepared, PARTNER_SCHEMA.empty_table(), WANT_SCHEMA.empty_table()).inits.num_rows == 0
    alone = cold_start().spans.select(LINKED_SPAN_COLUMNS)
    assert cold_starts(alone).num_rows == 1  # its init may be stored: storage looks
    late = init_under_it()
    linked = link(
        prepare(late.spans.select(LINKED_SPAN_COLUMNS), late.links),
        PARTNER_SCHEMA.empty_table(),
        WANT_SCHEMA.empty_table(),
    )
    assert linked.inits.num_rows == 1  # its cold start may be stored: storage fills it
