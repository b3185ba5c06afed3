"""The query API (FastAPI, documented by OpenAPI at /docs): an app factory over the engine.

Endpoints: ``/api/services``, ``/api/traces`` (X-Ray filter expressions), ``/api/traces/{trace_id}``
and its ``/critical-path``, ``/api/service-map``, ``/api/analytics`` and ``/api/analytics/compare``,
``/healthz`` and ``/metrics`` (Prometheus text). With a token, every endpoint but ``/healthz`` requires
``Authorization: Bearer TOKEN``. Bad parameters get 400 with the reason; an unavailable store
gets 503 with Retry-After.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from collector.allowed_hosts import AllowedHosts
from collector.api.params import MAX_WINDOW_S, BadParameter, parse_optional_filter, parse_trace_id, parse_window
from collector.api.span_json import span_json
from collector.auth import bearer_token_matches
from collector.engine import Collector
from collector.filters.filter_ast import FilterError
from collector.query.analytics import compare_values, compare_windows, time_series
from collector.query.critical_path import critical_path_json, trace_with_consumers
from collector.query.service_map import MapQuery, service_map
from collector.storage.protocols import CompareField, StoreUnavailable, Subject

MAX_TRACES = 1000
MAX_SERVICES = 10_000
FILTER_HELP = 'an X-Ray filter expression, e.g. service("orders") { fault } AND annotation.customer = "c1"'


def validation_message(exc: RequestValidationError) -> str:
    """'limit: Input should be greater than or equal to 1' for each parameter FastAPI refused."""
    parts = []
    for problem in exc.errors()[:5]:
        where = ".".join(str(p) for p in problem.get("loc", ())[1:]) or "request"
        parts.append(f"{where}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts)


def subject_of(
    node: Annotated[str | None, Query(description="a node's name (default: all incoming requests)")] = None,
    node_type: Annotated[str | None, Query(description="the node's type, e.g. AWS::Lambda::Function")] = None,
    caller: Annotated[str | None, Query(description="with node: the edge from this caller")] = None,
    caller_type: str | None = None,
) -> Subject:
    if caller is not None and node is None:
        raise BadParameter("caller needs node: an edge is caller -> node")
    return Subject(node, node_type, caller, caller_type)


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
        responses={400: {"description": "A bad parameter: `detail` names it and says why"}},
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

    @app.get("/openapi.json", dependencies=guarded, include_in_schema=False)
    def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", dependencies=guarded, include_in_schema=False)
    def swagger_page() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - Swagger UI")

    @app.get("/redoc", dependencies=guarded, include_in_schema=False)
    def redoc_page() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")

    @app.exception_handler(RequestValidationError)
    async def invalid_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(exc)}, status_code=400)

    @app.exception_handler(BadParameter)
    async def bad_parameter(request: Request, exc: BadParameter) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": f"store unavailable: {exc}"}, status_code=503, headers={"Retry-After": "5"})

    @app.get("/api/services", dependencies=guarded, summary="Services seen in the window, with span counts")
    def services(
        start: str | None = None,
        end: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_SERVICES, description="most services listed, busiest first")] = 1000,
    ) -> dict[str, Any]:
        window = parse_window(start, end)
        found = collector.reader.services(window)
        shown = found if len(found) <= limit else sorted(found, key=lambda s: (-s.spans, s.name))[:limit]
        listed = sorted(shown, key=lambda s: s.name)
        return {"services": [asdict(s) for s in listed], "total": len(found), "truncated": len(found) > limit}

    @app.exception_handler(FilterError)
    async def bad_filter(request: Request, exc: FilterError) -> JSONResponse:
        body = {"detail": f"bad filter expression at {exc}", "column": exc.column, "reason": exc.reason}
        return JSONResponse(body, status_code=400)

    @app.get("/api/traces", dependencies=guarded, summary="Traces in the window matching a filter, newest first")
    def traces(
        start: str | None = None,
        end: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_TRACES)] = 100,
        filter: Annotated[str | None, Query(description=FILTER_HELP)] = None,
    ) -> dict[str, Any]:
        window = parse_window(start, end)
        found = collector.reader.search_traces(window, parse_optional_filter(filter), limit)
        return {"traces": [asdict(t) for t in found], "start_ns": window.start_ns, "end_ns": window.end_ns}

    @app.get("/api/service-map", dependencies=guarded, summary="Nodes, edges, health and throttle sources")
    def service_map_view(
        start: str | None = None,
        end: str | None = None,
        filter: Annotated[str | None, Query(description=FILTER_HELP)] = None,
        max_nodes: Annotated[int, Query(ge=2, le=1000)] = 100,
    ) -> dict[str, Any]:
        query = MapQuery(parse_window(start, end), parse_optional_filter(filter), max_nodes)
        return service_map(collector.reader, query)

    @app.get("/api/traces/{trace_id}", dependencies=guarded, summary="Every span of one trace")
    def trace(trace_id: str) -> dict[str, Any]:
        key = parse_trace_id(trace_id)
        spans = collector.reader.trace_spans(key)
        if not spans:
            raise HTTPException(404, f"no trace {trace_id}")
        return {"trace_id": key.hex(), "spans": [span_json(span) for span in spans]}

    @app.get("/api/traces/{trace_id}/critical-path", dependencies=guarded, summary="What set the trace's duration")
    def trace_critical_path(trace_id: str) -> dict[str, Any]:
        key = parse_trace_id(trace_id)
        spans = trace_with_consumers(collector.reader, key)
        if not spans:
            raise HTTPException(404, f"no trace {trace_id}")
        return {"trace_id": key.hex(), **critical_path_json(spans)}

    @app.get("/api/analytics", dependencies=guarded, summary="Time series of requests, rates and percentiles")
    def analytics(
        subject: Annotated[Subject, Depends(subject_of)],
        start: str | None = None,
        end: str | None = None,
        filter: Annotated[str | None, Query(description=FILTER_HELP)] = None,
        step: Annotated[float | None, Query(gt=0, le=MAX_WINDOW_S, description="bucket width in seconds")] = None,
    ) -> dict[str, Any]:
        window = parse_window(start, end)
        return time_series(collector.reader, window, parse_optional_filter(filter), subject, step)

    @app.get("/api/analytics/compare", dependencies=guarded, summary="Two windows, or two values of a field")
    def compare(
        subject: Annotated[Subject, Depends(subject_of)],
        start: str | None = None,
        end: str | None = None,
        baseline_start: str | None = None,
        baseline_end: str | None = None,
        by: Annotated[CompareField | None, Query(description="compare values of a field instead")] = None,
        filter: Annotated[str | None, Query(description=FILTER_HELP)] = None,
    ) -> dict[str, Any]:
        window = parse_window(start, end)
        expr = parse_optional_filter(filter)
        if by is not None:
            return compare_values(collector.reader, window, expr, subject, by)
        length_s = (window.end_ns - window.start_ns) / 1e9
        default_end = str(window.start_ns / 1e9)
        baseline = parse_window(baseline_start or str(window.start_ns / 1e9 - length_s), baseline_end or default_end)
        return compare_windows(collector.reader, window, baseline, expr, subject)

    @app.get("/healthz", summary="Whether ingest and storage work")
    def healthz() -> JSONResponse:
        healthy = collector.pipeline.healthy
        body = {"status": "ok" if healthy else "unhealthy", "queue_spans": collector.pipeline.queued_spans}
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/metrics", dependencies=guarded, summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(collector.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
