"""Deciding when a node's failures or latency depart from their baseline, and where they started.

Each evaluation gives, for one scope (all traces, or a group), the service map of a recent window
and of a baseline before it. For every node and kind (fault, throttle, error, latency) it asks
one question: how likely are this many failures in this many requests, if each failed as often
as in the baseline? A binomial upper tail (binomial.py). For latency, a failure is a request
slower than the baseline's p99, which 1% of requests are by definition.

Robust to low traffic by construction: a handful of requests can never reach the open threshold
(ALPHA_OPEN with at least MIN_FAILURES failures), a node without MIN_BASELINE_REQUESTS of
history is not judged, the baseline share is smoothed (half a failure in one request), and the
share must also be LIFT times the baseline's and SLACK above it, so a busy node's tiny,
significant drift does not count, and an anomaly must be seen OPEN_EVALUATIONS evaluations in a
row (a burst of slow requests while the machine was busy once opened latency insights on a quiet
demo: bench/insights.py). While an insight is open its baseline stays the one before it began;
it closes after CALM_EVALUATIONS evaluations in a row without the anomaly.

The root cause of anomalous nodes of one kind is each one with no anomalous node downstream of
it (a fault in the ledger shows at withdraw and at the API in front of it: the ledger is where it
started); the others upstream of it are the impact.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

import networkx as nx

from collector.insights.binomial import upper_tail
from collector.insights.insight import KINDS, Insight, InsightKind, InsightNode
from collector.query.figure_view import NodeFigures
from collector.query.map_view import MapNode, ServiceMap

ALPHA_OPEN: Final = 1e-4
ALPHA_CALM: Final = 1e-2
MIN_FAILURES: Final = 5
MIN_BASELINE_REQUESTS: Final = 30
LIFT: Final = 2.0
SLACK: Final = 0.02
LATENCY_SHARE: Final = 0.01  # requests slower than the baseline's p99
CALM_EVALUATIONS: Final = 2
OPEN_EVALUATIONS: Final = 2
SKIPPED_TYPES: Final = frozenset({"client", "folded"})


@dataclass(frozen=True, slots=True)
class Reading:
    """One node and kind in one evaluation."""

    node: MapNode
    kind: InsightKind
    requests: int
    failures: int
    baseline_share: float
    p_value: float

    @property
    def share(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def anomalous(self) -> bool:
        return (
            self.failures >= MIN_FAILURES
            and self.p_value < ALPHA_OPEN
            and self.share >= LIFT * self.baseline_share
            and self.share >= self.baseline_share + SLACK
        )

    @property
    def calm(self) -> bool:
        return self.p_value >= ALPHA_CALM or self.share < LIFT * self.baseline_share


def failures(figures: NodeFigures, kind: InsightKind, slow_above_ms: float | None) -> int:
    if kind == "fault":
        return figures.faults
    if kind == "throttle":
        return figures.throttles
    if kind == "error":
        return max(0, figures.errors - figures.throttles)
    if slow_above_ms is None:
        return 0
    # buckets wholly above the threshold: the one it falls in is not counted (a conservative count)
    histogram = figures.histogram
    first = bisect.bisect_left(histogram.low_ms, slow_above_ms)
    return sum(histogram.count[first:])


def baseline_share(figures: NodeFigures, kind: InsightKind) -> float:
    """The smoothed share of failures in the baseline (half a failure in one more request)."""
    if kind == "latency":
        return LATENCY_SHARE
    return (failures(figures, kind, None) + 0.5) / (figures.requests + 1)


def readings(current: ServiceMap, baseline: ServiceMap) -> list[Reading]:
    """Every node and kind the two windows can judge."""
    before = {n.id: n for n in baseline.nodes if n.figures is not None}
    found = []
    for node in current.nodes:
        past = before.get(node.id)
        if node.type in SKIPPED_TYPES or node.figures is None or past is None or past.figures is None:
            continue
        if past.figures.requests < MIN_BASELINE_REQUESTS:
            continue
        for kind in KINDS:
            expected = baseline_share(past.figures, kind)
            failed = failures(node.figures, kind, past.figures.p99_ms)
            p_value = upper_tail(failed, node.figures.requests, expected)
            found.append(Reading(node, kind, node.figures.requests, failed, expected, p_value))
    return found


def root_causes(anomalous: Sequence[Reading], current: ServiceMap) -> dict[str, list[Reading]]:
    """Root cause node id -> the anomalous readings it explains (itself and what is upstream)."""
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_nodes_from(n.id for n in current.nodes)
    graph.add_edges_from((e.source, e.target) for e in current.edges)
    ids = {r.node.id for r in anomalous}
    roots = [r for r in anomalous if not (nx.descendants(graph, r.node.id) & ids)] or list(anomalous[:1])
    explained: dict[str, list[Reading]] = {}
    for root in roots:
        upstream = nx.ancestors(graph, root.node.id) | {root.node.id}
        explained[root.node.id] = [root, *(r for r in anomalous if r.node.id in upstream and r is not root)]
    return explained


def _node(node: MapNode) -> InsightNode:
    return InsightNode(node.id, node.name, node.type)


def _traces_filter(node: MapNode, kind: InsightKind, slow_above_ms: float | None) -> str:
    target = f"service(id(name: {_quoted(node.name)}, type: {_quoted(node.type)}))"
    if kind == "latency":
        return f"{target} {{ responsetime > {(slow_above_ms or 0) / 1000:.4f} }}"
    return f"{target} {{ {kind} }}"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


Key = tuple[str | None, InsightKind, str]  # scope, kind, root cause node id


@dataclass(frozen=True, slots=True)
class Change:
    event: Literal["opened", "updated", "closed"]
    insight: Insight


class Detector:
    """The open insights of every scope, moved on by each evaluation. An anomaly opens an
    insight once seen OPEN_EVALUATIONS evaluations in a row (a blip opens none), dated from the
    first; it closes after CALM_EVALUATIONS calm ones."""

    def __init__(self, open_insights: Iterable[Insight] = ()) -> None:
        self._open: dict[Key, Insight] = {
            (i.group, i.kind, i.root_cause.id): i for i in open_insights if i.state == "open"
        }
        self._calm: dict[Key, int] = {}
        self._streak: dict[Key, tuple[int, int]] = {}  # not open yet: (evaluations in a row, first seen ns)

    def keep(self, insight: Insight) -> None:
        """An open insight as its caller completed it (its trace count): it closes with it."""
        key = (insight.group, insight.kind, insight.root_cause.id)
        if insight.state == "open" and key in self._open:
            self._open[key] = insight

    def open_groups(self) -> set[str | None]:
        return {group for group, _, _ in self._open}

    def open_since(self, group: str | None) -> int | None:
        """When the scope's oldest open insight began: its baseline must end there."""
        starts = [i.start_ns for (g, _, _), i in self._open.items() if g == group]
        return min(starts) if starts else None

    def evaluate(self, group: str | None, current: ServiceMap, baseline: ServiceMap, now_ns: int) -> list[Change]:
        """The insights this evaluation opened, changed or closed."""
        found = readings(current, baseline)
        p99 = {n.id: n.figures.p99_ms for n in baseline.nodes if n.figures is not None}
        changes: list[Change] = []
        seen: set[Key] = set()
        for kind in KINDS:
            anomalous = [r for r in found if r.kind == kind and r.anomalous]
            if not anomalous:
                continue
            for root_id, explained in root_causes(anomalous, current).items():
                key = (group, kind, root_id)
                seen.add(key)
                self._calm.pop(key, None)
                opened = key not in self._open
                if opened:
                    count, first_ns = self._streak.get(key, (0, now_ns))
                    self._streak[key] = (count + 1, first_ns)
                    if count + 1 < OPEN_EVALUATIONS:
                        continue
                    del self._streak[key]
                else:
                    first_ns = self._open[key].start_ns
                insight = self._insight(key, explained, p99.get(root_id), first_ns, now_ns)
                changes.append(Change("opened" if opened else "updated", insight))
        for key in [k for k in self._streak if k[0] == group and k not in seen]:
            del self._streak[key]  # a blip: gone before it was seen again
        return changes + self._closed(group, found, seen, now_ns)

    def _closed(self, group: str | None, found: Sequence[Reading], seen: set[Key], now_ns: int) -> list[Change]:
        by_node = {(r.kind, r.node.id): r for r in found}
        closed = []
        for key, insight in list(self._open.items()):
            if key[0] != group or key in seen:
                continue
            reading = by_node.get((insight.kind, insight.root_cause.id))
            if reading is not None and not reading.calm:
                continue  # still elevated, if no longer past the open threshold: stays open
            self._calm[key] = self._calm.get(key, 0) + 1
            if self._calm[key] >= CALM_EVALUATIONS:
                closed.append(Change("closed", replace(insight, state="closed", end_ns=now_ns, updated_ns=now_ns)))
                del self._open[key]
                del self._calm[key]
        return closed

    def _insight(
        self, key: Key, explained: Sequence[Reading], slow_above_ms: float | None, start_ns: int, now_ns: int
    ) -> Insight:
        root = explained[0]
        known = self._open.get(key)
        insight = Insight(
            id=known.id if known else Insight.key(key[0], key[1], key[2], start_ns),
            group=key[0],
            kind=key[1],
            state="open",
            start_ns=start_ns,
            end_ns=None,
            root_cause=_node(root.node),
            impacted=tuple(_node(r.node) for r in explained),
            requests=root.requests,
            failures=root.failures,
            share=round(root.share, 6),
            baseline_share=round(root.baseline_share, 6),
            p_value=root.p_value,
            traces_filter=_traces_filter(root.node, root.kind, slow_above_ms),
            updated_ns=now_ns,
        )
        self._open[key] = insight
        return insight
