"""The query API (FastAPI, documented by OpenAPI at /docs): an app factory over the engine.

Endpoints: ``/api/services``, ``/api/traces``, ``/api/traces/{trace_id}``, ``/healthz`` and
``/metrics`` (Prometheus text). With a token, every endpoint but ``/healthz`` requires
``Authorization: Bearer TOKEN``. Bad parameters get 400 with the reason; an unavailable store
gets 503 with Retry-After.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from collector.api.params import BadParameter, parse_trace_id, parse_window
from collector.auth import bearer_token_matches
from collector.engine import Collector
from collector.storage.protocols import StoreUnavailable

MAX_TRACES = 1000


def create_query_app(collector: Collector, *, token: str | None = None) -> FastAPI:
    """The query API for `collector`; `token` turns on bearer-token checks."""
    app = FastAPI(
        title="Fluoro query API",
        version="1",
        description="Traces, services and health of the Fluoro collector.",
    )

    def require_token(request: Request) -> None:
        if not bearer_token_matches(request.headers.get("authorization", ""), token):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(require_token)]

    @app.exception_handler(BadParameter)
    async def bad_parameter(request: Request, exc: BadParameter) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": f"store unavailable: {exc}"}, status_code=503, headers={"Retry-After": "5"})

    @app.get("/api/services", dependencies=guarded, summary="Services seen in the window, with span counts")
    def services(start: str | None = None, end: str | None = None) -> dict[str, Any]:
        window = parse_window(start, end)
        return {"services": [asdict(s) for s in collector.reader.services(window)]}

    @app.get("/api/traces", dependencies=guarded, summary="Traces in the window, newest first")
    def traces(
        start: str | None = None,
        end: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_TRACES)] = 100,
        filter: Annotated[str | None, Query(description="a service name (filter expressions: soon)")] = None,
    ) -> dict[str, Any]:
        window = parse_window(start, end)
        service = filter.strip() if filter and filter.strip() else None
        found = collector.reader.search_traces(window, service=service, limit=limit)
        return {"traces": [asdict(t) for t in found], "start_ns": window.start_ns, "end_ns": window.end_ns}

    @app.get("/api/traces/{trace_id}", dependencies=guarded, summary="Every span of one trace")
    def trace(trace_id: str) -> dict[str, Any]:
        key = parse_trace_id(trace_id)
        spans = collector.reader.trace(key)
        if not spans:
            raise HTTPException(404, f"no trace {trace_id}")
        return {"trace_id": key.hex(), "spans": spans}

    @app.get("/healthz", summary="Whether ingest and storage work")
    def healthz() -> JSONResponse:
        healthy = collector.pipeline.healthy
        body = {"status": "ok" if healthy else "unhealthy", "queue_spans": collector.pipeline.queued_spans}
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/metrics", dependencies=guarded, summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(collector.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
