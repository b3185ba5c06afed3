"""Two traces side by side: their span trees aligned, what only one has, and how durations differ.

Spans match when they sit at the same place in their trees: the same service and name under a
matching parent, the n-th such sibling (by start time) with the n-th. Roots (a trace's own and
its linked consumers') match the same way. Rows come in tree order, A's order first, a span B
alone has right after its matched or unmatched siblings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from collector.storage.protocols import StoredSpan

SpanKey = tuple[str, str, int]  # service, name, ordinal among siblings with that service and name


@dataclass(frozen=True, slots=True)
class ComparedSpan:
    span_id: str
    trace_id: str
    duration_ms: float
    error: bool
    fault: bool
    throttle: bool
    cold_start: bool


@dataclass(frozen=True, slots=True)
class ComparedRow:
    """One place in the aligned trees; `a` or `b` is None where only the other trace has a span."""

    depth: int
    service: str
    name: str
    a: ComparedSpan | None
    b: ComparedSpan | None
    delta_ms: float | None  # B's duration less A's

    @classmethod
    def of(cls, depth: int, key: SpanKey, a: StoredSpan | None, b: StoredSpan | None) -> ComparedRow:
        delta = None if a is None or b is None else round((b.duration_ns - a.duration_ns) / 1e6, 3)
        return cls(depth, key[0], key[1], _view(a) if a else None, _view(b) if b else None, delta)


@dataclass(frozen=True, slots=True)
class TraceComparison:
    a_trace_id: str
    b_trace_id: str
    a_duration_ms: float
    b_duration_ms: float
    rows: tuple[ComparedRow, ...]
    only_in_a: int
    only_in_b: int


ROOT = ""  # the parent key of roots (span ids are never empty)
_Expand = tuple[str | None, str | None, int]  # A's span, B's span (None: that trace has none), depth


class _Tree:
    def __init__(self, spans: Sequence[StoredSpan]) -> None:
        ids = {s.span_id for s in spans}
        self.children: dict[str, list[StoredSpan]] = defaultdict(list)
        for span in sorted(spans, key=lambda s: (s.start_ns, s.span_id)):
            parent = span.parent_span_id if span.parent_span_id in ids else None
            self.children[parent or ROOT].append(span)

    def keyed(self, parent: str | None) -> list[tuple[SpanKey, StoredSpan]]:
        if parent is None:
            return []
        seen: dict[tuple[str, str], int] = defaultdict(int)
        keyed = []
        for span in self.children.get(parent, []):
            ordinal = seen[(span.service, span.name)]
            seen[(span.service, span.name)] += 1
            keyed.append(((span.service, span.name, ordinal), span))
        return keyed


def _view(span: StoredSpan) -> ComparedSpan:
    return ComparedSpan(
        span.span_id, span.trace_id, span.duration_ns / 1e6, span.error, span.fault, span.throttle, span.cold_start
    )


def _duration_ms(spans: Sequence[StoredSpan]) -> float:
    if not spans:
        return 0.0
    return (max(s.start_ns + s.duration_ns for s in spans) - min(s.start_ns for s in spans)) / 1e6


def _level(trees: tuple[_Tree, _Tree], at: _Expand) -> list[tuple[ComparedRow, _Expand]]:
    """The rows under one aligned pair of spans, each with what expands under it."""
    a_parent, b_parent, depth = at
    right = dict(trees[1].keyed(b_parent))
    level: list[tuple[ComparedRow, _Expand]] = []
    for key, span in trees[0].keyed(a_parent):
        other = right.pop(key, None)
        level.append(
            (ComparedRow.of(depth, key, span, other), (span.span_id, other.span_id if other else None, depth + 1))
        )
    for key, other in right.items():
        level.append((ComparedRow.of(depth, key, None, other), (None, other.span_id, depth + 1)))
    return level


def compare_traces(a: Sequence[StoredSpan], b: Sequence[StoredSpan]) -> TraceComparison:
    """The aligned rows of two traces' spans (each with its linked consumers', if given). Walked
    with a stack, not recursion: a trace may nest as deep as it likes."""
    trees = (_Tree(a), _Tree(b))
    rows: list[ComparedRow] = []
    stack: list[ComparedRow | _Expand] = [(ROOT, ROOT, 0)]
    while stack:
        task = stack.pop()
        if isinstance(task, ComparedRow):
            rows.append(task)
            continue
        for row, under in reversed(_level(trees, task)):  # popped back in order: a row, then what is under it
            stack.append(under)
            stack.append(row)
    return TraceComparison(
        a[0].trace_id if a else "",
        b[0].trace_id if b else "",
        _duration_ms(a),
        _duration_ms(b),
        tuple(rows),
        sum(1 for r in rows if r.b is None),
        sum(1 for r in rows if r.a is None),
    )
