"""The filter language's two back ends agree: the same spans, captured from the tracer in memory
(spanlang.memory_filter, as the pytest plugin asks them) and stored by the collector (the SQL of
collector/storage/filter_sql.py), give the same traces for every expression."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace as trace_api
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, StatusCode

from collector.normalize.otlp_logs import decode_logs_protobuf
from collector.normalize.otlp_proto import decode_protobuf
from collector.query.service_map import MapQuery, service_map
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.protocols import TimeWindow
from spanlang.filter_ast import FilterError
from spanlang.filter_parser import parse_filter
from spanlang.held_span import HeldSpan
from spanlang.hops import edges, hops
from spanlang.memory_filter import matching_traces
from tracer.otlp_encoder import OtlpEncoder
from tracer.runtime import Tracing
from tracer.settings import Settings
from tracer.testing.held import held_from_captured

MS = 1_000_000
Both = tuple[list[HeldSpan], DuckDBStore]
SERVICES = ("bank-api/prod", "withdraw", "notify")


def _tracings(exporter: InMemorySpanExporter) -> dict[str, Tracing]:
    return {name: Tracing(Settings(service_name=name), exporter=exporter, batch=False) for name in SERVICES}


def _one(t: dict[str, Tracing], n: int, rng: random.Random, start_ns: int) -> None:
    """A gateway request into withdraw, its DynamoDB call and queue send, and notify consuming it."""
    status = rng.choice([200, 200, 404, 429, 500])
    root = t["bank-api/prod"].spans.start(
        "POST /withdraw",
        kind=SpanKind.SERVER,
        start_time_ns=start_ns,
        attributes={
            "fluoro.origin": "AWS::ApiGateway::Stage",
            "http.request.method": rng.choice(["POST", "GET"]),
            "url.full": f"https://bank.local/prod/withdraw/{n}",
            "http.response.status_code": status,
            "user_agent.original": rng.choice(["atm/1", "curl/8"]),
        },
    )
    fn_ctx = trace_api.set_span_in_context(root)
    handler = t["withdraw"].spans.start(
        "withdraw",
        kind=SpanKind.SERVER,
        parent_context=fn_ctx,
        start_time_ns=start_ns + MS,
        attributes={
            "faas.trigger": "http",
            "faas.coldstart": n % 4 == 0,
            "enduser.id": f"user{n % 3}",
            "fluoro.annotation.customer": f"c{n % 5}",
            "fluoro.annotation.amount": n * 10,
            "fluoro.annotation.vip": n % 2 == 0,
            # Values a JSON writer escapes, a float, an int past 2**53, a NaN (null when stored).
            "app.note": 'say "hi" \u00fc\\' if n % 4 == 1 else f"plain {n}",
            "app.ratio": n / 7 if n % 5 else float("nan"),
            "app.big": 2**62 + n,
        },
    )
    if status == 500:
        handler.set_status(StatusCode.ERROR, "ledger down")  # a fault from the status alone
    send = _calls(t["withdraw"], handler, n, status, start_ns)
    handler.end(start_ns + (20 + 13 * n) * MS)
    root.end(start_ns + (25 + 13 * n) * MS)
    if n % 3 == 0:
        consumer = t["notify"].spans.start(
            "notify",
            kind=SpanKind.CONSUMER,
            parent_context=trace_api.set_span_in_context(trace_api.INVALID_SPAN),
            links=[Link(send.get_span_context())],
            start_time_ns=start_ns + 50 * MS,
            attributes={"faas.trigger": "pubsub", "fluoro.fault": n % 6 == 0},
        )
        consumer.end(start_ns + 70 * MS)


def _calls(withdraw: Tracing, handler: trace_api.Span, n: int, status: int, start_ns: int) -> trace_api.Span:
    """The handler's DynamoDB call (throttled with the request) and its queue send (returned)."""
    call_ctx = trace_api.set_span_in_context(handler)
    ddb = withdraw.spans.start(
        "DynamoDB.UpdateItem",
        kind=SpanKind.CLIENT,
        parent_context=call_ctx,
        start_time_ns=start_ns + 2 * MS,
        attributes={"rpc.system": "aws-api", "rpc.service": "DynamoDB", "aws.dynamodb.table_names": ("accounts",)},
    )
    if status == 429:
        ddb.set_attributes({"fluoro.throttle": True, "fluoro.error": True})
    ddb.end(start_ns + (3 + n % 7) * MS)
    send = withdraw.spans.start(
        "SQS.SendMessage",
        kind=SpanKind.PRODUCER,
        parent_context=call_ctx,
        start_time_ns=start_ns + 4 * MS,
        attributes={"fluoro.target.type": "AWS::SQS::Queue", "fluoro.target.name": "alerts"},
    )
    send.end(start_ns + 5 * MS)
    return send


