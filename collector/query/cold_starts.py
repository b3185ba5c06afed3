"""Cold starts over time of everything downstream of a node (of every node, for all requests).

A node's own calls rarely cold start (an API stage, a table): its functions do, further down.
So the Analytics page's cold-start chart sums, per step bucket, the cold starts of the selected
node and every node it reaches on the map, one series per node that had any, so it agrees with
the table of functions beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from collector.query.analytics import time_series
from collector.query.map_view import MapNode, ServiceMap
from collector.storage.protocols import SpanReader, Subject, TimeWindow
from spanlang import filter_ast as ast


@dataclass(frozen=True, slots=True)
class ColdStartSeries:
    """Per node with cold starts (downstream of the subject), its cold starts per bucket."""

    step_s: float
    nodes: tuple[MapNode, ...]
    bucket_starts_ns: tuple[int, ...]
    counts: tuple[tuple[int, ...], ...]  # counts[i][j]: node i, bucket j


def downstream(found: ServiceMap, subject: Subject) -> list[MapNode]:
    """The subject's node and what it reaches (every node for all requests), with cold starts."""
    cold = [n for n in found.nodes if n.figures is not None and n.figures.cold_starts > 0]
    if subject.node is None:
        return cold
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_edges_from((e.source, e.target) for e in found.edges)
    chosen = {n.id for n in found.nodes if n.name == subject.node and subject.node_type in (None, n.type)}
    reached = set(chosen)
    for start in chosen & set(graph):
        reached |= nx.descendants(graph, start)
    return [n for n in cold if n.id in reached]


def cold_start_series(
    reader: SpanReader, window: TimeWindow, expr: ast.Expr | None, subject: Subject, found: ServiceMap, step_s: float
) -> ColdStartSeries:
    """One time series per node downstream of the subject that cold started, on the same buckets."""
    nodes = downstream(found, subject)
    per_node = [time_series(reader, window, expr, Subject(n.name, n.type), step_s) for n in nodes]
    starts = sorted({p.start_ns for series in per_node for p in series.points if p.cold_starts})
    counts = []
    for series in per_node:
        by_start = {p.start_ns: p.cold_starts for p in series.points}
        counts.append(tuple(by_start.get(start, 0) for start in starts))
    return ColdStartSeries(step_s, tuple(nodes), tuple(starts), tuple(counts))
