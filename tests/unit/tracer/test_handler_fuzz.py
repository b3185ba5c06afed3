"""Whatever event a function is invoked with, its handler still returns what it returns, and the
invocation still has its one span, encodable whole: a property test over events shaped like
API Gateway's, SQS's, SNS's, Kinesis's, S3's and EventBridge's with any JSON value in any field
(an event is its sender's to shape; tracer/events.py reads each field as empty when it is not
of its shape)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracer
from tests.conftest import make_recorder
from tests.unit.tracer.test_handler import Context
from tracer import semconv
from tracer.otlp_encoder import OtlpEncoder

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
headers = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(["traceparent", "X-Amzn-Trace-Id", "baggage", "host", "Host", "user-agent", "tracestate"]),
        st.one_of(st.text(max_size=80), json_values),
        max_size=4,
    ),
)
carriers = st.one_of(
    json_values,
    st.builds(lambda text: base64.b64encode(text.encode("utf-8", "surrogatepass")).decode(), st.text(max_size=60)),
)


def _fields(**strategies: Any) -> st.SearchStrategy[dict[str, Any]]:
    """A mapping holding any of these fields (each drawn from its strategy) and nothing else."""
    return st.fixed_dictionaries({}, optional=strategies)


record_fields = _fields(
    EventSource=st.one_of(st.just("aws:sns"), json_values),
    attributes=st.one_of(
        _fields(**{semconv.XRAY_SQS_ATTRIBUTE: st.one_of(st.text(max_size=80), json_values)}), json_values
    ),
    messageAttributes=st.one_of(st.dictionaries(st.text(max_size=10), _fields(stringValue=json_values)), json_values),
    Sns=st.one_of(_fields(MessageAttributes=json_values, Message=json_values), json_values),
    kinesis=st.one_of(_fields(data=carriers), json_values),
    s3=json_values,
)
records = st.builds(
    lambda source, fields: {"eventSource": source, **fields},
    st.sampled_from(["aws:sqs", "aws:sns", "aws:kinesis", "aws:s3"]),
    record_fields,
)
events = st.one_of(
    json_values,
    st.fixed_dictionaries({"Records": st.lists(records, min_size=1, max_size=4)}),
    st.fixed_dictionaries({"Records": st.lists(st.one_of(json_values, _fields(eventSource=json_values)), max_size=3)}),
    _fields(
        httpMethod=json_values,
        path=json_values,
        resource=json_values,
        headers=headers,
        multiValueHeaders=json_values,
        queryStringParameters=json_values,
        requestContext=st.one_of(_fields(http=json_values, stage=json_values), json_values),
        routeKey=json_values,
        rawPath=json_values,
        rawQueryString=json_values,
        version=json_values,
    ),
    _fields(**{"detail-type": json_values, "source": json_values, "detail": json_values}),
)


@pytest.fixture(autouse=True)
def outside_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(semconv.LAMBDA_TRACE_ENV, raising=False)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events)
def test_any_event_keeps_the_handlers_answer_and_its_one_span(event: Any) -> None:
    tracing, exporter = make_recorder()

    @tracer.traced.handler(name="sturdy")
    def handler(received: object, context: object) -> str:
        return "ok"

    with tracing.activated():
        assert handler(event, Context()) == "ok"
    tracing.flush()
    spans = [span for span in exporter.get_finished_spans() if span.name == "sturdy"]
    tracing.shutdown()
    assert len(spans) == 1
    encoder = OtlpEncoder()
    encoder.encode(spans)
    assert (encoder.rebuilt_spans, encoder.unencodable_spans) == (0, 0)  # nothing from the event needed it
