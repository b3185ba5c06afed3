"""The service map over hand-built traces with known answers, in every arrival order."""

from __future__ import annotations

import itertools

import pytest

from collector.query.service_map import MapQuery
from collector.storage.duckdb_store import DuckDBStore
from spanlang.filter_parser import parse_filter
from tests.factories import at, spans_batch
from tests.unit.collector.map_support import WINDOW, by_name, chain_batches, event_age, figures, linked_map


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
@pytest.mark.parametrize("link_each_write", [False, True], ids=["linked-together", "linked-apart"])
def test_a_three_service_chain_gives_exactly_its_two_edges(
    store: DuckDBStore, order: tuple[int, ...], link_each_write: bool
) -> None:
    for trace in (1, 2, 3):
        batches = chain_batches(trace, trace, fault_in_c=trace == 2)
        for index in order:  # children before parents, parents before children, and mixed
            store.write([batches[index]])
            if link_each_write:  # partners then come from stored spans or `pending`, not the same run
                store.link_new_spans()
    nodes, edges = by_name(linked_map(store, MapQuery(WINDOW)))
    assert set(edges) == {("client", "a"), ("a", "b"), ("b", "c")}  # no inferred b.local/c.local
    assert set(nodes) == {"client", "a", "b", "c"}
    service_edges = {k: v for k, v in edges.items() if k[0] != "client"}
    assert len(service_edges) == 2
    assert figures(edges["a", "b"]).requests == 3 and figures(edges["a", "b"]).faults == 0
    assert figures(edges["b", "c"]).requests == 3 and figures(edges["b", "c"]).faults == 1
    assert edges["b", "c"].is_async is False
    assert nodes["c"].health == "fault" and nodes["a"].health == "ok"
    assert figures(nodes["c"]).fault_rate == pytest.approx(1 / 3)
    assert figures(nodes["b"]).p50_ms == pytest.approx(200.0)
    assert [nodes[n].depth for n in ("client", "a", "b", "c")] == [0, 1, 2, 3]


def test_an_uninstrumented_target_is_an_inferred_node(store: DuckDBStore) -> None:
    store.write(
        [
            spans_batch(
                at(1, 1, None, 0, 0.1, service="fn", origin="AWS::Lambda::Function"),
                at(
                    1,
                    2,
                    1,
                    0.01,
                    0.02,
                    service="fn",
                    kind="CLIENT",
                    target_type="AWS::DynamoDB::Table",
                    target_name="accounts",
                    throttle=True,
                    error=True,
                ),
            )
        ]
    )
    nodes, edges = by_name(linked_map(store, MapQuery(WINDOW)))
    assert nodes["accounts"].type == "AWS::DynamoDB::Table" and nodes["accounts"].inferred is True
    assert nodes["fn"].type == "AWS::Lambda::Function" and nodes["fn"].inferred is False
    assert figures(edges["fn", "accounts"]).throttles == 1
    assert nodes["accounts"].health == "throttle"


@pytest.mark.parametrize("consumer_first", [False, True])
def test_an_async_sqs_hop_gives_producer_queue_consumer(store: DuckDBStore, consumer_first: bool) -> None:
    producer = spans_batch(
        at(1, 1, None, 0, 0.05, service="shop", kind="SERVER"),
        at(1, 2, 1, 0.01, 0.02, service="shop", kind="PRODUCER", target_type="AWS::SQS::Queue", target_name="orders-q"),
    )
    # The consumer starts its own trace 2 s after the message was sent, linked to the send.
    consumer = spans_batch(
        at(2, 3, None, 2.03, 0.1, service="billing", kind="CONSUMER", origin="AWS::Lambda::Function"),
        links=((3, 1, 2),),
    )
    store.write([consumer] if consumer_first else [producer])
    store.write([producer] if consumer_first else [consumer])
    nodes, edges = by_name(linked_map(store, MapQuery(WINDOW)))
    assert set(edges) == {("client", "shop"), ("shop", "orders-q"), ("orders-q", "billing")}
    assert edges["shop", "orders-q"].is_async and edges["orders-q", "billing"].is_async
    assert event_age(edges["orders-q", "billing"]).p50_ms == pytest.approx(2000.0)
    assert nodes["orders-q"].type == "AWS::SQS::Queue"
    assert figures(nodes["billing"]).requests == 1


