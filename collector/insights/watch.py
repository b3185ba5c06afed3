"""The collector's insight watch: every period, each scope's recent map against its baseline.

Scopes are all traces and every group. For each, two service maps (collector.query.service_map):
the last `current_s` (ending `lag_s` ago, so the linker has drawn the recent calls) and the
`baseline_s` before it, or before the scope's oldest open insight began. It reads through the
engine's fresh reader, which folds the acknowledged spans first. The detector's changes
are saved (a lake's leader alone watches: one detector per lake) and opened and closed ones are
notified. Runs on a thread of its own (engine.py), never on ingest's or a query's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from collector.insights.detector import Change, Detector
from collector.insights.insight import Insight
from collector.insights.notifier import Notifier
from collector.query.map_view import ServiceMap
from collector.query.service_map import MapQuery, service_map
from collector.storage.protocols import GroupStore, InsightStore, SpanReader, TimeWindow
from spanlang.filter_ast import And, Expr, FilterError
from spanlang.filter_parser import parse_filter

_logger = logging.getLogger(__name__)
NS_PER_S = 1_000_000_000
MAX_COUNTED_TRACES = 1000


@dataclass(frozen=True, slots=True)
class InsightSettings:
    period_s: float = 30.0
    current_s: float = 60.0
    baseline_s: float = 900.0
    lag_s: float = 5.0
    notify_url: str | None = None


@dataclass(frozen=True, slots=True)
class Scope:
    group: str | None  # None: all traces
    expr: Expr | None
    gone: bool = False


class InsightWatch:
    def __init__(
        self,
        reader: SpanReader,
        groups: GroupStore,
        store: InsightStore,
        settings: InsightSettings,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self.settings = settings
        self._reader, self._groups, self._store, self._leading = reader, groups, store, leading
        self.detector = Detector(store.open_insights())
        self.notifier = Notifier(settings.notify_url) if settings.notify_url else None

    def run(self, now_ns: int | None = None) -> list[Insight]:
        """One evaluation of every scope; the insights it opened, changed or closed."""
        if not self._leading():
            return []
        now_ns = time.time_ns() if now_ns is None else now_ns
        changes: list[Change] = []
        for scope in self._scopes():
            current, baseline = self._windows(scope.group, now_ns)
            maps = (self._map(current, scope), self._map(baseline, scope))
            found = self.detector.evaluate(scope.group, *maps, now_ns)
            changes += [replace(c, insight=self._counted(c.insight, current, scope)) for c in found]
        self._store.save_insights([change.insight for change in changes])
        if self.notifier is not None:
            for change in changes:
                if change.event != "updated":
                    self.notifier.notify(change.insight)
        return [change.insight for change in changes]

    def tick(self) -> None:
        """run(), as the periodic task calls it."""
        self.run()

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.close()

    def _scopes(self) -> list[Scope]:
        """All traces, every group, and a group deleted while it had open insights (empty now:
        its insights close)."""
        scopes = [Scope(None, None)]
        for group in self._groups.groups():
            try:
                scopes.append(Scope(group.name, parse_filter(group.filter)))
            except FilterError as exc:  # saved before a change of the language: skipped
                _logger.warning("group %s: its filter no longer parses: %s", group.name, exc)
        named = {scope.group for scope in scopes}
        gone = sorted(g for g in self.detector.open_groups() if g is not None and g not in named)
        return scopes + [Scope(g, None, gone=True) for g in gone]

    def _windows(self, group: str | None, now_ns: int) -> tuple[TimeWindow, TimeWindow]:
        end_ns = now_ns - int(self.settings.lag_s * NS_PER_S)
        current = TimeWindow(end_ns - int(self.settings.current_s * NS_PER_S), end_ns)
        open_since = self.detector.open_since(group)
        baseline_end = min(current.start_ns, open_since) if open_since is not None else current.start_ns
        return current, TimeWindow(baseline_end - int(self.settings.baseline_s * NS_PER_S), baseline_end)

    def _counted(self, insight: Insight, window: TimeWindow, scope: Scope) -> Insight:
        """The insight with the number of traces its filter finds in the window (the group's too)."""
        if insight.state == "closed" or scope.gone:
            return insight
        expr = parse_filter(insight.traces_filter)
        if scope.expr is not None:
            expr = And((scope.expr, expr))
        counted = replace(insight, traces=len(self._reader.search_traces(window, expr, MAX_COUNTED_TRACES)))
        self.detector.keep(counted)
        return counted

    def _map(self, window: TimeWindow, scope: Scope) -> ServiceMap:
        if scope.gone:
            return ServiceMap(window.start_ns, window.end_ns, (), (), (), 0, False)
        return service_map(self._reader, MapQuery(window, scope.expr, group=scope.group))
