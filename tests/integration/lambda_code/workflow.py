"""Handlers for the Step Functions tests: an assessor that fails at first, a recorder, a doubler."""

import json
import os
from pathlib import Path
from typing import Any

import tracer

tracer.configure()


class FlakyError(Exception):
    """Raised on an account's first assessment, so the workflow's Retry has work to do."""


def _log(name: str, item: object) -> None:
    with (Path(os.environ["RECORD_DIR"]) / f"{name}.jsonl").open("a") as out:
        out.write(json.dumps(item) + "\n")


def _seen(name: str) -> list[Any]:
    path = Path(os.environ["RECORD_DIR"]) / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@tracer.traced.handler
def assess(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _log("assess", event["account"])
    if _seen("assess").count(event["account"]) == 1:
        raise FlakyError("the ledger was busy")
    return {"fee": round(event["overdraft"] * 0.1, 2)}


@tracer.traced.handler
def apply_fee(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _log("apply", event["account"])
    return {"applied": event["assessment"]["fee"]}


@tracer.traced.handler
def freeze(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise ValueError(f"cannot freeze {event['account']}: the account is locked")


@tracer.traced.handler
def double(event: int, context: Any) -> int:
    return event * 2


@tracer.traced.handler
def record(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _log(event["step"], event)
    return event


@tracer.traced.handler
def slow_record(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Records that it started, then takes `sleep_s`: a task a crash can land in the middle of."""
    import time

    _log(event["step"], event)
    time.sleep(float(event.get("sleep_s", 0)))
    return event
