"""Schemathesis against the daemon's own /openapi.json: every route, with valid and invalid
parameters generated from the schema, answers with a documented status and never a 5xx, and
every answer it gives is a status the document declares for that route, in the shape it
declares (no FastAPI 422: the API answers bad parameters with 400).

A bounded number of examples per route (derandomized, so a run is repeatable); `make fuzz`
is where longer runs go.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.integration.daemon import Daemon

EXAMPLES_PER_ROUTE = 30


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = Daemon(tmp_path_factory.mktemp("schemathesis") / "spans.duckdb").start()
    now = time.time_ns()
    span = {
        "traceId": "ab" * 16,
        "spanId": "cd" * 8,
        "name": "seed",
        "startTimeUnixNano": str(now - 10**9),
        "endTimeUnixNano": str(now),
        "attributes": [{"key": "fluoro.annotation.customer", "value": {"stringValue": "c1"}}],
    }
    httpx.post(running.traces_url, json={"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}, timeout=10)
    yield running
    code, output = running.stop()
    assert code == 0, output
    assert "Traceback" not in output, output


@pytest.fixture(scope="module")
def api_schema(daemon: Daemon) -> Any:
    return schemathesis.openapi.from_url(f"{daemon.api_url}/openapi.json")


def operations(api_schema: Any) -> list[Any]:
    return [result.ok() for result in api_schema.get_all_operations()]


# Schemathesis's own pytest plugin does not run under this pytest; its strategies are driven
# here by Hypothesis directly, one operation at a time, valid and invalid parameters alike.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_parameter_makes_a_route_fail(api_schema: Any, mode: GenerationMode) -> None:
    tried = []
    for operation in operations(api_schema):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_ROUTE,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate],
        )
        def call(case: Any) -> None:
            response = case.call(timeout=30)
            where = f"{case.method} {case.formatted_path} {case.query}"
            assert response.status_code < 500, f"{where}: {response.text[:500]}"
            if response.status_code == 400:  # says what is wrong (the Jaeger API in Jaeger's shape)
                body = response.json()
                said = body["errors"][0]["msg"] if case.path.startswith("/jaeger/") else body["detail"]
                assert said, f"{where}: a 400 says what is wrong"
            # Every answer is one the document promises, in the shape it promises.
            case.validate_response(response, checks=[status_code_conformance, response_schema_conformance])

        try:
            call()
        except Unsatisfiable:  # a route with no parameter to make invalid (/healthz, /metrics)
            continue
        tried.append(operation.label)
    assert len(tried) >= 6, tried  # the routes with parameters, at least


def test_every_query_route_documents_its_answer(api_schema: Any) -> None:
    """Each /api route's 200 answer is a named schema (a read model), not a free-form object."""
    paths = api_schema.raw_schema["paths"]
    api_routes = [path for path in paths if path.startswith("/api/")]
    assert len(api_routes) >= 7, api_routes
    components = api_schema.raw_schema["components"]["schemas"]
    for path in api_routes:
        answer = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        refs = [answer["$ref"]] if "$ref" in answer else [option["$ref"] for option in answer.get("anyOf", [])]
        assert refs, f"{path}: {answer}"
        for ref in refs:
            name = ref.rsplit("/", 1)[-1]
            assert components[name]["properties"], f"{path}: {name} has no properties"


def test_the_document_promises_what_the_api_sends(api_schema: Any) -> None:
    """400 with a Problem on every route, 404 where a trace or a group may be unknown, and no 422."""
    for path, operations in api_schema.raw_schema["paths"].items():
        for operation in operations.values():
            statuses = set(operation["responses"])
            assert "422" not in statuses, path
            assert {"400", "503"} <= statuses, path
            may_be_unknown = ("/api/traces/{trace_id}", "/api/groups/{name}", "/jaeger/api/traces/{trace_id}")
            assert ("404" in statuses) == path.startswith(may_be_unknown), path
