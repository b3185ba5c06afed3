"""Lambda's Invoke REST API on a loopback port, so boto3's lambda client works against it.

``POST /2015-03-31/functions/{name}/invocations[?Qualifier=]`` with ``X-Amz-Invocation-Type``
``RequestResponse`` (200 and the result; a handler error is still 200 with
``X-Amz-Function-Error: Unhandled``), ``Event`` (202, queued) or ``DryRun`` (204). Errors in
AWS's shape: 429 TooManyRequestsException, 404 ResourceNotFoundException, 400
InvalidRequestContentException, 413 RequestTooLargeException (6 MB synchronous, 1 MB
asynchronous), with ``x-amzn-ErrorType``. The caller's trace context
(``X-Amzn-Trace-Id`` or W3C ``traceparent``) becomes the Lambda service span's parent.
"""

from __future__ import annotations

import json
from typing import Any, Final

from opentelemetry import trace as trace_api
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from demo_apps.cloud.lambdas.lambda_async import AsyncInvoker, EventQueueFull
from demo_apps.cloud.lambdas.lambda_errors import FunctionError, ResourceNotFound, TooManyRequests
from demo_apps.cloud.lambdas.lambda_refs import split_reference
from demo_apps.cloud.lambdas.lambda_service import LambdaService
from demo_apps.cloud.request_body import read_capped
from demo_apps.cloud.threaded_server import ThreadedServer
from tracer import extract_from, xray_header

MAX_SYNC_BYTES: Final = 6 * 1024 * 1024  # AWS: a synchronous invocation's payload
MAX_EVENT_BYTES: Final = 1024 * 1024  # AWS: an asynchronous one's
_PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), AwsXRayPropagator()])


def _aws_error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"Type": "User", "message": message}, status_code=status, headers={"x-amzn-ErrorType": kind})


def _trace_header(request: Request) -> str | None:
    context = trace_api.get_current_span(extract_from(dict(request.headers), _PROPAGATOR)).get_span_context()
    return xray_header(context) if context.is_valid else None


def create_lambda_api(service: LambdaService, invoker: AsyncInvoker) -> Starlette:
    async def invoke(request: Request) -> Response:
        name, named = split_reference(request.path_params["name"])  # a name, name:qualifier or an ARN
        qualifier = request.query_params.get("Qualifier") or named
        kind = request.headers.get("x-amz-invocation-type", "RequestResponse")
        limit = MAX_EVENT_BYTES if kind == "Event" else MAX_SYNC_BYTES
        body = await read_capped(request, limit)
        if body is None:
            return _aws_error(413, "RequestTooLargeException", f"Request must be smaller than {limit} bytes")
        try:
            event: Any = json.loads(body) if body else {}
        except (ValueError, RecursionError) as exc:  # nested past the parser's depth too
            return _aws_error(400, "InvalidRequestContentException", f"Could not parse request body into json: {exc}")
        header = _trace_header(request)
        try:
            reference = f"{name}:{qualifier}" if qualifier else name
            if kind == "DryRun":
                service.config(reference)
                return Response(status_code=204)
            if kind == "Event":
                invoker.submit(reference, event, header)
                return Response(status_code=202)
            result, version = await run_in_threadpool(service.invoke_versioned, reference, event, header)
        except (ResourceNotFound, KeyError) as exc:
            return _aws_error(404, "ResourceNotFoundException", str(exc).strip("'\""))
        except (TooManyRequests, EventQueueFull):
            return _aws_error(429, "TooManyRequestsException", "Rate Exceeded.")
        except FunctionError as exc:
            return JSONResponse(exc.payload, headers={"X-Amz-Function-Error": "Unhandled"})
        return JSONResponse(result, headers={"X-Amz-Executed-Version": version})  # an alias's version number

    return Starlette(routes=[Route("/2015-03-31/functions/{name}/invocations", invoke, methods=["POST"])])


class LambdaApiServer(ThreadedServer):
    """The API on its own loopback port."""

    def __init__(self, service: LambdaService, invoker: AsyncInvoker, host: str = "127.0.0.1") -> None:
        super().__init__(create_lambda_api(service, invoker), host, name="lambda-api")
