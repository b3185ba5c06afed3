"""The insight detector on maps made by hand: what opens an insight, what does not, where it
started, and when it closes."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from collector.insights.binomial import upper_tail
from collector.insights.detector import CALM_EVALUATIONS, MIN_BASELINE_REQUESTS, Detector
from collector.insights.insight import Insight
from collector.query.figure_view import Histogram, NodeFigures
from collector.query.map_view import MapEdge, MapNode, ServiceMap, node_id

SECOND = 10**9
# latency buckets: 10 ms, 100 ms, 1 s, 10 s wide
BUCKETS = ((0.0, 10.0), (10.0, 100.0), (100.0, 1000.0), (1000.0, 10000.0))


def figures(requests: int, faults: int = 0, throttles: int = 0, errors: int = 0, slow: int = 0) -> NodeFigures:
    """`slow` of the requests take 1-10 s, the rest 10-100 ms (the p99 follows)."""
    counts = (0, requests - slow, 0, slow)
    p99 = 5000.0 if slow > requests * 0.01 else 90.0
    errors = errors + throttles
    return NodeFigures(
        requests=requests,
        requests_per_s=requests / 60,
        stored_requests=requests,
        ok=requests - errors - faults,
        errors=errors,
        faults=faults,
        throttles=throttles,
        ok_rate=0.0,
        error_rate=0.0,
        fault_rate=0.0,
        throttle_rate=0.0,
        health="ok",
        p50_ms=50.0,
        p90_ms=90.0,
        p99_ms=p99,
        cold_starts=0,
        cold_start_rate=0.0,
        p99_cold_start_share=None,
        histogram=Histogram(tuple(b[0] for b in BUCKETS), tuple(b[1] for b in BUCKETS), counts),
    )


def node(name: str, kind: str, shown: NodeFigures | None) -> MapNode:
    return MapNode(node_id((name, kind)), name, kind, 0, shown, None, "ok", False, None)


CHAIN = (("api", "AWS::ApiGateway::Stage"), ("withdraw", "AWS::Lambda::Function"), ("ledger", "remote"))


def chain_map(per_node: dict[str, NodeFigures]) -> ServiceMap:
    """client -> api -> withdraw -> ledger, with `per_node` figures (others none)."""
    nodes = [node("client", "client", None)] + [node(n, t, per_node.get(n)) for n, t in CHAIN]
    edges = [MapEdge(f"{a.id}-{b.id}", a.id, b.id, False, None, None) for a, b in itertools.pairwise(nodes)]
    return ServiceMap(0, 1, tuple(nodes), tuple(edges), (), 0, False)


def steady(requests: int = 600, **failures: int) -> ServiceMap:
    return chain_map({name: figures(requests, **failures) for name, _ in CHAIN})


def twice(detector: Detector, group: str | None, current: ServiceMap, baseline: ServiceMap, at_s: int) -> list[Insight]:
    """Two evaluations in a row (an anomaly opens on the second): the second's insights."""
    detector.evaluate(group, current, baseline, (at_s - 1) * SECOND)
    return [change.insight for change in detector.evaluate(group, current, baseline, at_s * SECOND)]


def test_a_fault_downstream_opens_one_insight_rooted_where_it_started() -> None:
    detector = Detector()
    baseline = steady(6000, faults=6)  # 0.1% faults
    current = chain_map(
        {"api": figures(120, faults=30), "withdraw": figures(120, faults=30), "ledger": figures(120, faults=30)}
    )
    assert detector.evaluate(None, current, baseline, 99 * SECOND) == []  # once could be a blip
    (change,) = detector.evaluate(None, current, baseline, 100 * SECOND)
    insight = change.insight
    assert change.event == "opened"
    assert (insight.kind, insight.state, insight.root_cause.name) == ("fault", "open", "ledger")
    assert {n.name for n in insight.impacted} == {"api", "withdraw", "ledger"}
    assert insight.failures == 30 and insight.requests == 120 and insight.share == 0.25
    assert insight.p_value < 1e-10 and insight.start_ns == 99 * SECOND and insight.end_ns is None  # first seen
    assert insight.traces_filter == 'service(id(name: "ledger", type: "remote")) { fault }'


