"""The C decoder gives exactly the rows of the Python reference path, over a varied corpus."""

from __future__ import annotations

import gc
import math
import random
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from collector.model import SPAN_SCHEMA, SpanBatch
from collector.normalize import otlp_proto
from collector.normalize.otlp_proto import UndecodableBody, decode_protobuf, decode_protobuf_python
from tests.factories import otlp_value

pytestmark = pytest.mark.skipif(not otlp_proto.FAST_DECODER_AVAILABLE, reason="the C decoder is not built here")

JSON_COLUMNS = {"attributes", "events", "resource"}
TRACE = bytes.fromhex("5759e988bd862e3fe1be46a994272793")


def kvs(attributes: list[tuple[str, Any]]) -> list[KeyValue]:
    return [KeyValue(key=k, value=otlp_value(v)) for k, v in attributes]


STATUS_CODES = (Status.STATUS_CODE_UNSET, Status.STATUS_CODE_OK, Status.STATUS_CODE_ERROR)


def span(n: int, attributes: list[tuple[str, Any]], **fields: Any) -> Span:
    base: dict[str, Any] = {
        "trace_id": TRACE,
        "span_id": (n + 1).to_bytes(8, "big"),
        "name": f'op {n} ü\n"q"',
        "kind": 3,
        "start_time_unix_nano": 1_700_000_000_000_000_000 + n,
        "end_time_unix_nano": 1_700_000_000_050_000_000,
        "attributes": kvs(attributes),
    }
    base.update(fields)
    return Span(**base)


ATTRIBUTE_SETS: list[list[tuple[str, Any]]] = [
    [],
    [("http.response.status_code", 503), ("http.request.method", "GET"), ("http.route", "/a/{id}")],
    [("http.status_code", "429"), ("http.method", "POST"), ("http.url", "https://x/y"), ("http.user_agent", "ua")],
    [("http.response.status_code", True), ("url.full", ""), ("url.path", "/p"), ("user_agent.original", "")],
    [("http.response.status_code", 7000), ("http.request.method", ""), ("http.method", "PUT")],
    [("rpc.system", "aws-api"), ("rpc.service", "DynamoDB"), ("aws.dynamodb.table_names", ["accounts", "x"])],
    [("rpc.system", "aws-api"), ("rpc.service", "SQS"), ("aws.sqs.queue_url", "http://h/1/overdrafts/")],
    [("rpc.system", "aws-api"), ("rpc.service", "Kinesis"), ("aws.kinesis.stream_name", "posts")],
    [("rpc.system", "aws-api"), ("rpc.service", "Lambda"), ("faas.invoked_name", "resize")],
    [("rpc.system", "aws-api"), ("rpc.service", "Glue")],
    [("rpc.system", "aws-api")],
    [("db.system", "postgresql"), ("db.name", "ledger")],
    [("db.system", "redis")],
    [("messaging.system", "kafka"), ("messaging.destination.name", "orders")],
    [("peer.service", "billing")],
    [("server.address", "api.stripe.com"), ("server.port", 443)],
    [("net.peer.name", "old.host"), ("net.peer.port", True)],
    [("fluoro.target.type", "AWS::S3::Bucket"), ("fluoro.target.name", "images"), ("fluoro.origin", "")],
    [("fluoro.error", 1), ("fluoro.fault", "yes"), ("fluoro.throttle", 0.0), ("faas.coldstart", False)],
    [("faas.trigger", "http"), ("faas.version", "3"), ("enduser.id", "alice"), ("faas.coldstart", True)],
    [("faas.invocation_id", ""), ("faas.version", "")],
    [
        ("fluoro.annotation.customer", "c1"),
        ("fluoro.annotation.n", 7),
        ("fluoro.annotation.r", 0.25),
        ("fluoro.annotation.ok", False),
        ("fluoro.annotation.list", [1]),
        ("fluoro.annotation.", "empty key"),
    ],
    [
        ("nested", {"a": [1, 2.5, "x", None], "b": {"c": True}}),
        ("raw", b"\x00\xff"),
        ("nan", math.nan),
        ("inf", -math.inf),
        ("neg", -5),
        ("big", 2**62),
        ("min", -(2**63)),
        ("zero", 0),
        ("ctrl", "tab\tbell\x07"),
        ("dup", 1),
        ("dup", 2),
    ],
    [("empty", None), ("http.response.status_code", "abc")],
]


