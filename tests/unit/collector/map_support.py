"""What the service map's tests share: a chain of services, the map once linked, names for ids."""

from __future__ import annotations

from collector.model import SpanBatch
from collector.query.figure_view import NodeFigures
from collector.query.map_view import EventAge, MapEdge, MapNode, ServiceMap
from collector.query.service_map import MapQuery, service_map
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.protocols import TimeWindow
from tests.factories import SECOND, T0, at, spans_batch

WINDOW = TimeWindow(T0 - 60 * SECOND, T0 + 600 * SECOND)


def linked_map(store: DuckDBStore, query: MapQuery) -> ServiceMap:
    """The map once the writer has linked what was stored (the daemon does it every 2 s)."""
    store.link_new_spans()
    return service_map(store.reader, query)


def chain_batches(trace: int, start_s: float, fault_in_c: bool) -> list[SpanBatch]:
    """client -> a -> b -> c, one batch per service as three processes would export them."""
    base = trace * 100
    return [
        spans_batch(
            at(trace, base + 1, None, start_s, 0.3, service="a", kind="SERVER"),
            at(
                trace,
                base + 2,
                base + 1,
                start_s + 0.01,
                0.25,
                service="a",
                kind="CLIENT",
                target_type="remote",
                target_name="b.local:80",
            ),
        ),
        spans_batch(
            at(trace, base + 3, base + 2, start_s + 0.02, 0.2, service="b", kind="SERVER"),
            at(
                trace,
                base + 4,
                base + 3,
                start_s + 0.03,
                0.1,
                service="b",
                kind="CLIENT",
                target_type="remote",
                target_name="c.local:80",
            ),
        ),
        spans_batch(at(trace, base + 5, base + 4, start_s + 0.04, 0.05, service="c", kind="SERVER", fault=fault_in_c)),
    ]


def by_name(found: ServiceMap) -> tuple[dict[str, MapNode], dict[tuple[str, str], MapEdge]]:
    nodes = {n.name: n for n in found.nodes}
    names = {n.id: n.name for n in found.nodes}
    edges = {(names[e.source], names[e.target]): e for e in found.edges}
    return nodes, edges


def figures(item: MapNode | MapEdge) -> NodeFigures:
    """A node's or edge's figures, which the test expects it to have."""
    assert item.figures is not None, f"{item.id} has no figures"
    return item.figures


def event_age(edge: MapEdge) -> EventAge:
    assert edge.event_age is not None, f"{edge.id} has no event age"
    return edge.event_age
