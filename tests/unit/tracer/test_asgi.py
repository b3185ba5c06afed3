"""The pure ASGI middleware on a FastAPI app, driven in-process."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from opentelemetry.trace import SpanKind

import tracer
from tests.conftest import Recorder
from tests.recorded import attributes_of
from tracer import semconv
from tracer.events import MAX_REQUEST_TEXT


def build_app(recorder: Recorder, **options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        tracer.annotate("item", item_id)
        return {"id": item_id}

    @app.get("/limited")
    async def limited() -> None:
        raise HTTPException(status_code=429, detail="slow down")

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    app.add_middleware(tracer.TracingMiddleware, tracing=recorder.tracing, **options)
    return app


def get(app: FastAPI, path: str, headers: dict[str, str] | dict[bytes, bytes] | None = None) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.local") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(call())


def test_request_span_named_by_route_with_http_attributes(recorder: Recorder) -> None:
    response = get(build_app(recorder), "/items/7?full=1", {"user-agent": "pytest"})
    assert response.status_code == 200
    span = recorder.by_name("GET /items/{item_id}")
    assert span.kind is SpanKind.SERVER
    attrs = attributes_of(span)
    assert attrs[semconv.HTTP_ROUTE] == "/items/{item_id}"
    assert attrs[semconv.URL_PATH] == "/items/7"
    assert attrs[semconv.URL_QUERY] == "full=1"
    assert attrs[semconv.HTTP_RESPONSE_STATUS_CODE] == 200
    assert attrs[semconv.USER_AGENT] == "pytest"
    assert attrs[semconv.SERVER_ADDRESS] == "api.local"
    assert attrs[semconv.ANNOTATION_PREFIX + "item"] == 7
    trace_header = response.headers["x-amzn-trace-id"]
    assert trace_header.startswith(f"Root=1-{span.context.trace_id:032x}"[:15])
    assert f"Parent={span.context.span_id:016x}" in trace_header


def test_incoming_context_is_continued(recorder: Recorder) -> None:
    get(build_app(recorder), "/items/1", {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    span = recorder.by_name("GET /items/{item_id}")
    assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert span.parent is not None and span.parent.is_remote


def test_unsampled_incoming_context_records_nothing(recorder: Recorder) -> None:
    response = get(
        build_app(recorder), "/items/1", {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}
    )
    assert response.status_code == 200
    assert recorder.spans() == []


@pytest.mark.parametrize(
    ("path", "status", "flags"),
    [("/limited", 429, {semconv.ERROR, semconv.THROTTLE}), ("/crash", 500, {semconv.FAULT})],
)
def test_error_taxonomy(recorder: Recorder, path: str, status: int, flags: set[str]) -> None:
    assert get(build_app(recorder), path).status_code == status
    (span,) = recorder.spans()
    present = {f for f in (semconv.ERROR, semconv.THROTTLE, semconv.FAULT) if attributes_of(span).get(f)}
    assert present == flags


def test_fixed_name_and_origin_for_a_gateway_stage(recorder: Recorder) -> None:
    get(build_app(recorder, span_name="bank/prod", origin=semconv.ORIGIN_API_GATEWAY), "/items/3")
    span = recorder.by_name("bank/prod")
    assert attributes_of(span)[semconv.ORIGIN] == "AWS::ApiGateway::Stage"
    assert attributes_of(span)[semconv.HTTP_ROUTE] == "/items/{item_id}"


def test_a_host_with_a_port_that_only_looks_numeric_is_served(recorder: Recorder) -> None:
    response = get(build_app(recorder), "/items/1", {b"host": b"api.local:\xb2"})  # "²".isdigit(), int() refuses
    assert response.status_code == 200
    (span,) = [s for s in recorder.spans() if s.kind.name == "SERVER"]
    assert span.attributes is not None and "server.port" not in span.attributes


def test_a_clients_outsize_request_text_is_capped_and_still_traced(recorder: Recorder) -> None:
    huge = "q" * 20_000
    headers = {"user-agent": huge, "host": "api.local:" + "9" * 5000, "baggage": "k=v," * 5000}
    response = get(build_app(recorder), f"/items/7?{huge}", headers)
    assert response.status_code == 200
    attrs = attributes_of(recorder.by_name("GET /items/{item_id}"))
    assert len(attrs[semconv.USER_AGENT]) == len(attrs[semconv.URL_QUERY]) == MAX_REQUEST_TEXT
    assert attrs[semconv.SERVER_ADDRESS] == "api.local" and semconv.SERVER_PORT not in attrs  # no such port


def test_paths_no_route_matches_share_one_span_name(recorder: Recorder) -> None:
    """A scanner's thousand paths make one span name, not a thousand (OpenTelemetry's HTTP
    conventions: the method alone without a route); the path stays an attribute."""
    app = build_app(recorder)
    for path in ("/wp-admin", "/.env", "/items/7/../../etc/passwd"):
        assert get(app, path).status_code == 404
    spans = recorder.spans()
    assert [span.name for span in spans] == ["GET", "GET", "GET"]
    assert {attributes_of(span)[semconv.URL_PATH] for span in spans} >= {"/wp-admin", "/.env"}