def captured_run() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    tracings = _tracings(exporter)
    rng = random.Random(7)
    base_ns = time.time_ns() - 600 * 10**9
    for n in range(18):
        _one(tracings, n, rng, base_ns + n * 10**9)
    for tracing in tracings.values():
        tracing.shutdown()
    return list(exporter.get_finished_spans())


def log_body(span: ReadableSpan) -> str | None:
    """What the span logged, if anything: the handler its user, a throttled call, the consumer."""
    attributes = span.attributes or {}
    if span.name == "withdraw":
        return f"withdrawing for {attributes['enduser.id']!s}"
    if attributes.get("fluoro.throttle"):
        return "throttled"
    return "notified" if span.name == "notify" else None


def logs_request(spans: list[ReadableSpan]) -> bytes:
    """An OTLP logs request of one record per span that logged, in it (trace and span ids)."""
    records = [
        LogRecord(
            time_unix_nano=(span.start_time or 0) + 1000,
            severity_number=SeverityNumber.SEVERITY_NUMBER_INFO,
            body=AnyValue(string_value=body),
            trace_id=span.context.trace_id.to_bytes(16, "big"),
            span_id=span.context.span_id.to_bytes(8, "big"),
        )
        for span in spans
        if span.context is not None and (body := log_body(span)) is not None
    ]
    logs = ResourceLogs(scope_logs=[ScopeLogs(log_records=records)])
    return bytes(ExportLogsServiceRequest(resource_logs=[logs]).SerializeToString())


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    spans = captured_run()
    store = DuckDBStore(str(tmp_path_factory.mktemp("memory") / "spans.duckdb"))
    store.write([decode_protobuf(OtlpEncoder().encode(spans)), decode_logs_protobuf(logs_request(spans))])
    store.link_new_spans(time.time_ns() + 3600 * 10**9)
    held = [
        dataclasses.replace(held_from_captured(span), logs=(log_body(span),) if log_body(span) else ())
        for span in spans
    ]
    yield held, store
    store.close()


WINDOW = TimeWindow(time.time_ns() - 3 * 3600 * 10**9, time.time_ns() + 3600 * 10**9)


def agree(both: Both, text: str) -> set[str]:
    held, store = both
    expr = parse_filter(text)
    in_memory = set(matching_traces(expr, held))
    in_sql = {summary.trace_id for summary in store.reader.search_traces(WINDOW, expr, 1000)}
    assert in_memory == in_sql, text
    return in_memory


EXPRESSIONS = [
    "ok", "error", "fault", "throttle", "!fault", "root", "partial", "cold_start", "!cold_start", "fault = false",
    "http.status = 429", "http.status >= 400", "http.status != 200", "responsetime > 0.2", "responsetime <= 0.1",
    "duration > 0.06", "duration < 0.03", 'http.method = "GET"', 'http.url CONTAINS "/withdraw/1"',
    'http.url ENDSWITH "7"', 'http.useragent BEGINSWITH "curl"', 'name = "POST /withdraw"', 'user = "user1"',
    'user != "user1"', "annotation.customer", 'annotation.customer = "c2"', 'annotation.customer != "c2"',
    "annotation.amount > 100", "annotation.amount = 50", "annotation.vip = true", "annotation.vip != true",
    'annotation.customer CONTAINS "c"', 'annotation.customer < "c3"', 'service("withdraw") { fault }',
    'service("withdraw") { cold_start }', 'service(id(name: "withdraw", type: "AWS::Lambda::Function"))',
    'service("accounts") { throttle }', 'service("alerts")', 'service("notify") { fault }',
    'service() { responsetime > 0.15 }', 'service("withdraw") { annotation.amount >= 90 AND !cold_start }',
    'edge("withdraw", "accounts") { throttle }', 'edge("withdraw", "alerts")', 'edge("bank-api/prod", "withdraw")',
    'edge("alerts", "notify")', 'edge("alerts", "notify") { fault }', 'edge("bank-api/prod", "accounts")',
    'service("withdraw") { fault } OR service("notify")', "fault OR throttle", "!(ok AND cold_start)",
    'error AND !throttle AND annotation.customer = "c1"', 'edge(id(type: "AWS::Lambda::Function"), "accounts")',
    'attribute.http.request.method = "GET"', "attribute.http.response.status_code >= 500",
    "attribute.http.response.status_code = 429", "attribute.http.response.status_code != 200",
    'attribute.http.response.status_code = "200"', "attribute.faas.coldstart = true",
    "attribute.faas.coldstart != true", "attribute.faas.coldstart", "!attribute.faas.trigger",
    "attribute.aws.dynamodb.table_names", 'attribute.aws.dynamodb.table_names = "accounts"',
    'attribute.aws.dynamodb.table_names != "accounts"', 'attribute.url.full CONTAINS "/withdraw/1"',
    'attribute.url.full ENDSWITH "7"', 'attribute.user_agent.original BEGINSWITH "curl"',
    'attribute.enduser.id < "user1"', 'attribute.enduser.id >= "user1"',
    'attribute.app.note = "say \\"hi\\" \u00fc\\\\"',
    'attribute.app.note CONTAINS "\u00fc"', 'attribute.app.note CONTAINS "\\""', 'attribute.app.note != "plain 2"',
    "attribute.app.ratio > 1.5", "attribute.app.ratio <= 1", "attribute.app.ratio != 0", "attribute.app.big > 4.6e18",
    "attribute.missing", 'attribute.missing != "x"', "!(attribute.http.response.status_code >= 400)",
    'resource.service.name = "withdraw"', 'resource.service.name BEGINSWITH "bank"', "resource.service.name",
    'resource.telemetry.sdk.language = "python"', 'resource.service.name != "withdraw"', "resource.nothing",
    'service("withdraw") { attribute.faas.coldstart = true }',
    'service() { resource.service.name = "notify" AND fault }',
    'service("accounts") { attribute.rpc.service = "DynamoDB" }',
    'edge("withdraw", "accounts") { attribute.rpc.system }',
    'log CONTAINS "user1"', 'log = "throttled"', 'service("withdraw") { log BEGINSWITH "withdrawing" }',
    'service("accounts") { log = "throttled" }', 'log != "notified"', '!log CONTAINS "user2"',
    'edge("alerts", "notify") { log ENDSWITH "fied" }',
]  # fmt: skip


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_both_back_ends_give_the_same_traces(both: Both, text: str) -> None:
    agree(both, text)


