"""How a stage calls a route's integration and makes the method's response, as API Gateway does.

- ``aws_proxy``: the proxy event to the function; its ``statusCode``/``headers``/``body`` answer.
- ``aws``: the request template's output (or the body, passed through) is the event; the result
  is the integration response's payload, a function error's message selecting its response.
- ``mock``: the request template's ``statusCode`` selects the integration response.
- ``http`` / ``http_proxy``: the mapped parameters (and the request template's body) to ``uri``.
A selected integration response gives the status, the response template renders the body, and
``responseParameters`` set headers; a template may override the status and headers through
``$context.responseOverride``. Lambda refusing the call (concurrency) is AWS's 500, a function
error without a matching response a 502, a template failure a 500, a payload that is not the JSON
a template reads a 400, no template for the content type where the API allows none a 415.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Final

import httpx
from opentelemetry import trace as trace_api
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from demo_apps.cloud.apigateway.apigw_definition import Integration, IntegrationResponse, Route
from demo_apps.cloud.apigateway.mapping_templates import PayloadNotJson, RequestValues, render, request_context
from demo_apps.cloud.lambdas.lambda_errors import FunctionError, TooManyRequests
from demo_apps.cloud.lambdas.lambda_service import LambdaService
from demo_apps.cloud.request_body import read_capped
from tracer import xray_header

_logger = logging.getLogger(__name__)
MAX_PAYLOAD_BYTES: Final = 10 * 1024 * 1024  # API Gateway's payload limit


def parse_json(text: str, templated: bool) -> Any:
    """The integration request's JSON: a body passed through that is not JSON is the caller's 400,
    a template's output that is not the API's 500 (ValueError)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        if templated:
            raise ValueError(f"the request template's output is not JSON: {exc}") from None
        raise PayloadNotJson(f"Could not parse request body into json: {exc}") from None


def error(status: int, message: str) -> Response:
    return JSONResponse({"message": message}, status_code=status)


def substitute(text: str, variables: dict[str, str]) -> str:
    for key, value in variables.items():
        text = text.replace("${stageVariables." + key + "}", value)
    return text


def mapped_parameters(values: RequestValues, integration: Integration) -> dict[str, dict[str, str]]:
    """The integration request's header, querystring and path values after parameter mapping:
    a proxy passes the client's query string on, a non-proxy sends only what is mapped."""
    sources = values.parameters
    passed = dict(sources["querystring"]) if integration.kind == "http_proxy" else {}
    out: dict[str, dict[str, str]] = {"header": {}, "querystring": passed, "path": dict(sources["path"])}
    for kind, name, source in integration.parameters:
        if source == "remove":
            out[kind].pop(name, None)
        elif source.startswith("'"):
            out[kind][name] = source.strip("'")
        else:
            _, _, spec = source.partition("method.request.")
            source_kind, _, source_name = spec.partition(".")
            value = sources[source_kind].get(source_name.lower() if source_kind == "header" else source_name)
            if value is not None:
                out[kind][name] = value
    return out


