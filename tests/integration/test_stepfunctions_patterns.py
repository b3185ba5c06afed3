"""Step Functions' integration patterns and controls through boto3: callbacks with task tokens and
heartbeats, nested executions with .sync, StopExecution, task timeouts, express refusals."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from demo_apps.cloud.lambdas.lambda_config import FunctionConfig
from demo_apps.cloud.lambdas.lambda_service import LambdaSettings
from demo_apps.cloud.local_cloud import CloudSettings, LocalCloud
from demo_apps.cloud.stepfunctions.stepfunctions import StepFunctionsSettings
from demo_apps.otlp_sink import OtlpSink
from tests.waiting import wait_until

CODE = Path(__file__).parent / "lambda_code"
FN = "arn:aws:lambda:us-east-1:123456789012:function:"
SCALE = 0.1  # waits, retries and time limits run ten times faster


@pytest.fixture(scope="module")
def sink() -> Iterator[OtlpSink]:
    with OtlpSink() as running:
        yield running


@pytest.fixture(scope="module")
def cloud(sink: OtlpSink, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    settings = CloudSettings(
        lambdas=LambdaSettings(account_limit=20, idle_timeout_s=600, otlp_endpoint=sink.endpoint),
        stepfunctions=StepFunctionsSettings(
            store_path=tmp_path_factory.mktemp("sfn") / "executions.db", time_scale=SCALE
        ),
    )
    with LocalCloud(settings) as running:
        running.deploy(FunctionConfig(name="double", handler="workflow.double", code_dir=CODE, timeout_s=10))
        running.deploy(FunctionConfig(name="sleepy", handler="functions.slow", code_dir=CODE, timeout_s=20))
        running.client("sqs").create_queue(QueueName="approvals")
        yield running


def machine(cloud: LocalCloud, name: str, definition: dict[str, Any], kind: str = "STANDARD") -> str:
    return str(
        cloud.client("stepfunctions").create_state_machine(
            name=name, definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn", type=kind
        )["stateMachineArn"]
    )


def finished(cloud: LocalCloud, arn: str) -> dict[str, Any]:
    assert cloud.stepfunctions.wait(arn, 60) != "RUNNING"
    described: dict[str, Any] = cloud.client("stepfunctions").describe_execution(executionArn=arn)
    return described


def history(cloud: LocalCloud, arn: str) -> list[str]:
    events = cloud.client("stepfunctions").get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return [e["type"] for e in events]


def approval(heartbeat_s: int | None = None) -> dict[str, Any]:
    """Sends a token to the approvals queue and waits for someone to answer it."""
    task: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {
            "QueueUrl.$": "$.queue",
            "MessageBody": {"token.$": "$$.Task.Token", "order.$": "$.order"},
        },
        "ResultPath": "$.approval",
        "End": True,
    }
    if heartbeat_s is not None:
        task["HeartbeatSeconds"] = heartbeat_s
    return {"StartAt": "Approve", "States": {"Approve": task}}


def received_token(cloud: LocalCloud, queue: str) -> dict[str, Any]:
    sqs = cloud.client("sqs")
    (message,) = wait_until(lambda: sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages"), 30)
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    body: dict[str, Any] = json.loads(message["Body"])
    return body


def test_a_callback_waits_for_its_token_and_heartbeats_keep_it_alive(cloud: LocalCloud) -> None:
    sfn, queue = cloud.client("stepfunctions"), cloud.client("sqs").get_queue_url(QueueName="approvals")["QueueUrl"]
    arn = machine(cloud, "approve", approval(heartbeat_s=20))  # 2 s at this scale
    started = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"queue": queue, "order": 7}))["executionArn"]
    message = received_token(cloud, queue)
    assert message["order"] == 7 and len(message["token"]) > 100
    for _ in range(3):  # 3 s of heartbeats against a 2 s heartbeat limit
        time.sleep(1.0)
        sfn.send_task_heartbeat(taskToken=message["token"])
    assert cloud.stepfunctions.wait(started, 0.1) == "RUNNING"
    sfn.send_task_success(taskToken=message["token"], output=json.dumps({"approved": True}))
    done = finished(cloud, started)
    assert done["status"] == "SUCCEEDED" and json.loads(done["output"])["approval"] == {"approved": True}
    events = history(cloud, started)
    assert events.index("TaskSubmitted") < events.index("TaskSucceeded")
    with pytest.raises(ClientError, match="TaskDoesNotExist"):  # answered already
        sfn.send_task_success(taskToken=message["token"], output="{}")


def test_a_callback_failure_and_a_missed_heartbeat_fail_the_task(cloud: LocalCloud) -> None:
    sfn, queue = cloud.client("stepfunctions"), cloud.client("sqs").get_queue_url(QueueName="approvals")["QueueUrl"]
    arn = machine(cloud, "approve-or-not", approval(heartbeat_s=10))  # 1 s at this scale
    refused = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"queue": queue, "order": 1}))["executionArn"]
    sfn.send_task_failure(taskToken=received_token(cloud, queue)["token"], error="Rejected", cause="over budget")
    failed = finished(cloud, refused)
    assert (failed["status"], failed["error"], failed["cause"]) == ("FAILED", "Rejected", "over budget")
    silent = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"queue": queue, "order": 2}))["executionArn"]
    token = received_token(cloud, queue)["token"]
    timed_out = finished(cloud, silent)
    assert (timed_out["status"], timed_out["error"]) == ("FAILED", "States.HeartbeatTimeout")
    assert "TaskTimedOut" in history(cloud, silent)
    with pytest.raises(ClientError, match="TaskTimedOut"):  # too late: AWS's answer
        sfn.send_task_success(taskToken=token, output="{}")


@pytest.mark.parametrize(
    ("call", "arguments", "code"),
    [
        ("send_task_success", {"taskToken": "never-issued", "output": "{}"}, "TaskDoesNotExist"),
        ("send_task_heartbeat", {"taskToken": "x" * 3000}, "InvalidToken"),
        ("send_task_failure", {"taskToken": "never-issued", "cause": "c"}, "TaskDoesNotExist"),
    ],
)
def test_answers_to_tokens_never_issued_are_refused(
    cloud: LocalCloud, call: str, arguments: dict[str, Any], code: str
) -> None:
    with pytest.raises(ClientError, match=code):
        getattr(cloud.client("stepfunctions"), call)(**arguments)


def test_output_that_is_not_json_is_refused_and_the_token_still_waits(cloud: LocalCloud) -> None:
    sfn, queue = cloud.client("stepfunctions"), cloud.client("sqs").get_queue_url(QueueName="approvals")["QueueUrl"]
    arn = machine(cloud, "approve-json", approval())
    started = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"queue": queue, "order": 3}))["executionArn"]
    token = received_token(cloud, queue)["token"]
    with pytest.raises(ClientError, match="InvalidOutput"):
        sfn.send_task_success(taskToken=token, output="{not json")
    sfn.send_task_success(taskToken=token, output='"fine"')
    assert json.loads(finished(cloud, started)["output"])["approval"] == "fine"


CHILD = {
    "StartAt": "Double",
    "States": {
        "Double": {
            "Type": "Task",
            "Resource": FN + "double",
            "InputPath": "$.value",
            "ResultPath": "$.value",
            "Next": "Check",
        },
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.value", "NumericGreaterThan": 100, "Next": "TooBig"}],
            "Default": "Done",
        },
        "TooBig": {"Type": "Fail", "Error": "TooBig", "Cause": "over 100"},
        "Done": {"Type": "Succeed"},
    },
}


def parent(pattern: str, wait_s: int | None = None) -> dict[str, Any]:
    task: dict[str, Any] = {
        "Type": "Task",
        "Resource": f"arn:aws:states:::states:startExecution{pattern}",
        "Parameters": {"StateMachineArn.$": "$.child", "Input": {"value.$": "$.value"}},
        "End": True,
    }
    if wait_s is not None:
        task["TimeoutSeconds"] = wait_s
    return {"StartAt": "RunChild", "States": {"RunChild": task}}


def test_a_sync_task_runs_a_nested_execution_to_its_end(cloud: LocalCloud, sink: OtlpSink) -> None:
    sfn = cloud.client("stepfunctions")
    child = machine(cloud, "child", CHILD)
    as_json = machine(cloud, "parent-sync2", parent(".sync:2"))
    as_text = machine(cloud, "parent-sync", parent(".sync"))
    fire_and_forget = machine(cloud, "parent-start", parent(""))
    run = json.dumps({"child": child, "value": 21})
    parsed = json.loads(
        finished(cloud, sfn.start_execution(stateMachineArn=as_json, input=run)["executionArn"])["output"]
    )
    assert parsed["Status"] == "SUCCEEDED" and parsed["Output"] == {"value": 42} and parsed["StateMachineArn"] == child
    text = json.loads(
        finished(cloud, sfn.start_execution(stateMachineArn=as_text, input=run)["executionArn"])["output"]
    )
    assert json.loads(text["Output"]) == {"value": 42}
    started = json.loads(
        finished(cloud, sfn.start_execution(stateMachineArn=fire_and_forget, input=run)["executionArn"])["output"]
    )
    assert started["ExecutionArn"].startswith("arn:aws:states:us-east-1:123456789012:execution:child:")
    too_big = sfn.start_execution(stateMachineArn=as_json, input=json.dumps({"child": child, "value": 60}))
    failed = finished(cloud, too_big["executionArn"])
    assert failed["error"] == "States.TaskFailed" and json.loads(failed["cause"])["Error"] == "TooBig"

    # in the trace: the parent's Task span (its pattern named) parents the child execution's span
    def nested() -> list[tuple[str, str]]:
        spans = sink.wait_for(0, 0)
        tasks = {s.span_id: s for s in spans if s.attributes.get("aws.stepfunctions.integration_pattern") == ".sync:2"}
        return [
            (s.trace_id, tasks[s.parent_span_id].trace_id)
            for s in spans
            if s.name == "child" and s.parent_span_id in tasks
        ]

    (trace_ids,) = wait_until(nested, 10)[:1]
    assert trace_ids[0] == trace_ids[1]


def test_stopping_an_execution_aborts_it_its_callback_and_its_child(cloud: LocalCloud) -> None:
    sfn, queue = cloud.client("stepfunctions"), cloud.client("sqs").get_queue_url(QueueName="approvals")["QueueUrl"]
    waiting = machine(cloud, "approve-stop", approval())
    started = sfn.start_execution(stateMachineArn=waiting, input=json.dumps({"queue": queue, "order": 9}))
    token = received_token(cloud, queue)["token"]
    stopped = sfn.stop_execution(executionArn=started["executionArn"], error="Cancelled", cause="by the customer")
    assert stopped["stopDate"]
    aborted = finished(cloud, started["executionArn"])
    assert (aborted["status"], aborted["error"], aborted["cause"]) == ("ABORTED", "Cancelled", "by the customer")
    assert history(cloud, started["executionArn"])[-1] == "ExecutionAborted"
    with pytest.raises(ClientError, match="TaskDoesNotExist"):
        sfn.send_task_success(taskToken=token, output="{}")
    slow_child = machine(
        cloud, "slow-child", {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600, "End": True}}}
    )
    outer = machine(cloud, "outer", parent(".sync"))
    run = sfn.start_execution(stateMachineArn=outer, input=json.dumps({"child": slow_child, "value": 1}))[
        "executionArn"
    ]
    children = wait_until(lambda: cloud.stepfunctions.executions(slow_child), 30)
    sfn.stop_execution(executionArn=run)
    assert cloud.stepfunctions.wait(children[0].arn, 30) == "ABORTED"  # a .sync child goes with its parent


def test_a_task_past_its_timeout_fails_with_states_timeout(cloud: LocalCloud) -> None:
    sfn = cloud.client("stepfunctions")
    definition = {
        "StartAt": "Sleep",
        "States": {
            "Sleep": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "sleepy", "Payload": {"sleep_s": 5}},
                "TimeoutSecondsPath": "$.limit",
                "End": True,
            }
        },
    }
    arn = machine(cloud, "too-slow", definition)
    started = time.monotonic()
    run = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"limit": 10}))["executionArn"]  # 1 s here
    timed_out = finished(cloud, run)
    assert (timed_out["status"], timed_out["error"]) == ("FAILED", "States.Timeout")
    assert time.monotonic() - started < 4.5 and "TaskTimedOut" in history(cloud, run)
    bad = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"limit": -1}))["executionArn"]
    assert finished(cloud, bad)["error"] == "States.Runtime"


def test_express_executions_are_not_described_stopped_or_listed_in_history(cloud: LocalCloud) -> None:
    sfn = cloud.client("stepfunctions")
    arn = machine(cloud, "quick", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, kind="EXPRESS")
    run = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    for call in (sfn.describe_execution, sfn.get_execution_history, sfn.stop_execution):
        with pytest.raises(ClientError, match="InvalidArn"):
            call(executionArn=run)


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"Resource": "arn:aws:states:::lambda:invoke.sync"}, "does not offer the .sync"),
        ({"Resource": "arn:aws:states:::dynamodb:putItem.waitForTaskToken"}, "does not offer"),
        ({"Resource": FN + "double", "TimeoutSeconds": 5, "HeartbeatSeconds": 5}, "must be less than"),
        ({"Resource": FN + "double", "TimeoutSeconds": 0}, "not a positive integer"),
        ({"Resource": FN + "double", "TimeoutSeconds": 5, "TimeoutSecondsPath": "$.t"}, "cannot both"),
        ({"Resource": FN + "double", "HeartbeatSecondsPath": "nope"}, "must start with"),
    ],
)
def test_task_definitions_aws_would_refuse(cloud: LocalCloud, task: dict[str, Any], message: str) -> None:
    definition = {"StartAt": "T", "States": {"T": {"Type": "Task", "End": True, **task}}}
    with pytest.raises(ClientError, match=message):
        machine(cloud, "refused", definition)


def test_the_json_api_and_the_invoke_api_refuse_oversized_and_over_nested_bodies(cloud: LocalCloud) -> None:
    variables = cloud.environment()
    sfn, lambdas = variables["AWS_ENDPOINT_URL_SFN"], variables["AWS_ENDPOINT_URL_LAMBDA"]
    target = {"x-amz-target": "AWSStepFunctions.DescribeExecution", "content-type": "application/x-amz-json-1.0"}
    too_big = httpx.post(sfn, content=b" " * (1024 * 1024 + 1), headers=target, timeout=30)
    assert (too_big.status_code, too_big.json()["__type"]) == (413, "RequestEntityTooLargeException")
    deep = httpx.post(sfn, content=b"[" * 200_000, headers=target, timeout=30)
    assert (deep.status_code, deep.json()["__type"]) == (400, "SerializationException")
    invoke = f"{lambdas}/2015-03-31/functions/double/invocations"
    event = httpx.post(invoke, content=b"1" * (1024 * 1024 + 1), headers={"x-amz-invocation-type": "Event"})
    assert (event.status_code, event.headers["x-amzn-errortype"]) == (413, "RequestTooLargeException")
    nested = httpx.post(invoke, content=b"[" * 200_000, timeout=30)
    assert (nested.status_code, nested.headers["x-amzn-errortype"]) == (400, "InvalidRequestContentException")
    padded = b" " * (2 * 1024 * 1024) + b"21"  # 2 MB: past the asynchronous limit, within the synchronous one
    assert httpx.post(invoke, content=padded, timeout=30).json() == 42
