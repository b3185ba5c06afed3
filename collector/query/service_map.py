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
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import networkx as nx

from collector.query import filter_ast as ast
from collector.query import map_sql
from collector.query.figures import FIGURE_COLUMNS, Figures, figures_from, quantiles_ms
from collector.query.filter_sql import compile_trace_predicate
from collector.query.search import ROOTS_CTE, span_window
from collector.storage.protocols import Statement, StatementReader, TimeWindow

CLIENT: Final = ("client", "client")
FOLDED_TYPE: Final = "folded"
MAX_GROUPS: Final = 5000  # SQL rows per aggregate: a guard against unbounded cardinality
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


def build_graph(reader: StatementReader, query: MapQuery) -> MapGraph:
    """The map for the query: node and edge attributes hold Figures and extra statistics."""
    graph: MapGraph = nx.DiGraph()
    node_rows = reader.fetch(picked_statement(map_sql.NODES, query, MAX_GROUPS))
    edge_rows = reader.fetch(picked_statement(map_sql.EDGES, query, MAX_GROUPS))
    truncated = len(node_rows) >= MAX_GROUPS or len(edge_rows) >= MAX_GROUPS
    for row in node_rows:
        init_q, inits, share, inferred = row[2 + FIGURE_COLUMNS :]
        init_p50, init_p99 = quantiles_ms(init_q, 2)
        graph.add_node(
            (row[0], row[1]),
            figures=figures_from(row[2:]),
            cold={"init_p50_ms": init_p50, "init_p99_ms": init_p99, "inits": int(inits or 0), "p99_share": share},
            inferred=bool(inferred),
        )
    for row in edge_rows:
        caller = (row[0], row[1]) if row[0] is not None else CLIENT
        callee = (row[2], row[3])
        if caller == CLIENT and CLIENT not in graph:
            graph.add_node(CLIENT, figures=None, cold=None)
        for key in (caller, callee):
            if key not in graph:
                graph.add_node(key, figures=None, cold=None)
        dwell = quantiles_ms(row[5 + FIGURE_COLUMNS], 3)
        graph.add_edge(caller, callee, figures=figures_from(row[5:]), is_async=bool(row[4]), dwell=dwell)
    sources = reader.fetch(picked_statement(map_sql.THROTTLE_SOURCES, query))
    graph.graph.update(
        window=query.window,
        truncated=truncated,
        throttle_sources=[{"node": (r[0], r[1]), "traces": int(r[2])} for r in sources],
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
    body: dict[str, Any] = {
        "id": node_id(key),
        "name": key[0],
        "type": key[1],
        "depth": data.get("depth", 0),
        "figures": figures.as_json(window_s) if figures is not None else None,
        "cold_start": data.get("cold"),
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