class Integrations:
    """One stage's way to its integrations."""

    def __init__(self, api_name: str, stage: str, variables: dict[str, str], lambdas: LambdaService | None) -> None:
        self.api_name, self.stage, self.variables, self.lambdas = api_name, stage, variables, lambdas
        self.http = httpx.AsyncClient(timeout=29.0)  # API Gateway's integration timeout

    def values(self, request: Request, route: Route, path_params: dict[str, str]) -> RequestValues:
        parameters = {"path": path_params, "querystring": dict(request.query_params), "header": dict(request.headers)}
        context = request_context(
            str(uuid.uuid4()),
            self.stage,
            route.path,
            request.method,
            self.api_name,
            request.client.host if request.client else "",
            request.headers.get("user-agent", ""),
        )
        return RequestValues(parameters, context, dict(self.variables))

    async def respond(self, request: Request, route: Route, path_params: dict[str, str]) -> Response:
        read = await read_capped(request, MAX_PAYLOAD_BYTES)
        if read is None:
            return error(413, "Request Too Long")
        raw = read.decode("utf-8", "replace")
        values = self.values(request, route, path_params)
        integration = route.integration
        try:
            if integration.kind == "aws_proxy":
                return await self._proxy(request, route, values, raw)
            made = self._request_body(raw, request, integration, values)
            if made is None:
                return error(415, "Unsupported Media Type")
            body, templated = made
            if integration.kind == "mock":
                found = parse_json(body, templated) if body.strip() else {}
                status = str(found.get("statusCode", 200) if isinstance(found, dict) else 200)
                return self._method_response(integration.response_for(status), status, "", {}, values)
            if integration.kind == "aws":
                return await self._lambda(integration, parse_json(body, templated) if body.strip() else {}, values)
            return await self._http(request, integration, body, values)
        except PayloadNotJson as exc:
            return error(400, str(exc))
        except (ValueError, TypeError, AttributeError, KeyError) as exc:  # a template's own failure
            _logger.info("stage %s: %s %s: mapping failed: %s", self.stage, route.method, route.path, exc)
            return error(500, "Internal server error")

    def _request_body(
        self, body: str, request: Request, integration: Integration, values: RequestValues
    ) -> tuple[str, bool] | None:
        """The integration request's body and whether a template made it: the template for the
        content type, or the body passed through as ``passthroughBehavior`` allows; None when it
        allows neither (a 415)."""
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        templates = dict(integration.templates)
        template = templates.get(content_type)
        if template is not None:
            return render(template, body, values), True
        if integration.passthrough == "NEVER" or (integration.passthrough == "WHEN_NO_TEMPLATES" and templates):
            return None
        return body, False

    def _method_response(
        self,
        chosen: IntegrationResponse | None,
        status: str,
        payload: str,
        headers: dict[str, str],
        values: RequestValues,
    ) -> Response:
        """The chosen integration response, rendered. With none configured, a backend's status
        (`status`, digits) passes through with its payload; otherwise it is AWS's configuration
        error, a 500."""
        if chosen is None:
            if status.isascii() and status.isdigit():
                return Response(payload, int(status), media_type=headers.get("content-type", "application/json"))
            return error(500, "Internal server error")
        template = chosen.template()
        body = render(template, payload, values) if template is not None else payload
        override = values.override()
        method_status = int(override["status"]) if override.get("status") is not None else chosen.status
        out_headers = {
            **_response_headers(chosen, payload, headers),
            **{str(k): str(v) for k, v in override["header"].items()},
        }
        out_headers.setdefault("content-type", "application/json")
        return Response(body, method_status, headers=out_headers)

    async def _lambda(self, integration: Integration, event: Any, values: RequestValues) -> Response:
        function = substitute(integration.function or "", self.variables)
        qualifier = substitute(integration.qualifier, self.variables) if integration.qualifier else None
        answer = await self._invoke(function, event, qualifier)
        if isinstance(answer, Response):
            return answer
        if isinstance(answer, FunctionError):  # its message selects the response; else the default (AWS's rule)
            chosen = integration.response_for(str(answer.payload.get("errorMessage", "")))
            return self._method_response(chosen, "error", json.dumps(answer.payload), {}, values)
        default = next((r for r in integration.responses if r.pattern == "default"), None)
        return self._method_response(default, "result", json.dumps(answer), {}, values)

    async def _invoke(self, function: str, event: Any, qualifier: str | None) -> Any:
        """The function's result, its FunctionError, or the response API Gateway gives instead."""
        if self.lambdas is None:
            return error(500, "Internal server error")
        header = xray_header(trace_api.get_current_span().get_span_context())
        try:
            return await run_in_threadpool(self.lambdas.invoke, function, event, header, qualifier=qualifier)
        except TooManyRequests:
            # As AWS documents it: "if the Lambda API rejects the invocation request, API Gateway
            # returns a 500" (a function error: 502); only the stage's own throttling is a 429.
            _logger.info("stage %s: %s throttled by Lambda (concurrency): 500", self.stage, function)
            return error(500, "Internal server error")
        except FunctionError as exc:
            _logger.info("stage %s: %s failed: %s", self.stage, function, exc.payload.get("errorType", "Error"))
            return exc
        except KeyError:
            return error(502, "Internal server error")

    async def _proxy(self, request: Request, route: Route, values: RequestValues, body: str) -> Response:
        integration = route.integration
        function = substitute(integration.function or "", self.variables)
        qualifier = substitute(integration.qualifier, self.variables) if integration.qualifier else None
        event = {
            "resource": route.path,
            "path": "/" + request.path_params["path"],  # without the stage, as AWS gives it
            "httpMethod": request.method,
            "headers": dict(request.headers),
            "queryStringParameters": dict(request.query_params) or None,
            "pathParameters": values.parameters["path"] or None,
            "stageVariables": self.variables or None,
            "requestContext": {
                k: values.context[k] for k in ("stage", "requestId", "resourcePath", "httpMethod", "apiId")
            },
            "body": body or None,
            "isBase64Encoded": False,
        }
        result = await self._invoke(function, event, qualifier)
        if isinstance(result, Response):
            return result
        if isinstance(result, FunctionError) or not isinstance(result, dict) or "statusCode" not in result:
            return error(502, "Internal server error")  # a function error, or a malformed proxy answer
        answer = result.get("body") or ""
        return Response(
            answer if isinstance(answer, str) else json.dumps(answer),
            int(result["statusCode"]),
            headers={str(k): str(v) for k, v in (result.get("headers") or {}).items()},
        )

    async def _http(self, request: Request, integration: Integration, body: str, values: RequestValues) -> Response:
        mapped = mapped_parameters(values, integration)
        url = substitute(integration.uri or "", self.variables)
        for name, value in mapped["path"].items():
            url = url.replace("{" + name + "}", value)
        proxy = integration.kind == "http_proxy"
        method = request.method if proxy else (integration.http_method or "GET")
        headers = {**({k: v for k, v in request.headers.items() if k != "host"} if proxy else {}), **mapped["header"]}
        try:
            answer = await self.http.request(method, url, params=mapped["querystring"], headers=headers, content=body)
        except httpx.HTTPError:
            return error(504, "Internal server error")
        if proxy:
            passed = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "cache-control")}
            return Response(answer.content, answer.status_code, headers=passed)
        status = str(answer.status_code)
        chosen = integration.response_for(status)
        return self._method_response(chosen, status, answer.text, dict(answer.headers), values)


def _response_headers(chosen: IntegrationResponse, payload: str, headers: dict[str, str]) -> dict[str, str]:
    """``responseParameters``: each method response header from its source."""
    lowered = {k.lower(): v for k, v in headers.items()}
    out = {}
    for name, source in chosen.headers:
        if source.startswith("'"):
            out[name] = source[1:-1]
        elif source.startswith("integration.response.header."):
            value = lowered.get(source.removeprefix("integration.response.header.").lower())
            if value is not None:
                out[name] = value
        else:
            out[name] = _body_value(payload, source.removeprefix("integration.response.body"))
    return out


def _body_value(payload: str, field_path: str) -> str:
    """``integration.response.body[.a.b]``: the whole payload, or one JSON field of it as text."""
    if not field_path:
        return payload
    value: Any = json.loads(payload)
    for step in field_path.strip(".").split("."):
        value = value.get(step) if isinstance(value, dict) else None
    return value if isinstance(value, str) else json.dumps(value)
