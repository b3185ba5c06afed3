"""OTLP/gRPC into a real daemon: the stock OpenTelemetry exporter, and a raw channel for what a
hostile or broken client sends (the OTLP specification's status codes, each with its reason)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.engine import Collector, CollectorSettings
from collector.ingest.limits import PipelineLimits
from collector.model import SpanBatch
from collector.receivers.otlp_grpc import OtlpGrpcReceiver, OtlpGrpcSettings
from collector.receivers.otlp_intake import OtlpReceiverSettings
from tests.integration.daemon import Daemon
from tests.protowire import delimited, key_value, request, span, string_value

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
TOKEN = "grpc-secret"


def traced_with(exporter: OTLPSpanExporter, service: str) -> str:
    """One trace of two spans through the stock SDK and `exporter`; its id in hex."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("grpc-test")
    with tracer.start_as_current_span("checkout") as root, tracer.start_as_current_span("charge"):
        trace_id = f"{root.get_span_context().trace_id:032x}"
    provider.shutdown()
    return trace_id


Metadata = tuple[tuple[str, str], ...]


def raw_export(
    address: str, body: bytes, metadata: Metadata = (), compression: grpc.Compression | None = None
) -> bytes:
    with grpc.insecure_channel(address) as channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(EXPORT)  # bytes in, bytes out
        return call(body, timeout=10, metadata=metadata, compression=compression)


def refusal(
    address: str, body: bytes, metadata: Metadata = (), compression: grpc.Compression | None = None
) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        raw_export(address, body, metadata, compression)
    return raised.value


def now_request(service: str, trace_byte: int, spans: int = 1) -> bytes:
    trace_id = bytes([trace_byte]) * 16
    now = time.time_ns()
    return request(
        [span(trace_id=trace_id, span_id=(i + 1).to_bytes(8, "big"), start_ns=now) for i in range(spans)],
        resource=delimited(1, key_value("service.name", string_value(service))),
    )


def test_the_stock_exporter_stores_a_trace(daemon: Daemon) -> None:
    trace_id = traced_with(OTLPSpanExporter(endpoint=daemon.grpc_address, insecure=True), "grpc-default")
    spans = daemon.wait_for_trace(trace_id, 2)
    assert {(s["service"], s["name"]) for s in spans} == {("grpc-default", "checkout"), ("grpc-default", "charge")}


def test_the_stock_exporter_with_gzip_stores_a_trace(daemon: Daemon) -> None:
    exporter = OTLPSpanExporter(endpoint=daemon.grpc_address, insecure=True, compression=grpc.Compression.Gzip)
    trace_id = traced_with(exporter, "grpc-gzip")
    assert len(daemon.wait_for_trace(trace_id, 2)) == 2