def corpus() -> list[bytes]:
    spans = []
    for n, attributes in enumerate(ATTRIBUTE_SETS):
        status = Status(code=STATUS_CODES[n % 3], message="broken" if n % 3 == 2 else "")
        # Every set twice, as a CLIENT span and as another kind, in both halves of the corpus.
        for copy, kind in enumerate((3, [1, 2, 4, 5][n % 4])):
            spans.append(span(2 * n + copy + 1000 * copy, attributes, kind=kind, status=status))
    spans.append(
        span(
            100,
            [],
            parent_span_id=b"\x01" * 8,
            events=[
                Span.Event(time_unix_nano=5, name="exception", attributes=kvs([("exception.type", "KeyError")])),
                Span.Event(time_unix_nano=6, name="retry"),
            ],
            links=[Span.Link(trace_id=b"\x02" * 16, span_id=b"\x03" * 8), Span.Link(trace_id=b"\x04" * 3, span_id=b"")],
            status=Status(code=Status.STATUS_CODE_ERROR),
        )
    )
    spans.append(span(101, [], kind=2, status=Status(code=Status.STATUS_CODE_ERROR)))
    invalid = [
        span(200, [], trace_id=bytes(16)),
        span(201, [], span_id=b"\x01\x02"),
        span(202, [], parent_span_id=b"\x01"),
        span(203, [], start_time_unix_nano=2**63 + 5),
    ]
    resources = [
        kvs([("service.name", "orders"), ("faas.version", "12"), ("cloud.provider", "aws")]),
        kvs([("service.version", "1.2")]),
        kvs([("service.name", ""), ("faas.version", ""), ("service.version", "9")]),
    ]
    requests = []
    for i, resource in enumerate(resources):
        request = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=Resource(attributes=resource),
                    scope_spans=[
                        ScopeSpans(scope=InstrumentationScope(name="s"), spans=spans),
                        ScopeSpans(spans=invalid if i == 0 else []),
                    ],
                )
            ]
        )
        requests.append(request.SerializeToString())
    return requests


def rows_of(batch: SpanBatch) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = batch.spans.to_pylist()
    for row in rows:
        for column in JSON_COLUMNS:
            if row[column] is not None:
                row[column] = orjson.loads(row[column])
    return rows


@pytest.mark.parametrize("index", range(3))
def test_same_rows_as_the_python_path(index: int) -> None:
    body = corpus()[index]
    fast, reference = decode_protobuf(body), decode_protobuf_python(body)
    assert rows_of(fast) == rows_of(reference)
    assert fast.annotations.to_pylist() == reference.annotations.to_pylist()
    assert fast.links.to_pylist() == reference.links.to_pylist()
    assert (fast.rejected, fast.rejection_reason) == (reference.rejected, reference.rejection_reason)


def test_every_derivation_branch_is_exercised() -> None:
    rows = [r for body in corpus() for r in rows_of(decode_protobuf(body))]
    targets = {r["target_type"] for r in rows}
    assert {
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::Glue",
        "database",
        "queue",
        "service",
        "remote",
        "AWS::S3::Bucket",
    } <= targets
    assert any(r["fault"] for r in rows) and any(r["throttle"] for r in rows) and any(r["error"] for r in rows)
    assert any(r["origin"] == "AWS::Lambda::Function" for r in rows)


@pytest.mark.parametrize("cut", [1, 7, 33, -1, -9])
def test_truncated_requests_are_refused_like_the_python_path(cut: int) -> None:
    body = corpus()[0]
    broken = body[:cut]
    with pytest.raises(UndecodableBody):
        decode_protobuf_python(broken)
    with pytest.raises(UndecodableBody):
        decode_protobuf(broken)


def test_xray_annotation_lists_fall_back_to_python() -> None:
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                scope_spans=[ScopeSpans(spans=[span(1, [("aws.xray.annotations", ["customer"]), ("customer", "c7")])])]
            )
        ]
    )
    batch = decode_protobuf(request.SerializeToString())
    assert batch.annotations.to_pylist()[0]["key"] == "customer"


