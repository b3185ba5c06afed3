"""`pytest --fluoro-collector URL`: the same fixture reads what a running collector received
during each test (a deployed stack's functions trace from their own processes)."""

from __future__ import annotations

import os
from typing import Any

from tests.integration.daemon import Daemon
from tests.unit.tracer.test_pytest_plugin import APP

END_TO_END = """
import os

import tracer
from app import handler


def test_a_deployed_checkout(fluoro_traces):
    tracer.configure("checkout", endpoint=os.environ["CHECKOUT_OTLP"], set_global=False)
    handler({"customer": "e2e", "amount": 5}, None)
    tracer.flush()
    fluoro_traces.assert_edge("checkout", "accounts")
    fluoro_traces.assert_cold_starts("checkout", 1)
    (found,) = fluoro_traces.find('annotation.customer = "e2e"')
    assert "DynamoDB.UpdateItem" in {span.name for span in found.spans}
    fluoro_traces.assert_no_fault()


def test_nothing_of_an_earlier_test_is_seen(fluoro_traces):
    assert fluoro_traces.find('annotation.customer = "e2e"') == []
"""


def test_the_fixture_reads_a_running_collector(pytester: Any, daemon: Daemon) -> None:
    pytester.makepyfile(app=APP, test_e2e=END_TO_END)
    env = {"CHECKOUT_OTLP": daemon.traces_url, "OTEL_BSP_SCHEDULE_DELAY": "50"}
    os.environ.update(env)
    try:
        result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--fluoro-collector", daemon.api_url)
    finally:
        for key in env:
            os.environ.pop(key, None)
    result.assert_outcomes(passed=2)


def test_an_unreachable_collector_is_said_plainly(pytester: Any) -> None:
    pytester.makepyfile(test_e2e="def test_x(fluoro_traces):\n    fluoro_traces.assert_no_fault()\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--fluoro-collector", "http://127.0.0.1:9")
    result.assert_outcomes(failed=1)
    assert "cannot reach the collector at http://127.0.0.1:9" in result.stdout.str()
