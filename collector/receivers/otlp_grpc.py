"""The OTLP/gRPC receiver (port 4317): ``TraceService/Export`` and ``LogsService/Export`` on a
grpc.aio server.

The default exporter of every OpenTelemetry SDK speaks this. Requests reach the same intake as
OTLP/HTTP (collector/receivers/otlp_intake.py): same decoder, same admission, answered only once
the request is in the ingest log. The status codes are the OTLP specification's:

- undecodable message: INVALID_ARGUMENT, with the reason (not retried);
- more calls at once than it serves, ingest queue full, or too many bytes in flight:
  RESOURCE_EXHAUSTED with a RetryInfo delay (the spec makes RESOURCE_EXHAUSTED retryable only
  with one); the store failing: UNAVAILABLE, also with RetryInfo. RetryInfo travels in
  ``grpc-status-details-bin`` (a google.rpc.Status), and in ``google.rpc.retryinfo-bin``, where
  the Python exporter looks for it;
- no message within ``body_wait_s`` of the call's start: DEADLINE_EXCEEDED (retryable); a
  call that ends without one: INVALID_ARGUMENT;
- spans refused for their times: OK with ``partial_success``;
- missing or wrong ``authorization: Bearer TOKEN`` metadata: UNAUTHENTICATED.

The handler takes the message as bytes (no deserializer), as OTLP/HTTP's does, so the C decoder
walks it once. gRPC itself inflates ``grpc-encoding: gzip`` and holds every message, compressed
or inflated, to ``grpc.max_receive_message_length`` (the HTTP body cap), answering
RESOURCE_EXHAUSTED past it. Export is registered client-streaming (on the wire a unary call is
the same), so that a call is counted, checked for its token and refused past the cap before
its message is read: what the receiver holds at once is bounded by the calls it serves times
that cap. (gRPC's own ``maximum_concurrent_rpcs`` refuses without RetryInfo, which an exporter
that follows the OTLP spec, as Go's and the Collector's are meant to, takes as final: it would
drop the batch.) No Host check: a web
page cannot speak gRPC to it (browsers send neither trailers nor ``application/grpc``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from collector.auth import bearer_token_matches
from collector.capped_body import Busy
from collector.connection_limits import HEAD_WAIT_S, connection_cap
from collector.metrics import CollectorMetrics
from collector.receivers.otlp_intake import (
    LOGS,
    PROTOBUF,
    TRACES,
    OtlpIntake,
    OtlpReceiverSettings,
    QueueFull,
    Signal,
    StoreFailing,
    Undecodable,
)
from collector.receivers.otlp_responses import export_response_bytes

RECEIVER = "otlp_grpc"
# How long a call whose stream ended without a message waits before it is answered (_message).
NO_MESSAGE_GRACE_S = 0.5
TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


@dataclass(frozen=True)
class OtlpGrpcSettings:
    """OTLP/HTTP's settings (cap, token, retry delays), and what gRPC adds."""

    common: OtlpReceiverSettings = field(default_factory=OtlpReceiverSettings)
    # Calls served at once (each holds one message of up to the body cap); more are refused
    # with RESOURCE_EXHAUSTED and RetryInfo before their message is read. A call is answered
    # within an fsync, so 16 keep two cores busy.
    max_concurrent_calls: int = 16
    grace_s: float = 5.0
    # A connection must finish its HTTP/2 handshake within this (gRPC's default: 120 s), and
    # the listener holds at most max_connections (None: connection_limits.connection_cap());
    # connection_limits.py says why. A connection past the cap is closed as it is accepted
    # (the client sees UNAVAILABLE, which exporters retry).
    handshake_wait_s: float = HEAD_WAIT_S
    max_connections: int | None = None


