"""Every intrinsic function AWS defines, through payload templates as a state machine uses them."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest

from demo_apps.cloud.stepfunctions.asl_interpreter import matches_error
from demo_apps.cloud.stepfunctions.asl_paths import IntrinsicError, PathError, fill_template

DOCUMENT = {
    "name": "Arnav",
    "items": [1, 2, 2, 3, {"a": 1}, {"a": 1}],
    "text": "This.is+a,test=string",
    "json": '{"foo": "bar"}',
    "left": {"a": 1, "b": {"c": 1}},
    "right": {"b": {"d": 2}, "e": 3},
    "n": 5,
}


def value(expression: str) -> Any:
    return fill_template({"out.$": expression}, DOCUMENT)["out"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("States.Format('Hello, my name is {}.', $.name)", "Hello, my name is Arnav."),
        ("States.Format('{} and {}', $.n, true)", "5 and true"),
        ("States.Format('braces \\{\\} stay, {} fills', 'this')", "braces {} stay, this fills"),
        ("States.Format('it\\'s {}', null)", "it's null"),
        ("States.StringToJson($.json)", {"foo": "bar"}),
        ("States.JsonToString($.left)", '{"a":1,"b":{"c":1}}'),
        ("States.Array($.n, 'x', States.Array())", [5, "x", []]),
        ("States.ArrayPartition($.items, 4)", [[1, 2, 2, 3], [{"a": 1}, {"a": 1}]]),
        ("States.ArrayContains($.items, 3)", True),
        ("States.ArrayContains($.items, 9)", False),
        ("States.ArrayRange(1, 9, 2)", [1, 3, 5, 7, 9]),
        ("States.ArrayRange(5, 1, -2)", [5, 3, 1]),
        ("States.ArrayRange(1.4, 3.6, 1)", [1, 2, 3, 4]),
        ("States.ArrayGetItem($.items, 3)", 3),
        ("States.ArrayLength($.items)", 6),
        ("States.ArrayUnique($.items)", [1, 2, 3, {"a": 1}]),
        ("States.Base64Encode('Data to encode')", "RGF0YSB0byBlbmNvZGU="),
        ("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", "Data to encode"),
        ("States.Hash('input data', 'SHA-1')", hashlib.sha1(b"input data").hexdigest()),
        ("States.Hash($.name, 'SHA-512')", hashlib.sha512(b"Arnav").hexdigest()),
        ("States.JsonMerge($.left, $.right, false)", {"a": 1, "b": {"d": 2}, "e": 3}),
        ("States.MathAdd($.n, -7)", -2),
        ("States.StringSplit($.text, '.+,=')", ["This", "is", "a", "test", "string"]),
        ("States.StringSplit('1,2,,3', ',')", ["1", "2", "3"]),
        (
            "States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit("
            "'arn:aws:imagebuilder:us-east-1:123:image-recipe/recipe/1.0.0', '/'), 2), '.'), 1)",
            "0",
        ),
    ],
)
def test_each_intrinsic_gives_what_aws_documents(expression: str, expected: Any) -> None:
    assert value(expression) == expected


def test_random_and_uuid() -> None:
    assert all(1 <= value("States.MathRandom(1, 10)") < 10 for _ in range(50))
    assert value("States.MathRandom(1, 1000, 7)") == value("States.MathRandom(1, 1000, 7)")  # a seed repeats
    assert uuid.UUID(value("States.UUID()")).version == 4


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("States.Format('{} {}', 'one')", "2 {} for 1 arguments"),
        ("States.Format('{}', $.left)", "object or an array"),
        ("States.Format('bad \\q escape')", "open escape backslash"),
        ("States.StringToJson('{nope')", "not JSON"),
        ("States.ArrayPartition($.items, 0)", "positive integer"),
        ("States.ArrayRange(1, 5000, 1)", "over 1000"),
        ("States.ArrayRange(1, 5, 0)", "must not be zero"),
        ("States.ArrayGetItem($.items, 99)", "no item at index 99"),
        ("States.ArrayLength($.name)", "must be an array"),
        ("States.Base64Decode('***')", "not base64"),
        ("States.Hash('x', 'CRC32')", "algorithm must be one of"),
        ("States.JsonMerge($.left, $.right, true)", "only the shallow merge"),
        ("States.MathAdd(1.5, 2)", "integers"),
        ("States.MathRandom(9, 1)", "start < end"),
        ("States.Nope(1)", "not an intrinsic function"),
        ("States.UUID(1)", "1 arguments"),
        ("States.Array(" * 11 + ")" * 11, "more than 10"),
    ],
)
def test_calls_aws_would_refuse_fail_with_intrinsic_failure(expression: str, reason: str) -> None:
    with pytest.raises(IntrinsicError, match=reason) as caught:
        value(expression)
    assert caught.value.error == "States.IntrinsicFailure"


def test_limits_of_encoded_text() -> None:
    with pytest.raises(IntrinsicError, match="over 10000 characters"):
        fill_template({"out.$": "States.Base64Encode($.big)"}, {"big": "x" * 10_001})
    with pytest.raises(PathError, match="no value found"):
        value("States.Array($.missing)")


def test_a_heartbeat_timeout_is_a_timeout_and_not_a_task_failure() -> None:
    assert matches_error(["States.Timeout"], "States.HeartbeatTimeout")
    assert not matches_error(["States.TaskFailed"], "States.HeartbeatTimeout")
    assert matches_error(["States.ALL"], "States.IntrinsicFailure")
