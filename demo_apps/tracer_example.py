"""A small traced serverless example: what ``make demo`` runs until the full demo lands.

A Lambda-style ``withdraw`` function (demo_apps.example_function) is invoked the way API
Gateway and SQS would invoke it: a cold start first, then warm calls, with a 400, a 429 and an
unhandled fault among them. Its spans go over real OTLP/HTTP to a local receiver, which prints
them as trace trees.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import uuid
from typing import Any

import tracer
from demo_apps.otlp_sink import OtlpSink, ReceivedSpan


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


def flags(span: ReceivedSpan) -> str:
    marks = [name for name in ("error", "fault", "throttle") if span.attributes.get(f"fluoro.{name}")]
    if span.attributes.get("faas.coldstart"):
        marks.append("cold start")
    return f"  [{', '.join(marks)}]" if marks else ""


def print_tree(children: dict[str, list[ReceivedSpan]], parent: str, depth: int) -> None:
    for span in sorted(children.get(parent, []), key=lambda s: s.start_ns):
        status = span.attributes.get("http.response.status_code", "")
        label = f"{'  ' * depth}{span.name}"
        print(f"  {label:<40} {span.kind:<9} {span.duration_ms:8.2f} ms {status!s:>4}{flags(span)}")
        print_tree(children, span.span_id, depth + 1)


def print_traces(spans: list[ReceivedSpan]) -> None:
    by_trace: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    for trace_id, trace_spans in by_trace.items():
        print(f"\ntrace {trace_id}")
        ids = {s.span_id for s in trace_spans}
        children: dict[str, list[ReceivedSpan]] = {}
        for span in trace_spans:
            parent = span.parent_span_id if span.parent_span_id in ids else ""
            children.setdefault(parent, []).append(span)
        print_tree(children, "", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    with OtlpSink() as sink:
        # What the Lambda runtime would set before importing the function module.
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = "withdraw"
        os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = sink.endpoint
        invoke_all()
        tracer.shutdown()
        spans = sink.wait_for(1, timeout_s=5)
        print(f"received {len(spans)} spans in {sink.requests} OTLP/HTTP requests at {sink.endpoint}")
        print_traces(spans)


if __name__ == "__main__":
    main()
