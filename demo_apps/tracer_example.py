"""A small traced serverless example: what ``make demo`` runs until the full demo lands.

A Lambda-style ``withdraw`` function (demo_apps.example_function) is invoked the way API
Gateway and SQS would invoke it: a cold start first, then warm calls, with a 400, a 429 and an
unhandled fault among them. Its spans go over real OTLP/HTTP to a real collector (``fluoro
serve``, started here as its own process on free loopback ports with a temporary DuckDB file);
the traces are then read back through the collector's query API and printed as trees.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import tracer
from demo_apps.local_collector import get_json, run_collector

EXPECTED_TRACES = 6


def api_event(body: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "resource": "/withdraw",
        "path": "/withdraw",
        "httpMethod": "POST",
        "headers": {"Host": "bank.local", "User-Agent": "atm/1.0"},
        "requestContext": {"stage": "prod"},
        "body": json.dumps(body) if body is not None else None,
    }


def invoke_all() -> None:
    function = importlib.import_module("demo_apps.example_function")
    withdraw, audit, context = function.withdraw, function.audit, function.LambdaContext
    requests: list[dict[str, Any] | None] = [
        {"account": "a-1", "amount": 20},
        {"account": "a-2", "amount": 40},
        None,
        {"account": "a-3", "amount": 900},
        {"account": "a-4", "amount": 13},
    ]
    for body in requests:
        # Lambda would report the function error; the span already has it as a fault.
        with contextlib.suppress(RuntimeError):
            withdraw(api_event(body), context(aws_request_id=str(uuid.uuid4())))
    sqs_event = {
        "Records": [
            {"eventSource": "aws:sqs", "messageId": str(i), "body": json.dumps({"amount": 10 * i}), "attributes": {}}
            for i in range(1, 4)
        ]
    }
    audit(sqs_event, context(function_name="audit", aws_request_id=str(uuid.uuid4())))


def flags(span: dict[str, Any]) -> str:
    marks = [name for name in ("error", "fault", "throttle", "cold_start") if span.get(name)]
    return f"  [{', '.join(m.replace('_', ' ') for m in marks)}]" if marks else ""


def print_tree(children: dict[str | None, list[dict[str, Any]]], parent: str | None, depth: int) -> None:
    for span in sorted(children.get(parent, []), key=lambda s: s["start_ns"]):
        status = span["http"]["status"] or ""
        label = f"{'  ' * depth}{span['name']}"
        print(f"  {label:<40} {span['kind']:<9} {span['duration_ms']:8.2f} ms {status!s:>4}{flags(span)}")
        print_tree(children, span["span_id"], depth + 1)


def print_trace(trace_id: str, spans: list[dict[str, Any]]) -> None:
    print(f"\ntrace {trace_id}")
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span["parent_span_id"] if span["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(span)
    print_tree(children, None, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, run_collector(Path(tmp) / "demo.duckdb") as collector:
        traces_url, api = collector.traces_url, collector.api_url
        # What the Lambda runtime would set before importing the function module.
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = "withdraw"
        os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = traces_url
        invoke_all()
        tracer.shutdown()
        deadline = time.monotonic() + 10
        while len(found := get_json(f"{api}/api/traces?limit=50")["traces"]) < EXPECTED_TRACES:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        services = get_json(f"{api}/api/services")["services"]
        print(
            f"the collector at {api} stored {sum(s['spans'] for s in services)} spans of "
            f"{len(services)} services in {len(found)} traces (oldest first):"
        )
        for summary in reversed(found):
            print_trace(summary["trace_id"], get_json(f"{api}/api/traces/{summary['trace_id']}")["spans"])


if __name__ == "__main__":
    main()
