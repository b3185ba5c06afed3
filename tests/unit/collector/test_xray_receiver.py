"""The X-Ray UDP receiver on a real loopback socket: read on its own thread, datagrams whole or
not at all, and a flood held to a share of a core, the rest dropped by the kernel and counted."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from collector.ingest.pending import WriteOutcome
from collector.metrics import CollectorMetrics
from collector.model import SpanBatch
from collector.normalize.admission import TOO_NEW, TimeBounds
from collector.receivers.xray_udp import SO_RXQ_OVFL, CpuShare, WorkBudget, XRayReceiverSettings, XRayUdpReceiver
from tests.waiting import wait_until

HEADER = b'{"format": "json", "version": 1}\n'
NOW_S = 1_800_000_000.0
TRACE = "1-6b49d200-bd862e3fe1be46a994272793"


class FakePipeline:
    """Takes batches as the real pipeline does, and keeps them."""

    def __init__(self) -> None:
        self.batches: list[SpanBatch] = []

    def submit(self, batch: SpanBatch, byte_size: int, done: Callable[[WriteOutcome], None], *_: Any) -> bool:
        self.batches.append(batch)
        return True

    def span_names(self) -> list[str]:
        return [name for b in self.batches for name in b.spans.column("name").to_pylist()]


def datagram(**overrides: Any) -> bytes:
    document = {
        "name": "orders",
        "id": "70de5b6f19ff9a0a",
        "trace_id": TRACE,
        "start_time": NOW_S - 1,
        "end_time": NOW_S - 0.5,
        "subsegments": [
            {"name": "first", "id": "1111111111111111", "start_time": NOW_S - 0.9, "end_time": NOW_S - 0.8},
            {"name": "second", "id": "2222222222222222", "start_time": NOW_S - 0.7, "end_time": NOW_S - 0.6},
        ],
        **overrides,
    }
    return HEADER + orjson.dumps(document)


class Running:
    """A receiver reading a bound loopback socket, and a client socket to send to it."""

    def __init__(self, settings: XRayReceiverSettings, receive_buffer: int | None = None) -> None:
        self.pipeline, self.metrics = FakePipeline(), CollectorMetrics()
        self.server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if receive_buffer:
            self.server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.server.bind(("127.0.0.1", 0))
        self.client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.receiver = XRayUdpReceiver(self.pipeline, self.metrics, settings, clock_ns=lambda: int(NOW_S * 1e9))  # type: ignore[arg-type]
        self.receiver.start(self.server)

    def send(self, data: bytes) -> None:
        self.client.sendto(data, self.server.getsockname())

    def counter(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels or None) or 0.0

    def stop(self) -> None:
        if self.server.fileno() < 0:
            return
        time.sleep(0.2)  # loopback delivery is immediate, the thread's read a moment later
        self.receiver.close()
        self.server.close()
        self.client.close()


@pytest.fixture
def running() -> Iterator[Running]:
    instance = Running(XRayReceiverSettings(flush_interval_s=0.01, time_bounds=TimeBounds()))
    yield instance
    instance.stop()


def test_a_good_datagram_is_stored_whole(running: Running) -> None:
    running.send(datagram())
    running.stop()
    assert sorted(running.pipeline.span_names()) == ["first", "orders", "second"]


def test_a_datagram_with_one_bad_subsegment_stores_nothing(running: Running) -> None:
    bad = datagram(subsegments=[{"name": "first", "id": "1111111111111111", "start_time": NOW_S - 0.9}, {"name": "x"}])
    running.send(bad)
    running.send(datagram(id="0000000000000abc"))
    running.stop()
    assert sorted(running.pipeline.span_names()) == ["first", "orders", "second"]  # the good datagram's only
    assert running.counter("fluoro_xray_bad_datagrams_total") == 1


def test_a_datagram_with_an_unbelievable_time_stores_nothing(running: Running) -> None:
    late = datagram(
        subsegments=[{"name": "future", "id": "1111111111111111", "start_time": NOW_S + 7200, "end_time": NOW_S + 7201}]
    )
    running.send(late)
    running.stop()
    assert running.pipeline.batches == []
    assert running.counter("fluoro_spans_rejected_for_time_total", receiver="xray_udp", reason=TOO_NEW) == 1
    assert running.counter("fluoro_spans_rejected_total", receiver="xray_udp") == 2  # the segment went with it


def test_a_flood_past_the_budget_is_dropped_by_the_kernel_and_counted() -> None:
    # A budget of 0.1% of a core: the thread parses a datagram or two a window and sleeps out
    # the rest, while a small receive buffer overflows. Every datagram is either stored or
    # counted as dropped.
    tiny = CpuShare(share=0.001, window_s=0.05)
    settings = XRayReceiverSettings(flush_interval_s=0.01, calm_share=tiny, flood_share=tiny)
    flood = Running(settings, receive_buffer=16 * 1024)
    sent = 600
    for n in range(sent):
        flood.send(datagram(id=f"{n + 1:016x}", subsegments=[]))
    # The kernel's count comes with the first datagram queued after its drops: send more until
    # one gets in (the buffer frees a slot a window at most).
    deadline = time.monotonic() + 10
    while flood.counter("fluoro_xray_dropped_datagrams_total") == 0 and time.monotonic() < deadline:
        sent += 1
        flood.send(datagram(id=f"{sent:016x}", subsegments=[]))
        time.sleep(0.05)
    flood.stop()
    stored = len(flood.pipeline.span_names())
    dropped = flood.counter("fluoro_xray_dropped_datagrams_total")
    assert dropped > 0
    assert stored < sent / 2  # most of the flood never reached the parser
    assert stored + dropped == sent


def test_the_budget_sleeps_out_a_window_whose_share_is_used() -> None:
    now = [0.0]
    budget = WorkBudget(XRayReceiverSettings(calm_share=CpuShare(share=0.1, window_s=1.0)), clock=lambda: now[0])
    budget.spent(0.05)
    started = time.monotonic()
    budget.wait_for_room()  # 0.05 of 0.1 used: no wait
    assert time.monotonic() - started < 0.05
    budget.spent(0.06)
    now[0] = 0.9  # 0.11 used: sleeps the window's last 0.1 s
    started = time.monotonic()
    budget.wait_for_room()
    assert time.monotonic() - started >= 0.09


CALM, FLOOD = CpuShare(share=0.1, window_s=1.0), CpuShare(share=0.01, window_s=2.0)


def test_the_budget_takes_the_flood_share_while_drops_run_at_a_floods_rate() -> None:
    now = [0.0]
    settings = XRayReceiverSettings(calm_share=CALM, flood_share=FLOOD, flood_drops_per_s=1000, calm_after_s=1.0)
    budget = WorkBudget(settings, clock=lambda: now[0])
    budget.dropped(999)  # a client a little past the calm share: its drops stay under a flood's rate
    assert budget.current == CALM
    now[0] = 1.0
    budget.dropped(999)  # a new second
    assert budget.current == CALM
    budget.dropped(1)
    assert budget.current == FLOOD
    now[0] = 1.99
    assert budget.current == FLOOD
    budget.dropped(5000)  # the flood goes on: a second more
    now[0] = 2.5
    assert budget.current == FLOOD
    now[0] = 3.0
    assert budget.current == CALM


def test_under_a_flood_the_budget_sleeps_after_the_flood_share() -> None:
    now = [0.0]
    settings = XRayReceiverSettings(
        calm_share=CpuShare(share=0.5, window_s=0.2),
        flood_share=CpuShare(share=0.05, window_s=0.2),
        flood_drops_per_s=1,
    )
    budget = WorkBudget(settings, clock=lambda: now[0])
    budget.dropped(1)
    budget.spent(0.02)  # within the calm share (0.1 s), past the flood share (0.01 s)
    started = time.monotonic()
    budget.wait_for_room()
    assert time.monotonic() - started >= 0.15


def test_the_receiver_takes_the_flood_share_while_the_kernel_drops() -> None:
    calm, flood_share = CpuShare(share=0.5, window_s=0.05), CpuShare(share=0.001, window_s=0.05)
    settings = XRayReceiverSettings(
        flush_interval_s=0.01, calm_share=calm, flood_share=flood_share, flood_drops_per_s=1, calm_after_s=0.5
    )
    flood = Running(settings, receive_buffer=16 * 1024)
    try:
        assert flood.counter("fluoro_xray_cpu_share") == 0.5
        deadline, sent = time.monotonic() + 10, 0
        while flood.counter("fluoro_xray_dropped_datagrams_total") == 0 and time.monotonic() < deadline:
            for _ in range(200):
                sent += 1
                flood.send(datagram(id=f"{sent:016x}", subsegments=[]))
            time.sleep(0.01)
        wait_until(lambda: flood.counter("fluoro_xray_cpu_share") == 0.001, timeout_s=2)  # the drops' read marks it
        wait_until(lambda: flood.counter("fluoro_xray_cpu_share") == 0.5, timeout_s=5)
    finally:
        flood.stop()


def test_close_reads_what_the_socket_holds(running: Running) -> None:
    gate = threading.Event()
    for n in range(20):
        running.send(datagram(id=f"{n + 1:016x}", subsegments=[]))
    gate.set()
    running.stop()
    assert len(running.pipeline.span_names()) == 20


def test_drops_after_the_last_datagram_read_are_counted_at_stop() -> None:
    # A buffer filled and overflowed before the thread reads: the datagrams it holds were queued
    # before the drops, so none of them carries the kernel's count; only the stop can find it.
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    server.bind(("127.0.0.1", 0))
    server.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)  # before the sends, as start() would
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 300
    for n in range(sent):
        client.sendto(datagram(id=f"{n + 1:016x}", subsegments=[]), server.getsockname())
    pipeline, metrics = FakePipeline(), CollectorMetrics()
    settings = XRayReceiverSettings(flush_interval_s=0.01)
    receiver = XRayUdpReceiver(pipeline, metrics, settings, clock_ns=lambda: int(NOW_S * 1e9))  # type: ignore[arg-type]
    receiver.start(server)
    receiver.close()
    server.close()
    client.close()
    stored = len(pipeline.span_names())
    dropped = metrics.registry.get_sample_value("fluoro_xray_dropped_datagrams_total") or 0.0
    assert 0 < stored < sent
    assert stored + dropped == sent
