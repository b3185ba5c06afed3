"""The map's layout depends on the map, not on the order its hops were read in."""

from __future__ import annotations

import random

import networkx as nx

from collector.query.map_view import MapGraph, NodeKey, map_view
from collector.storage.protocols import TimeWindow

# A gateway calling a function, which writes to a queue whose consumer calls the function
# back and a table the function also reads: two cycles through the function.
EDGES: list[tuple[NodeKey, NodeKey]] = [
    (("client", "client"), ("api", "AWS::ApiGateway::Stage")),
    (("api", "AWS::ApiGateway::Stage"), ("fn", "AWS::Lambda::Function")),
    (("fn", "AWS::Lambda::Function"), ("queue", "AWS::SQS::Queue")),
    (("queue", "AWS::SQS::Queue"), ("consumer", "AWS::Lambda::Function")),
    (("consumer", "AWS::Lambda::Function"), ("fn", "AWS::Lambda::Function")),
    (("consumer", "AWS::Lambda::Function"), ("table", "AWS::DynamoDB::Table")),
    (("table", "AWS::DynamoDB::Table"), ("fn", "AWS::Lambda::Function")),
    (("fn", "AWS::Lambda::Function"), ("fn", "AWS::Lambda::Function")),
]


def graph_of(edges: list[tuple[NodeKey, NodeKey]]) -> MapGraph:
    graph: MapGraph = nx.DiGraph()
    for source, target in edges:
        for key in (source, target):
            graph.add_node(key, figures=None, inferred=False)
        graph.add_edge(source, target, figures=None, is_async=False, dwell=[None] * 3)
    graph.graph.update(window=TimeWindow(0, 60 * 10**9), throttle_sources=[])
    return graph


def depths(edges: list[tuple[NodeKey, NodeKey]]) -> dict[str, int]:
    return {node.name: node.depth for node in map_view(graph_of(edges)).nodes}


def test_a_map_with_cycles_is_laid_out_the_same_whatever_order_its_hops_came_in() -> None:
    expected = depths(EDGES)
    rng = random.Random(7)
    for _ in range(30):
        shuffled = EDGES.copy()
        rng.shuffle(shuffled)
        assert depths(shuffled) == expected
    assert expected["client"] == 0 and expected["api"] == 1
    assert len(set(expected.values())) > 3  # a layered layout, not everything at one depth
