"""The X-Ray daemon protocol: segment documents over UDP (port 2000).

The socket is read by a thread of its own (``fluoro-xray``), never by the event loop: under a
flood an asyncio datagram endpoint runs one callback per datagram and starves every OTLP
acknowledgement and page behind it. The thread waits on the socket (and a wake-up pair for
stop) with no timer while idle, parses each datagram, and gathers the spans into one batch,
submitted to the pipeline at most every `flush_interval_s` or every `max_batch_spans` spans. A
datagram is taken whole or not at all: a bad subsegment or an unbelievable time anywhere in it
refuses every span it holds.

What the thread may cost is capped: within each window it works at most a share of the time,
then sleeps (without the GIL) until the window ends, and the kernel's socket buffer drops what
comes meanwhile. Those drops are counted exactly (``SO_RXQ_OVFL``: the kernel's count arrives
with the next datagram read; at stop, ``SO_MEMINFO`` gives those after the last one read) as
``fluoro_xray_dropped_datagrams_total``. While the kernel
reports drops at a flood's rate the receiver takes a smaller share in longer windows: what
it does not read is lost anyway, and each wake-up takes the GIL from the pages (500 wake-ups a
second cost the page ~15% even with nothing parsed; bench/hostile.py). UDP has no acknowledgement, so nothing waits on a
commit: a batch the pipeline refuses (full, stopping) is dropped and counted too.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from collector.client_errors import RateLimitedLog
from collector.ingest.pending import WriteOutcome
from collector.ingest.pipeline import IngestPipeline
from collector.metrics import CollectorMetrics
from collector.model import SpanBatchBuilder
from collector.normalize.admission import TimeBounds, refusals
from collector.normalize.xray import BadSegment, SegmentWalker, parse_datagram

_logger = logging.getLogger(__name__)
RECEIVER = "xray_udp"
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)  # Linux: the kernel's drop count with each read
MAX_DATAGRAM_BYTES = 65_536
DROPS = struct.Struct("=I")
SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)  # Linux: the socket's counters, drops among them
MEMINFO_DROPS_OFFSET = 8 * DROPS.size  # SK_MEMINFO_DROPS, the ninth u32


@dataclass(frozen=True)
class CpuShare:
    """At most `share` of a core, measured over each `window_s`: spent in bursts of
    share x window holding the GIL, then a sleep to the window's end."""

    share: float
    window_s: float


@dataclass(frozen=True)
class XRayReceiverSettings:
    flush_interval_s: float = 0.1
    max_batch_spans: int = 2000
    # Bursts hold the GIL, so they are short: 0.2 ms (bench/hostile.py against a flood of a
    # socket nobody reads, medians of 3 interleaved runs: acknowledgement p99 1.05x of it with
    # 0.2 ms in 2, 1.27x with 1 ms in 10, 2.1-2.5x with 10 ms in 100). 10% of a core parses
    # ~3,200 datagrams/s.
    calm_share: CpuShare = CpuShare(share=0.1, window_s=0.002)
    # Under a flood (the kernel drops `flood_drops_per_s` within a second, and `calm_after_s`
    # after), the same bursts ten times rarer: what is not read is lost anyway, and each wake-up
    # takes the GIL from the pages (500 a second cost the page p50 ~1.15x with nothing parsed).
    # bench/hostile.py, medians of 5 runs against the control: page p50 1.05x, p99 0.99x,
    # acknowledgement p99 0.68x (0.2 ms in 10: page p50 1.10x, p99 1.18x, 7 runs); ~125
    # datagrams of a flood parsed a second.
    flood_share: CpuShare = CpuShare(share=0.01, window_s=0.02)
    # A rate a client that merely outruns the calm share cannot reach (its drops stay below its
    # own rate), so it is never pushed down to the flood share and kept there.
    flood_drops_per_s: int = 10_000
    calm_after_s: float = 1.0
    time_bounds: TimeBounds = field(default_factory=TimeBounds)


