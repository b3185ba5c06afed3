"""The OTLP/HTTP receiver, ``POST /v1/traces`` and ``POST /v1/logs``, as an ASGI app (Starlette).

Follows the OTLP/HTTP specification: protobuf or JSON bodies, optionally gzip; the response is
encoded like the request; undecodable bodies get 400 with the reason (a ``google.rpc.Status``);
partly invalid batches get 200 with ``partial_success``; a body over the limit, before or after
decompression, gets 413 (the body is read and inflated with a cap, so neither a large body nor
a gzip bomb can grow memory); other media types get 415; a full queue or a failing store gets
503 with Retry-After, and the client retries. A request is answered 200 only after its body
is in the ingest log (see collector/ingest/ingest_log.py), so no acknowledged span can be lost.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Hashable

import orjson
from google.rpc import status_pb2
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from collector.auth import bearer_token_matches
from collector.capped_body import BodyTimeout, BodyTooLarge, Busy, Reservation, read_capped
from collector.metrics import CollectorMetrics
from collector.receivers.otlp_intake import (
    JSON,
    LOGS,
    MEDIA_TYPES,
    PROTOBUF,
    TRACES,
    OtlpIntake,
    OtlpReceiverSettings,
    QueueFull,
    Signal,
    StoreFailing,
    Undecodable,
)
from collector.receivers.otlp_responses import export_response_bytes, export_response_json

_logger = logging.getLogger(__name__)
TRACES_PATH = "/v1/traces"
LOGS_PATH = "/v1/logs"
SIGNAL_OF_PATH = {TRACES_PATH: TRACES, LOGS_PATH: LOGS}
RECEIVER = "otlp_http"


MAX_GZIP_MEMBERS = 64


def inflate_capped(data: bytes, limit: int) -> bytes:
    """gzip-decompress at most `limit` bytes; BodyTooLarge past it, ValueError if corrupt.

    A gzip file may hold several members one after another (RFC 1952 §2.2), and its content is
    all of them: each is inflated in turn, against what is left of the one cap.
    """
    parts: list[bytes] = []
    size = 0
    while data:
        if len(parts) == MAX_GZIP_MEMBERS:
            raise ValueError(f"body has more than {MAX_GZIP_MEMBERS} gzip members")
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = inflater.decompress(data, limit - size + 1)
        except zlib.error as exc:
            raise ValueError(f"body is not valid gzip: {exc}") from exc
        size += len(out)
        if size > limit:
            raise BodyTooLarge(f"decompressed body exceeds {limit} bytes")
        if not inflater.eof:
            raise ValueError("gzip stream is truncated")
        parts.append(out)
        data = inflater.unused_data.lstrip(b"\x00")  # zero padding after a member, as gzip(1) allows
    return b"".join(parts)


class OtlpHttpReceiver:
    """ASGI app for ``POST /v1/traces`` and ``POST /v1/logs``."""

    def __init__(self, intake: OtlpIntake, metrics: CollectorMetrics, settings: OtlpReceiverSettings) -> None:
        self.intake = intake
        self.metrics = metrics
        self.settings = settings
        self.inflight = intake.inflight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._handle(request)
        self.metrics.requests.labels(str(response.status_code)).inc()
        await response(scope, receive, send)

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(self, request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        encoding = PROTOBUF if media != JSON else JSON
        signal = SIGNAL_OF_PATH.get(request.url.path)
        if signal is None:
            return error(404, f"not found: this receiver serves POST {TRACES_PATH} and {LOGS_PATH}", encoding)
        if request.method != "POST":
            return error(405, f"{request.url.path} takes POST", encoding, {"Allow": "POST"})
        if not bearer_token_matches(request.headers.get("authorization", ""), self.settings.token):
            return error(401, "missing or wrong bearer token", encoding, {"WWW-Authenticate": "Bearer"})
        if media not in MEDIA_TYPES:
            return error(415, f"unsupported content type {media!r}: use {PROTOBUF} or {JSON}", encoding)
        content_encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if content_encoding not in ("identity", "gzip", ""):
            return error(415, f"unsupported content encoding {content_encoding!r}: use gzip or none", encoding)
        reservation = self.inflight.reservation()
        try:
            return await self._handle_body(request, signal, media, content_encoding == "gzip", reservation)
        finally:
            reservation.release()

    async def _handle_body(
        self, request: Request, signal: Signal, media: str, gzip: bool, reservation: Reservation
    ) -> Response:
        encoding = media
        try:
            body = await self._read_body(request, gzip, reservation)
        except BodyTooLarge as exc:
            return error(413, str(exc), encoding)
        except BodyTimeout as exc:
            return error(408, str(exc), encoding)
        except Busy as exc:
            retry = str(self.settings.retry_after_full_s)
            return error(503, str(exc), encoding, {"Retry-After": retry})
        except ValueError as exc:
            return error(400, str(exc), encoding)
        except ClientDisconnect:
            return error(400, "client disconnected", encoding)
        if not body:
            return success(signal, encoding, 0, "")
        return await self._take(signal, media, body, request.client)

    async def _read_body(self, request: Request, gzip: bool, reservation: Reservation) -> bytes:
        limit = self.settings.max_body_bytes
        body = await read_capped(request, limit, reservation, self.settings.body_wait_s)
        if not (gzip and body):
            return body
        inflated = inflate_capped(body, limit)
        reservation.add(len(inflated))
        return inflated

    async def _take(self, signal: Signal, media: str, body: bytes, sender: Hashable | None) -> Response:
        encoding = media
        try:
            taken = await self.intake.take(signal, media, body, RECEIVER, sender)
        except Undecodable as exc:
            return error(400, str(exc), encoding)
        except QueueFull as exc:
            return error(503, str(exc), encoding, {"Retry-After": str(self.settings.retry_after_full_s)})
        except StoreFailing as exc:
            return error(503, str(exc), encoding, {"Retry-After": str(self.settings.retry_after_failing_s)})
        return success(signal, encoding, taken.rejected, taken.reason)


def success(signal: Signal, encoding: str, rejected: int, reason: str) -> Response:
    """The signal's Export response, with partial_success when some spans or records were refused."""
    if encoding == JSON:
        return Response(orjson.dumps(export_response_json(signal.name, rejected, reason)), 200, media_type=JSON)
    return Response(export_response_bytes(signal.name, rejected, reason), 200, media_type=PROTOBUF)


def error(status: int, message: str, encoding: str, headers: dict[str, str] | None = None) -> Response:
    """A google.rpc.Status body saying what is wrong, encoded like the request."""
    if encoding == JSON:
        return Response(orjson.dumps({"code": status, "message": message}), status, headers, media_type=JSON)
    body = status_pb2.Status(code=status, message=message).SerializeToString()
    return Response(body, status, headers, media_type=PROTOBUF)
