"""The C decoder and the Python reference agree on every request either accepts.

Each case is a request no canonical encoder writes but protobuf decodes (a field twice, a
group, two members of a oneof, enums past 32 bits, ...); before these were fixed the two paths
gave different rows, or the C path wrote JSON that could not be read back.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from collector.normalize import otlp_proto
from collector.normalize.otlp_proto import decode_protobuf, decode_protobuf_python
from tests.decoder_outcome import outcome
from tests.protowire import (
    array_value,
    attribute,
    delimited,
    fixed64,
    key_value,
    kvlist_value,
    number,
    request,
    span,
    string_value,
    tag,
    text,
)

pytestmark = pytest.mark.skipif(not otlp_proto.FAST_DECODER_AVAILABLE, reason="the C decoder is not built here")


def deep_array(levels: int) -> bytes:
    value = string_value("x")
    for _ in range(levels - 1):
        value = array_value(value)
    return value


def deep_kvlist(levels: int, *innermost: bytes) -> bytes:
    """Key/value lists nested `levels` deep, the innermost holding the KeyValues `innermost`."""
    value = kvlist_value(*innermost)
    for _ in range(levels - 1):
        value = kvlist_value(key_value("n", value))
    return value


CASES = {
    "a list then a key/value list": request(
        [span(attribute("x", array_value(string_value("a")) + kvlist_value(key_value("k", string_value("v")))))]
    ),
    "two key/value lists": request(
        [
            span(
                attribute(
                    "x",
                    kvlist_value(key_value("a", string_value("1"))) + kvlist_value(key_value("b", string_value("2"))),
                )
            )
        ]
    ),
    "a list sent twice (merged)": request(
        [span(attribute("x", array_value(string_value("a")) + array_value(string_value("b"))))]
    ),
    "a list then a string": request([span(attribute("x", array_value(string_value("a")) + string_value("z")))]),
    "a string then an int": request([span(attribute("x", string_value("a") + number(3, 4)))]),
    "a string then a string index": request([span(attribute("x", string_value("a") + number(8, 1)))]),
    "a KeyValue's value sent twice": request(
        [
            span(
                delimited(
                    9,
                    text(1, "k")
                    + delimited(2, array_value(string_value("a")))
                    + delimited(2, array_value(string_value("b"))),
                )
            )
        ]
    ),
    "a group among a span's fields": request([span(extra=tag(99, 3) + number(1, 5) + tag(99, 4))]),
    "a group inside a value": request([span(attribute("x", tag(50, 3) + tag(50, 4) + string_value("a")))]),
    "two resources (merged)": request(
        [span()],
        resource=delimited(1, key_value("service.name", string_value("a"))),
        resource_spans_extra=delimited(1, delimited(1, key_value("x", string_value("b")))),
    ),
    "a bytes service.name": request([span()], resource=delimited(1, key_value("service.name", text(7, b"\x01\x02")))),
    "a status code past 32 bits": request([span(extra=delimited(15, number(3, 2**32 + 2)))]),
    "a kind past 32 bits": request([span(kind=2**32 + 2)]),
    "a negative kind": request([span(kind=-1)]),
    "a status sent twice (merged)": request([span(extra=delimited(15, number(3, 2)) + delimited(15, text(2, "m")))]),
    "an event time past int64": request([span(extra=delimited(11, fixed64(1, 2**63 + 5) + text(2, "e")))]),
    "a field number past protobuf's maximum": request([span(extra=number(2**29, 5))]),
    "the largest field number": request([span(extra=number(2**29 - 1, 5))]),
    "a varint of eleven bytes": request([span(extra=tag(99, 0) + b"\xff" * 10 + b"\x01")]),
    "JSON over 64 K bytes, under 64 K characters": request([span(attribute("k", string_value("é" * 40_000)))]),
    "JSON over 64 K characters": request([span(attribute("k", string_value("é" * 70_000)))]),
    "values nested 32 deep": request([span(attribute("k", deep_array(32)))]),
    "values nested 33 deep": request([span(attribute("k", deep_array(33)))]),
    "a link's attribute nested 40 deep": request(
        [
            span(
                extra=delimited(
                    13, text(1, b"\x01" * 16) + text(2, b"\x02" * 8) + delimited(4, key_value("k", deep_array(40)))
                )
            )
        ]
    ),
    "a rejected span's attribute nested 40 deep": request([span(attribute("k", deep_array(40)), trace_id=bytes(16))]),
    "a rejected span's attribute not UTF-8": request([span(attribute("k", text(1, b"\xff")), trace_id=bytes(16))]),
    "a trace_state not UTF-8": request([span(extra=text(3, b"\xc0\xaf"))]),
    "a scope name not UTF-8": delimited(1, delimited(2, delimited(1, text(1, b"\xff")) + delimited(2, span()))),
    "a scope attribute key not UTF-8": delimited(
        1,
        delimited(2, delimited(1, delimited(3, key_value(b"\xed\xa0\x80", string_value("v")))) + delimited(2, span())),
    ),
    "a schema_url not UTF-8": request([span()], resource_spans_extra=text(3, b"\xff")),
    "a key sent twice, the first not UTF-8": request(
        [span(delimited(9, text(1, b"\xfe") + text(1, "k") + delimited(2, string_value("v"))))]
    ),
    "a name sent twice, the first not UTF-8": request([span(extra=text(5, b"\xfe") + text(5, "op"))]),
    "an event name sent twice, the first not UTF-8": request(
        [span(extra=delimited(11, text(2, b"\xc0") + text(2, "e")))]
    ),
    "a status message sent twice, the first not UTF-8": request(
        [span(extra=delimited(15, text(2, b"\xed\xa0\x80") + text(2, "m")))]
    ),
    "a repeated key whose first value is corrupt": request(
        [span(attribute("k", tag(3, 4) + b"\x01") + attribute("k", string_value("v")))]
    ),
    "a repeated key whose first value is not UTF-8": request(
        [span(attribute("k", text(1, b"\xff")) + attribute("k", string_value("v")))]
    ),
    "a nested repeated key whose first value nests past the limit": request(
        [span(attribute("k", deep_kvlist(30, key_value("d", deep_array(5)), key_value("d", string_value("v")))))]
    ),
    "an annotation of bytes": request([span(attribute("fluoro.annotation.raw", text(7, b"\x01\xff")))]),
    "a tag of six bytes": b")" + b"\x00" * 8 + b"\xf5\xfe\x9d\xed\x84\x00" + b"\x00" * 4,
    "a length of six bytes": b"\x0a\x80\x80\x80\x80\x80\x00",
    "an AWS service named in another case": request(
        [span(attribute("rpc.system", string_value("aws-api")) + attribute("rpc.service", string_value("LambDa")))]
    ),
    "an AWS service folded to ASCII by lower()": request(
        [
            span(
                attribute("rpc.system", string_value("aws-api"))
                + attribute("rpc.service", string_value("\u212ainesis"))
            )
        ]
    ),
    "botocore's name of a service": request(
        [span(attribute("rpc.system", string_value("aws-api")) + attribute("rpc.service", string_value("states")))]
    ),
    "a status code of leading zeros": request([span(attribute("http.status_code", string_value("0000000000503")))]),
    "a status code of non-ASCII digits": request(
        [span(attribute("http.status_code", string_value("\u0665\u0660\u0663")))]
    ),
    "a status code of superscripts": request([span(attribute("http.status_code", string_value("\u00b2")))]),
    "an empty first database name": request(
        [
            span(
                attribute("db.system", string_value("pg"))
                + attribute("db.namespace", array_value(string_value("")))
                + attribute("db.name", string_value("ledger"))
            )
        ]
    ),
    "a resource entity ref": request([span()], resource=delimited(3, text(1, "service") + text(2, "service.name"))),
}


@pytest.mark.parametrize("name", list(CASES))
def test_both_decoders_agree(name: str) -> None:
    body = CASES[name]
    assert outcome(decode_protobuf, body) == outcome(decode_protobuf_python, body)


def test_a_list_then_a_key_value_list_is_stored_as_valid_json() -> None:
    (rows, *_) = outcome(decode_protobuf, CASES["a list then a key/value list"])
    assert rows[0]["attributes"] == {"x": {"k": "v"}}  # protobuf's rule: the last member wins


def test_values_nested_deeper_than_the_limit_are_refused_by_both() -> None:
    assert outcome(decode_protobuf, CASES["values nested 33 deep"]) == "refused"
    assert outcome(decode_protobuf, CASES["a nested repeated key whose first value nests past the limit"]) == "refused"
    assert outcome(decode_protobuf, CASES["values nested 32 deep"]) != "refused"


def many_keys(count: int, *, distinct: bool = True) -> bytes:
    attributes = b"".join(attribute(f"key{i if distinct else i % 100}", string_value("v")) for i in range(count))
    return request([span(attributes)])


@pytest.mark.serial  # a ratio of timings: other tests beside it took it to 27x
@pytest.mark.parametrize("decode", [decode_protobuf, decode_protobuf_python])
def test_repeated_key_detection_is_linear(decode: Any) -> None:
    # Time grows with the keys, not their square: 8x the keys must cost far less than 64x
    # (before hashing, the C path took ~40 s for 160k keys against ~0.6 s for 20k).
    small, large = many_keys(20_000), many_keys(160_000)

    def seconds(body: bytes) -> float:
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            decode(body)
            best = min(best, time.perf_counter() - started)
        return best

    assert seconds(large) < 24 * seconds(small)


def test_repeated_keys_keep_the_first_position_and_the_last_value_past_the_hashing_threshold() -> None:
    keys = [f"key{i % 50}" for i in range(200)]
    attributes = b"".join(attribute(k, string_value(str(i))) for i, k in enumerate(keys))
    body = request([span(attributes)])
    (rows, *_) = outcome(decode_protobuf, body)
    assert list(rows[0]["attributes"].items()) == [(f"key{i}", str(150 + i)) for i in range(50)]
    assert outcome(decode_protobuf, body) == outcome(decode_protobuf_python, body)


def big_resource_many_tiny_spans(spans: int) -> bytes:
    resource = delimited(1, key_value("service.name", string_value("s" * 20_000))) + b"".join(
        delimited(1, key_value(f"k{i}", string_value("v" * 500))) for i in range(80)
    )
    tiny = [
        delimited(1, b"\x11" * 16) + delimited(2, (i + 1).to_bytes(8, "big")) + fixed64(7, 1) + fixed64(8, 1)
        for i in range(spans)
    ]
    return request(tiny, resource=resource)


@pytest.mark.parametrize("decode", [decode_protobuf, decode_protobuf_python])
def test_memory_follows_the_body_not_the_resource_times_the_spans(decode: Any) -> None:
    # Before: the resource (and a service name of any length) was copied into every row, so a
    # 2 MB body decoded to ~1.9 GB. Now both are held once per request.
    body = big_resource_many_tiny_spans(5000)
    batch = decode(body)
    assert batch.span_count == 5000
    assert batch.decoded_bytes <= 8 * len(body)
    row = batch.spans.slice(0, 1).to_pylist()[0]
    assert row["service"] == "s" * 200  # X-Ray's 200-character limit on a name
    assert len(orjson.loads(row["resource"])) == 81
