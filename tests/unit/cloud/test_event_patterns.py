"""EventBridge event patterns: every operator, checked at PutRule and matched as AWS does."""

from __future__ import annotations

from typing import Any

import pytest

from demo_apps.cloud.events.event_patterns import InvalidEventPattern, check_pattern, matches
from demo_apps.cloud.events.eventbridge import render_template

EVENT: dict[str, Any] = {
    "source": "bank.ledger",
    "detail-type": "Overdraft",
    "detail": {
        "account": "ACC-42",
        "amount": 250,
        "currency": "EUR",
        "tags": ["vip", "eu"],
        "file": "statement.PDF",
        "ip": "10.0.3.7",
        "note": None,
        "nested": {"level": {"deep": "yes"}},
    },
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"source": ["bank.ledger"]}, True),
        ({"source": ["other", "bank.ledger"]}, True),  # a leaf's values are OR
        ({"source": ["bank.ledger"], "detail-type": ["Deposit"]}, False),  # fields are AND
        ({"detail": {"amount": [250.0]}}, True),  # numbers compare as numbers
        ({"detail": {"amount": ["250"]}}, False),  # a string is not a number
        ({"detail": {"note": [None]}}, True),
        ({"detail": {"tags": ["eu"]}}, True),  # an array in the event matches if any element does
        ({"detail": {"tags": ["us"]}}, False),
        ({"source": [{"prefix": "bank."}]}, True),
        ({"source": [{"prefix": "Bank."}]}, False),
        ({"source": [{"prefix": {"equals-ignore-case": "BANK."}}]}, True),
        ({"detail": {"file": [{"suffix": ".pdf"}]}}, False),
        ({"detail": {"file": [{"suffix": {"equals-ignore-case": ".pdf"}}]}}, True),
        ({"detail": {"currency": [{"equals-ignore-case": "eur"}]}}, True),
        ({"detail": {"file": [{"wildcard": "state*.PDF"}]}}, True),
        ({"detail": {"file": [{"wildcard": "state?ment.PDF"}]}}, False),  # only * is a wildcard
        ({"detail": {"currency": [{"anything-but": "USD"}]}}, True),
        ({"detail": {"currency": [{"anything-but": ["USD", "EUR"]}]}}, False),
        ({"detail": {"amount": [{"anything-but": 250}]}}, False),
        ({"detail": {"account": [{"anything-but": {"prefix": "ACC-"}}]}}, False),
        ({"detail": {"account": [{"anything-but": {"suffix": "-99"}}]}}, True),
        ({"detail": {"amount": [{"numeric": [">", 100, "<=", 250]}]}}, True),
        ({"detail": {"amount": [{"numeric": ["<", 100]}]}}, False),
        ({"detail": {"currency": [{"numeric": [">", 0]}]}}, False),  # numeric never matches a string
        ({"detail": {"account": [{"exists": True}]}}, True),
        ({"detail": {"missing": [{"exists": False}]}}, True),
        ({"detail": {"account": [{"exists": False}]}}, False),
        ({"detail": {"missing": [{"exists": True}]}}, False),
        ({"detail": {"ip": [{"cidr": "10.0.0.0/16"}]}}, True),
        ({"detail": {"ip": [{"cidr": "10.1.0.0/16"}]}}, False),
        ({"detail": {"nested": {"level": {"deep": ["yes"]}}}}, True),  # nested fields
        ({"detail": {"nested": {"level": {"deep": ["no"]}}}}, False),
        ({"detail": {"absent": {"x": ["y"]}}}, False),
        ({"$or": [{"source": ["nope"]}, {"detail": {"amount": [250]}}]}, True),
        ({"$or": [{"source": ["nope"]}, {"detail": {"amount": [1]}}]}, False),
    ],
)
def test_each_operator_matches_as_aws_documents(pattern: dict[str, Any], expected: bool) -> None:
    check_pattern(pattern)
    assert matches(pattern, EVENT) is expected


@pytest.mark.parametrize(
    ("pattern", "where"),
    [
        ({}, "$"),
        ({"source": "bank.ledger"}, "$.source"),  # a leaf must be an array
        ({"source": []}, "$.source"),
        ({"detail": {"amount": [{"numeric": [">>", 1]}]}}, "$.detail.amount[0]"),
        ({"detail": {"amount": [{"numeric": [">", "1"]}]}}, "$.detail.amount[0]"),
        ({"detail": {"x": [{"exists": "yes"}]}}, "$.detail.x[0]"),
        ({"detail": {"x": [{"regex": "a.*"}]}}, "$.detail.x[0]"),
        ({"detail": {"x": [{"cidr": "not-a-cidr"}]}}, "$.detail.x[0]"),
        ({"detail": {"x": [{"prefix": 1}]}}, "$.detail.x[0]"),
        ({"$or": [{"source": ["a"]}]}, "$.$or"),
        ({"x": [["nested"]]}, "$.x[0]"),
    ],
)
def test_malformed_patterns_are_refused_with_the_path(pattern: Any, where: str) -> None:
    with pytest.raises(InvalidEventPattern) as raised:
        check_pattern(pattern)
    assert str(raised.value).startswith(where + ":")


def test_input_templates_quote_values_as_aws_does() -> None:
    values = {"account": "ACC-42", "amount": 250, "tags": ["vip"]}
    rendered = render_template('{"who": "<account>", "n": <amount>, "t": <tags>, "s": "owes <amount>"}', values)
    assert rendered == '{"who": "ACC-42", "n": 250, "t": ["vip"], "s": "owes 250"}'
    assert render_template("<account> is overdrawn by <amount>", values) == '"ACC-42" is overdrawn by 250'
    assert render_template("<unknown> stays", values) == "<unknown> stays"
