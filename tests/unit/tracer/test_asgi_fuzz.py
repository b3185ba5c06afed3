"""Whatever a client sends, the ASGI middleware passes the app's answer through and records the
request's span, encodable whole: a property test over raw ASGI scopes (any method, path, query
bytes, header names and values, host and server), below what an HTTP client library would let
a test send."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import Receive, Scope, Send

import tracer
from tests.conftest import make_recorder
from tracer.otlp_encoder import OtlpEncoder

TRACE_HEADERS = (b"traceparent", b"tracestate", b"baggage", b"x-amzn-trace-id")
header_names = st.one_of(
    st.sampled_from([*TRACE_HEADERS, b"host", b"user-agent", b"x-forwarded-for", b"content-length"]),
    st.binary(min_size=1, max_size=12),
)
header_values = st.one_of(
    st.binary(max_size=120),
    st.sampled_from(  # what random bytes seldom make: ports int() refuses, a valid trace header
        [
            b"api.local:\xb2",
            b"api.local:" + b"9" * 5000,
            b"[::1]:80",
            b":",
            b"00-" + b"f" * 32 + b"-" + b"0" * 16 + b"-01",
        ]
    ),
)
scopes = st.fixed_dictionaries(
    {
        "method": st.one_of(st.sampled_from(["GET", "POST"]), st.text(max_size=10)),
        "path": st.text(max_size=60),
        "query_string": st.binary(max_size=60),
        "headers": st.lists(st.tuples(header_names, header_values), max_size=6),
        "server": st.one_of(st.none(), st.tuples(st.text(max_size=20), st.integers(-1, 2**20))),
    }
)


async def answer_ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def call(app: Any, fields: dict[str, Any]) -> list[dict[str, Any]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "http",
        "root_path": "",
        "client": ("127.0.0.1", 5000),
        **fields,
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=scopes)
def test_any_request_gets_the_apps_answer_and_its_span(fields: dict[str, Any]) -> None:
    tracing, exporter = make_recorder()
    app = tracer.TracingMiddleware(answer_ok, tracing=tracing)
    sent = call(app, fields)
    tracing.flush()
    spans = list(exporter.get_finished_spans())
    tracing.shutdown()

    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [200]
    assert [m.get("body") for m in sent if m["type"] == "http.response.body"] == [b"ok"]
    carried_a_trace = any(name.lower() in TRACE_HEADERS for name, _ in fields["headers"])
    assert len(spans) == 1 or (carried_a_trace and not spans)  # an unsampled parent records nothing
    encoder = OtlpEncoder()
    encoder.encode(spans)
    assert (encoder.rebuilt_spans, encoder.unencodable_spans) == (0, 0)
