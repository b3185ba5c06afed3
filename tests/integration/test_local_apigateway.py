"""API Gateway stages on a real port in front of the local Lambda, a legacy XML backend and mocks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from demo_apps.cloud.apigateway.apigw_definition import DefinitionError, parse_definition
from demo_apps.cloud.apigateway.apigw_stage import StageSettings
from demo_apps.cloud.apigateway.gateway import ApiGateway
from demo_apps.cloud.lambdas.lambda_config import FunctionConfig
from demo_apps.cloud.lambdas.lambda_service import LambdaService, LambdaSettings
from demo_apps.cloud.threaded_server import ThreadedServer
from demo_apps.otlp_sink import OtlpSink

CODE = Path(__file__).parent / "lambda_code"
LAMBDA_URI = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{fn}/invocations"


# The legacy XML answer turned into JSON by a response template, as teams write it in VTL: Java's
# string methods, and AWS's documented fix for escapeJavaScript's \' (not valid JSON).
STATEMENT = """#set($xml = $input.body)
{"statement": {#foreach($tag in ["account", "client", "balance", "query"])#set($open = "<$tag>")\
#set($start = $xml.indexOf($open) + $open.length())#set($end = $xml.indexOf("</$tag>"))\
"$tag": "$util.escapeJavaScript($xml.substring($start, $end)).replaceAll("\\\\'", "'")"\
#if($foreach.hasNext), #end#end}}"""


def document(backend: str) -> dict[str, Any]:
    def op(integration: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"x-amazon-apigateway-integration": integration, **extra}

    fn = "arn:aws:lambda:us-east-1:123456789012:function:accounts:${stageVariables.alias}"
    return {
        "openapi": "3.0.1",
        "info": {"title": "bank"},
        "paths": {
            "/accounts/{id}": {
                "get": op(
                    {
                        "type": "aws_proxy",
                        "uri": LAMBDA_URI.format(fn=fn),
                        "cacheKeyParameters": ["method.request.querystring.view"],
                    }
                ),
            },
            "/health": {
                "get": op(
                    {
                        "type": "mock",
                        "responses": {
                            "default": {
                                "statusCode": 200,
                                "responseTemplates": {"application/json": '{"status": "up"}'},
                            }
                        },
                    }
                ),
            },
            "/statement/{id}": {
                "get": op(
                    {
                        "type": "http",
                        "uri": f"{backend}/legacy/{{id}}.xml",
                        "httpMethod": "GET",
                        "requestParameters": {
                            "integration.request.header.X-Client": "'atm'",
                            "integration.request.path.id": "method.request.path.id",
                            "integration.request.querystring.account": "method.request.querystring.acct",
                            "integration.request.querystring.debug": "remove",
                        },
                        "responses": {
                            "5\\d{2}": {"statusCode": 502},
                            "default": {"statusCode": 200, "responseTemplates": {"application/json": STATEMENT}},
                        },
                    }
                ),
            },
            "/rates": {"get": op({"type": "http_proxy", "uri": f"{backend}/rates", "httpMethod": "GET"})},
            "/limited": {
                "get": op(
                    {"type": "mock", "responses": {"default": {"statusCode": 200}}},
                    **{"x-fluoro-throttle": {"rate": 1, "burst": 2}},
                )
            },
        },
    }


def legacy_backend() -> Starlette:
    async def statement(request: Request) -> Response:
        if request.path_params["id"] == "broken":
            return Response("<error/>", status_code=503, media_type="application/xml")
        xml = (
            f"<statement><account>{request.path_params['id']}</account>"
            f"<client>{request.headers.get('x-client', '')}</client><balance>12.50</balance>"
            f"<query>{sorted(request.query_params)}</query></statement>"
        )
        return Response(xml, media_type="application/xml")

    async def rates(request: Request) -> Response:
        return Response('{"eur": 0.92}', media_type="application/json")

    return Starlette(routes=[Route("/legacy/{id}.xml", statement), Route("/rates", rates)])


@pytest.fixture
def gateway(sink: OtlpSink, tmp_path: Path) -> Iterator[tuple[ApiGateway, LambdaService]]:
    backend = ThreadedServer(legacy_backend(), name="legacy").start()
    lambdas = LambdaService(LambdaSettings(otlp_endpoint=sink.endpoint))
    lambdas.deploy(FunctionConfig(name="accounts", handler="api.handler", code_dir=CODE, memory_mb=1024, timeout_s=10))
    lambdas.publish_version("accounts")
    lambdas.put_alias("accounts", "prod", "1")
    lambdas.put_alias("accounts", "dev", "$LATEST")
    stages = [
        StageSettings("prod", {"alias": "prod"}, cache_enabled=True),
        StageSettings("dev", {"alias": "dev"}, rate_per_s=1, burst=2),
    ]
    api = ApiGateway(parse_definition(document(backend.endpoint)), stages, lambdas, sink.endpoint).start()
    yield api, lambdas
    api.stop()
    lambdas.close()
    backend.stop()


def test_lambda_proxy_with_stage_variables(gateway: tuple[ApiGateway, LambdaService]) -> None:
    api, _ = gateway
    prod = httpx.get(f"{api.url('prod')}/accounts/42", timeout=30).json()
    assert prod == {
        "path": "/accounts/42",
        "resource": "/accounts/{id}",
        "id": "42",
        "stage": "prod",
        "version": "1",
        "query": None,
    }
    dev = httpx.get(f"{api.url('dev')}/accounts/7?view=full", timeout=30).json()
    assert (dev["stage"], dev["version"], dev["query"]) == ("dev", "$LATEST", {"view": "full"})
    assert httpx.get(f"{api.url('prod')}/nowhere", timeout=30).status_code == 403


def test_a_cached_get_calls_the_function_once(gateway: tuple[ApiGateway, LambdaService]) -> None:
    api, lambdas = gateway
    answers = [httpx.get(f"{api.url('prod')}/accounts/1", params={"view": "short"}, timeout=30) for _ in range(3)]
    assert {a.status_code for a in answers} == {200}
    assert lambdas.stats("accounts", "1")["invocations"] == 1
    httpx.get(f"{api.url('prod')}/accounts/1", params={"view": "long"}, timeout=30)  # another cache key
    assert lambdas.stats("accounts", "1")["invocations"] == 2


def test_stage_throttling_gives_429_past_the_burst(gateway: tuple[ApiGateway, LambdaService]) -> None:
    api, _ = gateway
    statuses = [httpx.get(f"{api.url('dev')}/health", timeout=30).status_code for _ in range(6)]
    assert statuses[:2] == [200, 200] and statuses.count(429) >= 3
    limited = httpx.get(f"{api.url('prod')}/limited", timeout=30)  # the method's own bucket on prod
    assert limited.status_code == 200
    body = [httpx.get(f"{api.url('prod')}/limited", timeout=30) for _ in range(4)][-1]
    assert (body.status_code, body.json()) == (429, {"message": "Too Many Requests"})


def test_mock_http_proxy_and_an_xml_answer_mapped_by_a_template(gateway: tuple[ApiGateway, LambdaService]) -> None:
    api, _ = gateway
    assert httpx.get(f"{api.url('prod')}/health", timeout=30).json() == {"status": "up"}
    assert httpx.get(f"{api.url('prod')}/rates", timeout=30).json() == {"eur": 0.92}
    statement = httpx.get(f"{api.url('prod')}/statement/ACC-9", params={"acct": "9", "debug": "1"}, timeout=30)
    assert statement.headers["content-type"].startswith("application/json")
    assert statement.json() == {
        "statement": {"account": "ACC-9", "client": "atm", "balance": "12.50", "query": "['account']"}
    }  # only mapped values reach a non-proxy backend: acct as account, debug not at all
    broken = httpx.get(f"{api.url('prod')}/statement/broken", timeout=30)
    assert broken.status_code == 502  # the backend's 503 through the 5\d{2} integration response


def test_stage_spans_parent_the_lambda_service(gateway: tuple[ApiGateway, LambdaService], sink: OtlpSink) -> None:
    api, lambdas = gateway
    httpx.get(f"{api.url('dev')}/accounts/5", timeout=30)
    api.stop()
    lambdas.close()
    spans = sink.wait_for(4, timeout_s=10)
    stage = next(s for s in spans if s.attributes.get("fluoro.origin") == "AWS::ApiGateway::Stage")
    service = next(s for s in spans if s.attributes.get("fluoro.origin") == "AWS::Lambda")
    assert (stage.name, stage.service) == ("bank/dev", "bank/dev")
    assert service.parent_span_id == stage.span_id and service.trace_id == stage.trace_id


def test_a_lambda_its_concurrency_refuses_is_a_500_and_a_throttle_on_the_lambda_node(sink: OtlpSink) -> None:
    """AWS: "If the Lambda API rejects the invocation request, API Gateway returns a 500"; the
    stage's own 429 stays its throttle, the function's refusal is the Lambda service span's."""
    lambdas = LambdaService(LambdaSettings(otlp_endpoint=sink.endpoint))
    lambdas.deploy(FunctionConfig(name="closed", handler="api.handler", code_dir=CODE, reserved_concurrency=0))
    fn = "arn:aws:lambda:us-east-1:123456789012:function:closed"
    definition = {
        "openapi": "3.0.1",
        "info": {"title": "shop"},
        "paths": {
            "/orders": {
                "get": {"x-amazon-apigateway-integration": {"type": "aws_proxy", "uri": LAMBDA_URI.format(fn=fn)}}
            }
        },
    }
    api = ApiGateway(parse_definition(definition), [StageSettings("prod", {})], lambdas, sink.endpoint).start()
    try:
        answer = httpx.get(f"{api.url('prod')}/orders", timeout=30)
        assert (answer.status_code, answer.json()) == (500, {"message": "Internal server error"})
        assert lambdas.stats("closed")["throttles"] == 1
    finally:
        api.stop()
        lambdas.close()
    spans = sink.wait_for(2, timeout_s=10)
    stage = next(s for s in spans if s.attributes.get("fluoro.origin") == "AWS::ApiGateway::Stage")
    service = next(s for s in spans if s.attributes.get("fluoro.origin") == "AWS::Lambda")
    assert stage.attributes["http.response.status_code"] == 500 and not stage.attributes.get("fluoro.throttle")
    assert service.attributes["fluoro.throttle"] is True and service.parent_span_id == stage.span_id


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "websocket"}, "GET /health: integration type 'websocket'"),
        ({"type": "aws_proxy", "uri": "arn:nothing"}, "aws_proxy uri must end"),
        ({"type": "http"}, "http needs a uri"),
        ({"type": "mock", "requestParameters": {"integration.request.body": "x"}}, "mapping"),
    ],
)
def test_bad_definitions_are_refused_with_where(change: dict[str, Any], message: str) -> None:
    doc = document("http://127.0.0.1:9")
    doc["paths"]["/health"]["get"]["x-amazon-apigateway-integration"] = change
    with pytest.raises(DefinitionError, match=message):
        parse_definition(doc)
