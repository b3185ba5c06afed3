"""A Jaeger-compatible query API under ``/jaeger/api/``, so Grafana's Jaeger data source browses Fluoro.

The routes and answers are Jaeger query service's HTTP JSON API (what its UI and Grafana call):
``{"data": ..., "total", "limit", "offset", "errors"}``, times in microseconds, durations as Go
writes them (``1.2s``, ``150ms``). A trace search is a filter expression underneath: the
service's spans (``service("S") { ... }``) with the operation, durations and tags asked of the
same span. Tags search ``error``, ``http.status_code``, ``http.method`` and ``http.url``, and
any other key as an X-Ray annotation. Bad parameters get a 400 in Jaeger's error shape.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from fastapi import APIRouter, params
from fastapi.responses import JSONResponse

from collector.api.params import BadParameter, parse_trace_id
from collector.engine import Collector
from collector.query.jaeger_model import jaeger_trace
from collector.query.service_map import MapQuery, service_map
from collector.storage.protocols import TimeWindow
from spanlang import filter_ast as ast

MAX_TRACES = 1000
MAX_OPERATIONS = 10_000
WEEK_US = 7 * 24 * 3600 * 10**6
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


class JaegerBadRequest(ValueError):
    """A parameter Jaeger's API would refuse; the message says which and why."""


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


def parse_duration_ns(text: str, name: str) -> int:
    """A Go duration (``1.2s``, ``1m30s``, ``250ms``) in ns."""
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text.strip():
        raise JaegerBadRequest(f"{name}: {text[:40]!r} is not a duration like 1.2s, 150ms or 1m30s")
    return round(sum(float(number) * _UNITS[unit] for number, unit in parts))


def _micros(text: str | None, default_us: int, name: str) -> int:
    if text is None or text == "":
        return default_us
    if not text.isdigit() or len(text) > 19:
        raise JaegerBadRequest(f"{name}: {text[:40]!r} is not a time in microseconds since the epoch")
    return int(text)


def _count(text: str | None, default: int, name: str) -> int:
    if not text:
        return default
    if not text.isdigit() or len(text) > 4 or not 0 < int(text) <= MAX_TRACES:
        raise JaegerBadRequest(f"{name}: a number from 1 to {MAX_TRACES}")
    return int(text)


def _tag_tests(text: str | None) -> list[ast.Expr]:
    if not text:
        return []
    if len(text) > 4096:
        raise JaegerBadRequest("tags: longer than 4096 characters")
    try:
        tags = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise JaegerBadRequest("tags: not a JSON object of key to value") from None
    if not isinstance(tags, dict) or len(tags) > 32:
        raise JaegerBadRequest("tags: a JSON object of at most 32 keys")
    tests: list[ast.Expr] = []
    for key, value in tags.items():
        value = str(value)
        if key == "error":
            flags = ast.Or((ast.BoolTest("error"), ast.BoolTest("fault")))
            tests.append(flags if value.lower() == "true" else ast.Not(flags))
        elif key == "http.status_code":
            if not value.isdigit() or len(value) > 3:
                raise JaegerBadRequest("tags: http.status_code must be a number")
            tests.append(ast.NumTest("http.status", "=", float(value)))
        elif key in ("http.method", "http.url"):
            tests.append(ast.StrTest(key, "=", value))
        else:
            tests.append(ast.AnnotationTest(str(key), "=", value))
    return tests


def search_expression(
    service: str, operation: str | None, min_ns: int | None, max_ns: int | None, tags: list[ast.Expr]
) -> ast.Expr:
    """Traces with a span of `service` meeting the operation, durations and tags."""
    block: list[ast.Expr] = [*tags]
    if operation:
        block.append(ast.StrTest("name", "=", operation))
    if min_ns is not None:
        block.append(ast.NumTest("responsetime", ">=", min_ns / 1e9))
    if max_ns is not None:
        block.append(ast.NumTest("responsetime", "<=", max_ns / 1e9))
    inner = ast.And(tuple(block)) if len(block) > 1 else (block[0] if block else None)
    return ast.ServiceTest(ast.NodeRef(service), inner)


def jaeger_routes(collector: Collector, guarded: Sequence[params.Depends]) -> APIRouter:
    router = APIRouter(prefix="/jaeger/api", dependencies=guarded, tags=["jaeger"], responses=REFUSED)
    reader = collector.reader

    def recent() -> TimeWindow:
        now_ns = time.time_ns()
        return TimeWindow(now_ns - WEEK_US * 1000, now_ns + 3600 * 10**9)

    @router.get("/services", summary="Jaeger: the services seen in the last week")
    def services() -> JSONResponse:
        return envelope([s.name for s in reader.services(recent())])

    @router.get("/services/{service}/operations", summary="Jaeger: a service's operations")
    def service_operations(service: str) -> JSONResponse:
        return envelope(sorted({name for name, _ in reader.operations(recent(), service, None, MAX_OPERATIONS)}))

    @router.get("/operations", summary="Jaeger: a service's operations, with their span kinds")
    def operations(service: str = "", spanKind: str | None = None) -> JSONResponse:
        if not service:
            return problem(400, "parameter 'service' is required")
        kind = spanKind.upper() if spanKind else None
        found = reader.operations(recent(), service, kind, MAX_OPERATIONS)
        return envelope([{"name": name, "spanKind": kind_of.lower()} for name, kind_of in found])

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
        # Parsed here, not by FastAPI, so every refusal is in Jaeger's shape.
        try:
            if not service:
                raise JaegerBadRequest("parameter 'service' is required")
            end_us = _micros(end, time.time_ns() // 1000, "end")
            start_us = _micros(start, end_us - 3600 * 10**6, "start")
            if start_us >= end_us:
                raise JaegerBadRequest("start must be before end")
            least = parse_duration_ns(minDuration, "minDuration") if minDuration else None
            most = parse_duration_ns(maxDuration, "maxDuration") if maxDuration else None
            expr = search_expression(service, operation, least, most, _tag_tests(tags))
            most_traces = _count(limit, 20, "limit")
        except JaegerBadRequest as exc:
            return problem(400, str(exc))
        window = TimeWindow(start_us * 1000, end_us * 1000)
        found = reader.search_traces(window, expr, most_traces)
        data = [jaeger_trace(t.trace_id, reader.trace_spans(bytes.fromhex(t.trace_id))) for t in found]
        return envelope(data)

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
            end_ms = _micros(endTs, time.time_ns() // 10**6, "endTs")
            back_ms = _micros(lookback, 3600 * 1000, "lookback")
        except JaegerBadRequest as exc:
            return problem(400, str(exc))
        window = TimeWindow(max(0, end_ms - back_ms) * 10**6, end_ms * 10**6)
        found = service_map(reader, MapQuery(window, None))
        names = {node.id: (node.name, node.type) for node in found.nodes}
        calls = [
            {"parent": names[e.source][0], "child": names[e.target][0], "callCount": e.figures.requests}
            for e in found.edges
            if names[e.source][1] != "client" and e.figures is not None
        ]
        return envelope(calls)

    return router
