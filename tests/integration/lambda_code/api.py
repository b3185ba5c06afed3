"""A Lambda proxy handler for the API Gateway tests."""

import json
from typing import Any

import tracer

tracer.configure()


@tracer.traced.handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    body = {
        "path": event["path"],
        "resource": event["resource"],
        "id": (event.get("pathParameters") or {}).get("id"),
        "stage": event["requestContext"]["stage"],
        "version": context.function_version,
        "query": event.get("queryStringParameters"),
    }
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
