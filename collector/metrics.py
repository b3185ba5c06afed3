"""The collector's own metrics, in a registry of its own (never prometheus_client's global one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

from collector.thread_cpu import ThreadCpuCollector

RECEIVERS = ("otlp_http", "otlp_grpc", "xray_udp")


@dataclass(frozen=True)
class ReceiverCounts:
    """What became of a request's spans or records: received, refused by the decoder or the
    time checks, or dropped because the queue or the store could not take them."""

    received: Counter
    rejected: Counter
    dropped: Counter


class CollectorMetrics:
    """Counters per receiver, queue depth, commit latency, the database size, and the process's
    CPU and memory (in all and per thread)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.registry.register(ThreadCpuCollector())
        self.received = Counter(
            "fluoro_spans_received", "Spans decoded from requests and datagrams", ["receiver"], registry=self.registry
        )
        self.stored = Counter("fluoro_spans_stored", "New spans committed to the store", registry=self.registry)
        self.rejected = Counter(
            "fluoro_spans_rejected",
            "Spans refused as invalid (bad ids, bad fields)",
            ["receiver"],
            registry=self.registry,
        )
        self.rejected_for_time = Counter(
            "fluoro_spans_rejected_for_time",
            "Spans refused at the door because their times cannot be real (collector/normalize/admission.py)",
            ["receiver", "reason"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "fluoro_spans_dropped",
            "Spans not stored because of pressure or a failing store (OTLP clients were told to retry)",
            ["receiver"],
            registry=self.registry,
        )
        self.bad_datagrams = Counter(
            "fluoro_xray_bad_datagrams", "X-Ray datagrams that were not segment documents", registry=self.registry
        )
        self.xray_dropped_datagrams = Counter(
            "fluoro_xray_dropped_datagrams",
            "X-Ray datagrams the kernel dropped while the parser was at its CPU cap (a flood)",
            registry=self.registry,
        )
        self.requests = Counter(
            "fluoro_otlp_requests", "OTLP/HTTP requests by response status", ["status"], registry=self.registry
        )
        self.log_records = Counter(
            "fluoro_log_records",
            "OTLP log records by receiver and outcome (received, rejected, dropped)",
            ["receiver", "outcome"],
            registry=self.registry,
        )
        self.grpc_calls = Counter(
            "fluoro_otlp_grpc_calls", "OTLP/gRPC export calls by status code", ["code"], registry=self.registry
        )
        self.commit_seconds = Histogram(
            "fluoro_batch_commit_seconds",
            "Time to write and commit one group of batches",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        for receiver in RECEIVERS:
            for counter in (self.received, self.rejected, self.dropped):
                counter.labels(receiver)
        self._add_gauges()

    def _add_gauges(self) -> None:
        self.queue_spans = Gauge("fluoro_queue_spans", "Spans waiting for the writer", registry=self.registry)
        self.queue_bytes = Gauge("fluoro_queue_bytes", "Request bytes waiting for the writer", registry=self.registry)
        self.quarantined = Gauge(
            "fluoro_spans_quarantined",
            "Stored spans left off the service map because their values broke linking",
            registry=self.registry,
        )
        self.xray_cpu_share = Gauge(
            "fluoro_xray_cpu_share",
            "Share of a core the X-Ray receiver may take now (smaller while the kernel drops datagrams: a flood)",
            registry=self.registry,
        )
        self.lake_leader = Gauge(
            "fluoro_lake_leader",
            "1 while this collector links and maintains the lake (it holds the leader lock); lake mode only",
            registry=self.registry,
        )
        self.db_bytes = Gauge(
            "fluoro_db_file_bytes",
            "Size of the database file and its WAL (a lake's data files), and the ingest log",
            registry=self.registry,
        )

    def counts_of(self, receiver: str, signal: str) -> ReceiverCounts:
        """The counters a receiver's request of `signal` ("traces" or "logs") moves."""
        if signal == "logs":
            records = self.log_records
            return ReceiverCounts(
                records.labels(receiver, "received"),
                records.labels(receiver, "rejected"),
                records.labels(receiver, "dropped"),
            )
        return ReceiverCounts(
            self.received.labels(receiver), self.rejected.labels(receiver), self.dropped.labels(receiver)
        )

    def watch_database_size(self, size: Callable[[], float]) -> None:
        self.db_bytes.set_function(size)

    def watch_xray_share(self, share: Callable[[], float]) -> None:
        self.xray_cpu_share.set_function(share)

    def watch_lake_leader(self, leads: Callable[[], bool]) -> None:
        self.lake_leader.set_function(lambda: float(leads()))

    def watch_quarantined(self, spans: Callable[[], int]) -> None:
        self.quarantined.set_function(lambda: float(spans()))

    def watch_queue(self, spans: Callable[[], int], byte_count: Callable[[], int]) -> None:
        self.queue_spans.set_function(lambda: float(spans()))
        self.queue_bytes.set_function(lambda: float(byte_count()))

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
