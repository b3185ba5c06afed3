"""Span metrics for Prometheus: the services' requests, failures and latency, not the collector's.

``GET /metrics/spans`` exposes what Jaeger's SPM and Tempo's metrics-generator feed dashboards
with: per node and operation (service, node type, span name of its entry spans: SERVER,
CONSUMER and roots), counters of requests, errors, faults, throttles and cold starts and a
duration histogram; per map edge (caller and callee, with their types), counters of calls and
their failures. Counters count from the collector's start and only ever grow: each scrape adds
the spans and calls that started since the previous one, up to a settle time ago (5 s for spans,
12 s for calls, which the linker makes; what arrives later than that is not counted). Head-sampled spans count as the
requests they stand for (derive.sampling_weight_of), so rates stay right at any sampling rate.
Cardinality is bounded: past `max_series` label sets of a kind, new ones add to ``other``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.storage.protocols import SpanReader, TimeWindow

SETTLE_NS: Final = 5 * 10**9
# Calls are made by the linker (every 2 s; a child waits for a late parent): an edge counts once
# its calls are this old.
EDGE_SETTLE_NS: Final = 12 * 10**9
BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
Key = tuple[str, ...]
MAX_HOP_ROWS: Final = 20_000
_FAILURES: Final = ("errors", "faults", "throttles")


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


@dataclass
class _Figures:
    requests: float = 0.0
    errors: float = 0.0
    faults: float = 0.0
    throttles: float = 0.0
    cold_starts: float = 0.0
    duration_s: float = 0.0
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(BUCKETS_S))  # cumulative, as Prometheus's


class SpanMetrics(Collector):
    """Accumulates the stored spans' figures scrape by scrape, and exposes them."""

    def __init__(self, reader: SpanReader, clock_ns: Callable[[], int] = time.time_ns, max_series: int = 200) -> None:
        self.reader = reader
        self.max_series = max_series
        self._clock_ns = clock_ns
        self._watermark_ns = self._edge_watermark_ns = clock_ns()
        self._operations: dict[Key, _Figures] = {}  # (service, type, operation)
        self._edges: dict[Key, _Figures] = {}  # (caller, caller type, callee, callee type)
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def _slot(self, table: dict[Key, _Figures], key: Key) -> _Figures:
        if key not in table and len(table) >= self.max_series:
            key = tuple("other" for _ in key)
        return table.setdefault(key, _Figures())

    def catch_up(self) -> None:
        """Add what started since the last watermarks, up to a settle time ago, and move them."""
        now_ns = self._clock_ns()
        with self._lock:
            upto = now_ns - SETTLE_NS
            if upto > self._watermark_ns:
                for row in self.reader.operation_rows(TimeWindow(self._watermark_ns, upto), BUCKETS_S):
                    self._add_operation(row)
                self._watermark_ns = upto
            upto = now_ns - EDGE_SETTLE_NS
            if upto > self._edge_watermark_ns:
                for row in self.reader.hop_rows(TimeWindow(self._edge_watermark_ns, upto), None, MAX_HOP_ROWS).counts:
                    self._add_edge(row)
                self._edge_watermark_ns = upto

    def _add_operation(self, row: tuple[object, ...]) -> None:
        service, node_type, name, count, weighted, errors, faults, throttles, cold, duration_ns, *buckets = row
        figures = self._slot(self._operations, (str(service), str(node_type), str(name)))
        figures.requests += max(_number(count), _number(weighted))
        figures.errors += _number(errors)
        figures.faults += _number(faults)
        figures.throttles += _number(throttles)
        figures.cold_starts += _number(cold)
        figures.duration_s += _number(duration_ns) / 1e9
        for i, within in enumerate(buckets):
            figures.buckets[i] += _number(within)

    def _add_edge(self, row: tuple[object, ...]) -> None:
        caller, caller_type, callee, callee_type, role = row[:5]
        if caller is None or role not in ("entry", "inferred", "link"):
            return
        requests, _, errors, faults, throttles, _, estimated = row[7:14]
        key = (str(caller), str(caller_type or "service"), str(callee), str(callee_type or "service"))
        figures = self._slot(self._edges, key)
        figures.requests += max(_number(requests), _number(estimated))
        figures.errors += _number(errors)
        figures.faults += _number(faults)
        figures.throttles += _number(throttles)

    def collect(self) -> Iterator[Metric]:
        self.catch_up()
        with self._lock:
            operations, edges = dict(self._operations), dict(self._edges)
        labels = ["service", "type", "operation"]
        for name in ("requests", *_FAILURES, "cold_starts"):
            what = name.replace("_", " ").capitalize()
            family = CounterMetricFamily(f"fluoro_span_{name}", f"{what} of a node's operation", labels=labels)
            for key, figures in operations.items():
                family.add_metric(list(key), getattr(figures, name))
            yield family
        histogram = HistogramMetricFamily(
            "fluoro_span_duration_seconds", "Duration of a node's operation (entry spans)", labels=labels
        )
        for key, figures in operations.items():
            cumulative = [(str(bound), count) for bound, count in zip(BUCKETS_S, figures.buckets, strict=True)]
            histogram.add_metric(list(key), [*cumulative, ("+Inf", figures.requests)], figures.duration_s)
        yield histogram
        edge_labels = ["caller", "caller_type", "callee", "callee_type"]
        for name in ("requests", *_FAILURES):
            family = CounterMetricFamily(f"fluoro_edge_{name}", f"Calls along a map edge: {name}", labels=edge_labels)
            for key, figures in edges.items():
                family.add_metric(list(key), getattr(figures, name))
            yield family
