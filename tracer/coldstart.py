"""Cold starts: the process's own start, the first invocation, and the spans of the init phase.

An execution environment's first invocation is its cold start. X-Ray shows the time before it
as an ``Initialization`` subsegment; Fluoro does too, with children for the slowest imports
(see imports.py) and for spans the user records during init, which X-Ray's SDK throws away.
Init-phase spans have no invocation trace to belong to yet, so :class:`InitSpanBuffer` holds
them (bounded) and the first invocation moves them into its own trace.

The process-wide facts live in one :class:`ProcessFacts` value, ``PROCESS``: whether this
process has been invoked is a property of the process, like its pid, not of any one
configuration, and it must survive a second ``configure()``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanContext, TraceFlags

from tracer import semconv

if TYPE_CHECKING:  # the hook's module loads importlib machinery: only when asked for
    from tracer.imports import ImportTracker

MAX_HELD_SPANS = 512
TAIL_COLD_START = "tail:cold_start"
SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def process_start_time_ns(proc: str = "/proc") -> int | None:
    """When this process started (ns since the epoch), from /proc on Linux; None elsewhere."""
    try:
        with open(f"{proc}/self/stat") as stat_file:
            stat = stat_file.read()
        with open(f"{proc}/stat") as system_stat:
            boot_line = next(line for line in system_stat if line.startswith("btime"))
        # Field 22 (starttime, clock ticks after boot) follows the ")" that ends the command.
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot_s = int(boot_line.split()[1])
        ticks_per_s = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return int((boot_s + start_ticks / ticks_per_s) * 1e9)


class ProcessFacts:
    """Process-wide cold-start state: start time, whether invoked yet, the import hook."""

    def __init__(self, start_ns: int) -> None:
        self.start_ns = start_ns
        self.imports: ImportTracker | None = None
        self._invoked = False
        self._lock = threading.Lock()

    def claim_cold_start(self) -> bool:
        """True exactly once per process: for the first invocation."""
        with self._lock:
            if self._invoked:
                return False
            self._invoked = True
            return True

    @property
    def invoked(self) -> bool:
        return self._invoked

    def reset(self) -> None:
        """Forget the first invocation (for tests that simulate a fresh environment)."""
        with self._lock:
            self._invoked = False


PROCESS = ProcessFacts(process_start_time_ns() or time.time_ns())


def track_imports() -> None:
    """Time the imports that follow, to show the slowest under a cold start's Initialization."""
    if PROCESS.invoked:
        return
    if PROCESS.imports is None:
        from tracer.imports import ImportTracker

        PROCESS.imports = ImportTracker()
    PROCESS.imports.install()


def rehome(span: ReadableSpan, trace_id: int, root_parent: SpanContext) -> ReadableSpan:
    """A copy of an init-phase span moved into `trace_id`; its roots hang off `root_parent`.

    Under an unsampled invocation, tail-keep is keeping the trace for its cold start, and the
    span says so (exported all the same: processors pass on sampled spans only)."""
    old = span.context
    assert old is not None
    context = SpanContext(trace_id, old.span_id, False, SAMPLED, old.trace_state)
    parent = root_parent if span.parent is None else SpanContext(trace_id, span.parent.span_id, False, SAMPLED)
    attributes = span.attributes
    if not root_parent.trace_flags.sampled:
        attributes = {**(attributes or {}), semconv.SAMPLING: TAIL_COLD_START}
    return ReadableSpan(
        name=span.name,
        context=context,
        parent=parent,
        resource=span.resource,
        attributes=attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class InitSpanBuffer(SpanProcessor):
    """Holds spans that end before the first invocation; passes everything else through."""

    def __init__(self, downstream: SpanProcessor, *, holding: bool, max_spans: int = MAX_HELD_SPANS) -> None:
        self.downstream = downstream
        self._holding = holding
        self._held: list[ReadableSpan] = []
        self._max_spans = max_spans
        self._lock = threading.Lock()

    @property
    def holding(self) -> bool:
        """True until the first invocation: spans that end now are held for it."""
        return self._holding

    def on_start(self, span: object, parent_context: Context | None = None) -> None:
        self.downstream.on_start(span, parent_context)  # type: ignore[arg-type]

    def on_end(self, span: ReadableSpan) -> None:
        if self._holding:
            with self._lock:
                if self._holding and len(self._held) < self._max_spans:
                    self._held.append(span)
                    return
        self.downstream.on_end(span)

    def release(self, trace_id: int | None, root_parent: SpanContext | None) -> list[ReadableSpan]:
        """Stop holding; move held spans into `trace_id` under `root_parent` and pass them on.

        With no trace (an unsampled first invocation) the held spans are dropped, as X-Ray
        drops a subsegment whose segment is not sampled. Returns what was passed on.
        """
        with self._lock:
            held, self._held, self._holding = self._held, [], False
        if trace_id is None or root_parent is None:
            return []
        moved = [rehome(span, trace_id, root_parent) for span in held]
        for span in moved:
            self.downstream.on_end(span)
        return moved

    def shutdown(self) -> None:
        with self._lock:
            held, self._held, self._holding = self._held, [], False
        for span in held:
            self.downstream.on_end(span)
        self.downstream.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.downstream.force_flush(timeout_millis)
