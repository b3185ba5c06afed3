"""The map as drawn: X-Ray's nodes as they are, or compact, a Lambda's two nodes as one.

X-Ray draws a function twice: the Lambda service's node (``AWS::Lambda``: the invocation as the
service saw it, throttles included) and the function's (``AWS::Lambda::Function``: the handler
running). The compact view draws one node for the pair, keeping both sets of figures: the ring
shows the service's (it sees every request, the throttled ones too), an inner ring the
function's. Edges into either go to the one node; the edge between them is gone; edges that
become the same pair are drawn once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from collector.query.map_view import MapEdge, MapNode

View = Literal["compact", "xray"]
SERVICE_TYPE: Final = "AWS::Lambda"
FUNCTION_TYPE: Final = "AWS::Lambda::Function"


@dataclass(frozen=True, slots=True)
class DrawnNode:
    """A node on the canvas: a map node, and the function node folded into it in the compact view."""

    node: MapNode
    function: MapNode | None = None

    @property
    def id(self) -> str:
        return self.node.id

    @property
    def member_ids(self) -> tuple[str, ...]:
        return (self.node.id,) if self.function is None else (self.node.id, self.function.id)


@dataclass(frozen=True, slots=True)
class DrawnEdge:
    """An edge on the canvas between drawn nodes; `edge` is the map's (its id and figures)."""

    edge: MapEdge
    source: str
    target: str


def drawn(nodes: Sequence[MapNode], edges: Sequence[MapEdge], view: View) -> tuple[list[DrawnNode], list[DrawnEdge]]:
    """The nodes and edges to draw for a view."""
    if view == "xray":
        return [DrawnNode(n) for n in nodes], [DrawnEdge(e, e.source, e.target) for e in edges]
    pairs = _lambda_pairs(nodes, edges)
    folded = {function.id: service.id for service, function in pairs.values()}
    functions = {service.id: function for service, function in pairs.values()}
    drawn_nodes = [DrawnNode(n, functions.get(n.id)) for n in nodes if n.id not in folded]
    seen: set[tuple[str, str]] = set()
    drawn_edges = []
    # Edges into the service node first: when two edges become one, the drawn one is the
    # caller's view of the invocation.
    for edge in sorted(edges, key=lambda e: e.target in folded):
        source, target = folded.get(edge.source, edge.source), folded.get(edge.target, edge.target)
        if source == target or (source, target) in seen:
            continue
        seen.add((source, target))
        drawn_edges.append(DrawnEdge(edge, source, target))
    return drawn_nodes, drawn_edges


def _lambda_pairs(nodes: Sequence[MapNode], edges: Sequence[MapEdge]) -> dict[str, tuple[MapNode, MapNode]]:
    """Name -> (service node, function node), for each function whose service node calls it."""
    by_id = {n.id: n for n in nodes}
    pairs = {}
    for edge in edges:
        service, function = by_id.get(edge.source), by_id.get(edge.target)
        if (
            service is not None
            and function is not None
            and service.type == SERVICE_TYPE
            and function.type == FUNCTION_TYPE
            and service.name == function.name
        ):
            pairs[service.name] = (service, function)
    return pairs
