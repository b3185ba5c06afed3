"""The collector engine: store, pipeline, receivers and housekeeping, composed once.

``fluoro serve`` (in ui/) builds a :class:`Collector`, serves its OTLP app, its X-Ray protocol
and the query API, and calls :meth:`Collector.stop` on the way out, which drains the queue,
commits and closes the file. Tests build one the same way around a temporary file.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field

from collector.allowed_hosts import AllowedHosts, HostPolicy
from collector.fresh_reader import FreshReader
from collector.housekeeping import Housekeeper
from collector.ingest.ingest_log import IngestLog
from collector.ingest.limits import PipelineLimits
from collector.ingest.periodic import PeriodicTask
from collector.ingest.pipeline import IngestPipeline
from collector.metrics import CollectorMetrics
from collector.model import SpanBatch
from collector.normalize.admission import TimeBounds, admit
from collector.receivers.otlp_http import OtlpHttpReceiver, OtlpReceiverSettings, decode_logged_request
from collector.receivers.xray_udp import XRayReceiverSettings, XRayUdpReceiver
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.protocols import StoreUnavailable
from collector.storage.rollup_sql import SETTLE_NS

_logger = logging.getLogger(__name__)


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
    max_body_bytes: int = 20 * 1024 * 1024
    token: str | None = None
    # The Host names HTTP requests may carry (collector/allowed_hosts.py).
    host_policy: HostPolicy = field(default_factory=HostPolicy)
    limits: PipelineLimits = field(default_factory=PipelineLimits)


class Collector:
    """One DuckDB file and everything that writes to and reads from it."""

    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self.metrics = CollectorMetrics()
        self.store = DuckDBStore(settings.db_path)
        self.log = IngestLog(ingest_log_path(settings.db_path))
        self.metrics.watch_database_size(lambda: self.store.file_size_bytes() + self.log.size_bytes)
        self.metrics.watch_quarantined(lambda: self.store.map_tables.quarantined_spans)
        retention = PeriodicTask(settings.retention_check_s, self.apply_retention)
        self.time_bounds = TimeBounds(retention_s=settings.retention_s)
        self.pipeline = IngestPipeline(
            self.store, self.log, self.replay_record, self.metrics, settings.limits, (retention,)
        )
        self.reader = FreshReader(self.store.reader, self.pipeline.flush)
        self.housekeeper = Housekeeper(
            (
                PeriodicTask(settings.link_interval_s, self.link),
                PeriodicTask(min(10.0, settings.parent_wait_s), self.expire_orphans),
                PeriodicTask(15.0, self.roll_up),
            )
        )
        self.otlp_receiver = OtlpHttpReceiver(
            self.pipeline,
            self.metrics,
            OtlpReceiverSettings(
                max_body_bytes=settings.max_body_bytes, token=settings.token, time_bounds=self.time_bounds
            ),
        )
        self.otlp_app = AllowedHosts(self.otlp_receiver, settings.host_policy)
        self._xray: XRayUdpReceiver | None = None

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
        deleted = self.store.delete_older_than(cutoff_ns)
        if deleted:
            _logger.info("retention removed %d spans", deleted)

    def expire_orphans(self) -> None:
        self.store.expire_pending_calls(time.time_ns() - int(self.settings.parent_wait_s * 1e9))

    def link(self) -> None:
        self.store.link_new_spans()

    def roll_up(self) -> None:
        self.store.roll_up_calls(time.time_ns() - SETTLE_NS)

    def start(self) -> None:
        self.pipeline.start()
        self.housekeeper.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Flush the X-Ray batch, drain the queue, commit and close the file."""
        if self._xray is not None:
            self._xray.close()
        self.housekeeper.stop(timeout_s)
        drained = self.pipeline.stop(timeout_s)
        if not drained:
            _logger.error("the writer did not drain within %.0f s", timeout_s)
        else:
            try:
                self.store.link_new_spans()
            except StoreUnavailable as exc:  # the spans are stored; the map misses their last 2 s
                _logger.warning("linking the last spans failed: %s", exc)
        self.store.close()
        self.log.close()


def ingest_log_path(db_path: str) -> str:
    """The ingest log lives beside the database file (as DuckDB's own .wal does)."""
    return f"{db_path}.ingest"
