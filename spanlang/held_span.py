"""A span as the filter language reads it: the stored row's meaning, held in memory.

The collector stores a span as a row of what it means (derive.py's answer: flags, target,
origin, service); the tracer's pytest plugin builds the same value from the spans it captured
(or from a collector's answer), so one evaluator (memory_filter.py) serves both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tracer import semconv

AnnotationValue = str | float | bool


@dataclass(frozen=True, slots=True)
class HeldSpan:
    """One span: ids as hex, times in ns, X-Ray's flags, the node it runs on and what it calls."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    service: str
    name: str
    kind: str  # SERVER, CLIENT, ... as OTLP names them
    start_ns: int
    duration_ns: int
    origin: str | None = None  # the node type it runs on (AWS::Lambda::Function...)
    target_type: str | None = None  # what a client span calls
    target_name: str | None = None
    error: bool = False
    fault: bool = False
    throttle: bool = False
    cold_start: bool = False
    in_progress: bool = False
    http_status: int | None = None
    http_url: str | None = None
    http_method: str | None = None
    http_user_agent: str | None = None
    user: str | None = None
    annotations: Mapping[str, AnnotationValue] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()  # (trace id, span id) of each span it links to
    attributes: Mapping[str, object] = field(default_factory=dict)
    resource: Mapping[str, object] = field(default_factory=dict)  # its resource's attributes
    logs: tuple[str | None, ...] = ()  # the bodies of the log records written in it

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns

    @property
    def is_root(self) -> bool:
        return self.parent_span_id is None

    @property
    def is_init(self) -> bool:
        return self.name == semconv.INITIALIZATION_SPAN_NAME

    @property
    def node(self) -> tuple[str, str | None]:
        """(name, type) of the map node the span runs on."""
        return self.service, self.origin
