"""One API Gateway stage serving an API: throttling, caching, integrations, transformations.

A request is matched to a route (no route: 403 ``Missing Authentication Token``, as AWS
answers), then throttled by a token bucket — the method's own limit if it has one, else the
stage's (AWS's defaults 10,000/s, burst 5,000) — past which it gets 429
``{"message":"Too Many Requests"}``. A Lambda integration its function's concurrency refuses is
answered 500 ``{"message":"Internal server error"}`` (a function error 502), as AWS answers: the
429 is API Gateway's own, and the map shows the throttle on the Lambda node. With the stage
cache on, a GET is answered from the cache within its TTL (300 s default, 0-3,600) without
calling the integration; the trace marks hits and misses. Each request is one span (tracer's middleware, origin
AWS::ApiGateway::Stage, named ``api/stage``) and one access-log line.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import xmltodict
from opentelemetry import trace as trace_api
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute
from starlette.types import ASGIApp

from demo_apps.cloud.apigateway.apigw_definition import ApiDefinition, Integration, Route
from demo_apps.cloud.apigateway.response_cache import ResponseCache
from demo_apps.cloud.lambdas.lambda_errors import FunctionError, TooManyRequests
from demo_apps.cloud.lambdas.lambda_service import LambdaService
from tracer import Tracing, TracingMiddleware, resolve_settings, semconv, xray_header

_access = logging.getLogger("demo_apps.cloud.apigateway.access")
_logger = logging.getLogger(__name__)
ALL_METHODS: Final = ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"]


@dataclass(frozen=True)
class StageSettings:
    name: str
    variables: dict[str, str] = field(default_factory=dict)
    rate_per_s: float = 10_000.0
    burst: float = 5_000.0
    cache_enabled: bool = False
    cache_ttl_s: float = 300.0  # AWS's default when the stage cache is on

    def __post_init__(self) -> None:
        if not 0 <= self.cache_ttl_s <= 3600:
            raise ValueError(f"stage {self.name}: cache TTL {self.cache_ttl_s} is outside 0-3600 s")


class TokenBucket:
    """`rate` tokens a second up to `burst`; a request takes one or is throttled."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = burst
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


def _substitute(text: str, variables: dict[str, str]) -> str:
    for key, value in variables.items():
        text = text.replace("${stageVariables." + key + "}", value)
    return text


def _mapped(request: Request, path_params: dict[str, str], integration: Integration) -> dict[str, dict[str, str]]:
    """The integration request's header, querystring and path values after parameter mapping:
    a proxy passes the client's query string on, a non-proxy (http) sends only what is mapped."""
    sources = {"header": dict(request.headers), "querystring": dict(request.query_params), "path": path_params}
    passed = dict(request.query_params) if integration.kind == "http_proxy" else {}
    out: dict[str, dict[str, str]] = {"header": {}, "querystring": passed, "path": dict(path_params)}
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


