"""Hypothesis strategies for OTLP protobuf requests as a hostile client writes them.

Built at the wire level (tests/protowire.py), so besides every well-formed shape they produce
what canonical encoders never do: a oneof with two members, a message field sent twice, groups,
enums past 32 bits, times past int64, strings that are not UTF-8, deep nesting. The keys come
from the names the derivations read, so the fuzzer walks their branches.
"""

from __future__ import annotations

from functools import cache

from hypothesis import strategies as st

from tests.protowire import delimited, fixed64, key_value, number, request, tag, text

HOT_KEYS = [
    "http.response.status_code",
    "http.status_code",
    "http.request.method",
    "http.route",
    "url.full",
    "rpc.system",
    "rpc.service",
    "aws.dynamodb.table_names",
    "aws.sqs.queue_url",
    "db.system",
    "db.name",
    "messaging.system",
    "messaging.destination.name",
    "peer.service",
    "server.address",
    "server.port",
    "faas.trigger",
    "faas.coldstart",
    "faas.version",
    "fluoro.error",
    "fluoro.fault",
    "fluoro.throttle",
    "fluoro.target.type",
    "fluoro.target.name",
    "fluoro.origin",
    "fluoro.annotation.customer",
    "fluoro.sampling",
    "fluoro.sampling.weight",
    "aws.xray.annotations",
    "service.name",
    "service.version",
    "enduser.id",
]
AWS_VALUES = ["aws-api", "DynamoDB", "SQS", "Lambda", "http://h/q/", "GET", "429", "503", "", "head", "tail:error"]

texts = st.one_of(
    st.sampled_from(AWS_VALUES),
    st.text(max_size=12),
    st.binary(max_size=6),  # often not UTF-8
)
keys = st.one_of(st.sampled_from(HOT_KEYS), st.text(max_size=8), st.binary(max_size=4))
numbers = st.one_of(st.integers(-(2**63), 2**64 - 1), st.sampled_from([0, 1, 2, 200, 429, 503, 2**32 + 2, -1]))


def scalar_member() -> st.SearchStrategy[bytes]:
    return st.one_of(
        texts.map(lambda v: text(1, v)),
        st.integers(0, 2).map(lambda v: number(2, v)),
        numbers.map(lambda v: number(3, v)),
        st.integers(0, 2**64 - 1).map(lambda v: fixed64(4, v)),
        st.binary(max_size=6).map(lambda v: text(7, v)),
        st.integers(0, 5).map(lambda v: number(8, v)),
    )


def any_values() -> st.SearchStrategy[bytes]:
    """AnyValue bodies: usually one member, sometimes two, a group or an unknown field."""

    def extend(inner: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
        array = st.lists(inner, max_size=3).map(lambda vs: delimited(5, b"".join(delimited(1, v) for v in vs)))
        kvlist = st.lists(st.tuples(keys, inner), max_size=3).map(
            lambda kvs: delimited(6, b"".join(delimited(1, key_value(k, v)) for k, v in kvs))
        )
        one = st.one_of(scalar_member(), array, kvlist)
        return st.one_of(one, st.lists(one, min_size=2, max_size=3).map(b"".join), one.map(odd_fields))

    return st.recursive(scalar_member(), extend, max_leaves=12)


def odd_fields(value: bytes) -> bytes:
    return tag(40, 3) + number(1, 7) + tag(40, 4) + value + number(77, 1)


@cache  # built once per field: a fresh recursive strategy per draw cost ~90% of the test's time
def attributes(field: int) -> st.SearchStrategy[bytes]:
    pair = st.tuples(keys, any_values()).map(lambda kv: delimited(field, key_value(kv[0], kv[1])))
    return st.lists(pair, max_size=6).map(b"".join)


ids16 = st.one_of(st.just(b"\x11" * 16), st.binary(min_size=16, max_size=16), st.binary(max_size=17))
ids8 = st.one_of(st.just(b"\x22" * 8), st.binary(min_size=8, max_size=8), st.binary(max_size=9))
times = st.one_of(st.integers(0, 2**64 - 1), st.just(1_700_000_000_000_000_000))


@st.composite
def spans(draw: st.DrawFn) -> bytes:
    parts = [
        delimited(1, draw(ids16)),
        delimited(2, draw(ids8)),
        text(5, draw(texts)),
        number(6, draw(numbers)),
        fixed64(7, draw(times)),
        fixed64(8, draw(times)),
        draw(attributes(9)),
    ]
    if draw(st.booleans()):
        parts.append(delimited(4, draw(ids8)))
    for _ in range(draw(st.integers(0, 2))):
        event = fixed64(1, draw(times)) + text(2, draw(st.sampled_from(["exception", "e"]))) + draw(attributes(3))
        parts.append(delimited(11, event))
    for _ in range(draw(st.integers(0, 2))):
        parts.append(delimited(13, delimited(1, draw(ids16)) + delimited(2, draw(ids8)) + draw(attributes(4))))
    for _ in range(draw(st.integers(0, 2))):
        parts.append(delimited(15, number(3, draw(numbers)) + text(2, draw(texts))))
    if draw(st.booleans()):
        parts.append(text(3, draw(texts)))  # trace_state
    parts = draw(st.permutations(parts))
    return b"".join(parts)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    resource = draw(attributes(1))
    extra = b""
    if draw(st.integers(0, 5)) == 0:
        extra = delimited(1, draw(attributes(1)))  # a second resource, merged by protobuf
    return request(draw(st.lists(spans(), min_size=1, max_size=4)), resource=resource, resource_spans_extra=extra)
