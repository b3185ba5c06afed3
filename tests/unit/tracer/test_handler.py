"""@traced.handler: triggers, FaaS attributes, parents, message links, cold starts."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

import tracer
from tests.conftest import Recorder, make_recorder
from tests.recorded import attributes_of, times_of
from tracer import semconv
from tracer.events import MAX_REQUEST_TEXT, detect_trigger
from tracer.imports import ImportTracker
from tracer.propagation import xray_header, xray_trace_id


@dataclass(frozen=True)
class Context:
    function_name: str = "withdraw"
    function_version: str = "7"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:withdraw:prod"
    aws_request_id: str = "req-1"


API_EVENT: dict[str, Any] = {
    "resource": "/accounts/{id}",
    "path": "/accounts/42",
    "httpMethod": "POST",
    "headers": {"Host": "bank.local", "User-Agent": "atm/1"},
    "requestContext": {"stage": "prod"},
}
SCHEDULE_EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


@pytest.mark.parametrize(
    ("event", "trigger", "kind"),
    [
        (API_EVENT, "http", SpanKind.SERVER),
        ({"routeKey": "GET /x", "requestContext": {"http": {"method": "GET"}}}, "http", SpanKind.SERVER),
        ({"Records": [{"eventSource": "aws:sqs"}]}, "pubsub", SpanKind.CONSUMER),
        ({"Records": [{"EventSource": "aws:sns"}]}, "pubsub", SpanKind.CONSUMER),
        ({"Records": [{"eventSource": "aws:kinesis"}]}, "pubsub", SpanKind.CONSUMER),
        ({"Records": [{"eventSource": "aws:s3"}]}, "datasource", SpanKind.CONSUMER),
        ({"Records": [{"eventSource": "aws:dynamodb"}]}, "datasource", SpanKind.CONSUMER),
        ({"source": "bank.ledger", "detail-type": "Overdraft", "detail": {}}, "pubsub", SpanKind.CONSUMER),
        (SCHEDULE_EVENT, "timer", SpanKind.SERVER),
        ({"anything": 1}, "other", SpanKind.SERVER),
        ("not a dict", "other", SpanKind.SERVER),
    ],
)
def test_trigger_from_event_shape(event: object, trigger: str, kind: SpanKind) -> None:
    detected = detect_trigger(event)
    assert (detected.name, detected.kind) == (trigger, kind)


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(semconv.LAMBDA_TRACE_ENV, raising=False)
    yield


def test_http_invocation_attributes_and_flags(recorder: Recorder, lambda_env: None) -> None:
    @tracer.traced.handler
    def handler(event: dict[str, Any], context: Context) -> dict[str, Any]:
        return {"statusCode": 429, "body": "{}"}

    assert handler(API_EVENT, Context())["statusCode"] == 429
    span = recorder.by_name("withdraw")
    attrs = attributes_of(span)
    assert span.kind is SpanKind.SERVER
    assert attrs[semconv.FAAS_TRIGGER] == "http"
    assert attrs[semconv.FAAS_INVOCATION_ID] == "req-1"
    assert attrs[semconv.FAAS_VERSION] == "7"
    assert attrs[semconv.FAAS_MAX_MEMORY] == 256 * 1024 * 1024
    assert attrs[semconv.CLOUD_RESOURCE_ID].endswith(":withdraw:prod")
    assert attrs[semconv.ORIGIN] == semconv.ORIGIN_LAMBDA_FUNCTION
    assert attrs[semconv.HTTP_ROUTE] == "/accounts/{id}"
    assert attrs[semconv.HTTP_REQUEST_METHOD] == "POST"
    assert attrs[semconv.HTTP_RESPONSE_STATUS_CODE] == 429
    assert attrs[semconv.ERROR] is True and attrs[semconv.THROTTLE] is True
    assert semconv.FAULT not in attrs


def test_cold_start_only_on_first_invocation(recorder: Recorder, lambda_env: None) -> None:
    @tracer.traced.handler(name="fn")
    def handler(event: object, context: object) -> str:
        return "ok"

    for _ in range(3):
        handler(SCHEDULE_EVENT, Context())
    spans = [s for s in recorder.spans() if s.name == "fn"]
    assert [attributes_of(s)[semconv.FAAS_COLDSTART] for s in spans] == [True, False, False]
    inits = [s for s in recorder.spans() if s.name == semconv.INITIALIZATION_SPAN_NAME]
    assert len(inits) == 1
    assert inits[0].parent is not None and inits[0].parent.span_id == spans[0].context.span_id
    assert inits[0].start_time == recorder.tracing.process.start_ns


def test_phases_split_the_function_span_only_when_asked(lambda_env: None) -> None:
    for phases in (True, False):
        tracing, exporter = make_recorder(lambda_phases=phases)
        with tracing.activated():

            @tracer.traced.handler(name="fn")
            def handler(event: object, context: object) -> None:
                time.sleep(0.01)
                if event == "boom":
                    raise RuntimeError("boom")

            handler(SCHEDULE_EVENT, Context())
            with pytest.raises(RuntimeError):
                handler("boom", Context())
        tracing.shutdown()
        spans = exporter.get_finished_spans()
        for fn in [s for s in spans if s.name == "fn"]:
            children = {s.name: s for s in spans if s.parent is not None and s.parent.span_id == fn.context.span_id}
            children.pop(semconv.INITIALIZATION_SPAN_NAME, None)
            if not phases:
                assert children == {}
                continue
            invocation, overhead = children["Invocation"], children["Overhead"]
            assert sorted(children) == ["Invocation", "Overhead"]
            (fn_start, fn_end), (started, ended) = times_of(fn), times_of(invocation)
            overhead_start, overhead_end = times_of(overhead)
            assert started == fn_start and ended <= overhead_start
            assert ended - started >= 10_000_000  # the handler's run
            assert overhead_end <= fn_end
            assert attributes_of(invocation)[semconv.ORIGIN] == semconv.ORIGIN_LAMBDA_FUNCTION


def test_init_spans_and_imports_join_the_first_invocation(
    lambda_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing, exporter = make_recorder(lambda_environment=True)
    (tmp_path / "slow_dependency.py").write_text("import time\ntime.sleep(0.02)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    imports = ImportTracker()
    tracing.process.imports = imports
    imports.install()
    try:
        with tracing.activated():
            import slow_dependency  # type: ignore[import-not-found]  # noqa: F401

            @tracer.traced(name="load config")
            def load_config() -> None:
                time.sleep(0.001)

            load_config()
            assert exporter.get_finished_spans() == ()  # held until the first invocation

            @tracer.traced.handler(name="fn")
            def handler(event: object, context: object) -> str:
                return "ok"

            handler({"anything": 1}, Context())
    finally:
        imports.uninstall()
        sys.modules.pop("slow_dependency", None)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    invocation, init = spans["fn"], spans[semconv.INITIALIZATION_SPAN_NAME]
    load, imported = spans["load config"], spans["import slow_dependency"]
    trace_id = invocation.context.trace_id
    assert {s.context.trace_id for s in spans.values()} == {trace_id}
    assert load.parent is not None and load.parent.span_id == init.context.span_id
    assert imported.parent is not None and imported.parent.span_id == init.context.span_id
    assert (imported.end_time or 0) - (imported.start_time or 0) >= 15_000_000
    assert attributes_of(imported)[semconv.IMPORT_MODULE] == "slow_dependency"
    assert imports not in sys.meta_path


def test_lambda_trace_env_is_the_parent(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    trace_id, parent_id = 0x6B0A5256B8E293D9E0487522A64239A7, 0x53995C3F42CD8AD8
    monkeypatch.setenv(
        semconv.LAMBDA_TRACE_ENV, f"Root={xray_trace_id(trace_id)};Parent={parent_id:016x};Sampled=1;Lineage=a:1"
    )

    @tracer.traced.handler(name="fn")
    def handler(event: object, context: object) -> None:
        return None

    handler({"anything": 1}, Context())
    span = recorder.by_name("fn")
    assert span.context.trace_id == trace_id
    assert span.parent is not None and span.parent.span_id == parent_id and span.parent.is_remote


def test_api_gateway_traceparent_header_is_the_parent(recorder: Recorder, lambda_env: None) -> None:
    event = {**API_EVENT, "headers": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}

    @tracer.traced.handler(name="fn")
    def handler(event: object, context: object) -> dict[str, int]:
        return {"statusCode": 200}

    handler(event, Context())
    span = recorder.by_name("fn")
    assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "b7ad6b7169203331"


def test_sqs_batch_links_one_per_message(recorder: Recorder, lambda_env: None) -> None:
    producers = [(0x6B0A5256B8E293D9E0487522A64239A0 + i, 0x1000 + i) for i in range(3)]
    records = [
        {
            "eventSource": "aws:sqs",
            "messageId": str(i),
            "body": "{}",
            "attributes": {semconv.XRAY_SQS_ATTRIBUTE: f"Root={xray_trace_id(t)};Parent={s:016x};Sampled=1"},
        }
        for i, (t, s) in enumerate(producers)
    ]
    records.append({"eventSource": "aws:sqs", "messageId": "untraced", "body": "{}", "attributes": {}})

    @tracer.traced.handler(name="consumer")
    def handler(event: object, context: object) -> dict[str, list[str]]:
        return {"batchItemFailures": []}

    handler({"Records": records}, Context())
    span = recorder.by_name("consumer")
    assert span.kind is SpanKind.CONSUMER
    assert [(link.context.trace_id, link.context.span_id) for link in span.links] == producers
    assert span.parent is None  # a batch has no single parent: links, as the FaaS conventions say


def test_kinesis_and_eventbridge_carriers(recorder: Recorder, lambda_env: None) -> None:
    trace_id, span_id = 0x6B0A5256B8E293D9E0487522A64239A7, 0xABCDEF
    traceparent = f"00-{trace_id:032x}-{span_id:016x}-01"
    data = base64.b64encode(json.dumps({"post": "hi #x", "_fluoro_trace": {"traceparent": traceparent}}).encode())
    kinesis = {"Records": [{"eventSource": "aws:kinesis", "kinesis": {"data": data.decode()}}]}
    eventbridge = {
        "source": "bank",
        "detail-type": "Overdraft",
        "detail": {},
        "trace-header": xray_header_for(trace_id, span_id),
    }

    @tracer.traced.handler(name="stream")
    def stream(event: object, context: object) -> None:
        return None

    stream(kinesis, Context())
    stream(eventbridge, Context())
    spans = [s for s in recorder.spans() if s.name == "stream"]
    assert [[(link.context.trace_id, link.context.span_id) for link in s.links] for s in spans] == [
        [(trace_id, span_id)],
        [(trace_id, span_id)],
    ]


def xray_header_for(trace_id: int, span_id: int) -> str:
    from opentelemetry.trace import SpanContext, TraceFlags

    return xray_header(SpanContext(trace_id, span_id, False, TraceFlags(1)))


def test_handler_exception_is_fault_and_spans_are_flushed_before_return(lambda_env: None) -> None:
    tracing, exporter = make_recorder(batch=True)
    with tracing.activated():

        @tracer.traced.handler(name="fn")
        def handler(event: object, context: object) -> None:
            raise RuntimeError("downstream exploded")

        with pytest.raises(RuntimeError):
            handler(API_EVENT, Context())
        # No flush here: the handler itself must have exported before returning.
        (span,) = [s for s in exporter.get_finished_spans() if s.name == "fn"]
    tracing.shutdown()
    assert attributes_of(span)[semconv.FAULT] is True


def test_async_handler(recorder: Recorder, lambda_env: None) -> None:
    @tracer.traced.handler(name="async_fn")
    async def handler(event: object, context: object) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"statusCode": 503}

    assert asyncio.run(handler(API_EVENT, Context())) == {"statusCode": 503}
    assert attributes_of(recorder.by_name("async_fn"))[semconv.FAULT] is True


def test_import_tracker_keeps_only_outermost_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "outer_mod.py").write_text(textwrap.dedent("import inner_mod\n"))
    (tmp_path / "inner_mod.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    imports = ImportTracker()
    imports.install()
    try:
        import outer_mod  # type: ignore[import-not-found]  # noqa: F401
    finally:
        imports.uninstall()
        sys.modules.pop("outer_mod", None)
        sys.modules.pop("inner_mod", None)
    assert [t.module for t in imports.timings] == ["outer_mod"]


GOOD_SQS = {
    "eventSource": "aws:sqs",
    "attributes": {semconv.XRAY_SQS_ATTRIBUTE: f"Root={xray_trace_id(0xABC)};Parent={0x1D:016x};Sampled=1"},
}


@pytest.mark.parametrize(
    "event",
    [
        {"Records": [{"eventSource": "aws:sqs", "attributes": [1, 2]}, GOOD_SQS]},
        {"Records": [{"eventSource": "aws:sqs", "messageAttributes": ["x"]}, GOOD_SQS]},
        {"Records": [{"eventSource": "aws:sns", "Sns": "text"}, GOOD_SQS]},
        {"Records": [{"eventSource": "aws:sns", "Sns": {"MessageAttributes": [1]}}, GOOD_SQS]},
        {"Records": [{"eventSource": "aws:kinesis", "kinesis": [1]}, GOOD_SQS]},
        {"Records": [{"eventSource": ["aws:sqs"]}, GOOD_SQS]},
        {"routeKey": 5, "requestContext": {"http": "GET"}},
        {"httpMethod": "GET", "requestContext": "x", "headers": [["user-agent", "x"]]},
    ],
    ids=["sqs-attributes", "sqs-message-attributes", "sns", "sns-attributes", "kinesis", "source", "route", "http"],
)
def test_a_malformed_field_costs_no_invocation_its_span(recorder: Recorder, lambda_env: None, event: Any) -> None:
    """Events are their senders' to shape: a field of the wrong type is skipped, and the rest
    (the other records' links, here) still counts."""

    @tracer.traced.handler(name="sturdy")
    def handler(event: object, context: object) -> str:
        return "ok"

    assert handler(event, Context()) == "ok"
    span = recorder.by_name("sturdy")
    if "Records" in event:
        assert [(link.context.trace_id, link.context.span_id) for link in span.links] == [(0xABC, 0x1D)]


def test_a_sender_chooses_no_more_than_a_bounded_text_or_log_line(
    recorder: Recorder, lambda_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    huge = "p" * 100_000
    event = {
        "httpMethod": "GET",
        "path": "/" + huge,
        "headers": {"User-Agent": huge, "Host": huge, "baggage": "k=v," * 100_000, "traceparent": "00-" + huge},
    }

    @tracer.traced.handler(name="bounded")
    def handler(event: object, context: object) -> str:
        return "ok"

    with caplog.at_level(logging.DEBUG):
        assert handler(event, Context()) == "ok"
    attrs = attributes_of(recorder.by_name("bounded"))
    for key in (semconv.URL_PATH, semconv.USER_AGENT, semconv.SERVER_ADDRESS):
        assert len(attrs[key]) == MAX_REQUEST_TEXT
    assert max(len(record.getMessage()) for record in caplog.records) < 1000  # no header echoed in full
