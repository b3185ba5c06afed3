"""The service map as readers see it: typed nodes, edges and throttle sources, from the graph.

collector.query.service_map builds a networkx graph of figures per node and edge; this module
turns it into the frozen read model the API documents and the UI draws. Node ids are stable
hashes of (name, type), so a node keeps its id in every response.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, TypeAlias

import networkx as nx

from collector.query.figure_view import NodeFigures
from collector.query.figures import FigureAccumulator, Figures, Health
from collector.storage.protocols import TimeWindow

NodeKey = tuple[str, str]  # (name, type)
MapGraph: TypeAlias = "nx.DiGraph[NodeKey]"  # networkx is generic only in its stubs


def node_id(key: NodeKey) -> str:
    """A stable id for a node: the same name and type give the same id in every response."""
    return hashlib.blake2b(f"{key[1]}\x00{key[0]}".encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class ColdStarts:
    """A node's initializations: how many, how long, and their share of the slowest 1%."""

    inits: int
    init_p50_ms: float | None
    init_p99_ms: float | None
    p99_share: float | None


@dataclass(frozen=True, slots=True)
class NodeName:
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class MapNode:
    """A service, an inferred downstream, the client, or ``(N more)`` folded nodes (``members``
    names some of them). ``depth``: call depth from the entry points, for a left-to-right layout."""

    id: str
    name: str
    type: str
    depth: int
    figures: NodeFigures | None
    cold_start: ColdStarts | None
    health: Health
    inferred: bool
    members: tuple[NodeName, ...] | None


@dataclass(frozen=True, slots=True)
class EventAge:
    """How long messages waited on an asynchronous edge before their consumer took them."""

    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True, slots=True)
class MapEdge:
    id: str
    source: str
    target: str
    is_async: bool
    figures: NodeFigures | None
    event_age: EventAge | None


@dataclass(frozen=True, slots=True)
class ThrottleSourceNode:
    """A node where throttled traces met their first 429, and how many traces did."""

    node: str
    name: str
    type: str
    traces: int


@dataclass(frozen=True, slots=True)
class ServiceMap:
    """The map of a window. ``folded_nodes``: nodes beyond the node limit, folded into one;
    ``truncated``: a cardinality guard cut the figures short."""

    start_ns: int
    end_ns: int
    nodes: tuple[MapNode, ...]
    edges: tuple[MapEdge, ...]
    throttle_sources: tuple[ThrottleSourceNode, ...]
    folded_nodes: int
    truncated: bool


def _cold_starts(data: dict[str, Any], figures: Figures | None) -> ColdStarts | None:
    if figures is None:
        return None
    init: FigureAccumulator | None = data.get("init")
    p50_ms, p99_ms = init.percentiles_ms(0.5, 0.99) if init else (None, None)
    return ColdStarts(init.requests if init else 0, p50_ms, p99_ms, figures.p99_cold_share)


def _node(graph: MapGraph, key: NodeKey, window_s: float) -> MapNode:
    data = graph.nodes[key]
    figures: Figures | None = data.get("figures")
    members = data.get("members")
    return MapNode(
        id=node_id(key),
        name=key[0],
        type=key[1],
        depth=data.get("depth", 0),
        figures=NodeFigures.of(figures, window_s) if figures is not None else None,
        cold_start=_cold_starts(data, figures),
        health=figures.health if figures is not None else "ok",
        inferred=bool(data.get("inferred", False)),
        members=tuple(NodeName(n, t) for n, t in members) if members is not None else None,
    )


def _edge(caller: NodeKey, callee: NodeKey, data: dict[str, Any], window_s: float) -> MapEdge:
    figures: Figures | None = data["figures"]
    p50, p90, p99 = data["dwell"]
    return MapEdge(
        id=f"{node_id(caller)}-{node_id(callee)}",
        source=node_id(caller),
        target=node_id(callee),
        is_async=data["is_async"],
        figures=NodeFigures.of(figures, window_s) if figures is not None else None,
        event_age=EventAge(p50, p90, p99) if p50 is not None else None,
    )


def map_view(graph: MapGraph) -> ServiceMap:
    """The read model of a map graph: nodes by type and name, edges by their ends."""
    window: TimeWindow = graph.graph["window"]
    window_s = (window.end_ns - window.start_ns) / 1e9
    _annotate_depth(graph)
    nodes = tuple(_node(graph, key, window_s) for key in sorted(graph.nodes, key=lambda k: (k[1], k[0])))
    ordered = sorted(graph.edges(data=True), key=lambda e: (e[0], e[1]))
    edges = tuple(_edge(caller, callee, data, window_s) for caller, callee, data in ordered)
    sources = tuple(
        ThrottleSourceNode(node_id(node), node[0], node[1], traces) for node, traces in graph.graph["throttle_sources"]
    )
    return ServiceMap(
        start_ns=window.start_ns,
        end_ns=window.end_ns,
        nodes=nodes,
        edges=edges,
        throttle_sources=sources,
        folded_nodes=graph.graph.get("folded", 0),
        truncated=graph.graph.get("truncated", False),
    )


def _annotate_depth(graph: MapGraph) -> None:
    """Call depth from the entry points (longest path over a DAG view), for left-to-right layout.

    Cycles are cut walking nodes and edges in sorted order: which edge of a cycle goes depends
    on the walk, and the hops come from SQL groups in no set order, so the same map read twice
    could otherwise be laid out two ways."""
    dag: MapGraph = nx.DiGraph()
    dag.add_nodes_from(sorted(graph.nodes))
    dag.add_edges_from(sorted((caller, callee) for caller, callee in graph.edges if caller != callee))
    while not nx.is_directed_acyclic_graph(dag):
        cycle = nx.find_cycle(dag)
        dag.remove_edge(*cycle[-1][:2])
    for key in nx.topological_sort(dag):
        preds = [graph.nodes[p].get("depth", 0) + 1 for p in dag.predecessors(key)]
        graph.nodes[key]["depth"] = max(preds, default=0)