def test_a_default_sdk_left_on_its_environment_finds_the_daemon(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{daemon.grpc_address}")
    trace_id = traced_with(OTLPSpanExporter(), "grpc-from-env")
    assert len(daemon.wait_for_trace(trace_id, 2)) == 2


def test_undecodable_messages_are_invalid_argument_with_the_reason(daemon: Daemon) -> None:
    for body in (b"\xff\xff\xff", b"\x0a\x80\x80\x80\x80\x10", os.urandom(4096), now_request("cut", 0x31)[:-3]):
        error = refusal(daemon.grpc_address, body)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (body[:16], error.details())
        assert error.details()
    assert daemon.process is not None and daemon.process.poll() is None


def test_an_empty_message_is_an_empty_success(daemon: Daemon) -> None:
    assert ExportTraceServiceResponse.FromString(raw_export(daemon.grpc_address, b"")) == ExportTraceServiceResponse()


def test_spans_with_unbelievable_times_get_a_partial_success(daemon: Daemon) -> None:
    trace_id = bytes.fromhex("e7" * 16)
    body = request(
        [
            span(trace_id=trace_id, span_id=b"\x01" * 8, start_ns=2**63 - 10, end_ns=2**63 - 5),
            span(trace_id=trace_id, span_id=b"\x02" * 8, start_ns=time.time_ns()),
        ],
        resource=delimited(1, key_value("service.name", string_value("grpc-skewed"))),
    )
    partial = ExportTraceServiceResponse.FromString(raw_export(daemon.grpc_address, body)).partial_success
    assert partial.rejected_spans == 1 and "ahead" in partial.error_message
    assert [s["span_id"] for s in daemon.wait_for_trace(trace_id.hex(), 1)] == ["02" * 8]


def test_unknown_methods_are_unimplemented(daemon: Daemon) -> None:
    with grpc.insecure_channel(daemon.grpc_address) as channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Delete"
        )
        with pytest.raises(grpc.RpcError) as raised:
            call(b"", timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with a token and a 1 MiB message cap."""
    running = Daemon(
        tmp_path_factory.mktemp("grpc-guarded") / "spans.duckdb", token=TOKEN, extra_args=("--max-body-mb", "1")
    ).start()
    yield running
    code, output = running.stop()
    assert code == 0 and "Traceback" not in output, output


def test_the_token_travels_as_authorization_metadata(guarded: Daemon) -> None:
    exporter = OTLPSpanExporter(
        endpoint=guarded.grpc_address, insecure=True, headers={"authorization": f"Bearer {TOKEN}"}
    )
    trace_id = traced_with(exporter, "grpc-guarded")
    assert len(guarded.wait_for_trace(trace_id, 2)) == 2
    for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)):
        error = refusal(guarded.grpc_address, now_request("intruder", 0x41), metadata=metadata)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "bearer token" in (error.details() or "")
    assert guarded.trace("41" * 16) == []


def test_a_message_over_the_cap_is_refused_compressed_or_not(guarded: Daemon) -> None:
    auth = (("authorization", f"Bearer {TOKEN}"),)
    big = now_request("too-big", 0x51) + delimited(1, b"\x00" * (2 * 1024 * 1024))
    assert refusal(guarded.grpc_address, big, metadata=auth).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # 2 MiB of zeros deflate to ~2 KiB: the cap holds for the inflated message (a gzip bomb).
    bomb = refusal(guarded.grpc_address, big, metadata=auth, compression=grpc.Compression.Gzip)
    assert bomb.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert guarded.trace("51" * 16) == []
    assert guarded.process is not None and guarded.process.poll() is None


def test_the_exporter_gives_up_on_a_refused_token(guarded: Daemon) -> None:
    finished = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-refused"}))
    provider.add_span_processor(SimpleSpanProcessor(finished))
    with provider.get_tracer("grpc-test").start_as_current_span("refused"):
        pass
    exporter = OTLPSpanExporter(endpoint=guarded.grpc_address, insecure=True, headers={"authorization": "Bearer no"})
    started = time.monotonic()
    assert exporter.export(finished.get_finished_spans()) == SpanExportResult.FAILURE
    assert time.monotonic() - started < 5  # UNAUTHENTICATED is not retried


def test_a_full_queue_is_resource_exhausted_with_a_retry_delay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One batch is let in whatever the bounds; it is held (logged, its fold kept from finishing
    # until the test is done: a fold starts at once and, on a busy machine, could end before the
    # next call), so the next is refused.
    settings = CollectorSettings(db_path=str(tmp_path / "full.duckdb"), limits=PipelineLimits(max_queue_bytes=1))
    collector = Collector(settings)
    folds_may_end = threading.Event()
    write = collector.store.write

    def held_write(batches: Sequence[SpanBatch]) -> int:
        folds_may_end.wait(30)
        return write(batches)

    monkeypatch.setattr(collector.store, "write", held_write)
    collector.start()
    try:
        error = asyncio.run(_export_to_collector(collector, now_request("full", 0x61, spans=3)))
    finally:
        folds_may_end.set()
        collector.stop()
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "queue is full" in (error.details() or "")
    trailers = dict(error.trailing_metadata() or ())
    retry = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    assert retry.retry_delay.seconds == 1
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    unpacked = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(unpacked) and unpacked == retry


async def _export_to_collector(collector: Collector, body: bytes) -> grpc.aio.AioRpcError:
    assert collector.ingest is not None
    receiver = collector.ingest.grpc_receiver
    port = await receiver.start("127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            export: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(EXPORT)
            assert await export(now_request("held", 0x62), timeout=10) == b""
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await export(body, timeout=10)
            return raised.value
    finally:
        await receiver.stop()


def test_calls_past_the_cap_are_refused_with_a_retry_delay_before_their_message_is_read(tmp_path: Path) -> None:
    """Two calls that send nothing hold the receiver's two slots: a third is refused at once with
    RetryInfo (gRPC's own cap sent none, and the Go SDK's exporter and the Collector's drop a
    RESOURCE_EXHAUSTED without it); once they end, calls are served again."""
    collector = Collector(CollectorSettings(db_path=str(tmp_path / "cap.duckdb")))
    collector.start()
    try:
        outcome = asyncio.run(_past_the_cap(collector, OtlpGrpcSettings(max_concurrent_calls=2)))
    finally:
        collector.stop()
    error, held, after = outcome
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "2 calls in flight" in (error.details() or "")
    trailers = dict(error.trailing_metadata() or ())
    assert error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]).retry_delay.seconds == 1
    # The held calls ended without a message: not an OTLP client's call, refused as such.
    assert held == [(grpc.StatusCode.INVALID_ARGUMENT, "the call ended without a message")] * 2
    assert after == b""


def test_a_call_that_sends_no_message_gives_its_slot_back(tmp_path: Path) -> None:
    collector = Collector(CollectorSettings(db_path=str(tmp_path / "silent.duckdb")))
    collector.start()
    try:
        settings = OtlpGrpcSettings(OtlpReceiverSettings(body_wait_s=0.3), max_concurrent_calls=1)
        error, after = asyncio.run(_silent_then_served(collector, settings))
    finally:
        collector.stop()
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "no message within 0.3 s" in (error.details() or "")
    assert after == b""


def _receiver(collector: Collector, settings: OtlpGrpcSettings) -> OtlpGrpcReceiver:
    assert collector.ingest is not None
    return OtlpGrpcReceiver(collector.ingest.intake, collector.metrics, settings)


async def _past_the_cap(
    collector: Collector, settings: OtlpGrpcSettings
) -> tuple[grpc.aio.AioRpcError, list[tuple[grpc.StatusCode, str | None]], bytes]:
    receiver = _receiver(collector, settings)
    port = await receiver.start("127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            streamed: grpc.aio.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(EXPORT)
            held = [streamed(timeout=10) for _ in range(2)]  # calls open, nothing written
            started = time.monotonic()
            while receiver.calls_in_flight < 2 and time.monotonic() - started < 5:
                await asyncio.sleep(0.01)
            export: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(EXPORT)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await export(now_request("refused", 0x63), timeout=10)
            ended = []
            for call in held:
                await call.done_writing()
            for call in held:
                with pytest.raises(grpc.aio.AioRpcError) as without_message:
                    await call
                ended.append((without_message.value.code(), without_message.value.details()))
            return raised.value, ended, await export(now_request("served", 0x64), timeout=10)
    finally:
        await receiver.stop()


async def _silent_then_served(collector: Collector, settings: OtlpGrpcSettings) -> tuple[grpc.aio.AioRpcError, bytes]:
    receiver = _receiver(collector, settings)
    port = await receiver.start("127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            streamed: grpc.aio.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(EXPORT)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await streamed(timeout=10)  # a call open, nothing ever written
            export: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(EXPORT)
            return raised.value, await export(now_request("served", 0x65), timeout=10)
    finally:
        await receiver.stop()


def test_a_second_message_on_a_call_is_never_read(tmp_path: Path) -> None:
    """Export is unary: a client that streams more messages gets the first stored and its call
    answered; what it sends after is not read."""
    collector = Collector(CollectorSettings(db_path=str(tmp_path / "two.duckdb")))
    collector.start()
    try:
        answer = asyncio.run(_two_messages(collector))
    finally:
        collector.stop()
    assert answer == b""  # the first taken (an OK answer), the undecodable second never read


async def _two_messages(collector: Collector) -> bytes:
    receiver = _receiver(collector, OtlpGrpcSettings())
    port = await receiver.start("127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            streamed: grpc.aio.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(EXPORT)
            call = streamed(timeout=10)
            await call.write(now_request("first", 0x66))
            # Undecodable: were it read, the call would be INVALID_ARGUMENT. The call may be
            # answered before it is written.
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await call.write(b"\xff" * 64)
                await call.done_writing()
            return await call
    finally:
        await receiver.stop()


def test_connections_that_never_speak_http2_are_closed_and_the_cap_holds(tmp_path: Path) -> None:
    """Raw TCP connections that send nothing, or only HTTP/2's preface, are closed once the
    handshake deadline passes (gRPC's default kept them 120 s); past max_connections a new one
    is closed as it is accepted; a real client is served once they are gone."""
    collector = Collector(CollectorSettings(db_path=str(tmp_path / "conns.duckdb")))
    collector.start()
    try:
        closed_at, beyond, answer = asyncio.run(_silent_connections(collector))
    finally:
        collector.stop()
    assert set(closed_at) == {"nothing", "preface"}
    assert all(0.4 <= waited_s < 3.5 for waited_s in closed_at.values()), closed_at
    assert beyond == 3  # of five connections at once, the cap of two kept two
    assert answer == b""


async def _silent_connections(collector: Collector) -> tuple[dict[str, float], int, bytes]:
    receiver = _receiver(collector, OtlpGrpcSettings(handshake_wait_s=0.5, max_connections=2))
    port = await receiver.start("127.0.0.1:0")
    try:
        loop = asyncio.get_running_loop()
        closed_at = await loop.run_in_executor(None, _closing_times, port)
        beyond = await loop.run_in_executor(None, _closed_at_once, port, 5)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            export: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(EXPORT)
            return closed_at, beyond, await export(now_request("after", 0x67), timeout=10)
    finally:
        await receiver.stop()


def _closing_times(port: int) -> dict[str, float]:
    """When the server closed a connection that sent nothing, and one that sent only the preface."""
    sent = {"nothing": b"", "preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"}
    closed_at: dict[str, float] = {}
    started = time.monotonic()
    conns = {name: socket.create_connection(("127.0.0.1", port), timeout=5) for name in sent}
    try:
        for name, data in sent.items():
            conns[name].sendall(data)
        for name, conn in conns.items():
            with contextlib.suppress(OSError):
                while conn.recv(4096):
                    pass
            closed_at[name] = time.monotonic() - started
    finally:
        for conn in conns.values():
            conn.close()
    return closed_at


def _closed_at_once(port: int, count: int) -> int:
    """Of `count` connections opened at once, how many the server closed within a moment."""
    conns = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
    try:
        closed = 0
        for conn in conns:
            conn.settimeout(0.3)
            try:
                closed += conn.recv(4096) == b""
            except TimeoutError:
                pass
            except OSError:  # reset
                closed += 1
        return closed
    finally:
        for conn in conns:
            conn.close()
