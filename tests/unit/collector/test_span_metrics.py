"""Span metrics: counters per node, operation and edge that only grow, a cumulative histogram,
sampled spans counted as the requests they stand for, and a bound on the label sets."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from collector.span_metrics import EDGE_SETTLE_NS, SpanMetrics
from collector.storage.duckdb_store import DuckDBStore
from tests.factories import SECOND, T0, at, spans_batch

HOUR = 3600 * SECOND


def samples(metrics: SpanMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class Clock:
    """The metrics' clock, set by the test."""

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


API = {"service": "api", "type": "service", "operation": "GET /q"}
QUOTE = {"service": "quote", "type": "AWS::Lambda::Function", "operation": "quote"}
EDGE = {"caller": "api", "caller_type": "service", "callee": "quote", "callee_type": "AWS::Lambda::Function"}


def request(trace: int, start_s: float, *, fault: bool = False, weight: float | None = None) -> list[object]:
    return [
        at(trace, 1, None, start_s, 0.2, service="api", name="GET /q", kind="SERVER", fault=fault,
           sampling_weight=weight),
        at(trace, 2, 1, start_s + 0.01, 0.03, service="quote", name="quote", kind="SERVER",
           origin="AWS::Lambda::Function", cold_start=trace == 1, sampling_weight=weight),
    ]  # fmt: skip


def test_counters_histograms_and_edges_grow_scrape_by_scrape(tmp_path: Path) -> None:
    store = DuckDBStore(str(tmp_path / "spans.duckdb"))
    store.write([spans_batch(*request(1, 0), *request(2, 1, fault=True))])  # type: ignore[arg-type]
    store.link_new_spans(T0 + HOUR)
    clock = Clock(T0 - 60 * SECOND)
    metrics = SpanMetrics(store.reader, clock)
    clock.now_ns = T0 + 10 * SECOND + EDGE_SETTLE_NS  # a scrape then: what started in the first 10 s
    first = samples(metrics)
    assert first[key("fluoro_span_requests_total", **API)] == 2 and first[key("fluoro_span_faults_total", **API)] == 1
    assert first[key("fluoro_span_cold_starts_total", **QUOTE)] == 1
    assert first[key("fluoro_span_duration_seconds_bucket", le="0.25", **API)] == 2
    assert first[key("fluoro_span_duration_seconds_bucket", le="0.1", **API)] == 0
    assert first[key("fluoro_edge_requests_total", **EDGE)] == 2
    # 1% head sampling: a sampled request stands for 100, the tail-kept fault among them
    store.write([spans_batch(*request(3, 20, weight=100.0), *request(4, 21, fault=True, weight=0.0))])  # type: ignore[arg-type]
    store.link_new_spans(T0 + HOUR)
    assert samples(metrics) == first  # nothing new has settled yet at that time
    clock.now_ns = T0 + 40 * SECOND + EDGE_SETTLE_NS
    second = samples(metrics)
    assert second[key("fluoro_span_requests_total", **API)] == 2 + 100
    assert second[key("fluoro_span_faults_total", **API)] == 2  # every failure counts
    assert second[key("fluoro_edge_requests_total", **EDGE)] == 2 + 100
    assert all(second[k] >= value for k, value in first.items() if k in second)  # counters only grow
    store.close()


def test_label_sets_past_the_bound_add_to_other(tmp_path: Path) -> None:
    store = DuckDBStore(str(tmp_path / "spans.duckdb"))
    spans = [at(n, 1, None, n, 0.01, service=f"svc-{n}", name="op", kind="SERVER") for n in range(1, 6)]
    store.write([spans_batch(*spans)])
    clock = Clock(T0 - SECOND)
    metrics = SpanMetrics(store.reader, clock, max_series=2)
    clock.now_ns = T0 + 10 * SECOND + EDGE_SETTLE_NS
    found = samples(metrics)
    requests = [value for (name, _), value in found.items() if name == "fluoro_span_requests_total"]
    other = key("fluoro_span_requests_total", service="other", type="other", operation="other")
    assert len(requests) == 3 and found[other] == 3  # two services of their own, the other three together
    store.close()
