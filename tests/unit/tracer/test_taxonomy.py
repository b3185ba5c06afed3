"""X-Ray's error / fault / throttle flags."""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.conftest import Recorder
from tests.recorded import attributes_of
from tracer import semconv
from tracer.taxonomy import is_throttling_exception, mark_client_error, mark_http_status


class FakeClientError(Exception):
    def __init__(self, code: str, status: int) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


@pytest.mark.parametrize(
    ("status", "kind", "error", "throttle", "fault", "otel_error"),
    [
        (200, SpanKind.SERVER, False, False, False, False),
        (404, SpanKind.SERVER, True, False, False, False),
        (404, SpanKind.CLIENT, True, False, False, True),
        (429, SpanKind.SERVER, True, True, False, False),
        (500, SpanKind.SERVER, False, False, True, True),
        (503, SpanKind.CLIENT, False, False, True, True),
    ],
)
def test_flags_from_http_status(
    recorder: Recorder, status: int, kind: SpanKind, error: bool, throttle: bool, fault: bool, otel_error: bool
) -> None:
    span = recorder.tracing.spans.start("s", kind=kind)
    mark_http_status(span, status, kind)
    span.end()
    (done,) = recorder.spans()
    assert attributes_of(done).get(semconv.ERROR, False) is error
    assert attributes_of(done).get(semconv.THROTTLE, False) is throttle
    assert attributes_of(done).get(semconv.FAULT, False) is fault
    assert (done.status.status_code is StatusCode.ERROR) is otel_error
    assert attributes_of(done)[semconv.HTTP_RESPONSE_STATUS_CODE] == status


@pytest.mark.parametrize(
    "exc",
    [
        FakeClientError("ProvisionedThroughputExceededException", 400),
        FakeClientError("ThrottlingException", 400),
        FakeClientError("TooManyRequestsException", 429),
        FakeClientError("RequestLimitExceeded", 503),
        type("ThrottlingException", (Exception,), {})(),
    ],
)
def test_throttling_exceptions(exc: Exception) -> None:
    assert is_throttling_exception(exc)


def test_ordinary_errors_are_not_throttles() -> None:
    assert not is_throttling_exception(ValueError("x"))
    assert not is_throttling_exception(FakeClientError("ConditionalCheckFailedException", 400))


def test_client_error_marks(recorder: Recorder) -> None:
    throttled = recorder.tracing.spans.start("throttled", kind=SpanKind.CLIENT)
    mark_client_error(throttled, FakeClientError("ProvisionedThroughputExceededException", 400))
    throttled.end()
    refused = recorder.tracing.spans.start("refused", kind=SpanKind.CLIENT)
    mark_client_error(refused, ConnectionRefusedError("no"))
    refused.end()
    assert attributes_of(recorder.by_name("throttled"))[semconv.THROTTLE] is True
    assert attributes_of(recorder.by_name("throttled"))[semconv.ERROR] is True
    assert attributes_of(recorder.by_name("refused"))[semconv.FAULT] is True