def test_the_expressions_tell_traces_apart(both: Both) -> None:
    # Agreement on empty answers would prove little: most expressions pick some traces, not all.
    roots = len(agree(both, "root"))
    picked = [len(agree(both, text)) for text in EXPRESSIONS]
    assert roots == 24 and sum(0 < n < roots for n in picked) >= 35


def test_the_hops_in_memory_are_the_maps(both: Both) -> None:
    held, store = both
    drawn = service_map(store.reader, MapQuery(WINDOW, None))
    names = {node.id: node.name for node in drawn.nodes}
    from_clients = {(names[e.source], names[e.target]) for e in drawn.edges if names[e.source] != "client"}
    assert edges(hops(held)) == from_clients == {
        ("bank-api/prod", "withdraw"), ("withdraw", "accounts"), ("withdraw", "alerts"), ("alerts", "notify")
    }  # fmt: skip


def test_a_nested_graph_test_is_refused_as_sql_refuses_it(both: Both) -> None:
    held, _ = both
    with pytest.raises(FilterError, match="cannot be nested"):
        matching_traces(parse_filter('service("a") { edge("a", "b") }'), held)


atom = st.sampled_from([e for e in EXPRESSIONS if "{" not in e])
block_atom = st.sampled_from(
    [
        "fault", "throttle", "cold_start", "responsetime > 0.1", "annotation.vip = true", "ok",
        "attribute.faas.coldstart = true", 'resource.service.name = "withdraw"', "attribute.app.ratio > 1",
        'log CONTAINS "user0"', 'log = "throttled"',
    ]
)  # fmt: skip
nodes = st.sampled_from(['"withdraw"', '"accounts"', '"notify"', '"bank-api/prod"', '"alerts"', '"nobody"'])


def _combined(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(["AND", "OR"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda e: f"!({e})"),
    )


blocks = st.recursive(block_atom, _combined, max_leaves=4)
graph = st.one_of(
    st.tuples(nodes, blocks).map(lambda t: f"service({t[0]}) {{ {t[1]} }}"),
    st.tuples(nodes, nodes, blocks).map(lambda t: f"edge({t[0]}, {t[1]}) {{ {t[2]} }}"),
)
expressions = st.recursive(st.one_of(atom, graph), _combined, max_leaves=6)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(text=expressions)
def test_generated_expressions_give_the_same_traces(both: Both, text: str) -> None:
    agree(both, text)


def test_held_spans_carry_the_collectors_meaning(both: Both) -> None:
    held, store = both
    for span in held:
        twin = next(s for s in store.reader.trace_spans(bytes.fromhex(span.trace_id)) if s.span_id == span.span_id)
        mine = (span.service, span.origin, span.target_type, span.target_name, span.error, span.fault, span.throttle)
        theirs = (twin.service, twin.origin, twin.target_type, twin.target_name, twin.error, twin.fault, twin.throttle)
        assert mine == theirs and span.cold_start == twin.cold_start and span.annotations == twin.annotations
