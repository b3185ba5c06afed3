"""X-Ray's error taxonomy on OpenTelemetry spans: error (4xx), throttle (429), fault (5xx).

X-Ray marks a segment with three independent flags rather than one status: ``error`` for a
client error (4xx), ``throttle`` for 429 Too Many Requests and the throttling exceptions AWS
services raise, ``fault`` for a server error (5xx) or an unhandled exception. A 429 is both
error and throttle. The OTel status is set beside them: ERROR for faults (and for 4xx on
client spans, as the HTTP semantic conventions say), never for a SERVER span's 4xx.
"""

from __future__ import annotations

from typing import Final

from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanKind, StatusCode

from tracer import semconv
from tracer.lightspan import MAX_EXCEPTION_MESSAGE_CHARS

# Error codes AWS services use for throttling (from the AWS SDKs' retry policies and the
# service API references). Matched by exception class name or botocore's Error.Code.
THROTTLING_ERROR_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "KMSThrottlingException",
    }
)


def error_code_of(exc: BaseException) -> str:
    """botocore's Error.Code for a ClientError, else the exception's class name."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if isinstance(code, str) and code:
            return code
    return type(exc).__name__


def is_throttling_exception(exc: BaseException) -> bool:
    """True for a throttling error from an AWS service or a 429 carried by the exception."""
    if error_code_of(exc) in THROTTLING_ERROR_CODES:
        return True
    return status_code_of(exc) == 429


def status_code_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (botocore ClientError, httpx/requests errors)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code if isinstance(code, int) else None
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def mark_http_status(span: trace_api.Span, status_code: int, kind: SpanKind) -> None:
    """Set http.response.status_code and the X-Ray flags it implies."""
    span.set_attribute(semconv.HTTP_RESPONSE_STATUS_CODE, status_code)
    if 400 <= status_code < 500:
        span.set_attribute(semconv.ERROR, True)
        if status_code == 429:
            span.set_attribute(semconv.THROTTLE, True)
        if kind is not SpanKind.SERVER:
            span.set_status(StatusCode.ERROR, f"HTTP {status_code}")
    elif status_code >= 500:
        span.set_attribute(semconv.FAULT, True)
        span.set_status(StatusCode.ERROR, f"HTTP {status_code}")


def mark_exception(span: trace_api.Span, exc: BaseException, *, record: bool = True) -> None:
    """An unhandled exception: fault, plus throttle when AWS said "slow down"."""
    span.set_attribute(semconv.FAULT, True)
    if is_throttling_exception(exc):
        span.set_attribute(semconv.THROTTLE, True)
        span.set_attribute(semconv.ERROR, True)
    if record:
        span.record_exception(exc, escaped=True)
    span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:MAX_EXCEPTION_MESSAGE_CHARS])


def mark_client_error(span: trace_api.Span, exc: BaseException) -> None:
    """A failed outgoing call: flags from the status it carries, throttle from its code."""
    status = status_code_of(exc)
    if status is not None:
        mark_http_status(span, status, SpanKind.CLIENT)
    if is_throttling_exception(exc):
        span.set_attribute(semconv.THROTTLE, True)
        span.set_attribute(semconv.ERROR, True)
    elif status is None:
        span.set_attribute(semconv.FAULT, True)
