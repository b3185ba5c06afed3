"""What a Task state calls in the local cloud: Lambda functions and the SQS and DynamoDB
service integrations, with the errors Step Functions names for each.

A function is invoked synchronously with the task span's trace context, so the function's
spans sit under the state that called it. A function error becomes the error named by its
``errorType`` (the cause is the error payload), a throttle ``Lambda.TooManyRequestsException``;
an SQS or DynamoDB error ``SQS.<code>`` / ``DynamoDB.<code>``, as AWS's integrations name them.
"""

from __future__ import annotations

import json
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from demo_apps.cloud.lambdas.lambda_errors import FunctionError, ResourceNotFound, TooManyRequests
from demo_apps.cloud.lambdas.lambda_service import LambdaService
from demo_apps.cloud.stepfunctions.asl_interpreter import StatesError
from tracer import semconv

LAMBDA_INVOKE: Final = "arn:aws:states:::lambda:invoke"
_DYNAMODB: Final = {
    "arn:aws:states:::dynamodb:putItem": "put_item",
    "arn:aws:states:::dynamodb:updateItem": "update_item",
    "arn:aws:states:::dynamodb:getItem": "get_item",
}


def _function(resource: str, parameters: Any) -> tuple[str, str | None]:
    """(name, qualifier) of the function a Lambda task calls."""
    arn = str(parameters.get("FunctionName", "")) if resource == LAMBDA_INVOKE else resource
    parts = arn.split(":")
    if arn.startswith("arn:") and len(parts) >= 7:
        return parts[6], parts[7] if len(parts) > 7 else None
    name, _, qualifier = arn.partition(":")
    return name, qualifier or None


class CloudTasks:
    """The TaskRunner of the local cloud."""

    def __init__(self, lambdas: LambdaService, sqs_client: Any, dynamodb_client: Any) -> None:
        self.lambdas, self.sqs, self.dynamodb = lambdas, sqs_client, dynamodb_client

    def target(self, resource: str, parameters: Any) -> tuple[str, str]:
        if resource in _DYNAMODB:
            return "AWS::DynamoDB::Table", str(parameters.get("TableName", "DynamoDB"))
        if resource.endswith(":sqs:sendMessage"):
            return "AWS::SQS::Queue", str(parameters.get("QueueUrl", "")).rstrip("/").rsplit("/", 1)[-1]
        return "AWS::Lambda::Function", _function(resource, parameters if isinstance(parameters, dict) else {})[0]

    def run(self, resource: str, parameters: Any, trace_header: str | None) -> Any:
        if resource in _DYNAMODB:
            return self._aws("DynamoDB", getattr(self.dynamodb, _DYNAMODB[resource]), parameters)
        if resource.endswith(":sqs:sendMessage"):
            return self._send(parameters, trace_header)
        return self._invoke(resource, parameters, trace_header)

    def _invoke(self, resource: str, parameters: Any, trace_header: str | None) -> Any:
        if resource == LAMBDA_INVOKE and not isinstance(parameters, dict):
            raise StatesError("States.Runtime", "lambda:invoke needs Parameters with a FunctionName")
        name, qualifier = _function(resource, parameters)
        payload = parameters.get("Payload", {}) if resource == LAMBDA_INVOKE else parameters
        try:
            result, version = self.lambdas.invoke_versioned(name, payload, trace_header, qualifier=qualifier)
        except FunctionError as exc:
            raise StatesError(str(exc.payload.get("errorType", "Lambda.Unknown")), json.dumps(exc.payload)) from None
        except TooManyRequests as exc:
            raise StatesError("Lambda.TooManyRequestsException", str(exc)) from None
        except (ResourceNotFound, KeyError) as exc:
            raise StatesError("Lambda.ResourceNotFoundException", str(exc)) from None
        if resource == LAMBDA_INVOKE:
            return {"ExecutedVersion": version, "Payload": result, "StatusCode": 200}
        return result

    def _send(self, parameters: Any, trace_header: str | None) -> Any:
        if not isinstance(parameters, dict):
            raise StatesError("States.Runtime", "sqs:sendMessage needs Parameters with QueueUrl and MessageBody")
        body = parameters.get("MessageBody")
        request = {**parameters, "MessageBody": body if isinstance(body, str) else json.dumps(body)}
        if trace_header:
            request["MessageSystemAttributes"] = {
                semconv.XRAY_SQS_ATTRIBUTE: {"DataType": "String", "StringValue": trace_header}
            }
        return self._aws("SQS", self.sqs.send_message, request)

    @staticmethod
    def _aws(service: str, call: Any, parameters: Any) -> Any:
        if not isinstance(parameters, dict):
            raise StatesError("States.Runtime", f"a {service} task needs Parameters")
        try:
            answer = call(**parameters)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise StatesError(f"{service}.{error.get('Code', 'Unknown')}", str(error.get("Message", exc))) from None
        except (BotoCoreError, TypeError, ValueError) as exc:  # botocore refused the parameters
            raise StatesError(f"{service}.ValidationException", str(exc)) from None
        answer.pop("ResponseMetadata", None)
        return answer
