"""The service map: a networkx DiGraph built from the store's figures per hop.

Nodes are (name, type): services typed by their origin (AWS::ApiGateway::Stage,
AWS::Lambda, AWS::Lambda::Function, AWS::StepFunctions::StateMachine, or plain ``service``),
inferred nodes for what is called but not instrumented (typed by the target: DynamoDB table,
S3 bucket, SQS queue, ...), and ``client`` for requests from outside. Past ``max_nodes`` the
quietest nodes fold into one ``(N more)`` node and the response says so. The read model the
API and UI get is collector.query.map_view's.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import networkx as nx

from collector.query.figures import FigureAccumulator
from collector.query.map_view import MapGraph, NodeKey, ServiceMap, map_view
from collector.storage.protocols import HOP_KEY_COLUMNS, HopKey, SpanReader, TimeWindow
from spanlang import filter_ast as ast

CLIENT: Final = ("client", "client")
FOLDED_TYPE: Final = "folded"
MAX_FOLDED_NAMES: Final = 100  # members a folded node names; the response counts them all
PREFOLD_NAMES_PER_NODE: Final = 4  # names ranked exactly per node shown, when a window has many more
MAX_GROUPS: Final = 200_000  # SQL rows per aggregate: a guard against unbounded cardinality
K: Final = HOP_KEY_COLUMNS  # a row's key columns are row[:K]; counts and latency follow


@dataclass(frozen=True)
class MapQuery:
    window: TimeWindow
    expr: ast.Expr | None = None
    max_nodes: int = 100
    group: str | None = None  # `expr` is this saved group's filter alone: its rollup may serve


@dataclass
class _Hop:
    figures: FigureAccumulator = field(default_factory=FigureAccumulator)
    dwell: FigureAccumulator = field(default_factory=FigureAccumulator)
    is_async: bool = False


Row = tuple[Any, ...]  # a HopRows row: its HopKey's columns, then figures
Route = tuple[list[FigureAccumulator], _Hop | None]
NOWHERE: Final[Route] = ([], None)  # a folded node's hops: nothing is added up


@dataclass
class Accumulated:
    """Figures per served node, init durations per node, and hops per edge."""

    served: dict[NodeKey, FigureAccumulator] = field(default_factory=dict)
    inits: dict[NodeKey, FigureAccumulator] = field(default_factory=dict)
    hops: dict[tuple[NodeKey, NodeKey], _Hop] = field(default_factory=dict)
    inferred: set[NodeKey] = field(default_factory=set)
    # With more nodes than a map shows: the ones kept, and (callee, caller) of hops touching the rest.
    kept: set[NodeKey] | None = None
    every_node: set[NodeKey] | None = None  # when rows were set aside by name: all the window's nodes
    folded_hops: set[tuple[NodeKey, NodeKey | None, bool]] = field(default_factory=set)


def requests_by_key(count_rows: Sequence[Row]) -> dict[HopKey, int]:
    """Each distinct hop's requests; a key is typed once here, not once per row."""
    raw: dict[Row, int] = {}
    for row in count_rows:
        key = row[:K]
        raw[key] = raw.get(key, 0) + int(row[K])
    return {HopKey._make(key): requests for key, requests in raw.items()}


def preferred_types(keys: Iterable[HopKey]) -> dict[str, str]:
    """Each service's node type: its entries' origin, the function's own view over AWS::Lambda."""
    seen: dict[str, set[str]] = {}
    for key in keys:
        if key.role == "entry" and key.callee_type is not None:
            seen.setdefault(key.callee, set()).add(key.callee_type)
    return {name: sorted(types, key=lambda t: (t == "AWS::Lambda", t))[0] for name, types in seen.items()}


class HopEnds(NamedTuple):
    """Where one hop key lands: its callee node, the caller node of its edge (None: no edge),
    and whether the callee served it (entry or inferred) rather than initialized."""

    node: NodeKey
    source: NodeKey | None
    served: bool


