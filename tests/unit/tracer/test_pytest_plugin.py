"""The pytest plugin, as a user's test suite meets it: a real pytest run (a subprocess, the plugin
loaded from the tracer's pytest11 entry point) over tests that trace in process."""

from __future__ import annotations

from typing import Any

from spanlang.held_span import HeldSpan
from tracer.testing.trace_tree import trace_tree

APP = """
import tracer
from opentelemetry.trace import SpanKind
from tracer import semconv


@tracer.traced(name="charge")
def charge(amount):
    if amount < 0:
        raise ValueError("refunds go elsewhere")
    span = tracer.active().spans.start(
        "DynamoDB.UpdateItem",
        kind=SpanKind.CLIENT,
        attributes={semconv.TARGET_TYPE: "AWS::DynamoDB::Table", semconv.TARGET_NAME: "accounts"},
    )
    span.end()
    return amount


@tracer.traced.handler(name="checkout")
def handler(event, context):
    tracer.annotate("customer", event["customer"])
    return {"statusCode": 200, "body": str(charge(event["amount"]))}
"""

PASSING = """
import pytest
import tracer
from app import handler, charge


def test_a_checkout(fluoro_traces):
    handler({"customer": "c1", "amount": 5}, None)
    handler({"customer": "c2", "amount": 7}, None)
    fluoro_traces.assert_edge("checkout", "accounts")
    fluoro_traces.assert_no_fault()
    fluoro_traces.assert_no_error()
    fluoro_traces.assert_cold_starts("checkout", 1)
    fluoro_traces.assert_max_duration("charge", 1000)
    (found,) = fluoro_traces.find('annotation.customer = "c2"')
    assert {span.name for span in found.spans} == {"checkout", "charge", "DynamoDB.UpdateItem"}


def test_each_test_is_a_fresh_environment_and_configure_keeps_the_capture(fluoro_traces):
    assert tracer.configure("another-service") is tracer.active()  # the test's pipeline stays
    handler({"customer": "c3", "amount": 1}, None)
    fluoro_traces.assert_cold_starts("checkout", 1)
    assert len(fluoro_traces.find("cold_start")) == 1


def test_a_fault_is_found(fluoro_traces):
    with pytest.raises(ValueError):
        charge(-1)
    assert [t.spans[0].name for t in fluoro_traces.find("fault")] == ["charge"]
"""

FAILING = """
from app import handler, charge


def test_fault_shows_the_tree(fluoro_traces):
    try:
        handler({"customer": "c9", "amount": -3}, None)
    except ValueError:
        pass
    fluoro_traces.assert_no_fault()


def test_missing_edge(fluoro_traces):
    handler({"customer": "c1", "amount": 1}, None)
    fluoro_traces.assert_edge("checkout", "ledger")


def test_too_slow(fluoro_traces):
    handler({"customer": "c1", "amount": 1}, None)
    fluoro_traces.assert_max_duration("charge", 0.000001)


def test_wrong_cold_starts(fluoro_traces):
    fluoro_traces.assert_cold_starts("checkout", 1)
"""


CONFTEST = """
import pytest


@pytest.fixture
def fluoro_service_name():
    return "checkout"  # as AWS_LAMBDA_FUNCTION_NAME would name it in Lambda
"""


def run(pytester: Any, tests: str) -> Any:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(app=APP, test_app=tests)
    return pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")


def test_the_fixture_captures_and_asserts_in_process(pytester: Any) -> None:
    result = run(pytester, PASSING)
    result.assert_outcomes(passed=3)


def test_failed_assertions_say_why_with_the_trace_as_a_tree(pytester: Any) -> None:
    result = run(pytester, FAILING)
    result.assert_outcomes(failed=4)
    output = result.stdout.str()
    assert "a fault in 1 trace(s) (service() { fault }):" in output
    assert "  checkout (AWS::Lambda::Function): checkout  " in output and "[fault, cold start]" in output
    assert "    checkout: charge  " in output  # the child, indented under its parent
    assert "no call from 'checkout' to 'ledger'" in output
    assert "checkout: DynamoDB.UpdateItem -> accounts (AWS::DynamoDB::Table)" in output
    assert "'charge' took longer than 1e-06 ms" in output
    assert "'checkout' had 0 cold start(s), not 1:" in output and "(no spans were captured)" in output


def test_hostile_names_print_inert() -> None:
    hostile = "\x1b[2J\nrm -rf /\r" + "x" * 200
    tree = trace_tree([HeldSpan("t" * 32, "s" * 16, None, hostile, hostile, "SERVER", 0, 1_000_000)])
    assert "\x1b" not in tree and "\r" not in tree and len(tree.splitlines()) == 2
    assert "\\x1b[2J\\nrm -rf /\\r" in tree and "…" in tree
