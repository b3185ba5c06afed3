"""Focus mode: the nodes and edges on some path through one node (everything else is drawn faint).

A node is on a path through the focus when it calls the focus, directly or not, or the focus
calls it; an edge is on one when it leads to the focus from upstream or away from it downstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx

from ui.web.compact_map import DrawnEdge
from ui.web.map_layout import Graph


@dataclass(frozen=True, slots=True)
class Focus:
    nodes: frozenset[str]
    edges: frozenset[str]


def focus_on(node: str, edges: Sequence[DrawnEdge]) -> Focus:
    """What stays bright when `node` is focused (just the node when it has no edges)."""
    graph: Graph = nx.DiGraph()
    graph.add_node(node)
    graph.add_edges_from((e.source, e.target) for e in edges)
    upstream = nx.ancestors(graph, node) | {node}
    downstream = nx.descendants(graph, node) | {node}
    on_path = frozenset(
        e.edge.id
        for e in edges
        if (e.source in upstream and e.target in upstream) or (e.source in downstream and e.target in downstream)
    )
    return Focus(frozenset(upstream | downstream), on_path)