def hop_ends(key: HopKey, types: dict[str, str]) -> HopEnds:
    node = (key.callee, key.callee_type or types.get(key.callee, "service"))
    served = key.role in ("entry", "inferred")
    # No edge for an init (the node's own) or a consumer's entry (its queue's link is the edge).
    if key.role == "init" or key.consumed:
        return HopEnds(node, None, served)
    caller = key.caller
    source = CLIENT if caller is None else (caller, key.caller_type or types.get(caller, "service"))
    return HopEnds(node, source, served)


def busiest_names(requests: dict[HopKey, int], max_names: int) -> set[str] | None:
    """With far more names than a map shows, the busiest `max_names` by name alone (requests
    served plus calls made), or None: the rows of the rest are set aside before the exact, and
    costlier, ranking by node (so 50k services cost a map of a few hundred)."""
    traffic: dict[str, int] = {}
    for key, count in requests.items():
        if key.role in ("entry", "inferred"):
            traffic[key.callee] = traffic.get(key.callee, 0) + count
        if key.caller is not None and key.role != "init" and not key.consumed:
            traffic[key.caller] = traffic.get(key.caller, 0) + count
    if len(traffic) <= max_names:
        return None
    return set(heapq.nsmallest(max_names, traffic, key=lambda name: (-traffic[name], name)))


def node_keys(keys: Iterable[HopKey], types: dict[str, str]) -> set[NodeKey]:
    """Every node the hops name, callers and callees."""
    found: set[NodeKey] = set()
    for key in keys:
        found.add((key.callee, key.callee_type or types.get(key.callee, "service")))
        caller = key.caller
        found.add(CLIENT if caller is None else (caller, key.caller_type or types.get(caller, "service")))
    return found


def busiest_nodes(requests: dict[HopKey, int], ends_of: dict[HopKey, HopEnds], max_nodes: int) -> set[NodeKey] | None:
    """The max_nodes - 1 busiest nodes (requests served plus calls made: hubs outrank the leaves
    they call), or None when there are no more than max_nodes. Told from the counts alone, so a
    window of 50k services costs figures for the kept few only."""
    traffic: dict[NodeKey, int] = {}
    for key, count in requests.items():
        ends = ends_of[key]
        traffic[ends.node] = traffic.get(ends.node, 0) + (count if ends.served else 0)
        if ends.source is not None:
            traffic[ends.source] = traffic.get(ends.source, 0) + count
    if len(traffic) <= max_nodes:
        return None
    return set(heapq.nsmallest(max_nodes - 1, traffic, key=lambda k: (k != CLIENT, -traffic[k], k)))


def _route(key: HopKey, ends: HopEnds, found: Accumulated) -> Route:
    """Where one hop key's figures go: the callee's served or init figures, and its edge (nowhere
    when the hop touches a folded node: folded nodes have no figures)."""
    is_async = bool(key.is_async) or key.role == "link"
    keep = found.kept
    folded_node = keep is not None and ends.node not in keep
    folded_edge = folded_node or (keep is not None and ends.source is not None and ends.source not in keep)
    if folded_edge:
        found.folded_hops.add((ends.node, ends.source, is_async))
    if folded_node:
        return NOWHERE
    if key.role == "init":
        return [found.inits.setdefault(ends.node, FigureAccumulator())], None
    targets = []
    if ends.served:
        targets.append(found.served.setdefault(ends.node, FigureAccumulator()))
    if key.role == "inferred":
        found.inferred.add(ends.node)
    if ends.source is None or folded_edge:
        return targets, None
    hop = found.hops.setdefault((ends.source, ends.node), _Hop())
    hop.is_async = hop.is_async or is_async
    targets.append(hop.figures)
    return targets, hop


def _kept_by_name(
    requests: dict[HopKey, int], types: dict[str, str], max_nodes: int
) -> tuple[dict[HopKey, int], set[NodeKey] | None]:
    """The hops worth ranking exactly (all, unless names far outnumber what a map shows), and
    every node of the window when some were set aside."""
    names = busiest_names(requests, PREFOLD_NAMES_PER_NODE * max_nodes)
    if names is None:
        return requests, None
    kept = {k: n for k, n in requests.items() if k.callee in names or k.caller in names}
    return kept, node_keys(requests, types)


