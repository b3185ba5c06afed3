"""A handler instrumented with the AWS X-Ray SDK, as existing Lambda functions are."""

from typing import Any

from aws_xray_sdk.core import xray_recorder


@xray_recorder.capture("debit")  # type: ignore[untyped-decorator]  # the SDK ships no types
def debit(amount: float) -> float:
    xray_recorder.current_subsegment().put_annotation("amount", amount)
    return amount


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"debited": debit(event["amount"])}
