"""Annotations and metadata follow X-Ray's rules and never raise."""

from __future__ import annotations

import json
import logging

import pytest

import tracer
from tests.conftest import Recorder
from tests.recorded import attributes_of
from tracer import semconv
from tracer.annotations import MAX_METADATA_BYTES, AnnotationBudget


def test_valid_annotations_become_indexed_attributes(recorder: Recorder) -> None:
    @tracer.traced(name="op")
    def op() -> None:
        tracer.annotate("customer_id", "c1")
        tracer.annotate("amount", 12.5)
        tracer.annotate("retries", 3)
        tracer.annotate("vip", True)
        tracer.annotate("k" * 500, "the longest key X-Ray takes")
        tracer.annotate("past_int64", 2**70)
        tracer.annotate("int64_floor", -(2**63))

    op()
    attrs = attributes_of(recorder.by_name("op"))
    assert attrs[semconv.ANNOTATION_PREFIX + "customer_id"] == "c1"
    assert attrs[semconv.ANNOTATION_PREFIX + "amount"] == 12.5
    assert attrs[semconv.ANNOTATION_PREFIX + "retries"] == 3
    assert attrs[semconv.ANNOTATION_PREFIX + "vip"] is True
    assert attrs[semconv.ANNOTATION_PREFIX + "k" * 500] == "the longest key X-Ray takes"
    past_int64 = attrs[semconv.ANNOTATION_PREFIX + "past_int64"]
    assert type(past_int64) is float and past_int64 == 2**70  # still a number, as OTLP can carry it
    assert attrs[semconv.ANNOTATION_PREFIX + "int64_floor"] == -(2**63)


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_a_dropped_key_is_logged_short_and_never_by_its_own_repr(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    @tracer.traced(name="op")
    def op() -> None:
        tracer.annotate(Unprintable(), 1)  # type: ignore[arg-type]
        tracer.put_metadata(Unprintable(), 1)  # type: ignore[arg-type]
        tracer.annotate("x" * 100_000 + "!", 1)

    with caplog.at_level(logging.WARNING):
        op()
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert [m.endswith("of type Unprintable") for m in dropped] == [True, True, False]
    assert len(dropped[2]) < 300


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("bad-key", 1),
        ("with space", 1),
        ("", 1),
        ("clé", 1),
        ("a²", 1),
        ("ключ", 1),
        ("a\n", 1),
        ("ok", [1, 2]),
        ("ok", {"a": 1}),
        ("ok", None),
        (3, 1),
        pytest.param("k" * 501, 1, id="a-501-character-key"),
        pytest.param("past_a_double", 10**400, id="a-number-past-a-double"),
    ],
)
def test_bad_annotations_are_dropped_with_a_warning(
    recorder: Recorder, caplog: pytest.LogCaptureFixture, key: object, value: object
) -> None:
    @tracer.traced(name="op")
    def op() -> None:
        tracer.annotate(key, value)  # type: ignore[arg-type]

    with caplog.at_level(logging.WARNING):
        op()
    assert not any(k.startswith(semconv.ANNOTATION_PREFIX) for k in attributes_of(recorder.by_name("op")))
    assert "dropped annotation" in caplog.text


def test_at_most_fifty_annotations_per_trace(recorder: Recorder) -> None:
    @tracer.traced(name="child")
    def child(start: int) -> None:
        for i in range(start, start + 30):
            tracer.annotate(f"k{i}", i)

    @tracer.traced(name="root")
    def root() -> None:
        child(0)
        child(30)

    root()
    count = sum(1 for span in recorder.spans() for k in attributes_of(span) if k.startswith(semconv.ANNOTATION_PREFIX))
    assert count == 50


def test_budget_forgets_old_traces() -> None:
    budget = AnnotationBudget(max_traces=2)
    for trace_id in (1, 2, 3):
        for i in range(50):
            assert budget.admit(trace_id, f"k{i}")
    assert not budget.admit(3, "one-more")
    assert budget.admit(3, "k0")  # replacing an existing key is allowed
    assert budget.admit(1, "k0")  # trace 1 was forgotten: bounded memory


def test_metadata_is_json_redacted_and_capped(recorder: Recorder) -> None:
    @tracer.traced(name="op")
    def op() -> None:
        tracer.put_metadata("request", {"user": "u1", "Password": "hunter2", "nested": [{"api_key": "k"}]})
        tracer.put_metadata("authorization", "Bearer abc", namespace="http")
        tracer.put_metadata("huge", "x" * (MAX_METADATA_BYTES + 10))
        tracer.put_metadata("unencodable", {1, 2}, namespace="odd")
        tracer.put_metadata("reserved", 1, namespace="AWS.lambda")

    op()
    attrs = attributes_of(recorder.by_name("op"))
    request = json.loads(str(attrs[semconv.METADATA_PREFIX + "default.request"]))
    assert request == {"user": "u1", "Password": "[REDACTED]", "nested": [{"api_key": "[REDACTED]"}]}
    assert json.loads(str(attrs[semconv.METADATA_PREFIX + "http.authorization"])) == "[REDACTED]"
    assert json.loads(str(attrs[semconv.METADATA_PREFIX + "default.huge"]))["truncated"] is True
    assert json.loads(str(attrs[semconv.METADATA_PREFIX + "odd.unencodable"])) in ("{1, 2}", "{2, 1}")
    assert semconv.METADATA_PREFIX + "AWS.lambda.reserved" not in attrs
