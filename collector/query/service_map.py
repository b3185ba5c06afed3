"""The service map: a networkx DiGraph built from the store's figures per hop; JSON from it.

Nodes are (name, type): services typed by their origin (AWS::ApiGateway::Stage,
AWS::Lambda, AWS::Lambda::Function, AWS::StepFunctions::StateMachine, or plain ``service``),
inferred nodes for what is called but not instrumented (typed by the target: DynamoDB table,
S3 bucket, SQS queue, ...), and ``client`` for requests from outside. Node ids are stable
hashes of (name, type). Past ``max_nodes`` the quietest nodes fold into one ``(N more)`` node
and the response says so.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, TypeAlias

import networkx as nx

from collector.filters import filter_ast as ast
from collector.query.figures import FigureAccumulator, Figures
from collector.storage.protocols import SpanReader, TimeWindow

CLIENT: Final = ("client", "client")
FOLDED_TYPE: Final = "folded"
MAX_FOLDED_NAMES: Final = 100  # members a folded node names; the response counts them all
PREFOLD_NAMES_PER_NODE: Final = 4  # names ranked exactly per node shown, when a window has many more
MAX_GROUPS: Final = 200_000  # SQL rows per aggregate: a guard against unbounded cardinality
NodeKey = tuple[str, str]
MapGraph: TypeAlias = "nx.DiGraph[NodeKey]"  # networkx is generic only in its stubs


def node_id(key: NodeKey) -> str:
    """A stable id for a node: the same name and type give the same id in every response."""
    return hashlib.blake2b(f"{key[1]}\x00{key[0]}".encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class MapQuery:
    window: TimeWindow
    expr: ast.Expr | None = None
    max_nodes: int = 100


@dataclass
class _Hop:
    figures: FigureAccumulator = field(default_factory=FigureAccumulator)
    dwell: FigureAccumulator = field(default_factory=FigureAccumulator)
    is_async: bool = False


HopKey = tuple[Any, ...]  # caller, caller_type, callee, callee_type, role, async, consumed
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


def preferred_types(keys: Iterable[HopKey]) -> dict[str, str]:
    """Each service's node type: its entries' origin, the function's own view over AWS::Lambda."""
    seen: dict[str, set[str]] = {}
    for key in keys:
        if key[4] == "entry" and key[3] is not None:
            seen.setdefault(key[2], set()).add(key[3])
    return {name: sorted(types, key=lambda t: (t == "AWS::Lambda", t))[0] for name, types in seen.items()}


class HopEnds(NamedTuple):
    """Where one hop key lands: its callee node, the caller node of its edge (None: no edge),
    and whether the callee served it (entry or inferred) rather than initialized."""

    node: NodeKey
    source: NodeKey | None
    served: bool


def hop_ends(key: HopKey, types: dict[str, str]) -> HopEnds:
    caller, caller_type, callee, callee_type, role, _, consumed = key
    node = (callee, callee_type or types.get(callee, "service"))
    served = role in ("entry", "inferred")
    if role == "init" or consumed:  # no edge: an init is the node's own; a consumer's root is its queue's link's
        return HopEnds(node, None, served)
    source = CLIENT if caller is None else (caller, caller_type or types.get(caller, "service"))
    return HopEnds(node, source, served)


def busiest_names(count_rows: Sequence[tuple[Any, ...]], max_names: int) -> set[str] | None:
    """With far more names than a map shows, the busiest `max_names` by name alone (requests
    served plus calls made), or None: the rows of the rest are set aside before the exact, and
    costlier, ranking by node (so 50k services cost a map of a few hundred)."""
    traffic: dict[str, int] = {}
    for row in count_rows:
        caller, callee, role, consumed, requests = row[0], row[2], row[4], row[6], row[7]
        if role in ("entry", "inferred"):
            traffic[callee] = traffic.get(callee, 0) + requests
        if caller is not None and role != "init" and not consumed:
            traffic[caller] = traffic.get(caller, 0) + requests
    if len(traffic) <= max_names:
        return None
    return set(heapq.nsmallest(max_names, traffic, key=lambda name: (-traffic[name], name)))


def node_keys(count_rows: Sequence[tuple[Any, ...]], types: dict[str, str]) -> set[NodeKey]:
    """Every node the rows name, callers and callees."""
    callees = {(r[2], r[3] or types.get(r[2], "service")) for r in count_rows}
    callers = {(r[0], r[1] or types.get(r[0], "service")) for r in count_rows if r[0] is not None}
    return callees | callers | ({CLIENT} if any(r[0] is None for r in count_rows) else set())