class OtlpGrpcReceiver:
    """Serves OTLP's trace and logs services over gRPC into the intake; start() it on the running loop."""

    def __init__(self, intake: OtlpIntake, metrics: CollectorMetrics, settings: OtlpGrpcSettings) -> None:
        self.intake = intake
        self.metrics = metrics
        self.settings = settings
        self._server: grpc.aio.Server | None = None
        self.calls_in_flight = 0  # changed on the event loop only

    async def start(self, address: str) -> int:
        """Listen on `address` ("host:port"); the port bound. OSError if it cannot be bound."""
        settings = self.settings
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", settings.common.max_body_bytes),
                ("grpc.so_reuseport", 0),  # a second daemon on the port fails, as it does on HTTP's
                ("grpc.server_handshake_timeout_ms", int(settings.handshake_wait_s * 1000)),
                ("grpc.max_allowed_incoming_connections", settings.max_connections or connection_cap()),
            ],
        )
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(TRACE_SERVICE, {"Export": self._handler(TRACES)}),
                grpc.method_handlers_generic_handler(LOGS_SERVICE, {"Export": self._handler(LOGS)}),
            )
        )
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(str(exc)) from exc
        if port == 0:
            raise OSError(f"cannot bind {address}")
        await server.start()
        self._server = server
        return port

    async def stop(self) -> None:
        """Stop taking calls; those in flight get `grace_s` to be answered."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(self.settings.grace_s)

    def _handler(self, signal: Signal) -> grpc.RpcMethodHandler[bytes, bytes]:
        """The Export method of `signal`'s service: bytes in, bytes out (no (de)serializers)."""

        async def export(messages: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            code, answer = await self._call(signal, messages, context)
            self.metrics.grpc_calls.labels(code.name).inc()
            if isinstance(answer, Refusal):
                await context.abort(code, answer.message, answer.trailing_metadata(code))
            assert isinstance(answer, bytes)
            return answer

        return grpc.stream_unary_rpc_method_handler(export)

    async def _call(
        self, signal: Signal, messages: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> tuple[grpc.StatusCode, bytes | Refusal]:
        """One call, counted among those served at once, its message read only once it is admitted."""
        cap = self.settings.max_concurrent_calls
        if self.calls_in_flight >= cap:
            refusal = Refusal(f"{cap} calls in flight: retry later", self.settings.common.retry_after_full_s)
            return grpc.StatusCode.RESOURCE_EXHAUSTED, refusal
        if not bearer_token_matches(_metadata(context, "authorization"), self.settings.common.token):
            return grpc.StatusCode.UNAUTHENTICATED, Refusal("missing or wrong bearer token")
        self.calls_in_flight += 1
        try:
            request = await self._message(messages)
            if isinstance(request, tuple):
                return request
            return await self._export(signal, request, context)
        finally:
            self.calls_in_flight -= 1

    async def _message(self, messages: AsyncIterator[bytes]) -> bytes | tuple[grpc.StatusCode, Refusal]:
        """The call's one message, or the refusal its absence gets.

        A unary client sends one; more on the stream are never read (gRPC's flow control holds
        back what the client sends beyond its window). One that sends none within the time a
        body may take over HTTP gives its slot back. A stream that ends with none is mostly
        gRPC's own refusal of a message over the cap: gRPC has answered it and is ending the
        call, which cancels this handler; answering first would fail in gRPC's core and be
        logged as an error, so the answer for a client that really sent none waits a moment."""
        wait_s = self.settings.common.body_wait_s
        try:
            async with asyncio.timeout(wait_s):
                request = await anext(messages, None)
        except TimeoutError:
            return grpc.StatusCode.DEADLINE_EXCEEDED, Refusal(f"no message within {wait_s:g} s of the call")
        if request is None:
            await asyncio.sleep(NO_MESSAGE_GRACE_S)
            return grpc.StatusCode.INVALID_ARGUMENT, Refusal("the call ended without a message")
        return request

    async def _export(
        self, signal: Signal, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> tuple[grpc.StatusCode, bytes | Refusal]:
        if not request:
            return grpc.StatusCode.OK, export_response_bytes(signal.name, 0, "")
        reservation = self.intake.inflight.reservation()
        try:
            reservation.add(len(request))
            taken = await self.intake.take(signal, PROTOBUF, request, RECEIVER, context.peer())
        except Busy as exc:
            return grpc.StatusCode.RESOURCE_EXHAUSTED, Refusal(str(exc), self.settings.common.retry_after_full_s)
        except Undecodable as exc:
            return grpc.StatusCode.INVALID_ARGUMENT, Refusal(str(exc))
        except QueueFull as exc:
            return grpc.StatusCode.RESOURCE_EXHAUSTED, Refusal(str(exc), self.settings.common.retry_after_full_s)
        except StoreFailing as exc:
            return grpc.StatusCode.UNAVAILABLE, Refusal(str(exc), self.settings.common.retry_after_failing_s)
        finally:
            reservation.release()
        return grpc.StatusCode.OK, export_response_bytes(signal.name, taken.rejected, taken.reason)


@dataclass(frozen=True)
class Refusal:
    """Why a call failed, and how long to wait before retrying it (None: do not retry)."""

    message: str
    retry_after_s: int | None = None

    def trailing_metadata(self, code: grpc.StatusCode) -> tuple[tuple[str, bytes], ...]:
        if self.retry_after_s is None:
            return ()
        retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=self.retry_after_s))
        detail = any_pb2.Any()
        detail.Pack(retry)
        status = status_pb2.Status(code=code.value[0], message=self.message, details=[detail])
        return (
            ("grpc-status-details-bin", status.SerializeToString()),
            ("google.rpc.retryinfo-bin", retry.SerializeToString()),
        )


def _metadata(context: grpc.aio.ServicerContext[bytes, bytes], key: str) -> str:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else ""
    return ""
