"""Step Functions in the local cloud: workflows calling real functions, SQS and DynamoDB; their
histories, a restart mid-execution, the express time limit, and the spans of each state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from demo_apps.cloud.lambdas.lambda_config import FunctionConfig
from demo_apps.cloud.lambdas.lambda_service import LambdaService, LambdaSettings
from demo_apps.cloud.local_cloud import CloudSettings, LocalCloud
from demo_apps.cloud.stepfunctions.sfn_tasks import CloudTasks
from demo_apps.cloud.stepfunctions.stepfunctions import StepFunctions, StepFunctionsSettings
from demo_apps.otlp_sink import OtlpSink, ReceivedSpan
from tests.waiting import wait_until

CODE = Path(__file__).parent / "lambda_code"
FN = "arn:aws:lambda:us-east-1:123456789012:function:"


@pytest.fixture(scope="module")
def sink() -> Iterator[OtlpSink]:
    with OtlpSink() as running:
        yield running


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("records")


@pytest.fixture(scope="module")
def cloud(sink: OtlpSink, records: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    settings = CloudSettings(
        lambdas=LambdaSettings(account_limit=50, idle_timeout_s=600, otlp_endpoint=sink.endpoint),
        stepfunctions=StepFunctionsSettings(
            store_path=tmp_path_factory.mktemp("sfn") / "executions.db", time_scale=0.1
        ),
    )
    with LocalCloud(settings) as running:
        for name, handler in [
            ("assess", "assess"),
            ("apply-fee", "apply_fee"),
            ("freeze", "freeze"),
            ("double", "double"),
            ("record", "record"),
        ]:
            running.deploy(
                FunctionConfig(
                    name=name, handler=f"workflow.{handler}", code_dir=CODE, environment=(("RECORD_DIR", str(records)),)
                )
            )
        running.client("dynamodb").create_table(
            TableName="fees",
            KeySchema=[{"AttributeName": "account", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "account", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        running.client("sqs").create_queue(QueueName="notices")
        yield running


def logged(records: Path, name: str) -> list[Any]:
    path = records / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


OVERDRAFT = {
    "StartAt": "Assess",
    "States": {
        "Assess": {
            "Type": "Task",
            "Resource": FN + "assess",
            "Retry": [{"ErrorEquals": ["FlakyError"], "IntervalSeconds": 1, "MaxAttempts": 2}],
            "ResultPath": "$.assessment",
            "Next": "Decide",
        },
        "Decide": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.assessment.fee", "NumericGreaterThan": 50, "Next": "Freeze"}],
            "Default": "ApplyFee",
        },
        "ApplyFee": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "apply-fee", "Payload.$": "$"},
            "ResultSelector": {"applied.$": "$.Payload.applied"},
            "ResultPath": "$.fee",
            "Next": "Book",
        },
        "Freeze": {
            "Type": "Task",
            "Resource": FN + "freeze",
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Book"}],
            "End": True,
        },
        "Book": {
            "Type": "Parallel",
            "ResultPath": "$.booked",
            "Branches": [
                {
                    "StartAt": "Store",
                    "States": {
                        "Store": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::dynamodb:putItem",
                            "Parameters": {"TableName": "fees", "Item": {"account": {"S.$": "$.account"}}},
                            "ResultPath": None,
                            "Next": "Notify",
                        },
                        "Notify": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::sqs:sendMessage",
                            "Parameters": {
                                "QueueUrl": "http://127.0.0.1/123456789012/notices",
                                "MessageBody": {"account.$": "$.account"},
                            },
                            "ResultSelector": {"sent": True},
                            "End": True,
                        },
                    },
                },
                {
                    "StartAt": "Each",
                    "States": {
                        "Each": {
                            "Type": "Map",
                            "ItemsPath": "$.history",
                            "ItemProcessor": {
                                "StartAt": "Double",
                                "States": {"Double": {"Type": "Task", "Resource": FN + "double", "End": True}},
                            },
                            "End": True,
                        }
                    },
                },
            ],
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


def entered(history: list[dict[str, Any]]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("StateEntered")]


def test_a_standard_workflow_retries_chooses_fans_out_and_records_its_history(cloud: LocalCloud, records: Path) -> None:
    sfn = cloud.client("stepfunctions")
    queue_url = cloud.client("sqs").get_queue_url(QueueName="notices")["QueueUrl"]
    definition = json.loads(json.dumps(OVERDRAFT).replace("http://127.0.0.1/123456789012/notices", queue_url))
    machine = sfn.create_state_machine(
        name="overdraft", definition=json.dumps(definition), roleArn="arn:aws:iam::1:role/r"
    )
    small = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"],
        input=json.dumps({"account": "A-1", "overdraft": 120, "history": [1, 2, 3]}),
    )["executionArn"]
    assert cloud.stepfunctions.wait(small, 60) == "SUCCEEDED"
    described = sfn.describe_execution(executionArn=small)
    output = json.loads(described["output"])
    assert output["assessment"] == {"fee": 12.0} and output["fee"] == {"applied": 12.0}
    assert output["booked"] == [{"sent": True}, [2, 4, 6]]
    assert logged(records, "assess").count("A-1") == 2  # failed once, retried once
    item = cloud.client("dynamodb").get_item(TableName="fees", Key={"account": {"S": "A-1"}})
    assert item["Item"]["account"] == {"S": "A-1"}
    history = sfn.get_execution_history(executionArn=small, maxResults=1000)["events"]
    types = [e["type"] for e in history]
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
    assert types.count("TaskFailed") == 1  # the flaky first assessment
    assert entered(history)[:4] == ["Assess", "Decide", "ApplyFee", "Book"] and entered(history)[-1] == "Done"
    assert sorted(n for n in entered(history) if n in ("Store", "Notify", "Each", "Double")) == [
        "Double",
        "Double",
        "Double",
        "Each",
        "Notify",
        "Store",
    ]
    big = cloud.stepfunctions.start_execution("overdraft", {"account": "B-2", "overdraft": 900, "history": []})
    assert cloud.stepfunctions.wait(big, 60) == "SUCCEEDED"
    caught = json.loads(cloud.stepfunctions.describe_execution(big)["output"])
    assert caught["error"]["Error"] == "ValueError" and "account is locked" in caught["error"]["Cause"]


def test_invalid_definitions_are_refused_at_create_with_the_path(cloud: LocalCloud) -> None:
    sfn = cloud.client("stepfunctions")
    broken = {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": FN + "record", "Next": "Missing"}}}
    with pytest.raises(ClientError) as raised:
        sfn.create_state_machine(name="broken", definition=json.dumps(broken), roleArn="arn:aws:iam::1:role/r")
    assert raised.value.response["Error"]["Code"] == "InvalidDefinition"
    assert "/States/A/Next" in raised.value.response["Error"]["Message"]
    with pytest.raises(ClientError, match="StateMachineDoesNotExist"):
        sfn.start_execution(stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:nope")


STEPS = {
    "StartAt": "One",
    "States": {
        "One": {
            "Type": "Task",
            "Resource": FN + "record",
            "Parameters": {"step": "one"},
            "ResultPath": None,
            "Next": "Pause",
        },
        "Pause": {"Type": "Wait", "Seconds": 30, "Next": "Two"},
        "Two": {"Type": "Task", "Resource": FN + "record", "Parameters": {"step": "two"}, "End": True},
    },
}


def test_a_standard_execution_resumes_after_a_restart_without_running_a_state_twice(
    cloud: LocalCloud, records: Path, tmp_path: Path
) -> None:
    store = tmp_path / "restart.db"
    tasks = CloudTasks(cloud.lambdas, cloud.client("sqs"), cloud.client("dynamodb"))
    first = StepFunctions(tasks, StepFunctionsSettings(store_path=store, time_scale=0.1))
    first.create_state_machine("steps", STEPS)
    arn = first.start_execution("steps", {"run": 1})
    wait_until(lambda: "WaitStateEntered" in [e["type"] for e in first.get_execution_history(arn)["events"]], 30, 0.05)
    first.close()  # the emulator goes down in the middle of the Wait
    second = StepFunctions(tasks, StepFunctionsSettings(store_path=store, time_scale=0.1))
    try:
        assert second.describe_execution(arn)["status"] == "RUNNING"
        assert second.resume() == 1
        assert second.wait(arn, 30) == "SUCCEEDED"
        assert [e["step"] for e in logged(records, "one")] == ["one"]  # One ran once, before the restart
        assert [e["step"] for e in logged(records, "two")] == ["two"]
        types = [e["type"] for e in second.get_execution_history(arn)["events"]]
        assert "ExecutionResumed" in types and types.count("TaskStateEntered") == 2
    finally:
        second.close()


MAPPED = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 1,
            "ItemSelector": {"step.$": "States.Format('map-{}', $$.Map.Item.Value)"},
            "ItemProcessor": {
                "StartAt": "Record",
                "States": {
                    "Record": {"Type": "Task", "Resource": FN + "record", "Next": "Pause"},
                    "Pause": {"Type": "Wait", "Seconds": 20, "End": True},
                },
            },
            "End": True,
        }
    },
}


def test_a_map_resumes_its_iterations_where_they_were_after_a_restart(
    cloud: LocalCloud, records: Path, tmp_path: Path
) -> None:
    store = tmp_path / "map.db"
    tasks = CloudTasks(cloud.lambdas, cloud.client("sqs"), cloud.client("dynamodb"))
    first = StepFunctions(tasks, StepFunctionsSettings(store_path=store, time_scale=0.1))
    first.create_state_machine("mapped", MAPPED)
    arn = first.start_execution("mapped", {"items": [1, 2, 3, 4]})
    wait_until(lambda: len(logged(records, "map-2")) == 1, 30, 0.05)  # the second iteration is in its Pause
    first.close()
    second = StepFunctions(tasks, StepFunctionsSettings(store_path=store, time_scale=0.1))
    try:
        assert second.resume() == 1 and second.wait(arn, 60) == "SUCCEEDED"
        assert [len(logged(records, f"map-{item}")) for item in (1, 2, 3, 4)] == [1, 1, 1, 1]  # none twice
        output = json.loads(second.describe_execution(arn)["output"])
        assert [entry["step"] for entry in output] == ["map-1", "map-2", "map-3", "map-4"]
        types = [e["type"] for e in second.get_execution_history(arn)["events"]]
        assert types.count("TaskStateEntered") == 4  # iteration 1 was not entered again, nor 2's Record
    finally:
        second.close()


def test_a_task_in_flight_at_a_crash_is_not_started_again(records: Path, sink: OtlpSink, tmp_path: Path) -> None:
    store = tmp_path / "crash.db"
    command = [sys.executable, "-m", "tests.integration.sfn_crash_child", str(store), str(records), sink.endpoint]
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2], start_new_session=True
    )
    try:
        assert child.stdout is not None
        arn = child.stdout.readline().strip()
        wait_until(lambda: len(logged(records, "slow")) == 1, 60, 0.05)  # the task's function is running
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the emulator and its Lambda workers die mid-task, nothing flushed
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    lambdas = LambdaService(LambdaSettings(otlp_endpoint=sink.endpoint))
    restarted = StepFunctions(CloudTasks(lambdas, None, None), StepFunctionsSettings(store_path=store))
    try:
        assert restarted.resume() == 1 and restarted.wait(arn, 30) == "SUCCEEDED"
        lost = json.loads(restarted.describe_execution(arn)["output"])["lost"]
        assert lost["Error"] == "States.TaskFailed" and "does not start a task twice" in lost["Cause"]
        assert len(logged(records, "slow")) == 1  # started once, by the emulator that crashed
    finally:
        restarted.close()
        lambdas.close()


def test_an_express_workflow_over_its_limit_fails(cloud: LocalCloud) -> None:
    tasks = CloudTasks(cloud.lambdas, cloud.client("sqs"), cloud.client("dynamodb"))
    express = StepFunctions(tasks, StepFunctionsSettings(express_limit_s=1.0))
    try:
        express.create_state_machine("moderate", STEPS, kind="EXPRESS")
        answer = express.start_sync_execution("moderate", {"post": 1})
        assert answer["status"] == "TIMED_OUT" and answer["error"] == "States.Timeout"
        quick = {"StartAt": "Ok", "States": {"Ok": {"Type": "Pass", "Result": {"ok": True}, "End": True}}}
        express.create_state_machine("quick", quick, kind="EXPRESS")
        assert json.loads(express.start_sync_execution("quick", {})["output"]) == {"ok": True}
    finally:
        express.close()


def test_each_execution_and_state_is_a_span_and_tasks_parent_their_functions(cloud: LocalCloud, sink: OtlpSink) -> None:
    machine = {
        "StartAt": "Call",
        "States": {"Call": {"Type": "Task", "Resource": FN + "record", "Parameters": {"step": "traced"}, "End": True}},
    }
    cloud.stepfunctions.create_state_machine("traced", machine)
    arn = cloud.stepfunctions.start_execution("traced", {})
    assert cloud.stepfunctions.wait(arn, 30) == "SUCCEEDED"

    def is_function(span: ReceivedSpan) -> bool:
        return span.service == "record" and bool(span.attributes.get("fluoro.origin") == "AWS::Lambda")

    def arrived() -> bool:
        spans = list(sink.spans)
        executions = [s for s in spans if s.service == "traced" and s.kind == "SERVER"]
        return any(s.trace_id == executions[0].trace_id for s in spans if is_function(s)) if executions else False

    wait_until(arrived, 20, poll_s=0.2, describe=lambda: "the execution's spans did not arrive")
    spans = list(sink.spans)
    executions = [s for s in spans if s.service == "traced" and s.kind == "SERVER"]
    function = [s for s in spans if is_function(s)]
    (execution,) = executions
    assert execution.attributes["fluoro.origin"] == "AWS::StepFunctions::StateMachine"
    (state,) = [s for s in spans if s.parent_span_id == execution.span_id]
    assert (state.name, state.kind, state.attributes["fluoro.target.name"]) == ("Call", "CLIENT", "record")
    (lambda_span,) = [s for s in function if s.trace_id == execution.trace_id]
    assert lambda_span.parent_span_id == state.span_id  # the task span parents the function's invocation