def busiest_nodes(
    count_rows: Sequence[tuple[Any, ...]], ends_of: dict[HopKey, HopEnds], max_nodes: int
) -> set[NodeKey] | None:
    """The max_nodes - 1 busiest nodes (requests served plus calls made: hubs outrank the leaves
    they call), or None when there are no more than max_nodes. Told from the counts alone, so a
    window of 50k services costs figures for the kept few only."""
    traffic: dict[NodeKey, int] = {}
    for row in count_rows:
        ends = ends_of[row[:7]]
        requests = int(row[7])
        traffic[ends.node] = traffic.get(ends.node, 0) + (requests if ends.served else 0)
        if ends.source is not None:
            traffic[ends.source] = traffic.get(ends.source, 0) + requests
    if len(traffic) <= max_nodes:
        return None
    return set(heapq.nsmallest(max_nodes - 1, traffic, key=lambda k: (k != CLIENT, -traffic[k], k)))


def _route(key: HopKey, ends: HopEnds, found: Accumulated) -> Route:
    """Where one hop key's figures go: the callee's served or init figures, and its edge (nowhere
    when the hop touches a folded node: folded nodes have no figures)."""
    role = key[4]
    is_async = bool(key[5]) or role == "link"
    keep = found.kept
    folded_node = keep is not None and ends.node not in keep
    folded_edge = folded_node or (keep is not None and ends.source is not None and ends.source not in keep)
    if folded_edge:
        found.folded_hops.add((ends.node, ends.source, is_async))
    if folded_node:
        return NOWHERE
    if role == "init":
        return [found.inits.setdefault(ends.node, FigureAccumulator())], None
    targets = []
    if ends.served:
        targets.append(found.served.setdefault(ends.node, FigureAccumulator()))
    if role == "inferred":
        found.inferred.add(ends.node)
    if ends.source is None or folded_edge:
        return targets, None
    hop = found.hops.setdefault((ends.source, ends.node), _Hop())
    hop.is_async = hop.is_async or is_async
    targets.append(hop.figures)
    return targets, hop


def accumulate(
    count_rows: Sequence[tuple[Any, ...]], latency_rows: Sequence[tuple[Any, ...]], max_nodes: int | None = None
) -> Accumulated:
    """Adds up HOP_COUNTS and HOP_LATENCY rows (the rollup's and the raw calls') per node and
    edge; past `max_nodes`, for the busiest max_nodes - 1 only (the rest are only named)."""
    types = preferred_types(r[:7] for r in count_rows)
    every_node: set[NodeKey] | None = None
    names = busiest_names(count_rows, PREFOLD_NAMES_PER_NODE * max_nodes) if max_nodes is not None else None
    if names is not None:
        every_node = node_keys(count_rows, types)
        count_rows = [r for r in count_rows if r[2] in names or r[0] in names]
        latency_rows = [r for r in latency_rows if r[2] in names or r[0] in names]
    ends_of = {key: hop_ends(key, types) for key in {r[:7] for r in count_rows}}
    kept = busiest_nodes(count_rows, ends_of, max_nodes) if max_nodes is not None else None
    if every_node is not None and kept is None:
        kept = {key for ends in ends_of.values() for key in (ends.node, ends.source) if key is not None}
    found = Accumulated(kept=kept, every_node=every_node)
    routes: dict[HopKey, Route] = {}

    def route_of(key: HopKey) -> Route:
        route = routes.get(key)
        if route is None:
            route = routes[key] = _route(key, ends_of.get(key) or hop_ends(key, types), found)
        return route

    for row in count_rows:
        for target in route_of(row[:7])[0]:
            target.add_counts(*row[7:13])
    for row in latency_rows:
        targets, hop = route_of(row[:7])
        if not targets and hop is None:
            continue  # a folded node's: no figures
        kind, bucket, count, init_ns, waited_ns, low_ns, high_ns = row[7:14]
        if kind == 0:
            for target in targets:
                target.add_bucket(bucket, count, init_ns, waited_ns, low_ns, high_ns)
        elif hop is not None:
            hop.dwell.add_bucket(bucket, count, 0, 0, low_ns, high_ns)
    found.inferred -= {(r[2], r[3]) for r in count_rows if r[4] == "entry"}
    return found


