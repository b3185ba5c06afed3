"""Step Functions' API (``AWSStepFunctions.*``, JSON 1.0) for boto3's ``stepfunctions`` client.

botocore sends StartSyncExecution to a ``sync-`` prefixed host, as AWS serves it; against a
loopback address give the client ``Config(inject_host_prefix=False)``.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from demo_apps.cloud.aws_json_api import AwsApiError, create_json_api
from demo_apps.cloud.stepfunctions.stepfunctions import StepFunctions


def _required(request: dict[str, Any], field: str) -> str:
    value = request.get(field)
    if not isinstance(value, str) or not value:
        raise AwsApiError("ValidationException", f"{field} is required")
    return value


def _task_token_actions(service: StepFunctions) -> dict[str, Any]:
    """SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat: answers to callback Tasks."""

    def send_task_success(request: dict[str, Any], _: str | None) -> Any:
        service.tokens.succeed(request.get("taskToken"), request.get("output"))
        return {}

    def send_task_failure(request: dict[str, Any], _: str | None) -> Any:
        service.tokens.fail(request.get("taskToken"), request.get("error"), request.get("cause"))
        return {}

    def send_task_heartbeat(request: dict[str, Any], _: str | None) -> Any:
        service.tokens.heartbeat(request.get("taskToken"))
        return {}

    return {
        "SendTaskSuccess": send_task_success,
        "SendTaskFailure": send_task_failure,
        "SendTaskHeartbeat": send_task_heartbeat,
    }


def create_stepfunctions_api(service: StepFunctions) -> Starlette:
    def create_state_machine(request: dict[str, Any], _: str | None) -> Any:
        arn = service.create_state_machine(
            _required(request, "name"), _required(request, "definition"), request.get("type", "STANDARD")
        )
        return {"stateMachineArn": arn, "creationDate": 0}

    def start_execution(request: dict[str, Any], trace_header: str | None) -> Any:
        arn = service.start_execution(
            _required(request, "stateMachineArn"),
            request.get("input", "{}"),
            name=request.get("name"),
            trace_header=trace_header,
        )
        return {"executionArn": arn, "startDate": service.started_at(arn)}

    def start_sync_execution(request: dict[str, Any], trace_header: str | None) -> Any:
        return service.start_sync_execution(
            _required(request, "stateMachineArn"), request.get("input", "{}"), trace_header=trace_header
        )

    def describe_execution(request: dict[str, Any], _: str | None) -> Any:
        arn = service.standard(_required(request, "executionArn")).arn  # AWS refuses an express one
        return service.describe_execution(arn)

    def get_execution_history(request: dict[str, Any], _: str | None) -> Any:
        arn = service.standard(_required(request, "executionArn")).arn
        history = service.get_execution_history(arn)
        if request.get("reverseOrder"):
            history["events"].reverse()
        return history

    def stop_execution(request: dict[str, Any], _: str | None) -> Any:
        error, cause = request.get("error"), request.get("cause")
        if not all(v is None or isinstance(v, str) for v in (error, cause)):
            raise AwsApiError("ValidationException", "error and cause must be strings")
        return {"stopDate": service.stop_execution(_required(request, "executionArn"), error, cause)}

    return create_json_api(
        "AWSStepFunctions",
        {
            "CreateStateMachine": create_state_machine,
            "StartExecution": start_execution,
            "StartSyncExecution": start_sync_execution,
            "DescribeExecution": describe_execution,
            "GetExecutionHistory": get_execution_history,
            "StopExecution": stop_execution,
            **_task_token_actions(service),
        },
        json_version="1.0",
    )
