"""A Jaeger-compatible query API under ``/jaeger/api/``, so Grafana's Jaeger data source browses Fluoro.

The routes and answers are Jaeger query service's HTTP JSON API (what its UI and Grafana call):
``{"data": ..., "total", "limit", "offset", "errors"}`` around services, operations, traces in
Jaeger's model (collector/query/jaeger_model.py) and dependencies (the map's edges). Parameters
are parsed by hand (collector/api/jaeger_params.py), so every refusal, a 400 or a 404, is in
Jaeger's error shape, as the OpenAPI document says.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, params
from fastapi.responses import JSONResponse

from collector.api.jaeger_params import MAX_EPOCH_US, JaegerBadRequest, bounded_window, trace_search, whole_number
from collector.api.params import MAX_WINDOW_S, BadParameter, parse_trace_id
from collector.engine import Collector
from collector.query.jaeger_model import jaeger_trace
from collector.query.service_map import MapQuery, service_map
from collector.storage.protocols import SpanReader, TimeWindow

MAX_OPERATIONS = 10_000
WEEK_US = 7 * 24 * 3600 * 10**6


@dataclass(frozen=True)
class JaegerError:
    code: int
    msg: str


@dataclass(frozen=True)
class JaegerAnswer:
    """Every answer's envelope; a refusal has no data and says why in ``errors``."""

    data: Any
    total: int
    limit: int
    offset: int
    errors: list[JaegerError] | None


REFUSED: Final[dict[int | str, dict[str, Any]]] = {
    400: {"model": JaegerAnswer, "description": "A bad parameter, in Jaeger's error shape"}
}
UNKNOWN: Final[dict[int | str, dict[str, Any]]] = {
    404: {"model": JaegerAnswer, "description": "No such trace, in Jaeger's error shape"}
}


def envelope(data: Any, total: int | None = None) -> JSONResponse:
    size = total if total is not None else (len(data) if isinstance(data, list) else 0)
    return JSONResponse({"data": data, "total": size, "limit": 0, "offset": 0, "errors": None})


def problem(status: int, message: str) -> JSONResponse:
    body = {"data": None, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": status, "msg": message}]}
    return JSONResponse(body, status_code=status)


def jaeger_routes(collector: Collector, guarded: Sequence[params.Depends]) -> APIRouter:
    router = APIRouter(prefix="/jaeger/api", dependencies=guarded, tags=["jaeger"], responses=REFUSED)
    _listing_routes(router, collector.reader)
    _trace_routes(router, collector.reader)
    return router


def _recent() -> TimeWindow:
    """What the listings look at: the last week."""
    now_ns = time.time_ns()
    return TimeWindow(now_ns - WEEK_US * 1000, now_ns + 3600 * 10**9)


def _listing_routes(router: APIRouter, reader: SpanReader) -> None:
    @router.get("/services", summary="Jaeger: the services seen in the last week")
    def services() -> JSONResponse:
        return envelope([s.name for s in reader.services(_recent())])

    @router.get("/services/{service}/operations", summary="Jaeger: a service's operations")
    def service_operations(service: str) -> JSONResponse:
        return envelope(sorted({name for name, _ in reader.operations(_recent(), service, None, MAX_OPERATIONS)}))

    @router.get("/operations", summary="Jaeger: a service's operations, with their span kinds")
    def operations(service: str = "", spanKind: str | None = None) -> JSONResponse:
        if not service:
            return problem(400, "parameter 'service' is required")
        kind = spanKind.upper() if spanKind else None
        found = reader.operations(_recent(), service, kind, MAX_OPERATIONS)
        return envelope([{"name": name, "spanKind": kind_of.lower()} for name, kind_of in found])


def _trace_routes(router: APIRouter, reader: SpanReader) -> None:
    @router.get("/traces", summary="Jaeger: find traces of a service")
    def traces(
        service: str = "",
        operation: str | None = None,
        tags: str | None = None,
        start: str | None = None,
        end: str | None = None,
        minDuration: str | None = None,
        maxDuration: str | None = None,
        limit: str | None = None,
    ) -> JSONResponse:
        try:  # parsed here, not by FastAPI, so every refusal is in Jaeger's shape
            search = trace_search(service, operation, tags, start, end, minDuration, maxDuration, limit)
        except JaegerBadRequest as exc:
            return problem(400, str(exc))
        found = reader.search_traces(search.window, search.expr, search.limit)
        return envelope([jaeger_trace(t.trace_id, reader.trace_spans(bytes.fromhex(t.trace_id))) for t in found])

    @router.get("/traces/{trace_id}", summary="Jaeger: one trace", responses=UNKNOWN)
    def trace(trace_id: str) -> JSONResponse:
        try:
            key = parse_trace_id(trace_id)
        except BadParameter as exc:
            return problem(400, str(exc))
        spans = reader.trace_spans(key)
        if not spans:
            return problem(404, "trace not found")
        return envelope([jaeger_trace(key.hex(), spans)])

    @router.get("/dependencies", summary="Jaeger: calls between services (the map's edges)")
    def dependencies(endTs: str | None = None, lookback: str | None = None) -> JSONResponse:
        try:
            end_ms = whole_number(endTs, time.time_ns() // 10**6, "endTs", MAX_EPOCH_US // 1000, "milliseconds")
            back_ms = whole_number(lookback, 3600 * 1000, "lookback", MAX_WINDOW_S * 1000, "milliseconds")
            window = bounded_window(max(0, end_ms - back_ms) * 10**6, end_ms * 10**6)
        except JaegerBadRequest as exc:
            return problem(400, str(exc))
        found = service_map(reader, MapQuery(window, None))
        names = {node.id: (node.name, node.type) for node in found.nodes}
        calls = [
            {"parent": names[e.source][0], "child": names[e.target][0], "callCount": e.figures.requests}
            for e in found.edges
            if names[e.source][1] != "client" and e.figures is not None
        ]
        return envelope(calls)
