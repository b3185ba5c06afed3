"""The storage plug points: a one-method writer, a reader with a named method per question, and
the housekeeping the engine schedules.

Every statement a store runs lives in its own package (collector/storage/ for DuckDB): the query
layer asks by name (a trace by id, a search, the map's hop figures, analytics figures) and never
writes SQL. Every store implementation passes the same contract suite (tests/contract/). Values
crossing this boundary are frozen dataclasses and tuples of plain values, never driver objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, Protocol

from collector.insights.insight import Insight
from collector.model import SpanBatch
from spanlang import filter_ast as ast


class StoreUnavailable(RuntimeError):
    """The store cannot take or give data right now (disk full, file locked, closed)."""


@dataclass(frozen=True)
class TimeWindow:
    """A half-open interval of span start times, ns since the epoch."""

    start_ns: int
    end_ns: int


@dataclass(frozen=True)
class ServiceCount:
    name: str
    spans: int


@dataclass(frozen=True)
class TraceSummary:
    """One row of a trace search."""

    trace_id: str
    root_service: str
    root_name: str
    start_ns: int
    duration_ms: float
    http_status: int | None
    error: bool
    fault: bool
    throttle: bool
    cold_start: bool
    span_count: int
    services: tuple[str, ...]
    trace_duration_ms: float


@dataclass(frozen=True)
class StoredSpan:
    """One stored span as read back: ids in hex, JSON columns parsed, its annotations and links."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    service: str
    name: str
    kind: str  # SERVER, CLIENT, PRODUCER, CONSUMER or INTERNAL
    start_ns: int
    duration_ns: int
    status_code: int  # 0 unset, 1 ok, 2 error (OTLP's)
    status_message: str | None
    http_method: str | None
    http_route: str | None
    http_url: str | None
    http_status: int | None
    http_user_agent: str | None
    error: bool
    fault: bool
    throttle: bool
    cold_start: bool
    origin: str | None
    target_type: str | None
    target_name: str | None
    function_version: str | None
    user_id: str | None
    in_progress: bool
    source: str
    attributes: dict[str, Any]
    events: list[Any]
    resource: dict[str, Any]
    annotations: dict[str, str | float | bool]
    links: tuple[SpanLink, ...]

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns


@dataclass(frozen=True)
class SpanLink:
    """A link from a span to another trace's span (hex ids)."""

    trace_id: str
    span_id: str


@dataclass(frozen=True)
class StoredLog:
    """A log record of a trace: when, in which span (hex, None when not known), what it said."""

    time_ns: int
    span_id: str | None
    service: str
    severity_number: int
    severity_text: str | None
    body: str | None
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Subject:
    """What analytics figures describe: every incoming request (no node), a node, or an edge
    (caller -> node)."""

    node: str | None = None
    node_type: str | None = None
    caller: str | None = None
    caller_type: str | None = None


CompareField = Literal["function_version", "cold_start"]


@dataclass(frozen=True)
class ByTimeBucket:
    """Analytics figures per step: bucket n holds calls starting in [start + n*step, start + (n+1)*step)."""

    start_ns: int
    step_ns: int


@dataclass(frozen=True)
class ByField:
    """Analytics figures per value of a call's field."""

    field: CompareField


# None: one group of every call in scope (its key is True).
Grouping = ByTimeBucket | ByField | None


class HopKey(NamedTuple):
    """The first HOP_KEY_COLUMNS columns of every hop row: who called whom, in what role
    (entry, call, inferred, link or init), asynchronously or not, and whether the callee's
    entry was a consumer's (its edge is its queue's link, not a call)."""

    caller: str | None
    caller_type: str | None
    callee: str
    callee_type: str | None
    role: str
    is_async: bool
    consumed: bool


HOP_KEY_COLUMNS: Final = len(HopKey._fields)


@dataclass(frozen=True)
class HopRows:
    """The map's figures per hop of a window, as the map adds them up (collector.query.service_map).

    ``counts``: a HopKey's columns, then requests, ok, errors, faults, throttles, cold starts.
    ``latency``: a HopKey's columns, then kind (0 the caller's wait, 1 the message's dwell),
    latency bucket, count, init ns, waited ns, min, max. Rows are plain tuples (a map reads
    ~16k: a typed row each would cost more than adding them up); a HopKey equals its columns.
    A hop may have several rows of each (parts of the window read apart); they add up exactly.
    """

    counts: list[tuple[Any, ...]]
    latency: list[tuple[Any, ...]]
    truncated: bool  # a cardinality guard cut the rows short


@dataclass(frozen=True)
class ThrottleSource:
    """Where throttled traces' 429s started: the throttled hop that began last, and how many traces."""

    name: str
    node_type: str | None
    traces: int


# What cost is added up by: a map node, the function (or service) whose code made the charge, a
# trace, or one trace's spans.
CostKey = Literal["node", "function", "trace", "span"]