def accumulate(count_rows: Sequence[Row], latency_rows: Sequence[Row], max_nodes: int | None = None) -> Accumulated:
    """Adds up HopRows per node and edge; past `max_nodes`, for the busiest max_nodes - 1 only
    (the rest are only named)."""
    requests = requests_by_key(count_rows)
    types = preferred_types(requests)
    every_node: set[NodeKey] | None = None
    if max_nodes is not None:
        requests, every_node = _kept_by_name(requests, types, max_nodes)
    ends_of = {key: hop_ends(key, types) for key in requests}
    kept = busiest_nodes(requests, ends_of, max_nodes) if max_nodes is not None else None
    if every_node is not None and kept is None:
        kept = {key for ends in ends_of.values() for key in (ends.node, ends.source) if key is not None}
    found = Accumulated(kept=kept, every_node=every_node)
    # Keyed by the rows' own key columns: a HopKey equals (and hashes as) its plain tuple.
    routes: dict[Row, Route] = {key: _route(key, ends, found) for key, ends in ends_of.items()}
    for row in count_rows:
        for target in routes.get(row[:K], NOWHERE)[0]:
            target.add_counts(*row[K : K + 7])
    for row in latency_rows:
        targets, hop = routes.get(row[:K], NOWHERE)
        kind, bucket, count, init_ns, waited_ns, low_ns, high_ns, estimated = row[K : K + 8]
        if kind == 0:
            for target in targets:
                target.add_bucket(bucket, count, init_ns, waited_ns, low_ns, high_ns, estimated)
        elif hop is not None:
            hop.dwell.add_bucket(bucket, count, 0, 0, low_ns, high_ns, estimated)
    found.inferred -= {(k.callee, k.callee_type) for k in requests if k.role == "entry"}
    return found


def build_graph(reader: SpanReader, query: MapQuery) -> MapGraph:
    """The map for the query: node and edge attributes hold Figures and extra statistics."""
    hops = reader.hop_rows(query.window, query.expr, MAX_GROUPS, query.group)
    found = accumulate(hops.counts, hops.latency, query.max_nodes)
    graph: MapGraph = nx.DiGraph()
    for key, figures in found.served.items():
        graph.add_node(key, figures=figures.figures(), init=found.inits.get(key), inferred=key in found.inferred)
    for (source, target), hop in found.hops.items():
        for key in (source, target):
            if key not in graph:
                graph.add_node(key, figures=None, inferred=False)
        dwell = hop.dwell.percentiles_ms(0.5, 0.9, 0.99)
        graph.add_edge(source, target, figures=hop.figures.figures(), is_async=hop.is_async, dwell=dwell)
    sources = reader.throttle_sources(query.window, query.expr, MAX_GROUPS, query.group)
    graph.graph.update(
        window=query.window,
        truncated=hops.truncated,
        throttle_sources=[((s.name, s.node_type or "service"), s.traces) for s in sources],
    )
    graph.graph["folded"] = 0
    return fold_quiet_nodes(graph, found) if found.kept is not None else graph


def fold_quiet_nodes(graph: MapGraph, found: Accumulated) -> MapGraph:
    """The nodes not kept become one ``(N more)`` node (figures not mergeable), naming at most
    MAX_FOLDED_NAMES of them, with an edge for each kind of hop between it and a kept node."""
    kept = found.kept or set()
    folded = {end for node, source, _ in found.folded_hops for end in (node, source) if end and end not in kept}
    folded |= (found.every_node or set()) - kept
    for key in list(graph.nodes):
        if key not in kept:
            folded.add(key)
            graph.remove_node(key)
    target: NodeKey = (f"({len(folded)} more)", FOLDED_TYPE)
    graph.add_node(target, figures=None, members=heapq.nsmallest(MAX_FOLDED_NAMES, folded))
    for node, source, is_async in sorted(found.folded_hops, key=lambda hop: not hop[2]):
        if source is None:
            continue
        a = source if source in kept else target
        b = node if node in kept else target
        if a != b and not graph.has_edge(a, b):
            graph.add_edge(a, b, figures=None, is_async=is_async, dwell=[None] * 3, folded=True)
    graph.graph["folded"] = len(folded)
    return graph


def service_map(reader: SpanReader, query: MapQuery) -> ServiceMap:
    """The map for a window (and filter)."""
    return map_view(build_graph(reader, query))