@pytest.mark.parametrize(
    "current",
    [
        steady(600, faults=1),  # the baseline's own rate, in a busy minute
        chain_map({"ledger": figures(3, faults=3)}),  # every request failed, but only three of them
        chain_map({"ledger": figures(20000, faults=60)}),  # significant, but 0.3% against 0.1%: no lift
    ],
    ids=["as-usual", "low-traffic", "tiny-drift"],
)
def test_what_opens_no_insight(current: ServiceMap) -> None:
    assert twice(Detector(), None, current, steady(6000, faults=6), 2) == []


def test_a_blip_seen_once_opens_nothing() -> None:
    detector, baseline = Detector(), steady(6000, faults=6)
    assert detector.evaluate(None, chain_map({"ledger": figures(120, faults=40)}), baseline, SECOND) == []
    assert detector.evaluate(None, steady(600), baseline, 2 * SECOND) == []
    assert detector.evaluate(None, chain_map({"ledger": figures(120, faults=40)}), baseline, 3 * SECOND) == []


def test_a_node_without_history_is_not_judged() -> None:
    baseline = steady(MIN_BASELINE_REQUESTS - 1)
    current = chain_map({"ledger": figures(100, faults=100)})
    assert twice(Detector(), None, current, baseline, 2) == []


def test_throttles_errors_and_latency_are_told_apart() -> None:
    current = chain_map(
        {"api": figures(200, throttles=40), "withdraw": figures(200, errors=50), "ledger": figures(200, slow=30)}
    )
    found = {(i.kind, i.root_cause.name) for i in twice(Detector(), "banking", current, steady(6000), 2)}
    assert found == {("throttle", "api"), ("error", "withdraw"), ("latency", "ledger")}


def test_an_insight_stays_one_while_it_lasts_and_closes_when_calm() -> None:
    detector = Detector()
    baseline, bad = steady(6000, faults=6), chain_map({"ledger": figures(120, faults=40)})
    opened = twice(detector, None, bad, baseline, 2)
    again = detector.evaluate(None, bad, baseline, 3 * SECOND)
    assert [(c.event, c.insight.id) for c in again] == [("updated", opened[0].id)]
    assert again[0].insight.start_ns == 1 * SECOND
    assert detector.open_since(None) == 1 * SECOND and detector.open_since("other") is None
    calm = steady(600)
    closed = []
    for tick in range(CALM_EVALUATIONS):
        closed = detector.evaluate(None, calm, baseline, (4 + tick) * SECOND)
    ended = [(c.event, c.insight.id, c.insight.state, c.insight.end_ns) for c in closed]
    assert ended == [("closed", opened[0].id, "closed", (3 + CALM_EVALUATIONS) * SECOND)]
    assert detector.open_since(None) is None


def test_a_detector_takes_up_the_insights_left_open() -> None:
    (opened,) = twice(Detector(), None, chain_map({"ledger": figures(120, faults=40)}), steady(6000), 2)
    later = Detector([opened])  # after a restart
    closed = []
    for tick in range(CALM_EVALUATIONS):
        closed = later.evaluate(None, steady(600), steady(6000), (3 + tick) * SECOND)
    assert [c.insight.id for c in closed] == [opened.id]


def test_steady_random_traffic_opens_nothing() -> None:
    """500 minutes of a node failing 2% of the time at random: no false alarm."""
    rng = random.Random(7)
    detector = Detector()
    for minute in range(500):
        requests = rng.randint(20, 400)
        faults = sum(rng.random() < 0.02 for _ in range(requests))
        current = chain_map({"ledger": figures(requests, faults=faults)})
        assert detector.evaluate(None, current, steady(12000, faults=240), minute * SECOND) == []


@pytest.mark.parametrize(("k", "n", "p"), [(0, 10, 0.1), (3, 10, 0.1), (10, 10, 0.5), (50, 1000, 0.03), (7, 7, 0.0)])
def test_the_binomial_tail_is_exact(k: int, n: int, p: float) -> None:
    exact = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
    assert upper_tail(k, n, p) == pytest.approx(exact, rel=1e-9, abs=1e-300)
