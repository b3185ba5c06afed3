"""The local Lambda's asynchronous invocations: retries, dead-letter queues, destinations, throttles."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from demo_apps.cloud.aws_services import AwsServices
from demo_apps.cloud.events.targets import TargetRouter
from demo_apps.cloud.lambdas.lambda_async import AsyncInvoker, AsyncSettings
from demo_apps.cloud.lambdas.lambda_config import FunctionConfig
from demo_apps.cloud.lambdas.lambda_service import LambdaService
from tests.integration.lambda_functions import config
from tests.waiting import wait_until


def receive_all(sqs: Any, url: str, wanted: int, timeout_s: float = 20.0) -> list[str]:
    bodies: list[str] = []
    deadline = time.monotonic() + timeout_s
    while len(bodies) < wanted and time.monotonic() < deadline:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        bodies += [m["Body"] for m in answer.get("Messages", [])]
    return bodies


def test_async_failures_are_retried_twice_then_land_in_the_dlq(service: LambdaService, aws: AwsServices) -> None:
    sqs = aws.client("sqs")
    dlq = sqs.create_queue(QueueName="fail-dlq")["QueueUrl"]
    service.deploy(config("fail", "fail", dead_letter_queue=dlq))
    invoker = AsyncInvoker(
        service,
        lambda url, body: sqs.send_message(QueueUrl=url, MessageBody=body),
        AsyncSettings(retry_delays_s=(0.2, 0.4)),
    )
    try:
        invoker.submit("fail", {"order": 7})
        assert receive_all(sqs, dlq, 1) == [json.dumps({"order": 7})]
        assert service.stats("fail")["invocations"] == 3  # the first try and two retries
    finally:
        invoker.close()


def test_async_success_and_failure_destinations(service: LambdaService, aws: AwsServices) -> None:
    sqs = aws.client("sqs")
    done = sqs.create_queue(QueueName="done")["QueueUrl"]
    failed = sqs.create_queue(QueueName="failed")["QueueUrl"]
    service.deploy(config("echo", "echo", on_success=f"sqs:{done}"))
    service.deploy(config("fail", "fail", on_failure=f"sqs:{failed}"))
    invoker = AsyncInvoker(
        service,
        lambda url, body: sqs.send_message(QueueUrl=url, MessageBody=body),
        AsyncSettings(retry_delays_s=(0.1, 0.1)),
    )
    try:
        invoker.submit("echo", {"n": 1})
        invoker.submit("fail", {"n": 2})
        (success,) = [json.loads(b) for b in receive_all(sqs, done, 1)]
        (failure,) = [json.loads(b) for b in receive_all(sqs, failed, 1)]
        assert success["requestContext"]["condition"] == "Success" and success["responsePayload"]["event"] == {"n": 1}
        assert failure["requestContext"]["condition"] == "RetriesExhausted"
        assert failure["requestContext"]["approximateInvokeCount"] == 3
        assert failure["responsePayload"]["errorType"] == "ValueError"
    finally:
        invoker.close()


def test_an_async_event_for_an_alias_runs_its_version_and_its_record_says_so(
    service: LambdaService, aws: AwsServices, tmp_path: Path
) -> None:
    sqs = aws.client("sqs")
    done = sqs.create_queue(QueueName="done-live")["QueueUrl"]
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text("def handler(event, context):\n    return {'version': context.function_version}\n")
    service.deploy(FunctionConfig(name="calc", handler="app.handler", code_dir=code, on_success=f"sqs:{done}"))
    service.publish_version("calc")
    service.put_alias("calc", "live", "1")
    invoker = AsyncInvoker(service, lambda url, body: sqs.send_message(QueueUrl=url, MessageBody=body))
    router = TargetRouter(invoker, sqs)
    try:
        router.deliver(service.arn("calc:live"), {"n": 1})  # an EventBridge or S3 target naming the alias
        (success,) = [json.loads(b) for b in receive_all(sqs, done, 1)]
        assert success["responsePayload"] == {"version": "1"}
        assert success["responseContext"]["executedVersion"] == "1"
        assert success["requestContext"]["functionArn"] == service.arn("calc:1")
        with pytest.raises(KeyError):
            invoker.submit("calc:nope", {})
    finally:
        invoker.close()


def test_a_throttled_async_event_is_retried_until_it_runs(service: LambdaService) -> None:
    service.deploy(config("slow", "slow", reserved_concurrency=1, timeout_s=10))
    invoker = AsyncInvoker(service, lambda url, body: None, AsyncSettings(throttle_backoff_s=0.1))
    try:
        for _ in range(3):
            invoker.submit("slow", {"sleep_s": 0.3})
        wait_until(lambda: len(invoker.delivered) >= 3, timeout_s=15, poll_s=0.05)
        assert list(invoker.delivered) == [("Success", "slow")] * 3  # each waited its turn, none was lost
    finally:
        invoker.close()
