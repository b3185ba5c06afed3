"""The query API (FastAPI, documented by OpenAPI at /docs): an app factory over the engine.

Endpoints: ``/api/services``, ``/api/traces`` (X-Ray filter expressions), ``/api/traces/{trace_id}``
and its ``/critical-path``, ``/api/service-map``, ``/api/analytics`` and ``/api/analytics/compare``,
``/healthz`` and ``/metrics`` (Prometheus text). With a token, every endpoint but ``/healthz`` requires
``Authorization: Bearer TOKEN``. Bad parameters get 400 with the reason; an unavailable store
gets 503 with Retry-After.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi import Depends, FastAPI, HTTPException, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from collector.allowed_hosts import AllowedHosts
from collector.api.cost_routes import cost_routes
from collector.api.group_routes import group_routes
from collector.api.insight_routes import insight_routes
from collector.api.jaeger_routes import jaeger_routes
from collector.api.map_routes import map_routes
from collector.api.params import BadParameter
from collector.api.problems import EVERY_ROUTE, document_without_422
from collector.api.trace_routes import trace_routes
from collector.auth import bearer_token_matches
from collector.engine import Collector
from collector.storage.protocols import StoreUnavailable
from spanlang.filter_ast import FilterError

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def validation_message(exc: RequestValidationError) -> str:
    """'limit: Input should be greater than or equal to 1' for each parameter FastAPI refused."""
    parts = []
    for problem in exc.errors()[:5]:
        where = ".".join(str(p) for p in problem.get("loc", ())[1:]) or "request"
        parts.append(f"{where}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts)


def create_query_app(
    collector: Collector, *, token: str | None = None, authorized: Callable[[Request], bool] | None = None
) -> FastAPI:
    """The query API for `collector`; `token` turns on bearer-token checks (`authorized`, when
    given, decides instead: the UI adds its session cookie). The OpenAPI document and its pages
    are guarded like the API."""
    app = FastAPI(
        title="Fluoro query API",
        version="1",
        description="Traces, services and health of the Fluoro collector.",
        responses=EVERY_ROUTE,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(AllowedHosts, policy=collector.settings.host_policy)

    def require_token(request: Request) -> None:
        allowed = (
            authorized(request)
            if authorized is not None
            else bearer_token_matches(request.headers.get("authorization", ""), token)
        )
        if not allowed:
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(require_token)]
    _add_error_handlers(app)
    _add_document_routes(app, guarded)
    app.include_router(trace_routes(collector, guarded))
    app.include_router(map_routes(collector, guarded))
    app.include_router(cost_routes(collector, guarded))
    app.include_router(jaeger_routes(collector, guarded))
    app.state.groups = collector.groups  # group_routes.selected reads them
    app.include_router(group_routes(collector.groups, guarded))
    app.include_router(insight_routes(collector.insights, guarded))

    @app.get("/healthz", summary="Whether ingest and storage work")
    def healthz() -> JSONResponse:
        if collector.ingest is None:  # a reader beside the collectors: nothing of its own to store
            return JSONResponse({"status": "ok", "queue_spans": 0, "read_only": True})
        healthy = collector.pipeline.healthy
        body = {"status": "ok" if healthy else "unhealthy", "queue_spans": collector.pipeline.queued_spans}
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/metrics", dependencies=guarded, summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(collector.metrics.exposition(), media_type=PROMETHEUS_TEXT)

    @app.get(
        "/metrics/spans",
        dependencies=guarded,
        summary="Span metrics for Prometheus: requests, failures and latency per node, operation and edge",
    )
    def span_metrics() -> Response:
        return Response(collector.span_metrics.exposition(), media_type=PROMETHEUS_TEXT)

    return app


def _add_document_routes(app: FastAPI, guarded: Sequence[params.Depends]) -> None:
    """The OpenAPI document and its two pages, guarded like the API."""

    @app.get("/openapi.json", dependencies=guarded, include_in_schema=False)
    def openapi_document() -> JSONResponse:
        return JSONResponse(document_without_422(app))

    @app.get("/docs", dependencies=guarded, include_in_schema=False)
    def swagger_page() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - Swagger UI")

    @app.get("/redoc", dependencies=guarded, include_in_schema=False)
    def redoc_page() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")


def _add_error_handlers(app: FastAPI) -> None:
    """Bad parameters and filters answer 400 with the reason; an unavailable store 503."""

    @app.exception_handler(RequestValidationError)
    async def invalid_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(exc)}, status_code=400)

    @app.exception_handler(BadParameter)
    async def bad_parameter(request: Request, exc: BadParameter) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(FilterError)
    async def bad_filter(request: Request, exc: FilterError) -> JSONResponse:
        body = {"detail": f"bad filter expression at {exc}", "column": exc.column, "reason": exc.reason}
        return JSONResponse(body, status_code=400)

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": f"store unavailable: {exc}"}, status_code=503, headers={"Retry-After": "5"})
