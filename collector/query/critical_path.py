"""The critical path of a trace: the chain of spans that determined its end-to-end duration.

A pure function over a trace's stored spans. Walking back from the trace's last
moment, each span hands the time to the child that finished last before the current point,
then to the one that finished before that child started, and so on; what no child covers is
the span's own time. Consumers in other traces that link to a span of this one (a message
through SQS, Kinesis, EventBridge) count as that span's children, so an async hop that
outlives its producer extends the path instead of ending it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from collector.storage.protocols import SpanReader, StoredSpan

MAX_DEPTH: Final = 400
MAX_LINKED_TRACES: Final = 20


@dataclass(frozen=True)
class Segment:
    """Time on the critical path spent in one span's own work (children excluded)."""

    span_id: str
    trace_id: str
    service: str
    name: str
    start_ns: int
    end_ns: int


@dataclass(frozen=True, slots=True)
class PathSegment:
    """A segment as readers see it: the span's own time on the path, from ``start_ns``."""

    span_id: str
    trace_id: str
    service: str
    name: str
    start_ns: int
    duration_ms: float

    @classmethod
    def of(cls, segment: Segment) -> PathSegment:
        duration_ms = (segment.end_ns - segment.start_ns) / 1e6
        return cls(segment.span_id, segment.trace_id, segment.service, segment.name, segment.start_ns, duration_ms)


@dataclass(frozen=True, slots=True)
class CriticalPath:
    """What set a trace's duration: its segments in time order, their extent, the spans on it."""

    trace_id: str
    segments: tuple[PathSegment, ...]
    duration_ms: float
    span_ids: tuple[str, ...]


class _Tree:
    def __init__(self, spans: Sequence[StoredSpan]) -> None:
        self.by_id = {s.span_id: s for s in spans}
        self.children: dict[str, list[StoredSpan]] = defaultdict(list)
        for span in spans:
            parent = span.parent_span_id
            if parent is not None and parent in self.by_id:
                self.children[parent].append(span)
            for link in span.links:
                if link.span_id in self.by_id and parent not in self.by_id:
                    self.children[link.span_id].append(span)  # an async consumer
        self.roots = [s for s in spans if s.parent_span_id not in self.by_id and not self._is_consumer(s)]
        self._eff_end: dict[str, int] = {}

    def _is_consumer(self, span: StoredSpan) -> bool:
        return any(link.span_id in self.by_id for link in span.links)

    def effective_end(self, span: StoredSpan, depth: int = 0) -> int:
        """The span's end, or a descendant's when one outlives it."""
        key = span.span_id
        if key not in self._eff_end:
            kids = self.children.get(key, []) if depth < MAX_DEPTH else []
            self._eff_end[key] = max([span.end_ns, *(self.effective_end(k, depth + 1) for k in kids)])
        return self._eff_end[key]


def _walk(tree: _Tree, span: StoredSpan, cursor: int, depth: int, out: list[Segment]) -> None:
    start, own_end = span.start_ns, span.end_ns
    kids = tree.children.get(span.span_id, []) if depth < MAX_DEPTH else []
    for child in sorted(kids, key=lambda k: -tree.effective_end(k)):
        child_end = tree.effective_end(child)
        if child_end > cursor or child.start_ns >= cursor:
            continue
        _own(span, max(child_end, start), min(cursor, own_end), out)
        _walk(tree, child, child_end, depth + 1, out)
        cursor = child.start_ns
        if cursor <= start:
            break
    _own(span, start, min(cursor, own_end), out)


def _own(span: StoredSpan, start_ns: int, end_ns: int, out: list[Segment]) -> None:
    if end_ns > start_ns:
        out.append(Segment(span.span_id, span.trace_id, span.service, span.name, start_ns, end_ns))


def critical_path(spans: Sequence[StoredSpan]) -> list[Segment]:
    """Segments in time order; spans of linked consumer traces may be included."""
    if not spans:
        return []
    tree = _Tree(spans)
    roots = tree.roots or list(spans)
    root = max(roots, key=lambda s: (tree.effective_end(s), -s.start_ns))
    segments: list[Segment] = []
    _walk(tree, root, tree.effective_end(root), 0, segments)
    return sorted(segments, key=lambda s: (s.start_ns, s.end_ns))


def trace_with_consumers(reader: SpanReader, trace_id: bytes) -> list[StoredSpan]:
    """The trace's spans plus those of traces whose spans link to it (at most MAX_LINKED_TRACES)."""
    spans = reader.trace_spans(trace_id)
    if not spans:
        return []
    for other in reader.linked_trace_ids(trace_id, MAX_LINKED_TRACES):
        if other != trace_id:
            spans.extend(reader.trace_spans(other))
    return spans


def critical_path_of(trace_id: bytes, spans: Sequence[StoredSpan]) -> CriticalPath:
    """The critical path of the trace whose spans (and linked consumers') these are."""
    segments = critical_path(spans)
    if not segments:
        return CriticalPath(trace_id.hex(), (), 0.0, ())
    return CriticalPath(
        trace_id=trace_id.hex(),
        segments=tuple(PathSegment.of(s) for s in segments),
        duration_ms=(segments[-1].end_ns - segments[0].start_ns) / 1e6,
        span_ids=tuple(sorted({s.span_id for s in segments})),
    )
