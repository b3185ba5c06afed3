"""One API Gateway stage serving an API: throttling, caching, integrations, transformations.

A request is matched to a route (no route: 403 ``Missing Authentication Token``, as AWS
answers), then throttled by a token bucket — the method's own limit if it has one, else the
stage's (AWS's defaults 10,000/s, burst 5,000) — past which it gets 429
``{"message":"Too Many Requests"}`` (a Lambda integration its function's concurrency refuses is
AWS's 500, ``integrations.py``: the 429 is API Gateway's own, and the map shows the throttle on
the Lambda node). With the stage cache on, a GET is answered from the cache within its TTL (300 s
default, 0-3,600) without calling the integration, keyed by its ``cacheKeyParameters``; the
trace marks hits and misses. Each request is one span (tracer's middleware, origin
AWS::ApiGateway::Stage, named ``api/stage``) and one access-log line.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Final

from opentelemetry import trace as trace_api
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute
from starlette.types import ASGIApp

from demo_apps.cloud.apigateway.apigw_definition import ApiDefinition
from demo_apps.cloud.apigateway.integrations import Integrations
from demo_apps.cloud.apigateway.response_cache import ResponseCache
from demo_apps.cloud.lambdas.lambda_service import LambdaService
from tracer import Tracing, TracingMiddleware, resolve_settings, semconv

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
        self.integrations = Integrations(api.name, settings.name, settings.variables, lambdas)
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
            sources = {"header": request.headers, "querystring": request.query_params, "path": path_params}
            picked = [(kind, name, sources[kind].get(name, "")) for kind, name in route.cache_key]
            key = f"{route.method} {path} {picked}"
            hit = self._cache.get(key)
            span.set_attribute("fluoro.apigw.cache", "hit" if hit else "miss")
            if hit is not None:
                return Response(hit.body, hit.status, hit.headers), "hit"
        response = await self.integrations.respond(request, route, path_params)
        if key is not None and self._cache is not None and response.status_code < 400:
            self._cache.put(key, response.status_code, dict(response.headers), bytes(response.body))
        return response, "miss" if key else "-"

    def close(self) -> None:
        self.tracing.provider.shutdown()