class Stage:
    """The ASGI app of one stage of one API."""

    def __init__(
        self, api: ApiDefinition, settings: StageSettings, lambdas: LambdaService | None, otlp_endpoint: str | None
    ) -> None:
        self.api, self.settings, self.lambdas = api, settings, lambdas
        self.name = f"{api.name}/{settings.name}"
        self._bucket = TokenBucket(settings.rate_per_s, settings.burst)
        self._route_buckets = {r: TokenBucket(*r.throttle) for r in api.routes if r.throttle}
        self._cache = ResponseCache(settings.cache_ttl_s) if settings.cache_enabled else None
        self.http = httpx.AsyncClient(timeout=29.0)  # API Gateway's integration timeout
        app = Starlette(routes=[StarletteRoute("/{path:path}", self._handle, methods=ALL_METHODS)])
        self.tracing = Tracing(resolve_settings({}, service_name=self.name, endpoint=otlp_endpoint))
        self.app: ASGIApp = TracingMiddleware(
            app, tracing=self.tracing, span_name=self.name, origin=semconv.ORIGIN_API_GATEWAY
        )

    async def _handle(self, request: Request) -> Response:
        started = time.perf_counter()
        trace_api.get_current_span().set_attribute(semconv.APIGATEWAY_API_TYPE, "REST")  # a REST API's stage
        path = "/" + request.path_params["path"]
        response, cache = await self._respond(request, path)
        _access.info(
            '%s "%s %s" %d %.1fms cache=%s stage=%s',
            request.client.host if request.client else "-",
            request.method,
            path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
            cache,
            self.name,
        )
        return response

    async def _respond(self, request: Request, path: str) -> tuple[Response, str]:
        found = self.api.route(request.method, path)
        if found is None:
            return JSONResponse({"message": "Missing Authentication Token"}, status_code=403), "-"
        route, path_params = found
        if not self._route_buckets.get(route, self._bucket).take():
            return JSONResponse({"message": "Too Many Requests"}, status_code=429), "-"
        span = trace_api.get_current_span()
        key = None
        if self._cache is not None and request.method == "GET":
            picked = [(k, request.query_params.get(k, "")) for k in route.cache_key]
            key = f"{route.method} {path} {picked}"
            hit = self._cache.get(key)
            span.set_attribute("fluoro.apigw.cache", "hit" if hit else "miss")
            if hit is not None:
                return Response(hit.body, hit.status, hit.headers), "hit"
        response = await self._integrate(request, route, path_params)
        if key is not None and self._cache is not None and response.status_code < 400:
            self._cache.put(key, response.status_code, dict(response.headers), bytes(response.body))
        return response, "miss" if key else "-"

    async def _integrate(self, request: Request, route: Route, path_params: dict[str, str]) -> Response:
        integration = route.integration
        if integration.kind == "mock":
            return Response(integration.body, integration.status, media_type="application/json")
        if integration.kind == "aws_proxy":
            return await self._lambda(request, route, path_params)
        return await self._http_integration(request, integration, path_params)

    async def _lambda(self, request: Request, route: Route, path_params: dict[str, str]) -> Response:
        integration = route.integration
        if self.lambdas is None or integration.function is None:
            return JSONResponse({"message": "Internal server error"}, status_code=500)
        variables = self.settings.variables
        function = _substitute(integration.function, variables)
        qualifier = _substitute(integration.qualifier, variables) if integration.qualifier else None
        event = await self._proxy_event(request, route, path_params)
        header = xray_header(trace_api.get_current_span().get_span_context())
        try:
            result = await run_in_threadpool(self.lambdas.invoke, function, event, header, qualifier=qualifier)
        except TooManyRequests:
            # As AWS documents it: "if the Lambda API rejects the invocation request, API Gateway
            # returns a 500" (a function error: 502); only the stage's own throttling is a 429.
            _logger.info("stage %s: %s throttled by Lambda (concurrency): 500", self.settings.name, function)
            return JSONResponse({"message": "Internal server error"}, status_code=500)
        except (FunctionError, KeyError) as exc:
            reason = exc.payload.get("errorType", "Error") if isinstance(exc, FunctionError) else "ResourceNotFound"
            _logger.info("stage %s: %s failed with %s: %s", self.settings.name, function, reason, exc)
            return JSONResponse({"message": "Internal server error"}, status_code=502)
        if not isinstance(result, dict) or "statusCode" not in result:
            return JSONResponse({"message": "Internal server error"}, status_code=502)  # a malformed proxy answer
        body = result.get("body") or ""
        return Response(
            body if isinstance(body, str) else json.dumps(body),
            int(result["statusCode"]),
            headers={str(k): str(v) for k, v in (result.get("headers") or {}).items()},
        )

    async def _proxy_event(self, request: Request, route: Route, path_params: dict[str, str]) -> dict[str, Any]:
        body = (await request.body()).decode("utf-8", "replace")
        return {
            "resource": route.path,
            "path": "/" + request.path_params["path"],  # without the stage, as AWS gives it
            "httpMethod": request.method,
            "headers": dict(request.headers),
            "queryStringParameters": dict(request.query_params) or None,
            "pathParameters": path_params or None,
            "stageVariables": self.settings.variables or None,
            "requestContext": {
                "stage": self.settings.name,
                "requestId": str(uuid.uuid4()),
                "resourcePath": route.path,
                "httpMethod": request.method,
                "apiId": self.api.name,
            },
            "body": body or None,
            "isBase64Encoded": False,
        }

    async def _http_integration(self, request: Request, integration: Integration, params: dict[str, str]) -> Response:
        mapped = _mapped(request, params, integration)
        url = _substitute(integration.uri or "", self.settings.variables)
        for name, value in mapped["path"].items():
            url = url.replace("{" + name + "}", value)
        method = request.method if integration.kind == "http_proxy" else (integration.http_method or "GET")
        headers = {
            **({} if integration.kind == "http" else {k: v for k, v in request.headers.items() if k != "host"}),
            **mapped["header"],
        }
        try:
            answer = await self.http.request(
                method, url, params=mapped["querystring"], headers=headers, content=await request.body()
            )
        except httpx.HTTPError:
            return JSONResponse({"message": "Internal server error"}, status_code=504)
        status = integration.mapped_status(answer.status_code)
        if integration.transform == "xml_to_json":
            try:
                converted = xmltodict.parse(answer.text)
            except Exception:  # noqa: BLE001 - any unparsable body is the integration's failure
                return JSONResponse({"message": "Internal server error"}, status_code=502)
            return JSONResponse(converted, status_code=status)
        passthrough = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "cache-control")}
        return Response(answer.content, status, headers=passthrough)

    def close(self) -> None:
        self.tracing.provider.shutdown()
