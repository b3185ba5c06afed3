"""The collector engine: store, pipeline, receivers and housekeeping, composed once.

``fluoro serve`` (in ui/) builds a :class:`Collector`, serves its OTLP app, its X-Ray protocol
and the query API, and calls :meth:`Collector.stop` on the way out, which drains the queue,
commits and closes the file. Tests build one the same way around a temporary file.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field, replace

from collector.allowed_hosts import AllowedHosts, HostPolicy
from collector.cost.prices import PriceSheet
from collector.fresh_reader import FreshReader
from collector.housekeeping import Housekeeper
from collector.ingest.ingest_log import IngestLog
from collector.ingest.limits import PipelineLimits
from collector.ingest.periodic import PeriodicTask
from collector.ingest.pipeline import IngestPipeline
from collector.insights.watch import InsightSettings, InsightWatch
from collector.metrics import CollectorMetrics
from collector.model import SpanBatch
from collector.normalize.admission import TimeBounds, admit
from collector.process_heap import release_free_heap
from collector.receivers.otlp_grpc import OtlpGrpcReceiver, OtlpGrpcSettings
from collector.receivers.otlp_http import OtlpHttpReceiver
from collector.receivers.otlp_intake import OtlpIntake, OtlpReceiverSettings, decode_logged_request
from collector.receivers.xray_udp import XRayReceiverSettings, XRayUdpReceiver
from collector.span_metrics import SpanMetrics
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.lake_location import LakeLocation
from collector.storage.lake_map import LakeMapTables
from collector.storage.protocols import StoreUnavailable
from collector.storage.rollup_sql import SETTLE_NS

_logger = logging.getLogger(__name__)
LAKE_FOLD_INTERVAL_S = 1.0


@dataclass(frozen=True)
class CollectorSettings:
    """What the engine needs; the command line fills it from flags and FLUORO_* variables."""

    db_path: str = "fluoro.duckdb"
    retention_s: float = 7 * 24 * 3600
    retention_check_s: float = 300.0
    # How long a child span waits for its parent before the map shows it called by a client.
    parent_wait_s: float = 60.0
    # How often new spans are linked into the service map's calls (one group per interval). A
    # run has ~25 ms of fixed cost (its statements' planning and set-up, bench/ingest.py), so
    # every 2 s halves that at any rate, and the map trails the store by 2 s at most (the store
    # trails ingest by up to a fold while nothing reads: ingest/folder.py).
    link_interval_s: float = 2.0
    # Lake mode: how often the leader compacts small files and expires old snapshots.
    upkeep_s: float = 600.0
    max_body_bytes: int = 20 * 1024 * 1024
    token: str | None = None
    # The Host names HTTP requests may carry (collector/allowed_hosts.py).
    host_policy: HostPolicy = field(default_factory=HostPolicy)
    limits: PipelineLimits = field(default_factory=PipelineLimits)
    # Lake mode: the tables in a DuckLake instead of the file at db_path (storage/lake_location.py).
    lake: LakeLocation | None = None
    # Lake mode only: the query API and pages over the lake, without receivers or an ingest log.
    read_only: bool = False
    # The ingest log (acknowledged, not yet stored spans); by default beside the database file,
    # or fluoro-lake.ingest in the working directory in lake mode. One collector per log.
    ingest_log: str | None = None
    # The insight watch: how often, over which windows, and where to POST opened and closed ones.
    insights: InsightSettings = field(default_factory=InsightSettings)
    # What cost reports price spans with (collector/cost): by default AWS's us-east-1 list prices.
    prices: PriceSheet = field(default_factory=PriceSheet.load)
    # DuckDB's buffer pool bound (storage/duckdb_memory.py); None leaves DuckDB's own, 80% of the machine.
    memory_limit_mib: int | None = None

    @property
    def log_path(self) -> str:
        if self.ingest_log:
            return self.ingest_log
        return "fluoro-lake.ingest" if self.lake is not None else ingest_log_path(self.db_path)


class Collector:
    """One store (a DuckDB file, or a lake shared with other collectors) and everything that
    writes to and reads from it."""

    def __init__(self, settings: CollectorSettings) -> None:
        if settings.read_only and settings.lake is None:
            raise StoreUnavailable("--read-only needs --lake: a DuckDB file has one process, the collector")
        self.settings = settings
        self.metrics = CollectorMetrics()
        self.store = DuckDBStore(
            settings.db_path, settings.lake, read_only=settings.read_only, memory_limit_mib=settings.memory_limit_mib
        )
        self.metrics.watch_quarantined(lambda: self.store.map_tables.quarantined_spans)
        map_tables = self.store.map_tables
        if isinstance(map_tables, LakeMapTables):
            self.metrics.watch_lake_leader(lambda: map_tables.leads)
        self.time_bounds = TimeBounds(retention_s=settings.retention_s)
        self.housekeeper = Housekeeper(
            (
                PeriodicTask(settings.link_interval_s, self.link),
                PeriodicTask(min(10.0, settings.parent_wait_s), self.expire_orphans),
                PeriodicTask(15.0, self.roll_up),
                PeriodicTask(settings.upkeep_s, self.store.upkeep),
            )
        )
        self._xray: XRayUdpReceiver | None = None
        self.ingest = None if settings.read_only else Ingest(self)
        self.metrics.watch_database_size(self.stored_bytes)
        self.prices = settings.prices
        self.groups = self.store.groups
        self.insights = self.store.insights
        self.reader = FreshReader(self.store.reader, self.ingest.pipeline.flush if self.ingest else _nothing)
        self.span_metrics = SpanMetrics(self.reader)  # the services' metrics, counted from now on
        self.insight_watch: InsightWatch | None = None
        self._insight_keeper: Housekeeper | None = None
        if not settings.read_only:
            leading = map_tables.leading if isinstance(map_tables, LakeMapTables) else _always
            # the fresh reader: a watch on the store alone would judge a window missing up to a
            # fold interval (30 s) of acknowledged spans, and open its insights that much later
            watch = InsightWatch(self.reader, self.groups, self.insights, settings.insights, leading)
            self.insight_watch = watch
            self._insight_keeper = Housekeeper(
                (PeriodicTask(settings.insights.period_s, watch.tick),), name="fluoro-insights"
            )

    def stored_bytes(self) -> float:
        """The store's bytes and the ingest log's; NaN while a lake's catalog cannot say (the
        metrics still answer, when they matter most)."""
        try:
            size = self.store.file_size_bytes()
        except StoreUnavailable:
            return float("nan")
        return float(size + (self.ingest.log.size_bytes if self.ingest else 0))

    @property
    def pipeline(self) -> IngestPipeline:
        """The ingest pipeline (a read-only collector has none)."""
        if self.ingest is None:
            raise StoreUnavailable("a read-only collector takes no spans")
        return self.ingest.pipeline

    @property
    def otlp_app(self) -> AllowedHosts:
        if self.ingest is None:
            raise StoreUnavailable("a read-only collector takes no spans")
        return self.ingest.otlp_app

    def start_xray(self, sock: socket.socket) -> XRayUdpReceiver:
        """Receive the X-Ray daemon protocol on `sock`, a bound UDP socket (one per collector)."""
        self._xray = XRayUdpReceiver(self.pipeline, self.metrics, XRayReceiverSettings(time_bounds=self.time_bounds))
        self._xray.start(sock)
        return self._xray

    def replay_record(self, record: bytes) -> SpanBatch:
        """A logged request's spans at start, held to the same time bounds as at the door."""
        return admit(decode_logged_request(record), self.time_bounds, time.time_ns()).batch

    def apply_retention(self) -> None:
        cutoff_ns = time.time_ns() - int(self.settings.retention_s * 1e9)
        self.insights.delete_closed_before(cutoff_ns)
        deleted = self.store.delete_older_than(cutoff_ns)
        if deleted:
            _logger.info("retention removed %d spans", deleted)

    def expire_orphans(self) -> None:
        self.store.expire_pending_calls(time.time_ns() - int(self.settings.parent_wait_s * 1e9))

    def link(self) -> None:
        self.store.link_new_spans()
        release_free_heap()  # a run's Arrow work freed: back to the kernel between bursts

    def roll_up(self) -> None:
        self.store.roll_up_calls(time.time_ns() - SETTLE_NS)

    def start(self) -> None:
        if self.ingest is not None:
            self.ingest.pipeline.start()
            self.housekeeper.start()
        if self._insight_keeper is not None:
            self._insight_keeper.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Flush the X-Ray batch, drain the queue, commit and close the file."""
        if self._xray is not None:
            self._xray.close()
        if self._insight_keeper is not None and self.insight_watch is not None:
            self._insight_keeper.stop(timeout_s)
            self.insight_watch.close()
        self.housekeeper.stop(timeout_s)
        if self.ingest is not None:
            self.ingest.drain(timeout_s)
            self.ingest.log.close()
        self.store.close()


class Ingest:
    """What a collector that takes spans adds: the ingest log, the pipeline, the OTLP receivers."""

    def __init__(self, collector: Collector) -> None:
        settings = collector.settings
        self.collector = collector
        self.log = IngestLog(settings.log_path)
        retention = PeriodicTask(settings.retention_check_s, collector.apply_retention)
        limits = settings.limits
        if settings.lake is not None:
            # A reader of a lake (another collector, a --read-only daemon, a notebook) cannot
            # ask this collector to fold what it logged, as a query of an embedded one does.
            limits = replace(limits, fold_interval_s=min(limits.fold_interval_s, LAKE_FOLD_INTERVAL_S))
        self.pipeline = IngestPipeline(
            collector.store, self.log, collector.replay_record, collector.metrics, limits, (retention,)
        )
        self.intake = OtlpIntake(self.pipeline, collector.metrics, collector.time_bounds, settings.max_body_bytes)
        common = OtlpReceiverSettings(max_body_bytes=settings.max_body_bytes, token=settings.token)
        self.otlp_receiver = OtlpHttpReceiver(self.intake, collector.metrics, common)
        self.grpc_receiver = OtlpGrpcReceiver(self.intake, collector.metrics, OtlpGrpcSettings(common))
        self.otlp_app = AllowedHosts(self.otlp_receiver, settings.host_policy)

    def drain(self, timeout_s: float) -> None:
        """Store what is queued, and link it (the map would miss the last 2 s otherwise)."""
        if not self.pipeline.stop(timeout_s):
            _logger.error("the writer did not drain within %.0f s", timeout_s)
            return
        try:
            self.collector.store.link_new_spans()
        except StoreUnavailable as exc:  # the spans are stored; the map misses their last 2 s
            _logger.warning("linking the last spans failed: %s", exc)


def _nothing() -> None:
    """A read-only collector's flush: nothing of its own waits to be stored."""


def ingest_log_path(db_path: str) -> str:
    """The ingest log lives beside the database file (as DuckDB's own .wal does)."""
    return f"{db_path}.ingest"


def _always() -> bool:
    """A file's collector is the only one: it always watches for insights."""
    return True
