"""The X-Ray UDP receiver: parsing off the event loop, datagrams whole or not at all, floods
dropped and counted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from collector.metrics import CollectorMetrics
from collector.model import SpanBatch
from collector.normalize.admission import TOO_NEW, TimeBounds
from collector.pipeline import WriteOutcome
from collector.receivers.xray_udp import DatagramInbox, XRayReceiverSettings, XRayUdpReceiver

HEADER = b'{"format": "json", "version": 1}\n'
NOW_S = 1_800_000_000.0
TRACE = "1-6b49d200-bd862e3fe1be46a994272793"


class FakePipeline:
    """Takes batches as the real pipeline does, and keeps them."""

    def __init__(self) -> None:
        self.batches: list[SpanBatch] = []
        self.accepting = True
        self.submitted = threading.Event()

    def submit(self, batch: SpanBatch, byte_size: int, done: Callable[[WriteOutcome], None], *_: Any) -> bool:
        if not self.accepting:
            return False
        self.batches.append(batch)
        self.submitted.set()
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


@pytest.fixture
def received() -> Iterator[tuple[XRayUdpReceiver, FakePipeline, CollectorMetrics]]:
    pipeline, metrics = FakePipeline(), CollectorMetrics()
    settings = XRayReceiverSettings(flush_interval_s=0.01, max_inbox_bytes=64 * 1024, time_bounds=TimeBounds())
    receiver = XRayUdpReceiver(pipeline, metrics, settings, clock_ns=lambda: int(NOW_S * 1e9))  # type: ignore[arg-type]
    yield receiver, pipeline, metrics
    receiver.close()


def counter(metrics: CollectorMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels or None) or 0.0


def test_a_good_datagram_is_stored_whole(received: tuple[XRayUdpReceiver, FakePipeline, CollectorMetrics]) -> None:
    receiver, pipeline, _ = received
    receiver.datagram_received(datagram(), ("127.0.0.1", 1))
    assert pipeline.submitted.wait(5)
    assert sorted(pipeline.span_names()) == ["first", "orders", "second"]


def test_a_datagram_with_one_bad_subsegment_stores_nothing(
    received: tuple[XRayUdpReceiver, FakePipeline, CollectorMetrics],
) -> None:
    receiver, pipeline, metrics = received
    bad = datagram(subsegments=[{"name": "first", "id": "1111111111111111", "start_time": NOW_S - 0.9}, {"name": "x"}])
    receiver.datagram_received(bad, ("127.0.0.1", 1))
    receiver.datagram_received(datagram(id="0000000000000abc"), ("127.0.0.1", 1))
    receiver.close()
    assert sorted(pipeline.span_names()) == ["first", "orders", "second"]  # the good datagram's only
    assert counter(metrics, "fluoro_xray_bad_datagrams_total") == 1


def test_a_datagram_with_an_unbelievable_time_stores_nothing(
    received: tuple[XRayUdpReceiver, FakePipeline, CollectorMetrics],
) -> None:
    receiver, pipeline, metrics = received
    late = datagram(
        subsegments=[{"name": "future", "id": "1111111111111111", "start_time": NOW_S + 7200, "end_time": NOW_S + 7201}]
    )
    receiver.datagram_received(late, ("127.0.0.1", 1))
    receiver.close()
    assert pipeline.batches == []
    assert counter(metrics, "fluoro_spans_rejected_for_time_total", receiver="xray_udp", reason=TOO_NEW) == 1
    assert counter(metrics, "fluoro_spans_rejected_total", receiver="xray_udp") == 2  # the segment went with it


def test_the_event_loop_only_queues_datagrams(received: tuple[XRayUdpReceiver, FakePipeline, CollectorMetrics]) -> None:
    receiver, pipeline, _ = received
    big = datagram(
        subsegments=[
            {"name": f"s{i}", "id": f"{i + 1:016x}", "start_time": NOW_S - 0.9, "end_time": NOW_S - 0.8}
            for i in range(300)
        ]
    )
    started = time.perf_counter()
    for _ in range(2):
        receiver.datagram_received(big, ("127.0.0.1", 1))
    queued_s = time.perf_counter() - started
    assert pipeline.submitted.wait(5)
    receiver.close()
    assert len(pipeline.span_names()) == 2 * 301
    assert queued_s < 0.05  # two appends; parsing them takes the thread several milliseconds


class StuckPipeline(FakePipeline):
    """A pipeline whose submit waits until released: the parser thread stops taking datagrams."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def submit(self, batch: SpanBatch, byte_size: int, done: Callable[[WriteOutcome], None], *_: Any) -> bool:
        self.entered.set()
        self.release.wait(10)
        return super().submit(batch, byte_size, done)


def test_a_flood_past_the_inbox_is_dropped_and_counted() -> None:
    pipeline, metrics = StuckPipeline(), CollectorMetrics()
    settings = XRayReceiverSettings(max_batch_spans=1, max_inbox_bytes=2 * len(datagram()))
    receiver = XRayUdpReceiver(pipeline, metrics, settings, clock_ns=lambda: int(NOW_S * 1e9))  # type: ignore[arg-type]
    receiver.datagram_received(datagram(), ("127.0.0.1", 1))
    assert pipeline.entered.wait(5)  # the parser holds one batch, stuck in submit
    for _ in range(10):
        receiver.datagram_received(datagram(), ("127.0.0.1", 1))
    assert counter(metrics, "fluoro_xray_dropped_datagrams_total") == 8
    pipeline.release.set()
    receiver.close()
    assert len(pipeline.batches) == 3  # the held one and the two the inbox kept


def test_the_inbox_is_bounded_in_bytes_and_hands_out_in_order() -> None:
    inbox = DatagramInbox(10)
    assert inbox.put(b"12345") and inbox.put(b"678") and not inbox.put(b"abc")
    assert inbox.take(0) == b"12345" and inbox.put(b"abc")
    assert inbox.take(0) == b"678" and inbox.take(0) == b"abc" and inbox.take(0) is None
    inbox.close()
    assert inbox.drained and not inbox.put(b"x")
