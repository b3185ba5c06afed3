"""The service map at its limits: folding many nodes, thousands of services, spans whose
values break linking, times at the end of int64."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from collector.model import SpanBatch
from collector.query.map_view import ServiceMap, node_id
from collector.query.service_map import MapQuery, service_map
from collector.service_map.linker import PreparedRun, prepare
from collector.storage import duckdb_calls
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.protocols import Statement, TimeWindow
from tests.factories import SECOND, T0, at, spans_batch
from tests.unit.collector.map_support import WINDOW, by_name, chain_batches, figures, linked_map


def test_many_nodes_fold_and_the_response_says_so(store: DuckDBStore) -> None:
    rows = [at(1, 1, None, 0, 1.0, service="hub")]
    rows += [
        at(1, 10 + i, 1, 0.01, 0.01, service="hub", kind="CLIENT", target_type="remote", target_name=f"host{i}")
        for i in range(30)
    ]
    store.write([spans_batch(*rows)])
    body = linked_map(store, MapQuery(WINDOW, max_nodes=10))
    assert len(body.nodes) == 10 and body.folded_nodes == 32 - 9
    folded = next(n for n in body.nodes if n.type == "folded")
    assert folded.members is not None and len(folded.members) == 23
    assert node_id(("hub", "service")) in {n.id for n in body.nodes}


def test_node_ids_are_stable_across_queries(store: DuckDBStore) -> None:
    store.write(chain_batches(1, 1, fault_in_c=False))
    first = {n.id for n in linked_map(store, MapQuery(WINDOW)).nodes}
    store.write(chain_batches(2, 2, fault_in_c=False))
    assert {n.id for n in linked_map(store, MapQuery(WINDOW)).nodes} == first


def poison_at(start_ns: int) -> SpanBatch:
    """A root and its client child of service "evil", starting at `start_ns`."""
    return spans_batch(
        at(1, 11, None, 0, service="evil", start_ns=start_ns, duration_ns=5),
        at(
            1,
            12,
            11,
            0,
            service="evil",
            kind="CLIENT",
            start_ns=start_ns + 5,
            duration_ns=4,
            target_type="remote",
            target_name="x",
        ),
    )


def test_spans_whose_values_break_linking_are_quarantined_and_the_map_goes_on(
    store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: an INT64 overflow in linking failed every run, the batch went back to the front of
    # the queue, and nothing stored after it was ever linked. Here the linker fails on any span
    # of service "evil", as a bug in its rules would on some values.
    def failing_on_evil(spans: pa.Table, links: pa.Table, stored_inits: pa.Table | None = None) -> PreparedRun:
        if "evil" in spans.column("service").to_pylist():
            raise ValueError("cannot link these values")
        return prepare(spans, links, stored_inits)

    monkeypatch.setattr(duckdb_calls, "prepare", failing_on_evil)
    store.write([poison_at(T0)])
    store.write(chain_batches(2, 1.0, fault_in_c=False))
    store.link_new_spans()
    assert store.map_tables.quarantined_spans == 2
    store.write(chain_batches(3, 2.0, fault_in_c=False))
    store.link_new_spans()  # later runs link as usual
    nodes, edges = by_name(service_map(store.reader, MapQuery(TimeWindow(T0, T0 + 10 * SECOND))))
    assert {"a", "b", "c"} <= set(nodes) and "evil" not in nodes
    assert figures(edges["a", "b"]).requests == 2


def test_times_near_the_end_of_int64_do_not_break_linking(store: DuckDBStore) -> None:
    # Admission refuses such times at the door; the linker must not fail on them either.
    store.write([poison_at(2**63 - 10)])
    store.write(chain_batches(2, 1.0, fault_in_c=False))
    store.link_new_spans()
    assert store.map_tables.quarantined_spans == 0
    _, edges = by_name(service_map(store.reader, MapQuery(TimeWindow(T0, T0 + 10 * SECOND))))
    assert figures(edges["a", "b"]).requests == 1


def test_a_window_of_thousands_of_services_folds_all_but_the_busiest(store: DuckDBStore) -> None:
    # Before: every node's figures were computed, then all but the busiest folded (50k services:
    # 4.8 s), and the folded node listed every member.
    rows = []
    for i in range(2000):
        calls = 5 if i < 3 else 1  # three busy services, then a long tail
        for c in range(calls):
            trace = i * 10 + c + 1
            rows.append(at(trace, trace * 2, None, i * 0.001, service=f"svc-{i:04}", kind="SERVER"))
            rows.append(
                at(
                    trace,
                    trace * 2 + 1,
                    trace * 2,
                    i * 0.001,
                    service=f"svc-{i:04}",
                    kind="CLIENT",
                    target_type="remote",
                    target_name=f"host-{i:04}",
                )
            )
    store.write([spans_batch(*rows)])
    found = linked_map(store, MapQuery(TimeWindow(T0 - SECOND, T0 + 100 * SECOND), max_nodes=20))
    nodes, edges = by_name(found)
    assert len(nodes) == 20
    assert {"svc-0000", "svc-0001", "svc-0002", "client"} <= set(nodes)
    folded = next(n for n in found.nodes if n.type == "folded")
    total = 1 + 2000 + 2000  # the client, the services, the hosts they call
    assert found.folded_nodes == total - 19 and folded.name == f"({total - 19} more)"
    assert folded.members is not None and len(folded.members) == 100
    assert figures(nodes["svc-0000"]).requests == 5
    assert figures(edges["client", "svc-0000"]).requests == 5
    assert ("client", folded.name) in edges


def test_a_map_of_thousands_of_hops_over_millions_of_raw_calls_answers(store: DuckDBStore) -> None:
    """The map's hop rows once streamed a UNION ALL of the rollup's rows and the raw calls'
    sums (one arm empty) that DuckDB 1.5 never finished at this size: the query parked in
    WaitForTask, so the insight watch hung, and the daemon with it at its stop. Each part is
    now materialized before it is limited (storage/map_sql.py)."""
    hops, raw_calls, minute_ns = 5_000, 3_000_000, 60 * SECOND
    for statement in (
        f"INSERT INTO hop_keys SELECT range, 'caller' || range, 't', 'callee' || range, 't', 'exit', false, false"
        f" FROM range({hops})",
        f"INSERT INTO latency_minutes SELECT {T0}, range, 0, 5, 3, 0, 3000, 1000, 1000, NULL FROM range({hops})",
        f"INSERT INTO call_minutes SELECT {T0}, range, 3, 3, 0, 0, 0, 0, NULL FROM range({hops})",
        f"UPDATE rollup_state SET rolled_until = {T0 + minute_ns}",
        f"""INSERT INTO calls SELECT uuid(), range, NULL, {T0 + minute_ns} + range, 'exit',
            'caller' || (range % {hops}), 't', 'callee' || (range % {hops}), 't', false,
            1000 * (1 + (range * 7919) % 100000), range % 13 = 0, false, false, false, NULL, NULL, false, NULL, NULL
            FROM range({raw_calls})""",
    ):
        store.reader.rows(Statement(statement))
    answered: list[ServiceMap] = []
    window = TimeWindow(T0, T0 + 2 * minute_ns)
    asking = threading.Thread(target=lambda: answered.append(service_map(store.reader, MapQuery(window))), daemon=True)
    asking.start()
    asking.join(120)
    assert answered, "the map query did not finish"
    assert answered[0].edges
