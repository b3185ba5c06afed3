"""The service map: a networkx DiGraph built from SQL aggregates over ``calls``; JSON from it.

Nodes are (name, type): services typed by their origin (AWS::ApiGateway::Stage,
AWS::Lambda, AWS::Lambda::Function, AWS::StepFunctions::StateMachine, or plain ``service``),
inferred nodes for what is called but not instrumented (typed by the target: DynamoDB table,
S3 bucket, SQS queue, ...), and ``client`` for requests from outside. Node ids are stable
hashes of (name, type). Past ``max_nodes`` the quietest nodes fold into one ``(N more)`` node
and the response says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import networkx as nx

from collector.query import filter_ast as ast
from collector.query import map_sql
from collector.query.figures import FigureAccumulator, Figures
from collector.query.filter_sql import compile_trace_predicate
from collector.query.search import ROOTS_CTE, span_window
from collector.storage.protocols import Statement, StatementReader, TimeWindow
from collector.storage.rollup_sql import MINUTE_NS

CLIENT: Final = ("client", "client")
FOLDED_TYPE: Final = "folded"
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


def picked_statement(template: str, query: MapQuery, *extra: Any) -> Statement:
    """A map_sql statement for the query's window and filter; `extra` binds what follows."""
    params: list[Any] = [query.window.start_ns, query.window.end_ns]
    filter_text = ""
    if query.expr is not None:
        predicate = compile_trace_predicate(query.expr, span_window(query.window))
        filter_text = map_sql.FILTER_TRACES.format(predicate=predicate.text)
        params += predicate.params
    text = template.replace("{roots}", ROOTS_CTE).replace("{filter}", filter_text)
    # roots' own window parameters come first: the CTE is the first placeholder user.
    return Statement(text, (query.window.start_ns, query.window.end_ns, *params, *extra))


@dataclass
class _Hop:
    figures: FigureAccumulator = field(default_factory=FigureAccumulator)
    dwell: FigureAccumulator = field(default_factory=FigureAccumulator)
    is_async: bool = False


HopKey = tuple[Any, ...]  # caller, caller_type, callee, callee_type, role, async, consumed
Route = tuple[list[FigureAccumulator], _Hop | None]


@dataclass
class Accumulated:
    """Figures per served node, init durations per node, and hops per edge."""

    served: dict[NodeKey, FigureAccumulator] = field(default_factory=dict)
    inits: dict[NodeKey, FigureAccumulator] = field(default_factory=dict)
    hops: dict[tuple[NodeKey, NodeKey], _Hop] = field(default_factory=dict)
    inferred: set[NodeKey] = field(default_factory=set)


def preferred_types(keys: Iterable[HopKey]) -> dict[str, str]:
    """Each service's node type: its entries' origin, the function's own view over AWS::Lambda."""
    seen: dict[str, set[str]] = {}
    for key in keys:
        if key[4] == "entry" and key[3] is not None:
            seen.setdefault(key[2], set()).add(key[3])
    return {name: sorted(types, key=lambda t: (t == "AWS::Lambda", t))[0] for name, types in seen.items()}


def _route(key: HopKey, types: dict[str, str], found: Accumulated) -> Route:
    """Where one hop key's figures go: the callee's served or init figures, and its edge."""
    caller, caller_type, callee, callee_type, role, is_async, consumed = key
    node = (callee, callee_type or types.get(callee, "service"))
    if role == "init":
        return [found.inits.setdefault(node, FigureAccumulator())], None
    targets = []
    if role in ("entry", "inferred"):
        targets.append(found.served.setdefault(node, FigureAccumulator()))
    if role == "inferred":
        found.inferred.add(node)
    if consumed:
        return targets, None  # a consumer's own trace root: its caller is the queue (a link row)
    source = CLIENT if caller is None else (caller, caller_type or types.get(caller, "service"))
    hop = found.hops.setdefault((source, node), _Hop())
    hop.is_async = hop.is_async or bool(is_async) or role == "link"
    targets.append(hop.figures)
    return targets, hop


def accumulate(count_rows: Sequence[tuple[Any, ...]], latency_rows: Sequence[tuple[Any, ...]]) -> Accumulated:
    """Adds up HOP_COUNTS and HOP_LATENCY rows (the rollup's and the raw calls') per node and edge."""
    types = preferred_types(r[:7] for r in count_rows)
    found = Accumulated()
    routes: dict[HopKey, Route] = {}
    for row in count_rows:
        key = row[:7]
        route = routes.get(key) or routes.setdefault(key, _route(key, types, found))
        for target in route[0]:
            target.add_counts(*row[7:13])
    for row in latency_rows:
        key = row[:7]
        route = routes.get(key) or routes.setdefault(key, _route(key, types, found))
        kind, bucket, count, init_ns, waited_ns, low_ns, high_ns = row[7:14]
        if kind == 0:
            for target in route[0]:
                target.add_bucket(bucket, count, init_ns, waited_ns, low_ns, high_ns)
        elif route[1] is not None:
            route[1].dwell.add_bucket(bucket, count, 0, 0, low_ns, high_ns)
    found.inferred -= {(r[2], r[3]) for r in count_rows if r[4] == "entry"}
    return found