@dataclass(frozen=True)
class CostLine:
    """One billed item of one key (a node, a function, a trace or a span: collector/cost): how many
    units, what they cost, and how many requests (billed spans) they came from."""

    key: tuple[str | None, ...]
    item: str
    quantity: float
    amount: float
    requests: float


@dataclass(frozen=True)
class Statement:
    """SQL text of fixed fragments and its bound values (storage's own: no reader takes one)."""

    text: str
    params: tuple[Any, ...] = ()


class SpanWriter(Protocol):
    """Stores batches; returns how many new spans were stored (duplicates are skipped)."""

    def write(self, batches: Sequence[SpanBatch]) -> int: ...


class SpanReader(Protocol):
    """Every question the query layer asks a store. `expr`: a filter expression the traces (by
    their root, in the window) must satisfy; None for all."""

    def services(self, window: TimeWindow) -> list[ServiceCount]:
        """Services with spans starting in the window, by name."""

    def trace_spans(self, trace_id: bytes) -> list[StoredSpan]:
        """Every span of a trace in start order; [] if unknown."""

    def linked_trace_ids(self, trace_id: bytes, limit: int) -> list[bytes]:
        """Traces holding spans that link to a span of this one (its consumers), at most `limit`."""

    def trace_logs(self, trace_id: bytes, limit: int) -> list[StoredLog]:
        """The trace's log records in time order, at most `limit`."""

    def search_traces(self, window: TimeWindow, expr: ast.Expr | None, limit: int) -> list[TraceSummary]:
        """Traces rooted in the window matching `expr`, newest first."""

    def hop_rows(self, window: TimeWindow, expr: ast.Expr | None, max_rows: int, group: str | None = None) -> HopRows:
        """The map's figures per hop of calls starting in the window; `group`: `expr` is that
        saved group's filter alone, so its rollup may serve the whole minutes."""

    def throttle_sources(
        self, window: TimeWindow, expr: ast.Expr | None, limit: int, group: str | None = None
    ) -> list[ThrottleSource]:
        """Where the window's throttled traces were throttled first, busiest first."""

    def figure_rows(
        self, window: TimeWindow, expr: ast.Expr | None, subject: Subject, grouping: Grouping
    ) -> list[tuple[Any, ...]]:
        """Analytics: per group key, the figure columns FigureAccumulator.add reads (key first)."""

    def operations(self, window: TimeWindow, service: str, kind: str | None, limit: int) -> list[tuple[str, str]]:
        """A service's (span name, kind) pairs in the window, by name (of that kind only, when given)."""

    def operation_rows(self, window: TimeWindow, bounds_s: Sequence[float]) -> list[tuple[Any, ...]]:
        """Span metrics: the window's entry spans per node and operation (storage/operations_sql.py)."""

    def cost_lines(
        self,
        window: TimeWindow,
        expr: ast.Expr | None,
        key: CostKey,
        prices: Mapping[str, float],
        limit: int,
        trace_id: bytes | None = None,
    ) -> list[CostLine]:
        """What the spans of the window cost per `key` and item, the `limit` costliest keys; with
        `trace_id`, that trace's spans (starting in the window) only, each counted once."""


class StoreMaintenance(Protocol):
    """Housekeeping the engine schedules."""

    def delete_older_than(self, cutoff_ns: int) -> int: ...

    def link_new_spans(self, now_ns: int | None = None) -> int: ...

    def expire_pending_calls(self, waited_since_ns: int) -> None: ...

    def roll_up_calls(self, settled_before_ns: int) -> None: ...

    def file_size_bytes(self) -> int: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Group:
    """A saved filter expression with a name: every page can show the traces it matches."""

    name: str
    filter: str
    created_ns: int


class GroupStore(Protocol):
    """Groups, kept beside the spans (a lake's are every collector's)."""

    def groups(self) -> list[Group]:
        """Every group, by name."""

    def group(self, name: str) -> Group | None: ...

    def save_group(self, group: Group) -> None:
        """Adds the group, or replaces the one of that name."""

    def delete_group(self, name: str) -> bool:
        """Whether there was such a group."""


@dataclass(frozen=True, slots=True)
class InsightScope:
    """Which insights a reader wants: those of a group (None: of all traces), open or closed or both."""

    group: str | None
    state: Literal["open", "closed"] | None = None


class InsightStore(Protocol):
    """Insights (collector/insights), kept beside the spans."""

    def save_insights(self, insights: list[Insight]) -> None:
        """Adds them, or replaces those of their ids."""

    def insights(self, start_ns: int, end_ns: int, limit: int, scope: InsightScope | None = None) -> list[Insight]:
        """Insights open at some time in [start, end), newest first (of `scope` only, if given)."""

    def open_insights(self) -> list[Insight]: ...

    def delete_closed_before(self, cutoff_ns: int) -> None: ...


class Store(SpanWriter, StoreMaintenance, Protocol):
    """A whole backend: what the engine writes and maintains, its reader, groups and insights."""

    @property
    def reader(self) -> SpanReader: ...

    @property
    def groups(self) -> GroupStore: ...

    @property
    def insights(self) -> InsightStore: ...
