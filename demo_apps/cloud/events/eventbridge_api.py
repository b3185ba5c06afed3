"""EventBridge's API (``AWSEvents.*``, JSON 1.1) for boto3's ``events`` client."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from demo_apps.cloud.aws_json_api import AwsApiError, create_json_api
from demo_apps.cloud.events.eventbridge import EventBridge, InputTransformer, Target


def _target(document: dict[str, Any]) -> Target:
    if not document.get("Id") or not document.get("Arn"):
        raise AwsApiError("ValidationException", "a target needs an Id and an Arn")
    transformer = document.get("InputTransformer")
    return Target(
        id=str(document["Id"]),
        arn=str(document["Arn"]),
        input_path=document.get("InputPath"),
        input=document.get("Input"),
        transformer=InputTransformer(
            dict(transformer.get("InputPathsMap") or {}), str(transformer.get("InputTemplate", ""))
        )
        if isinstance(transformer, dict)
        else None,
    )


def create_events_api(bus: EventBridge) -> Starlette:
    def put_events(request: dict[str, Any], trace_header: str | None) -> Any:
        return bus.put_events(list(request.get("Entries") or []), trace_header)

    def put_rule(request: dict[str, Any], _: str | None) -> Any:
        if "EventPattern" not in request:
            raise AwsApiError("ValidationException", "only rules with an EventPattern are supported")
        try:
            arn = bus.put_rule(
                str(request["Name"]),
                str(request["EventPattern"]),
                request.get("EventBusName"),
                request.get("State", "ENABLED") == "ENABLED",
            )
        except ValueError as exc:  # the pattern text is not JSON
            raise AwsApiError("InvalidEventPatternException", f"Event pattern is not valid. {exc}") from None
        return {"RuleArn": arn}

    def put_targets(request: dict[str, Any], _: str | None) -> Any:
        targets = [_target(t) for t in request.get("Targets") or []]
        bus.put_targets(str(request["Rule"]), targets, request.get("EventBusName"))
        return {"FailedEntryCount": 0, "FailedEntries": []}

    def create_event_bus(request: dict[str, Any], _: str | None) -> Any:
        return {"EventBusArn": bus.create_event_bus(str(request["Name"]))}

    return create_json_api(
        "AWSEvents",
        {
            "PutEvents": put_events,
            "PutRule": put_rule,
            "PutTargets": put_targets,
            "CreateEventBus": create_event_bus,
        },
    )
