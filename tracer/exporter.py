"""The OTLP/HTTP span exporter: Fluoro's fast encoder over a keep-alive HTTP/1.1 connection.

Why not the stock OTLPSpanExporter: it imports ``requests`` and the generated protobuf
modules, which adds ~150-250 ms to every cold start here (``bench/tracer_overhead.py`` prints
the import + configure time), and encodes ~6x slower (see otlp_encoder). What it does is small
and specified, so it is done here with the standard library, following the OTLP/HTTP spec:
POST ``application/x-protobuf`` (optionally gzip), retry 429/502/503/504 and connection errors
with exponential backoff and jitter, honour ``Retry-After``, never past the export timeout; a
batch refused as too large (413) goes again in halves, so one outsize span loses only itself. The
connection is tracer/http_post.py's (not ``http.client``'s, for the same cold-start reason), and
gzip is imported only when compression is asked for.

The sender is not an SDK ``SpanExporter`` itself, so that the tracer's own pipeline never
imports the SDK's export module (tracer/batching.py says why); ``tracer.OtlpHttpExporter``
(tracer/sdk_exporters.py) is this sender under that interface, for the SDK's processors.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import ReadableSpan

from tracer.http_post import HttpConnection, request_head
from tracer.otlp_encoder import OtlpEncoder

_logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
PAYLOAD_TOO_LARGE = 413
MAX_ATTEMPTS = 6
MAX_BACKOFF_S = 5.0


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header given as delay-seconds (dates are not used by OTLP)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _gzipped(body: bytes) -> bytes:
    import gzip  # only when compression is asked for

    return gzip.compress(body, compresslevel=5)


class OtlpHttpSender:
    """Sends spans as OTLP/HTTP protobuf to one endpoint; safe to call from any thread."""

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        compression: str = "none",
        timeout_s: float = 10.0,
    ) -> None:
        url = urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"OTLP endpoint must be an http(s) URL, got {endpoint!r}")
        self.endpoint = endpoint
        https = url.scheme == "https"
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._gzip = compression == "gzip"
        self._timeout_s = timeout_s
        request_headers = {"Content-Type": "application/x-protobuf", **dict(headers or {})}
        if self._gzip:
            request_headers["Content-Encoding"] = "gzip"
        self._path, self._host_header, self._headers = path, url.netloc.rpartition("@")[2], request_headers
        self._head(0)  # a header that could split the request is refused here, not at the first export
        self._encoder = OtlpEncoder()
        self._connection = HttpConnection(url.hostname, url.port or (443 if https else 80), https=https)
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def _head(self, body_bytes: int) -> bytes:
        return request_head(self._path, self._host_header, self._headers, body_bytes)

    def _post(self, body: bytes, timeout_s: float) -> tuple[int, str | None]:
        try:
            response = self._connection.post(self._head(len(body)), body, timeout_s)
        except OSError:
            self._connection.close()
            raise
        if not response.reusable:
            self._connection.close()
        return response.status, response.retry_after

    def send(self, body: bytes) -> bool:
        """POST one encoded request, retrying as the OTLP spec says; True when accepted."""
        status = self._exchange(body)
        return status is not None and 200 <= status < 300

    def _exchange(self, body: bytes) -> int | None:
        """The collector's last answer to `body` after the spec's retries; None if it never answered
        in time."""
        payload = _gzipped(body) if self._gzip else body
        deadline = time.monotonic() + self._timeout_s
        with self._lock:
            for attempt in range(MAX_ATTEMPTS):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed.is_set():
                    break
                delay: float | None
                try:
                    status, retry_after = self._post(payload, remaining)
                except OSError as exc:
                    _logger.debug("fluoro: export attempt %d failed: %s", attempt + 1, exc)
                    delay = None
                else:
                    if 200 <= status < 300:
                        return status
                    if status not in RETRYABLE_STATUS:
                        _logger.warning("fluoro: collector refused %d bytes of spans: HTTP %d", len(body), status)
                        return status
                    delay = retry_after_s(retry_after)
                backoff = (
                    delay if delay is not None else min(MAX_BACKOFF_S, 0.1 * 2**attempt) * random.uniform(0.5, 1.5)
                )
                if time.monotonic() + backoff >= deadline:
                    break
                self._closed.wait(backoff)
        _logger.warning("fluoro: could not export %d bytes of spans to %s", len(body), self.endpoint)
        return None

    def deliver(self, spans: Sequence[ReadableSpan]) -> bool:
        """Encode and send one batch; True when the collector accepted all of it. A batch too
        large for the collector (413) goes again in halves, so one outsize span costs only itself."""
        if self._closed.is_set():
            return False
        try:
            body = self._encoder.encode(spans)
        except Exception:
            _logger.exception("fluoro: could not encode %d spans", len(spans))
            return False
        status = self._exchange(body)
        if status == PAYLOAD_TOO_LARGE and len(spans) > 1:
            half = len(spans) // 2
            first_delivered = self.deliver(spans[:half])
            return self.deliver(spans[half:]) and first_delivered
        return status is not None and 200 <= status < 300

    def shutdown(self) -> None:
        self._closed.set()
        with self._lock:
            self._connection.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
