"""Traces as readers see them: a span with hex ids, milliseconds, its status by name and its HTTP
call grouped; a trace; the pages of services and traces a window holds.

Frozen read models: the API documents them in /openapi.json and turns them into JSON at its
edge; the UI reads their attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from collector.query.trace_keeping import KeptPart, kept_parts
from collector.storage.protocols import ServiceCount, SpanLink, StoredSpan, TimeWindow, TraceSummary

StatusName = Literal["UNSET", "OK", "ERROR"]
STATUS_NAMES: tuple[StatusName, ...] = ("UNSET", "OK", "ERROR")


@dataclass(frozen=True, slots=True)
class HttpCall:
    """The HTTP request a span served or made (every field None for other spans)."""

    method: str | None
    route: str | None
    url: str | None
    status: int | None
    user_agent: str | None


@dataclass(frozen=True, slots=True)
class Target:
    """What a client span called: its type (an AWS resource type or ``remote``) and name."""

    type: str
    name: str | None


@dataclass(frozen=True, slots=True)
class SpanView:
    """One span. ``error``/``fault``/``throttle``: X-Ray's 4xx/5xx/429 taxonomy; ``origin``:
    the AWS service the span ran in; ``source``: how it arrived (otlp or xray)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    service: str
    name: str
    kind: str
    start_ns: int
    duration_ms: float
    status_code: StatusName
    status_message: str | None
    http: HttpCall
    error: bool
    fault: bool
    throttle: bool
    cold_start: bool
    origin: str | None
    target: Target | None
    function_version: str | None
    user: str | None
    in_progress: bool
    source: str
    attributes: dict[str, Any]
    events: list[Any]
    resource: dict[str, Any]
    annotations: dict[str, str | float | bool]
    links: tuple[SpanLink, ...]

    @classmethod
    def of(cls, span: StoredSpan) -> SpanView:
        return cls(
            trace_id=span.trace_id,
            span_id=span.span_id,
            parent_span_id=span.parent_span_id,
            service=span.service,
            name=span.name,
            kind=span.kind,
            start_ns=span.start_ns,
            duration_ms=span.duration_ns / 1e6,
            status_code=STATUS_NAMES[span.status_code],
            status_message=span.status_message,
            http=HttpCall(span.http_method, span.http_route, span.http_url, span.http_status, span.http_user_agent),
            error=span.error,
            fault=span.fault,
            throttle=span.throttle,
            cold_start=span.cold_start,
            origin=span.origin,
            target=Target(span.target_type, span.target_name) if span.target_type else None,
            function_version=span.function_version,
            user=span.user_id,
            in_progress=span.in_progress,
            source=span.source,
            attributes=span.attributes,
            events=span.events,
            resource=span.resource,
            annotations=span.annotations,
            links=span.links,
        )


@dataclass(frozen=True, slots=True)
class TraceView:
    """Every span of one trace, in start order, and how each service's part was kept."""

    trace_id: str
    spans: tuple[SpanView, ...]
    kept: tuple[KeptPart, ...]

    @classmethod
    def of(cls, trace_id: bytes, spans: Sequence[StoredSpan]) -> TraceView:
        views = tuple(SpanView.of(span) for span in spans)
        return cls(trace_id.hex(), views, kept_parts(views))


@dataclass(frozen=True, slots=True)
class ServicesPage:
    """Services with spans in a window, by name; ``total`` counts those the limit left out too."""

    services: tuple[ServiceCount, ...]
    total: int
    truncated: bool

    @classmethod
    def of(cls, found: Sequence[ServiceCount], limit: int) -> ServicesPage:
        """The busiest `limit` services of those found, listed by name."""
        shown = found if len(found) <= limit else sorted(found, key=lambda s: (-s.spans, s.name))[:limit]
        return cls(tuple(sorted(shown, key=lambda s: s.name)), len(found), len(found) > limit)


@dataclass(frozen=True, slots=True)
class TracesPage:
    """Traces rooted in a window that match a filter, newest first."""

    traces: tuple[TraceSummary, ...]
    start_ns: int
    end_ns: int

    @classmethod
    def of(cls, found: Sequence[TraceSummary], window: TimeWindow) -> TracesPage:
        return cls(tuple(found), window.start_ns, window.end_ns)