def test_xray_style_queue_parenting_keeps_the_queue_between(store: DuckDBStore) -> None:
    # X-Ray's SQS integration makes the consumer a child of the send, in the same trace.
    store.write(
        [
            spans_batch(
                at(1, 1, None, 0, 0.05, service="shop"),
                at(
                    1,
                    2,
                    1,
                    0.01,
                    0.02,
                    service="shop",
                    kind="CLIENT",
                    target_type="AWS::SQS::Queue",
                    target_name="orders-q",
                ),
            ),
            spans_batch(at(1, 3, 2, 1.03, 0.1, service="billing", origin="AWS::Lambda::Function")),
        ]
    )
    _, edges = by_name(linked_map(store, MapQuery(WINDOW)))
    assert set(edges) == {("client", "shop"), ("shop", "orders-q"), ("orders-q", "billing")}
    assert event_age(edges["orders-q", "billing"]).p50_ms == pytest.approx(1000.0)


def test_an_s3_notification_keeps_the_bucket_between_uploader_and_function(store: DuckDBStore) -> None:
    store.write(
        [
            spans_batch(
                at(1, 1, None, 0, 0.05, service="upload"),
                at(
                    1,
                    2,
                    1,
                    0.01,
                    0.02,
                    service="upload",
                    kind="CLIENT",
                    target_type="AWS::S3::Bucket",
                    target_name="pics",
                ),
                at(
                    1,
                    4,
                    1,
                    0.03,
                    0.01,
                    service="upload",
                    kind="CLIENT",
                    target_type="AWS::S3::Bucket",
                    target_name="logs",
                ),
            ),
            spans_batch(at(1, 3, 2, 0.53, 0.1, service="resize", origin="AWS::Lambda")),
        ]
    )
    _, edges = by_name(linked_map(store, MapQuery(WINDOW)))
    assert set(edges) == {("client", "upload"), ("upload", "pics"), ("pics", "resize"), ("upload", "logs")}
    assert not edges["upload", "pics"].is_async and not edges["upload", "logs"].is_async  # the writes are calls
    assert edges["pics", "resize"].is_async  # the notification is an event
    assert event_age(edges["pics", "resize"]).p50_ms == pytest.approx(500.0)


def test_lambda_service_and_function_views_are_two_nodes(store: DuckDBStore) -> None:
    store.write(
        [
            spans_batch(
                at(1, 1, None, 0, 0.3, service="withdraw", origin="AWS::Lambda", source="xray"),
                at(1, 2, 1, 0.05, 0.2, service="withdraw", origin="AWS::Lambda::Function", source="xray"),
                at(
                    1,
                    3,
                    2,
                    0.06,
                    0.1,
                    service="withdraw",
                    kind="CLIENT",
                    target_type="AWS::DynamoDB::Table",
                    target_name="accounts",
                    source="xray",
                ),
            )
        ]
    )
    body = linked_map(store, MapQuery(WINDOW))
    keys = {(n.name, n.type) for n in body.nodes}
    assert keys == {
        ("client", "client"),
        ("withdraw", "AWS::Lambda"),
        ("withdraw", "AWS::Lambda::Function"),
        ("accounts", "AWS::DynamoDB::Table"),
    }
    ids = {(n.name, n.type): n.id for n in body.nodes}
    pairs = {(e.source, e.target) for e in body.edges}
    assert (ids["withdraw", "AWS::Lambda"], ids["withdraw", "AWS::Lambda::Function"]) in pairs
    assert (ids["withdraw", "AWS::Lambda::Function"], ids["accounts", "AWS::DynamoDB::Table"]) in pairs


