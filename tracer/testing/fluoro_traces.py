"""``fluoro_traces``: assertions on the traces a test made, in the collector's own language.

Every assertion is a filter expression (the X-Ray language the collector and the UI take),
asked of the test's spans; a failure prints the traces it is about as indented trees with
their flags. In process the answer is immediate; against a running collector, an assertion that
something happened waits (up to the source's patience) for spans still on their way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from spanlang.filter_parser import quoted
from spanlang.held_span import HeldSpan
from tracer.testing.sources import SpanSource
from tracer.testing.trace_tree import trace_tree

POLL_S = 0.25


@dataclass(frozen=True)
class FoundTrace:
    """A trace that met an expression, and its spans."""

    trace_id: str
    spans: tuple[HeldSpan, ...]

    def __str__(self) -> str:
        return trace_tree(self.spans)


class FluoroTraces:
    """The traces of one test: `find` them by expression, or assert on them."""

    def __init__(self, source: SpanSource) -> None:
        self.source = source

    @property
    def spans(self) -> list[HeldSpan]:
        """Every span the test made (its traces', in a collector)."""
        return self.source.spans()

    def tree(self, trace_ids: Sequence[str] | None = None) -> str:
        """The traces (all of them by default) as indented trees with flags."""
        return trace_tree(self.source.spans(trace_ids))

    def find(self, expression: str) -> list[FoundTrace]:
        """The traces that meet an X-Ray filter expression, oldest first."""
        ids = self.source.find(expression)
        by_trace: dict[str, list[HeldSpan]] = {trace_id: [] for trace_id in ids}
        for span in self.source.spans(ids) if ids else []:
            by_trace.setdefault(span.trace_id, []).append(span)
        return [FoundTrace(trace_id, tuple(by_trace[trace_id])) for trace_id in ids]

    def _eventually(self, check: Callable[[], str | None]) -> None:
        """Run `check` (None: it holds; else why not) until it holds or the patience is spent."""
        deadline = time.monotonic() + self.source.patience_s
        while True:
            problem = check()
            if problem is None:
                return
            if time.monotonic() >= deadline:
                raise AssertionError(problem)
            time.sleep(POLL_S)

    def _none_of(self, expression: str, what: str) -> None:
        found = self.source.find(expression)
        if found:
            raise AssertionError(f"{what} in {len(found)} trace(s) ({expression}):\n{self.tree(found)}")

    def assert_edge(self, caller: str, callee: str) -> None:
        """Some trace has a call from node `caller` to node `callee` (as the map draws it)."""
        expression = f"edge({quoted(caller)}, {quoted(callee)})"

        def check() -> str | None:
            if self.source.find(expression):
                return None
            return f"no call from {caller!r} to {callee!r} in the test's traces:\n{self.tree()}"

        self._eventually(check)

    def assert_no_fault(self) -> None:
        """No span of the test's traces is a fault (5xx, an unhandled exception)."""
        self._none_of("service() { fault }", "a fault")

    def assert_no_error(self) -> None:
        """No span is an error (4xx, throttles included) or a fault."""
        self._none_of("service() { error OR fault }", "an error or fault")

    def assert_cold_starts(self, function: str, count: int) -> None:
        """`function` (a service or span name) had exactly `count` cold starts."""
        name = quoted(function)
        expression = f"service({name}) {{ cold_start }} OR service() {{ name = {name} AND cold_start }}"

        def check() -> str | None:
            ids = self.source.find(expression)
            spans = self.source.spans(ids) if ids else []
            cold = [s for s in spans if s.cold_start and function in (s.service, s.name)]
            if len(cold) == count:
                return None
            shown = trace_tree(spans) if spans else self.tree()
            return f"{function!r} had {len(cold)} cold start(s), not {count}:\n{shown}"

        self._eventually(check)

    def assert_max_duration(self, name: str, max_ms: float) -> None:
        """Every span named `name` took at most `max_ms` ms (and there is one)."""
        named = f"service() {{ name = {quoted(name)} }}"

        def check() -> str | None:
            return None if self.source.find(named) else f"no span named {name!r} in the test's traces:\n{self.tree()}"

        self._eventually(check)
        slower = f"service() {{ name = {quoted(name)} AND responsetime > {max_ms / 1000!r} }}"
        self._none_of(slower, f"{name!r} took longer than {max_ms} ms")
