"""A handler traced by Fluoro's tracer that logs with Powertools for AWS Lambda's Logger (JSON
lines carrying ``xray_trace_id``), prints a line naming its X-Ray trace, and one naming none."""

import os
from typing import Any

from aws_lambda_powertools import Logger

import tracer

tracer.configure()
logger = Logger(service="ledger")


@tracer.traced.handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.info("posting entry", extra={"amount": event["amount"]})
    root = os.environ["_X_AMZN_TRACE_ID"].split(";")[0].removeprefix("Root=")
    print(f"plain line of {root}")
    print("a line that names no trace")
    if event.get("refuse"):
        logger.error({"reason": "closed account", "account": event["account"]})
    return {"posted": event["amount"]}


def garble(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Writes bytes that are not UTF-8, more than a pipe holds, then a traced line."""
    import sys

    sys.stderr.flush()
    sys.stderr.buffer.write(b"\xff\xfe not text \xc3\n" * 8000)
    sys.stderr.buffer.flush()
    logger.info("after the garbage")
    return {"ok": True}