class XRayUdpReceiver:
    """Reads, parses and submits the X-Ray daemon's datagrams on a thread of its own."""

    def __init__(
        self,
        pipeline: IngestPipeline,
        metrics: CollectorMetrics,
        settings: XRayReceiverSettings,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.settings = settings
        self._clock_ns = clock_ns
        self._builder = SpanBatchBuilder()
        self._bytes = 0
        self._client_errors = RateLimitedLog(_logger)
        self._kernel_drops = 0
        self._budget = WorkBudget(settings)
        metrics.watch_xray_share(lambda: self._budget.current.share)
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self, sock: socket.socket) -> None:
        """Read `sock` (a bound UDP socket) until close()."""
        sock.setblocking(False)
        with contextlib.suppress(OSError):  # not Linux: drops by the kernel go uncounted
            sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="fluoro-xray", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Read what the socket holds, submit it, stop the thread (the socket stays open)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._wake_writer.send(b"x")
        thread.join(timeout_s)
        self._wake_reader.close()
        self._wake_writer.close()

    def _serve(self) -> None:
        assert self._sock is not None
        selector = selectors.DefaultSelector()
        selector.register(self._sock, selectors.EVENT_READ)
        selector.register(self._wake_reader, selectors.EVENT_READ)
        budget = self._budget
        deadline: float | None = None
        stopping = False
        while not stopping:
            # Idle, it waits with no timer: a thread waking on a timer takes the GIL from the
            # event loop (ten wakes a second had cost OTLP acknowledgements ~2 ms at p99).
            wait_s = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = {key.fileobj for key, _ in selector.select(wait_s)}
            stopping = self._wake_reader in ready
            if self._sock in ready or stopping:
                self._read_available(budget, final=stopping)
            if self._builder.span_count and deadline is None:
                deadline = time.monotonic() + self.settings.flush_interval_s
            if deadline is not None and (stopping or time.monotonic() >= deadline):
                self._flush()
                deadline = None
        selector.close()
        self._count_drops_after_last_read()

    def _read_available(self, budget: WorkBudget, *, final: bool) -> None:
        """Parse the datagrams waiting in the socket, within the budget (all of them at stop)."""
        assert self._sock is not None
        while True:
            if not final:
                budget.wait_for_room()
            started = time.perf_counter()
            try:
                data, ancillary, _, _ = self._sock.recvmsg(MAX_DATAGRAM_BYTES, socket.CMSG_SPACE(DROPS.size))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # the socket was closed under us
                return
            budget.dropped(self._count_kernel_drops(ancillary))
            self.receive(data)
            budget.spent(time.perf_counter() - started)

    def _count_kernel_drops(self, ancillary: list[tuple[int, int, bytes]]) -> int:
        """Count what the kernel dropped since the last read, and say how many."""
        dropped = 0
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(data) >= DROPS.size:
                dropped = self._note_kernel_drops(DROPS.unpack_from(data)[0])
        return dropped

    def _note_kernel_drops(self, total: int) -> int:
        """The kernel's running drop count is `total`: count the new ones, and say how many."""
        dropped = max(0, total - self._kernel_drops)
        if dropped:
            self.metrics.xray_dropped_datagrams.inc(dropped)
        self._kernel_drops = total
        return dropped

    def _count_drops_after_last_read(self) -> None:
        """At stop, count what the kernel dropped after the last datagram read: no later
        datagram will carry that count."""
        assert self._sock is not None
        try:
            meminfo = self._sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 64)
        except OSError:  # not Linux, or the socket is gone
            return
        if len(meminfo) >= MEMINFO_DROPS_OFFSET + DROPS.size:
            self._note_kernel_drops(DROPS.unpack_from(meminfo, MEMINFO_DROPS_OFFSET)[0])

    def receive(self, data: bytes) -> None:
        """One datagram: its spans all go into the batch, or none of them."""
        one = SpanBatchBuilder()
        try:
            SegmentWalker(one).add_document(parse_datagram(data))
        except BadSegment as exc:
            self._refuse_datagram(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a parser bug: this datagram only, one line, no traceback
            self._refuse_datagram(f"broke the parser: {type(exc).__name__}: {exc}")
            return
        if not one.rows:
            return
        times = refusals(
            np.fromiter((r.start_ns for r in one.rows), np.int64, len(one.rows)),
            np.fromiter((r.duration_ns for r in one.rows), np.int64, len(one.rows)),
            self.settings.time_bounds,
            self._clock_ns(),
        )
        self.metrics.received.labels(RECEIVER).inc(len(one.rows))
        if times.counts:
            for reason, count in times.counts.items():
                self.metrics.rejected_for_time.labels(RECEIVER, reason).inc(count)
            self.metrics.rejected.labels(RECEIVER).inc(len(one.rows))
            self._client_errors.warn("X-Ray datagram refused", ", ".join(times.counts))
            return
        self._builder.extend(one)
        self._bytes += len(data)
        if self._builder.span_count >= self.settings.max_batch_spans:
            self._flush()

    def _refuse_datagram(self, reason: str) -> None:
        self.metrics.bad_datagrams.inc()
        self._client_errors.warn("X-Ray datagram refused", reason)

    def _flush(self) -> None:
        """Hand the gathered spans to the pipeline (dropping them, counted, if it refuses)."""
        if self._builder.span_count == 0:
            return
        builder, byte_size = self._builder, self._bytes
        self._builder, self._bytes = SpanBatchBuilder(), 0
        try:
            batch = builder.build()
        except Exception as exc:  # noqa: BLE001 - a value no column takes: these spans only
            self._client_errors.warn("X-Ray spans could not be batched", f"{type(exc).__name__}: {exc}")
            self.metrics.rejected.labels(RECEIVER).inc(builder.span_count)
            return
        if not self.pipeline.submit(batch, byte_size + batch.decoded_bytes, self._on_written(batch.span_count)):
            self.metrics.dropped.labels(RECEIVER).inc(batch.span_count)

    def _on_written(self, spans: int) -> Callable[[WriteOutcome], None]:
        def done(outcome: WriteOutcome) -> None:
            if not outcome.ok:
                self.metrics.dropped.labels(RECEIVER).inc(spans)

        return done


class WorkBudget:
    """At most the current share of each window spent working; wait_for_room sleeps out the rest
    of a window whose share is used. The flood share holds while the kernel's drops run at a
    flood's rate, and for `calm_after_s` after."""

    def __init__(self, settings: XRayReceiverSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self._calm, self._flood = settings.calm_share, settings.flood_share
        self._flood_drops_per_s, self._calm_after_s = settings.flood_drops_per_s, settings.calm_after_s
        self._clock = clock
        self._window_start = clock()
        self._used_s = 0.0
        self._drops_since, self._drops = self._window_start, 0
        self._flooded_until = float("-inf")

    @property
    def current(self) -> CpuShare:
        return self._flood if self._clock() < self._flooded_until else self._calm

    def dropped(self, datagrams: int) -> None:
        """The kernel dropped this many since the last read."""
        if not datagrams:
            return
        now = self._clock()
        if now - self._drops_since >= 1.0:
            self._drops_since, self._drops = now, 0
        self._drops += datagrams
        if self._drops >= self._flood_drops_per_s:
            self._flooded_until = now + self._calm_after_s

    def spent(self, seconds: float) -> None:
        self._used_s += seconds

    def wait_for_room(self) -> None:
        now, share = self._clock(), self.current
        if now - self._window_start >= share.window_s:
            self._window_start, self._used_s = now, 0.0
        elif self._used_s >= share.share * share.window_s:
            time.sleep(self._window_start + share.window_s - now)
            self._window_start, self._used_s = self._clock(), 0.0
