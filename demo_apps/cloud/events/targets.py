"""Where the local cloud delivers events: a target named by its ARN, as AWS names targets.

EventBridge rules, S3 notifications and the stream/queue mappings' on-failure destinations all
hand a payload to an ARN: ``arn:aws:lambda:…:function:NAME[:qualifier]`` is an asynchronous
invocation, ``arn:aws:sqs:…:NAME`` a message (the trace header as its ``AWSTraceHeader`` system
attribute, as AWS sets it), ``arn:aws:states:…:stateMachine:NAME`` a new execution. The trace
header travels with each, so the consumer continues (or links to) the producer's trace.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from tracer import semconv


class UnknownTarget(ValueError):
    """The ARN names no service the local cloud delivers to."""


class AsyncInvoke(Protocol):
    def submit(self, name: str, payload: Any, trace_header: str | None = None) -> str: ...


class ExecutionStarter(Protocol):
    def start_execution(
        self, machine: str, payload: Any, *, name: str | None = None, trace_header: str | None = None
    ) -> str: ...


class TargetRouter:
    """Delivers to Lambda (async), SQS or Step Functions by ARN."""

    def __init__(self, lambdas: AsyncInvoke, sqs_client: Any, machines: ExecutionStarter | None = None) -> None:
        self.lambdas = lambdas
        self.sqs = sqs_client
        self.machines = machines
        self._queue_urls: dict[str, str] = {}

    def check(self, arn: str) -> None:
        """Raise UnknownTarget unless the ARN is one this router delivers to."""
        parts = arn.split(":")
        if len(parts) < 6 or parts[0] != "arn" or parts[2] not in ("lambda", "sqs", "states"):
            raise UnknownTarget(f"{arn!r} is not a Lambda function, SQS queue or state machine ARN")
        if parts[2] == "states" and self.machines is None:
            raise UnknownTarget(f"{arn!r}: this cloud runs no Step Functions")

    def deliver(self, arn: str, payload: Any, trace_header: str | None = None) -> None:
        self.check(arn)
        parts = arn.split(":")
        if parts[2] == "lambda":  # the qualifier it names, if any (arn:…:function:NAME:alias)
            self.lambdas.submit(":".join(parts[6:8]), payload, trace_header)
        elif parts[2] == "sqs":
            self.send_message(self.queue_url(parts[5]), payload, trace_header)
        elif self.machines is not None:
            self.machines.start_execution(parts[6], payload, trace_header=trace_header)

    def queue_url(self, name: str) -> str:
        if name not in self._queue_urls:
            self._queue_urls[name] = str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])
        return self._queue_urls[name]

    def send_message(self, queue_url: str, payload: Any, trace_header: str | None = None) -> None:
        body = payload if isinstance(payload, str) else json.dumps(payload, default=str)
        system = {semconv.XRAY_SQS_ATTRIBUTE: {"DataType": "String", "StringValue": trace_header}}
        self.sqs.send_message(
            QueueUrl=queue_url, MessageBody=body, **({"MessageSystemAttributes": system} if trace_header else {})
        )