def test_cold_starts_and_init_durations(store: DuckDBStore) -> None:
    fn = {"service": "resize", "origin": "AWS::Lambda::Function"}
    for trace, cold in ((1, True), (2, False), (3, False), (4, True)):
        rows = [at(trace, trace * 10, None, trace, 0.1 if not cold else 0.2, cold_start=cold, **fn)]
        if cold:
            rows.append(
                at(trace, trace * 10 + 1, None, trace - 0.4, 0.4 if trace == 1 else 0.6, name="Initialization", **fn)
            )
        store.write([spans_batch(*rows)])
    nodes, _ = by_name(linked_map(store, MapQuery(WINDOW)))
    starts = nodes["resize"].cold_start
    assert starts is not None
    assert figures(nodes["resize"]).requests == 4  # the Initialization spans are not requests
    assert figures(nodes["resize"]).cold_starts == 2
    assert starts.inits == 2 and starts.init_p50_ms == pytest.approx(500.0)
    assert starts.p99_share == pytest.approx(0.6 / 0.8)  # the slowest request: 0.6 s init + 0.2 s handler


def test_throttle_sources_are_counted_where_the_429_started(store: DuckDBStore) -> None:
    gateway = {"service": "bank-api", "origin": "AWS::ApiGateway::Stage"}
    store.write(
        [
            # the stage's own rate limit
            spans_batch(at(1, 10, None, 0, 0.01, http_status=429, throttle=True, error=True, **gateway)),
            # the function's concurrency: the Lambda service view refuses, the stage passes the 429 on
            spans_batch(
                at(2, 20, None, 1, 0.02, http_status=429, throttle=True, error=True, **gateway),
                at(2, 21, 20, 1.005, 0.005, service="withdraw", origin="AWS::Lambda", throttle=True, error=True),
            ),
            # DynamoDB throttles the function, which fails with a 429 too
            spans_batch(
                at(3, 30, None, 2, 0.2, http_status=429, throttle=True, error=True, **gateway),
                at(3, 31, 30, 2.01, 0.15, service="withdraw", origin="AWS::Lambda::Function", throttle=True),
                at(
                    3,
                    32,
                    31,
                    2.02,
                    0.01,
                    service="withdraw",
                    kind="CLIENT",
                    target_type="AWS::DynamoDB::Table",
                    target_name="accounts",
                    throttle=True,
                    error=True,
                ),
            ),
        ]
    )
    body = linked_map(store, MapQuery(WINDOW))
    sources = {(s.name, s.type): s.traces for s in body.throttle_sources}
    assert sources == {
        ("bank-api", "AWS::ApiGateway::Stage"): 1,
        ("withdraw", "AWS::Lambda"): 1,
        ("accounts", "AWS::DynamoDB::Table"): 1,
    }


def test_a_child_whose_parent_never_comes_joins_as_called_by_a_client(store: DuckDBStore) -> None:
    store.write([spans_batch(at(1, 2, 999, 0, 0.1, service="orphan"))])
    assert linked_map(store, MapQuery(WINDOW)).nodes == ()  # still waiting for its parent
    store.expire_pending_calls(waited_since_ns=2**62)
    nodes, edges = by_name(linked_map(store, MapQuery(WINDOW)))
    assert figures(nodes["orphan"]).requests == 1
    assert set(edges) == {("client", "orphan")}


def test_filters_restrict_the_map_to_matching_traces(store: DuckDBStore) -> None:
    for trace in (1, 2, 3):
        for batch in chain_batches(trace, trace, fault_in_c=trace == 2):
            store.write([batch])
    body = linked_map(store, MapQuery(WINDOW, parse_filter('service("c") { fault }')))
    _, edges = by_name(body)
    assert figures(edges["a", "b"]).requests == 1


def test_spans_stored_down_the_resend_path_are_linked_too(store: DuckDBStore) -> None:
    store.write([spans_batch(at(1, 1, None, 0, 0.3, service="a"))])
    store.link_new_spans()
    # A resend of the root with a new child: the exact SQL path, whose rows come back from DuckDB.
    store.write([spans_batch(at(1, 1, None, 0, 0.3, service="a"), at(1, 2, 1, 0.01, 0.1, service="b"))])
    _, edges = by_name(linked_map(store, MapQuery(WINDOW)))
    assert set(edges) == {("client", "a"), ("a", "b")}
    assert figures(edges["a", "b"]).requests == 1
    assert figures(edges["client", "a"]).requests == 1  # the resend counted once
