"""AWS's JSON protocol on a loopback port: ``POST /`` with ``X-Amz-Target: Prefix.Operation``.

EventBridge (``AWSEvents``, JSON 1.1) and Step Functions (``AWSStepFunctions``, JSON 1.0) speak
it, so boto3's ``events`` and ``stepfunctions`` clients work against the local cloud once
``AWS_ENDPOINT_URL_EVENTBRIDGE`` / ``AWS_ENDPOINT_URL_SFN`` point here. Errors come back as AWS
sends them: HTTP 400 with ``{"__type": code, "message": text}``, which botocore raises as a
``ClientError`` with that code. The caller's ``X-Amzn-Trace-Id`` is handed to the operation. A
body is read no further than 1 MiB (413), four times Step Functions' and EventBridge's own
payload limits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from demo_apps.cloud.request_body import read_capped

MAX_REQUEST_BYTES: Final = 1024 * 1024
Operation = Callable[[dict[str, Any], str | None], Any]  # (request document, trace header) -> answer


class AwsApiError(Exception):
    """An error in AWS's shape: a code botocore raises as ClientError, and the HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _error(status: int, code: str, message: str, content_type: str) -> Response:
    body = json.dumps({"__type": code, "message": message})
    return Response(body, status_code=status, media_type=content_type, headers={"x-amzn-ErrorType": code})


def create_json_api(prefix: str, operations: Mapping[str, Operation], json_version: str = "1.1") -> Starlette:
    """An app answering `prefix.Name` targets with `operations[Name]`."""
    content_type = f"application/x-amz-json-{json_version}"

    async def dispatch(request: Request) -> Response:
        target_prefix, _, name = request.headers.get("x-amz-target", "").partition(".")
        operation = operations.get(name) if target_prefix == prefix else None
        if operation is None:
            return _error(400, "UnknownOperationException", f"unknown operation {name or '(none)'!r}", content_type)
        body = await read_capped(request, MAX_REQUEST_BYTES)
        if body is None:
            return _error(
                413, "RequestEntityTooLargeException", f"the body is over {MAX_REQUEST_BYTES} bytes", content_type
            )
        try:
            document = json.loads(body or b"{}")
        except (ValueError, RecursionError) as exc:  # nested past the parser's depth too
            return _error(400, "SerializationException", f"the body is not JSON: {exc}", content_type)
        if not isinstance(document, dict):
            return _error(400, "SerializationException", "the body must be a JSON object", content_type)
        try:
            answer = await run_in_threadpool(operation, document, request.headers.get("x-amzn-trace-id"))
        except AwsApiError as exc:
            return _error(exc.status, exc.code, exc.message, content_type)
        return JSONResponse(answer if answer is not None else {}, media_type=content_type)

    return Starlette(routes=[Route("/", dispatch, methods=["POST"])])