def mutations(count: int, seed: int) -> list[bytes]:
    """Seeded random corruptions of the corpus: flipped bytes, cut and inserted runs."""
    rng = random.Random(seed)
    bodies = corpus()
    out = []
    for _ in range(count):
        body = bytearray(rng.choice(bodies))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(body))
            choice = rng.random()
            if choice < 0.6:
                body[pos] = rng.randrange(256)
            elif choice < 0.8:
                del body[pos : pos + rng.randint(1, 12)]
            else:
                body[pos:pos] = rng.randbytes(rng.randint(1, 8))
        out.append(bytes(body))
    return out


def test_hostile_bytes_never_crash_and_agree_with_the_python_path() -> None:
    agreed = 0
    for body in mutations(1500, seed=11):
        try:
            fast = decode_protobuf(body)
        except UndecodableBody:
            continue  # refused with a 400, as it must be; never a crash
        try:
            reference = decode_protobuf_python(body)
        except UndecodableBody:
            continue  # the C path skips UTF-8 checks of fields it never reads (documented)
        assert rows_of(fast) == rows_of(reference)
        assert fast.annotations.to_pylist() == reference.annotations.to_pylist()
        agreed += 1
    assert agreed > 100


@pytest.mark.parametrize("bad", [b"\xff\xfeXX", b"\xed\xa0\x80X", b"\xc0\xafXX", b"\xf4\x90\x80\x80", b"X\xe2\x82"])
# A derived attribute (http.route) is checked as a column; any other value and any key only
# in the attributes' JSON, as it is written.
@pytest.mark.parametrize("where", ["name", "attribute", "other attribute", "attribute key", "resource"])
@pytest.mark.parametrize("ascii_before", [0, 8, 13])  # the C checks skip ASCII a word at a time
def test_strings_that_are_not_utf8_are_refused_like_the_python_path(bad: bytes, where: str, ascii_before: int) -> None:
    marker = "Q" * (ascii_before + len(bad))  # as long as its replacement: the length prefix stays right
    attributes = {
        "attribute": [("http.route", marker)],
        "other attribute": [("shop.basket", marker)],
        "attribute key": [(marker, "value")],
    }.get(where, [])
    resource = kvs([("service.name", marker if where == "resource" else "svc")])
    one = span(1, attributes, name=marker if where == "name" else "op")
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=Resource(attributes=resource), scope_spans=[ScopeSpans(spans=[one])])]
    )
    body = request.SerializeToString().replace(marker.encode(), b"a" * ascii_before + bad)
    with pytest.raises(UndecodableBody):
        decode_protobuf_python(body)
    with pytest.raises(UndecodableBody):
        decode_protobuf(body)


def test_multibyte_text_is_kept_whole() -> None:
    text = "ü €  𝄞 名前"
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span(1, [("http.route", text)], name=text)])])]
    )
    (row,) = rows_of(decode_protobuf(request.SerializeToString()))
    assert row["name"] == text and row["http_route"] == text and row["attributes"]["http.route"] == text


@pytest.mark.parametrize("special", ['"', "\\", "\n", "\x01", "\x1f", "\x7f", "é", "€"])
def test_text_needing_escapes_anywhere_in_a_word_is_written_as_json(special: str) -> None:
    # The C writer skips plain text eight bytes at a time: put the character at every offset.
    texts = ["a" * before + special + "b" * after for before in range(10) for after in (0, 3, 9)]
    attributes = [(f"k{i}{special}", text) for i, text in enumerate(texts)]
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span(1, attributes, name=texts[-1])])])]
    )
    body = request.SerializeToString()
    (fast,) = rows_of(decode_protobuf(body))
    assert fast == rows_of(decode_protobuf_python(body))[0]
    assert fast["attributes"] == dict(attributes)


def test_tables_outlive_the_decoder_result_and_unimported_ones_are_freed() -> None:
    body = corpus()[0]
    expected = rows_of(decode_protobuf_python(body))
    for _ in range(50):
        otlp_proto._otlpfast.decode(body)  # never imported: the capsules release everything
    batches = [decode_protobuf(body) for _ in range(3)]
    gc.collect()
    assert all(rows_of(b) == expected for b in batches)  # the buffers now belong to pyarrow
    assert all(b.spans.schema == SPAN_SCHEMA for b in batches)
