"""The local cloud's Lambda functions' log lines reach the collector beside their traces: Powertools
Logger's JSON lines by their ``xray_trace_id``, plain lines by an X-Ray id in them, under the
Lambda service's span of their invocation; a line naming no trace stays in the output only."""

from __future__ import annotations

import time
from typing import Any

import pytest

from demo_apps.cloud.lambdas.lambda_config import FunctionConfig
from demo_apps.cloud.lambdas.lambda_service import LambdaService, LambdaSettings
from demo_apps.cloud.lambdas.log_lines import header_ids, record_of
from tests.integration.daemon import Daemon
from tests.integration.lambda_functions import CODE

HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
TRACE_ID = "5759e988bd862e3fe1be46a994272793"


def test_a_functions_traced_lines_land_under_its_invocation(daemon: Daemon) -> None:
    lambdas = LambdaService(LambdaSettings(otlp_endpoint=daemon.traces_url, idle_timeout_s=600))
    try:
        lambdas.deploy(FunctionConfig(name="ledger", handler="powertools_logs.handler", code_dir=CODE))
        assert lambdas.invoke("ledger", {"amount": 5, "refuse": True, "account": "a-1"}, HEADER) == {"posted": 5}
    finally:
        lambdas.close()  # flushes the service's spans, and the log records waiting
    lambda_span = next(
        s for s in daemon.wait_for_trace(TRACE_ID, 3) if s["origin"] == "AWS::Lambda" and s["service"] == "ledger"
    )
    deadline, records = time.monotonic() + 15, list[dict[str, Any]]()
    while len(records) < 3 and time.monotonic() < deadline:
        records = daemon.get(f"/api/traces/{TRACE_ID}/logs").json().get("logs", [])
        time.sleep(0.2)
    assert [(r["severity"], r["body"]) for r in records] == [
        ("INFO", "posting entry"),
        (None, "plain line of 1-5759e988-bd862e3fe1be46a994272793"),
        ("ERROR", '{"reason": "closed account", "account": "a-1"}'),
    ]
    assert {r["span_id"] for r in records} == {lambda_span["span_id"]}  # the invocation's, as on AWS
    assert {r["service"] for r in records} == {"ledger"}
    assert records[0]["attributes"]["amount"] == 5 and records[0]["attributes"]["service"] == "ledger"
    assert records[0]["attributes"]["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"


def test_output_that_is_not_text_never_stops_the_reading(daemon: Daemon) -> None:
    lambdas = LambdaService(LambdaSettings(otlp_endpoint=daemon.traces_url, idle_timeout_s=600))
    try:
        lambdas.deploy(FunctionConfig(name="garbler", handler="powertools_logs.garble", code_dir=CODE, timeout_s=10))
        for _ in range(3):  # 3 x 144 KB: past a pipe's 64 KiB, were the output not read on
            assert lambdas.invoke("garbler", {}, HEADER) == {"ok": True}
    finally:
        lambdas.close()
    deadline, bodies = time.monotonic() + 15, list[str]()
    while bodies.count("after the garbage") < 3 and time.monotonic() < deadline:
        bodies = [r["body"] for r in daemon.get(f"/api/traces/{TRACE_ID}/logs").json().get("logs", [])]
        time.sleep(0.2)
    assert bodies.count("after the garbage") >= 3


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("no trace here\n", None),
        ('{"level": "INFO", "message": "m"}\n', None),
        ("{not json 1-5759e988-bd862e3fe1be46a994272793\n", ("", TRACE_ID, "53995c3f42cd8ad8")),
        ('{"trace_id": "' + "ab" * 16 + '", "message": "otel"}\n', ("otel", "ab" * 16, "")),
        ('{"xray_trace_id": "1-00000000-000000000000000000000001", "message": 7}\n', ("7", "0" * 31 + "1", "")),
        ('{"xray_trace_id": "garbage", "message": "x"}\n', None),
        (
            '["1-5759e988-bd862e3fe1be46a994272793"]\n',
            ('["1-5759e988-bd862e3fe1be46a994272793"]', TRACE_ID, "53995c3f42cd8ad8"),
        ),
    ],
)
def test_which_lines_become_records(line: str, expected: tuple[str, str, str] | None) -> None:
    record = record_of(line, HEADER, 1)
    if expected is None:
        assert record is None
        return
    assert record is not None
    body, trace_id, span_id = expected
    assert (record.trace_id.hex(), record.span_id.hex()) == (trace_id, span_id)
    assert body in record.body


@pytest.mark.parametrize(
    "header", [None, "", "Root=nope", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=xyz", "a=b=c"]
)
def test_a_malformed_header_gives_no_ids_it_does_not_hold(header: str | None) -> None:
    trace_id, span_id = header_ids(header)
    assert span_id == b"" and trace_id in (b"", bytes.fromhex(TRACE_ID))
