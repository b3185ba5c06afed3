"""Filter expressions run against a real DuckDB store: X-Ray's semantics, bound values, injection."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.storage.duckdb_store import DuckDBStore
from collector.storage.filter_sql import compile_trace_predicate
from collector.storage.protocols import TimeWindow
from spanlang.filter_ast import FilterError
from spanlang.filter_parser import parse_filter
from tests.factories import SECOND, T0, at, logs_batch, spans_batch

WINDOW = TimeWindow(T0 - 60 * SECOND, T0 + 600 * SECOND)


# The attributes and resources of the fixture's spans (JSON, as the decoders store them).
ROOT_1 = {
    "attributes": '{"http.route":"/orders","a/b":"slash"}',
    "resource": '{"service.name":"api","cloud.region":"eu-west-1"}',
}
ORDERS_1 = {
    "attributes": '{"messaging.destination.name":"q1","retries":3,"sync":false}',
    "resource": '{"service.name":"orders"}',
}
API = '{"service.name":"api"}'
ROOT_2 = {
    "throttle": True,
    "attributes": '{"http.route":"/pay","retries":"3"}',
    "resource": '{"service.name":"api"}',
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    instance = DuckDBStore(str(tmp_path_factory.mktemp("filter") / "f.duckdb"))
    http = {"http_method": "GET", "http_url": "http://api.example.com/v2/orders", "http_user_agent": "curl/8"}
    instance.write(
        [
            # 1: ok at the root, a fault downstream in orders, annotated c1, user alice.
            spans_batch(
                at(1, 10, None, 0, 0.5, service="api", name="GET /orders", http_status=200, **http, **ROOT_1),
                at(1, 11, 10, 0.01, 0.2, service="api", kind="CLIENT", target_type="remote", target_name="orders"),
                at(1, 12, 11, 0.02, 0.1, service="orders", kind="SERVER", fault=True, user_id="alice", **ORDERS_1),
                annotations=((12, "customer", "c1"), (12, "amount", 250), (12, "vip", True)),
            ),
            # 2: throttled at the root (429), annotated c2.
            spans_batch(
                at(2, 20, None, 10, 0.05, service="api", name="POST /pay", http_status=429, error=True, **ROOT_2),
                annotations=((20, "customer", "c2"),),
            ),
            # 3: a cold start in a Lambda function; an async child outlives the 0.1 s root (3 s trace).
            spans_batch(
                at(3, 30, None, 20, 0.1, service="api", name="GET /report", http_status=200, resource=API),
                at(3, 31, 30, 20.01, 3.0, service="worker", origin="AWS::Lambda::Function", cold_start=True),
            ),
            # 4: incomplete (an in-progress X-Ray segment), root faulted with a 500.
            spans_batch(
                at(4, 40, None, 30, 1.5, service="legacy", name="GET /x", http_status=500, fault=True, source="xray"),
                at(4, 41, 40, 30.1, 0, service="legacy", in_progress=True, source="xray"),
            ),
            logs_batch(
                (1, 12, 0.05, "card declined for alice"),
                (1, 10, 0.3, "GET /orders answered"),
                (2, 20, 10.01, "rate limited: 429"),
                (3, None, 20.5, "nightly report queued"),  # in the trace, in no span
            ),
        ]
    )
    instance.link_new_spans()
    yield instance
    instance.close()


def found(store: DuckDBStore, text: str) -> list[int]:
    return sorted(int(t.trace_id, 16) for t in store.reader.search_traces(WINDOW, parse_filter(text), 100))


@pytest.mark.parametrize(
    ("text", "traces"),
    [
        ("ok", [1, 3]),
        ("!ok", [2, 4]),
        ("error", [2]),
        ("throttle", [2]),
        ("fault", [4]),  # the root's response, not a downstream fault
        ("fault = false", [1, 2, 3]),
        ("partial", [4]),
        ("!partial", [1, 2, 3]),
        ("cold_start", [3]),
        ("root", [1, 2, 3, 4]),
        ("responsetime > 1", [4]),
        ("responsetime <= 0.05", [2]),
        ("duration >= 3", [3]),  # the whole trace, first start to last end
        ("duration < 1", [1, 2]),
        ("http.status = 429", [2]),
        ("http.status >= 500", [4]),
        ('http.method = "GET"', [1]),
        ('http.url BEGINSWITH "http://api.example.com/" AND http.url CONTAINS "/v2/"', [1]),
        ('http.url ENDSWITH "orders"', [1]),
        ('http.useragent CONTAINS "curl"', [1]),
        ('name = "POST /pay"', [2]),
        ('name != "POST /pay"', [1, 3, 4]),
        ('user = "alice"', [1]),
        ("annotation.customer", [1, 2]),
        ('annotation.customer = "c1"', [1]),
        ('annotation.customer != "c1"', [2]),
        ("annotation.amount > 100", [1]),
        ("annotation.amount < 100", []),
        ("annotation.vip = true", [1]),
        ('service("orders")', [1]),
        ('service("orders") { fault }', [1]),
        ('service("api") { fault }', []),
        ('!service("orders")', [2, 3, 4]),
        ('service("orders") { annotation.customer = "c1" } AND ok', [1]),
        ('service(id(name: "worker", type: "AWS::Lambda::Function")) { cold_start }', [3]),
        ('service(id(name: "worker", type: "AWS::Lambda")) ', []),
        ("service() { fault }", [1, 4]),
        ('edge("api", "orders")', [1]),
        ('edge("api", "orders") { fault }', [1]),
        ('edge("api", "orders") { !fault }', []),
        ('edge("api", "worker") { cold_start AND responsetime > 2 }', [3]),
        (f'id("{1:032x}")', [1]),
        (f'id("1-{0:08x}-{3:024x}")', [3]),
        ("error OR fault", [2, 4]),
        ("ok cold_start", [3]),
        ("(throttle OR partial) AND !annotation.customer", [4]),
        ('attribute.http.route = "/orders"', [1]),
        ('attribute.http.route BEGINSWITH "/p"', [2]),
        ("attribute.http.route", [1, 2]),
        ("attribute.retries >= 3", [1]),  # a number; trace 2's "3" is a string
        ('attribute.retries = "3"', [2]),
        ("attribute.sync = false", [1]),
        ("attribute.sync != false", []),
        ('attribute.a/b = "slash"', [1]),
        ('resource.service.name = "api"', [1, 2, 3]),
        ("resource.cloud.region", [1]),
        ('!resource.cloud.region AND resource.service.name = "api"', [2, 3]),
        ('service("orders") { attribute.messaging.destination.name = "q1" }', [1]),
        ('service("api") { attribute.messaging.destination.name = "q1" }', []),
        ('service("orders") { resource.service.name = "orders" AND fault }', [1]),
        ('edge("api", "orders") { attribute.retries > 2 }', [1]),
        ('log CONTAINS "declined"', [1]),
        ('log BEGINSWITH "rate"', [2]),
        ('log = "nightly report queued"', [3]),
        ('log ENDSWITH "answered" AND log CONTAINS "alice"', [1]),
        ('log CONTAINS "%"', []),
        ('log != "rate limited: 429"', [1, 3]),
        ('service("orders") { log CONTAINS "declined" }', [1]),
        ('service("api") { log CONTAINS "declined" }', []),
        ('edge("api", "orders") { log CONTAINS "alice" }', [1]),
        ('!log CONTAINS "" AND root', [4]),
    ],
)
def test_xray_semantics(store: DuckDBStore, text: str, traces: list[int]) -> None:
    assert found(store, text) == traces


@pytest.mark.parametrize(
    "text",
    [
        'annotation.customer = "\' OR 1=1 --"',
        "service(\"'); COPY spans TO '/tmp/fluoro-pwned.csv'; --\")",
        'name = "x\'; DROP TABLE spans; --"',
        'edge("a\\" OR true --", "b")',
        'http.url CONTAINS "%"',
        'user = "_"',
    ],
)
def test_injection_attempts_match_nothing_and_run_nothing(store: DuckDBStore, text: str) -> None:
    assert found(store, text) == []
    assert found(store, "root") == [1, 2, 3, 4]  # the table is still there, whole
    assert not Path("/tmp/fluoro-pwned.csv").exists()


@pytest.mark.parametrize(
    "text",
    [
        'attribute.k = "\' OR 1=1 --"',
        "attribute.a/b CONTAINS \"'); COPY spans TO '/tmp/fluoro-pwned.csv'; --\"",
        'resource.service.name = "x\'; DROP TABLE resources; --"',
        'attribute.a.b.c = "%"',
        'resource.a~0/b = "_"',
    ],
)
def test_attribute_injection_attempts_match_nothing_and_run_nothing(store: DuckDBStore, text: str) -> None:
    with contextlib.suppress(FilterError):  # refused by the grammar: nothing ran
        assert found(store, text) == []
    assert found(store, "root") == [1, 2, 3, 4]
    assert found(store, 'resource.service.name = "api"') == [1, 2, 3]
    assert not Path("/tmp/fluoro-pwned.csv").exists()


def test_values_are_bound_never_pasted_into_the_sql_text() -> None:
    hostile = "'); COPY spans TO '/tmp/x.csv'; --"
    text = f'service("{hostile}") {{ annotation.k = "{hostile}" }} AND user = "{hostile}" AND responsetime > 1.5'
    compiled = compile_trace_predicate(parse_filter(text), (0, 10))
    assert hostile not in compiled.text and "COPY" not in compiled.text and "1.5" not in compiled.text
    assert compiled.params.count(hostile) == 4  # the service twice (own spans, callers' targets)
    assert 1_500_000_000 in compiled.params


def test_nested_graph_tests_are_refused_with_their_position() -> None:
    with pytest.raises(FilterError) as caught:
        compile_trace_predicate(parse_filter('ok AND service("a") { service("b") }'), (0, 1))
    assert caught.value.column == 8


@pytest.mark.parametrize(
    ("text", "traces"),
    [
        ('service("orders") OR service("worker")', [1, 3]),
        ('service("orders") { fault } OR service("api") { throttle } OR service("nobody")', [1, 2]),
        # orders' node includes the api's call to it, which did not fault
        ('service("worker") { cold_start } OR service("orders") { !fault } OR fault', [1, 3, 4]),
        ('!(service("orders") OR service("legacy"))', [2, 3]),
        ('(service("orders") OR service("worker")) AND annotation.customer = "c1"', [1]),
    ],
)
def test_service_tests_in_an_or_read_the_spans_once_and_mean_the_same(
    store: DuckDBStore, text: str, traces: list[int]
) -> None:
    assert found(store, text) == traces
    assert compile_trace_predicate(parse_filter(text), (0, 1)).text.count("FROM spans s") == 1
    if "(" not in text.split("service", 1)[0]:  # a plain OR: the union of its parts, each asked alone
        assert sorted({t for part in text.split(" OR ") for t in found(store, part)}) == traces