def build_graph(reader: SpanReader, query: MapQuery) -> MapGraph:
    """The map for the query: node and edge attributes hold Figures and extra statistics."""
    hops = reader.hop_rows(query.window, query.expr, MAX_GROUPS)
    found = accumulate(hops.counts, hops.latency, query.max_nodes)
    graph: MapGraph = nx.DiGraph()
    for key, figures in found.served.items():
        init = found.inits.get(key)
        cold = {
            "inits": init.requests if init else 0,
            "init_p50_ms": init.percentile_ms(0.5) if init else None,
            "init_p99_ms": init.percentile_ms(0.99) if init else None,
        }
        graph.add_node(key, figures=figures.figures(), cold=cold, inferred=key in found.inferred)
    for (source, target), hop in found.hops.items():
        for key in (source, target):
            if key not in graph:
                graph.add_node(key, figures=None, cold=None, inferred=False)
        dwell = [hop.dwell.percentile_ms(q) for q in (0.5, 0.9, 0.99)]
        graph.add_edge(source, target, figures=hop.figures.figures(), is_async=hop.is_async, dwell=dwell)
    sources = reader.throttle_sources(query.window, query.expr, MAX_GROUPS)
    graph.graph.update(
        window=query.window,
        truncated=hops.truncated,
        throttle_sources=[{"node": (s.name, s.node_type or "service"), "traces": s.traces} for s in sources],
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
    graph.add_node(target, figures=None, cold=None, members=heapq.nsmallest(MAX_FOLDED_NAMES, folded))
    for node, source, is_async in sorted(found.folded_hops, key=lambda hop: not hop[2]):
        if source is None:
            continue
        a = source if source in kept else target
        b = node if node in kept else target
        if a != b and not graph.has_edge(a, b):
            graph.add_edge(a, b, figures=None, is_async=is_async, dwell=[None] * 3, folded=True)
    graph.graph["folded"] = len(folded)
    return graph


def _node_json(graph: MapGraph, key: NodeKey, window_s: float) -> dict[str, Any]:
    data = graph.nodes[key]
    figures: Figures | None = data.get("figures")
    cold = data.get("cold")
    if cold is not None and figures is not None:
        cold = {**cold, "p99_share": figures.p99_cold_share}
    body: dict[str, Any] = {
        "id": node_id(key),
        "name": key[0],
        "type": key[1],
        "depth": data.get("depth", 0),
        "figures": figures.as_json(window_s) if figures is not None else None,
        "cold_start": cold,
        "health": figures.health if figures is not None else "ok",
        "inferred": bool(data.get("inferred", False)),
    }
    if "members" in data:
        body["members"] = [{"name": n, "type": t} for n, t in data["members"]]
    return body


def map_json(graph: MapGraph) -> dict[str, Any]:
    """The API's JSON view of a map graph."""
    window: TimeWindow = graph.graph["window"]
    window_s = (window.end_ns - window.start_ns) / 1e9
    _annotate_depth(graph)
    nodes = [_node_json(graph, key, window_s) for key in sorted(graph.nodes, key=lambda k: (k[1], k[0]))]
    edges = []
    for caller, callee, data in sorted(graph.edges(data=True), key=lambda e: (e[0], e[1])):
        figures: Figures | None = data["figures"]
        p50, p90, p99 = data["dwell"]
        edges.append(
            {
                "id": f"{node_id(caller)}-{node_id(callee)}",
                "source": node_id(caller),
                "target": node_id(callee),
                "async": data["is_async"],
                "figures": figures.as_json(window_s) if figures is not None else None,
                "event_age": {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99} if p50 is not None else None,
            }
        )
    sources = [
        {"node": node_id(tuple(s["node"])), "name": s["node"][0], "type": s["node"][1], "traces": s["traces"]}
        for s in graph.graph["throttle_sources"]
    ]
    return {
        "start_ns": window.start_ns,
        "end_ns": window.end_ns,
        "nodes": nodes,
        "edges": edges,
        "throttle_sources": sources,
        "folded_nodes": graph.graph.get("folded", 0),
        "truncated": graph.graph.get("truncated", False),
    }


def _annotate_depth(graph: MapGraph) -> None:
    """Call depth from the entry points (longest path over a DAG view), for left-to-right layout."""
    dag: MapGraph = nx.DiGraph(graph)
    dag.remove_edges_from(list(nx.selfloop_edges(dag)))
    while not nx.is_directed_acyclic_graph(dag):
        cycle = nx.find_cycle(dag)
        dag.remove_edge(*cycle[-1][:2])
    for key in nx.topological_sort(dag):
        preds = [graph.nodes[p].get("depth", 0) + 1 for p in dag.predecessors(key)]
        graph.nodes[key]["depth"] = max(preds, default=0)


def service_map(reader: SpanReader, query: MapQuery) -> dict[str, Any]:
    """The map for a window (and filter) as JSON."""
    return map_json(build_graph(reader, query))