ROLLED_UNTIL: Final = Statement("SELECT max(rolled_until) FROM rollup_state")


def rolled_minutes(query: MapQuery, rolled_until_ns: int) -> tuple[int, int]:
    """[lo, hi): the window's whole minutes the rollup holds (empty when a filter needs every call)."""
    low = -(-query.window.start_ns // MINUTE_NS) * MINUTE_NS
    high = min(query.window.end_ns // MINUTE_NS * MINUTE_NS, rolled_until_ns)
    if query.expr is not None or high <= low:
        return query.window.start_ns, query.window.start_ns
    return low, high


def hops_statement(template: str, query: MapQuery, rolled_until_ns: int) -> Statement:
    """A HOP_* statement: rolled-up whole minutes, raw calls for the head and tail of the window."""
    low, high = rolled_minutes(query, rolled_until_ns)
    window = query.window
    raw_filter: tuple[Any, ...] = ()
    filter_text = ""
    if query.expr is not None:
        predicate = compile_trace_predicate(query.expr, span_window(window))
        filter_text = map_sql.FILTER_TRACES.format(predicate=predicate.text)
        raw_filter = predicate.params
    text = template.replace("{roots}", ROOTS_CTE).replace("{filter}", filter_text)
    params = (
        *(window.start_ns, window.end_ns),  # roots
        *(window.start_ns, low, *raw_filter),  # the head
        *(max(high, low), window.end_ns, *raw_filter),  # the tail
        *(low, high),  # the rollup
        MAX_GROUPS,
    )
    return Statement(text, params)


def build_graph(reader: StatementReader, query: MapQuery) -> MapGraph:
    """The map for the query: node and edge attributes hold Figures and extra statistics."""
    (rolled_until,) = reader.fetch(ROLLED_UNTIL)[0]
    count_rows = reader.fetch(hops_statement(map_sql.HOP_COUNTS, query, int(rolled_until or 0)))
    latency_rows = reader.fetch(hops_statement(map_sql.HOP_LATENCY, query, int(rolled_until or 0)))
    found = accumulate(count_rows, latency_rows)
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
    sources = reader.fetch(picked_statement(map_sql.THROTTLE_SOURCES, query, MAX_GROUPS))
    graph.graph.update(
        window=query.window,
        truncated=max(len(count_rows), len(latency_rows)) >= MAX_GROUPS,
        throttle_sources=[{"node": (r[0], r[1] or "service"), "traces": int(r[2])} for r in sources],
    )
    return fold_quiet_nodes(graph, query.max_nodes)


def _traffic(graph: MapGraph, key: NodeKey) -> int:
    """Requests a node served plus the calls it made: hubs outrank the leaves they call."""
    figures = graph.nodes[key].get("figures")
    served = int(figures.requests) if figures is not None else 0
    made = sum(int(graph.edges[e]["figures"].requests) for e in graph.out_edges(key))
    return served + made


def fold_quiet_nodes(graph: MapGraph, max_nodes: int) -> MapGraph:
    """Keep the busiest max_nodes - 1 nodes; the rest become one node (figures not mergeable)."""
    if graph.number_of_nodes() <= max_nodes:
        graph.graph["folded"] = 0
        return graph
    ranked = sorted(graph.nodes, key=lambda k: (k != CLIENT, -_traffic(graph, k), k))
    keep = set(ranked[: max_nodes - 1])
    folded = [k for k in graph.nodes if k not in keep]
    target: NodeKey = (f"({len(folded)} more)", FOLDED_TYPE)
    result: MapGraph = nx.DiGraph(graph.subgraph(keep))
    result.graph.update(graph.graph, folded=len(folded))
    result.add_node(target, figures=None, cold=None, members=sorted(folded))
    for caller, callee, data in graph.edges(data=True):
        if caller in keep and callee in keep:
            continue
        a = caller if caller in keep else target
        b = callee if callee in keep else target
        if a != b and not result.has_edge(a, b):
            result.add_edge(a, b, figures=None, is_async=data["is_async"], dwell=[None] * 3, folded=True)
    return result


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


def service_map(reader: StatementReader, query: MapQuery) -> dict[str, Any]:
    """The map for a window (and filter) as JSON."""
    return map_json(build_graph(reader, query))
