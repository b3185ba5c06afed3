"""Where a test's spans are: finished in this process, or received by a running collector.

Both answer the two questions the assertions ask: which traces meet a filter expression, and
what their spans are. In process, the expression is evaluated in memory (spanlang.memory_filter)
over the spans the fixture's pipeline captured; against a collector, the collector evaluates it
(its SQL back end) over what it received since the test began, over its query API.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, Protocol

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanlang.filter_parser import parse_filter
from spanlang.held_span import HeldSpan
from spanlang.memory_filter import matching_traces
from tracer.runtime import Tracing
from tracer.testing.held import held_from_captured, held_from_collector

MAX_TRACES = 1000


class SpanSource(Protocol):
    """What the assertions read: matching trace ids, and spans."""

    patience_s: float  # how long a positive assertion waits for spans still on their way

    def find(self, expression: str) -> list[str]:
        """Ids of the traces that meet `expression`, oldest first."""

    def spans(self, trace_ids: Sequence[str] | None = None) -> list[HeldSpan]:
        """The spans of those traces (of every trace when None)."""


class CapturedSpans:
    """Spans the fixture's own pipeline finished in this process."""

    patience_s = 0.0

    def __init__(self, tracing: Tracing, exporter: InMemorySpanExporter) -> None:
        self.tracing = tracing
        self.exporter = exporter

    def find(self, expression: str) -> list[str]:
        return matching_traces(parse_filter(expression), self.spans())

    def spans(self, trace_ids: Sequence[str] | None = None) -> list[HeldSpan]:
        self.tracing.flush()
        held = [held_from_captured(span) for span in self.exporter.get_finished_spans()]
        return held if trace_ids is None else [s for s in held if s.trace_id in set(trace_ids)]


class CollectorError(RuntimeError):
    """The collector could not be asked (unreachable, or it refused the question)."""


class CollectorSpans:
    """What a running collector received since `start_s` (a deployed stack's end-to-end test)."""

    def __init__(self, api_url: str, start_s: float, token: str | None = None, patience_s: float = 15.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.start_s = start_s  # traces rooted from the test's start on: an earlier test's are not its
        self.token = token
        self.patience_s = patience_s

    def _get(self, path: str, **params: str | int) -> Any:
        url = f"{self.api_url}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode("utf-8", "replace")
            raise CollectorError(f"{self.api_url} answered {exc.code} to {path}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise CollectorError(f"cannot reach the collector at {self.api_url}: {exc}") from None

    def find(self, expression: str) -> list[str]:
        start, end = f"{self.start_s:.3f}", f"{time.time() + 60:.3f}"
        page = self._get("/api/traces", filter=expression, start=start, end=end, limit=MAX_TRACES)
        return [t["trace_id"] for t in reversed(page["traces"])]

    def spans(self, trace_ids: Sequence[str] | None = None) -> list[HeldSpan]:
        ids = self.find("root") if trace_ids is None else list(trace_ids)
        return [held_from_collector(span) for trace_id in ids for span in self._get(f"/api/traces/{trace_id}")["spans"]]
