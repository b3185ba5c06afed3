"""API Gateway's Velocity mapping templates on a real stage: Lambda without the proxy, mock
responses chosen by the request template, passthrough rules, header mapping, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from demo_apps.cloud.apigateway.apigw_definition import DefinitionError, parse_definition
from demo_apps.cloud.apigateway.apigw_stage import StageSettings
from demo_apps.cloud.apigateway.gateway import ApiGateway
from demo_apps.cloud.lambdas.lambda_service import LambdaService
from demo_apps.otlp_sink import OtlpSink
from tests.integration.lambda_functions import config
from tests.waiting import wait_until

LAMBDA_URI = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{fn}/invocations"
ECHO = "arn:aws:lambda:us-east-1:123456789012:function:echo"
# The event a request template builds from every kind of variable a template can read.
EVENT = """{
  "account": "$input.params('id')",
  "amount": $input.json('$.amount'),
  "note": "$util.escapeJavaScript($input.path('$.note'))",
  "channel": "$input.params().header.get('x-channel')",
  "items": $input.path('$.items').size(),
  "stage": "$context.stage",
  "resource": "$context.resourcePath",
  "method": "$context.httpMethod",
  "region": "$stageVariables.region",
  "encoded": "$util.base64Encode($input.params('id'))"
}"""
ECHOED = """#set($event = $input.path('$.event'))
{"account": "$event.account", "amount": $event.amount, "items": $event.items, "stage": "$event.stage"}"""


def operation(integration: dict[str, Any]) -> dict[str, Any]:
    return {"x-amazon-apigateway-integration": integration}


DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.1",
    "info": {"title": "templates"},
    "paths": {
        "/accounts/{id}/deposits": {
            "post": operation(
                {
                    "type": "aws",
                    "httpMethod": "POST",
                    "uri": LAMBDA_URI.format(fn=ECHO),
                    "requestTemplates": {"application/json": EVENT},
                    "passthroughBehavior": "NEVER",
                    "responses": {
                        "default": {
                            "statusCode": 201,
                            "responseTemplates": {"application/json": ECHOED},
                            "responseParameters": {
                                "method.response.header.X-Request-Id": "integration.response.body.request_id",
                                "method.response.header.X-Api": "'templates'",
                            },
                        }
                    },
                }
            )
        },
        "/events/{id}": {
            "post": operation(
                {
                    "type": "aws",
                    "uri": LAMBDA_URI.format(fn=ECHO),
                    "requestTemplates": {"application/json": EVENT},
                    "responses": {
                        "default": {
                            "statusCode": 200,
                            "responseTemplates": {"application/json": "$input.json('$.event')"},
                        }
                    },
                }
            )
        },
        "/failures": {
            "post": operation(
                {
                    "type": "aws",
                    "uri": LAMBDA_URI.format(fn=ECHO.replace("echo", "fail")),
                    "responses": {
                        "bad input": {
                            "statusCode": 400,
                            "responseTemplates": {"application/json": '{"error": "$input.path(\'$.errorMessage\')"}'},
                        },
                        "default": {"statusCode": 200},
                    },
                }
            )
        },
        "/status": {
            "get": operation(
                {
                    "type": "mock",
                    "requestTemplates": {
                        "application/json": '{"statusCode": #if($input.params(\'down\') == "yes")503#{else}200#end}'
                    },
                    "responses": {
                        "5\\d{2}": {
                            "statusCode": 503,
                            "responseTemplates": {
                                "application/json": '#set($context.responseOverride.header.Retry-After = "30")'
                                '{"status": "down"}'
                            },
                        },
                        "default": {
                            "statusCode": 200,
                            "responseTemplates": {"application/json": '{"status": "up"}'},
                        },
                    },
                }
            )
        },
        "/teapot": {
            "get": operation(
                {
                    "type": "mock",
                    "requestTemplates": {"application/json": '{"statusCode": 200}'},
                    "responses": {
                        "default": {
                            "statusCode": 200,
                            "responseTemplates": {
                                "application/json": "#set($context.responseOverride.status = 418)"
                                '{"brewing": "$context.requestTimeEpoch" != ""}'
                            },
                        }
                    },
                }
            )
        },
    },
}


@pytest.fixture
def api(service: LambdaService, sink: OtlpSink) -> Iterator[ApiGateway]:
    service.deploy(config("echo", "echo", memory_mb=512, timeout_s=10))
    service.deploy(config("fail", "fail", memory_mb=512, timeout_s=10))
    stages = [StageSettings("prod", {"region": "eu-west-1"})]
    gateway = ApiGateway(parse_definition(DOCUMENT), stages, service, sink.endpoint).start()
    yield gateway
    gateway.stop()


def test_a_request_template_builds_the_event_and_a_response_template_the_answer(api: ApiGateway) -> None:
    body = {"amount": 12.5, "note": 'a "quoted" note', "items": [1, 2, 3]}
    answer = httpx.post(f"{api.url('prod')}/accounts/A-7/deposits", json=body, headers={"X-Channel": "atm"}, timeout=30)
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"account": "A-7", "amount": 12.5, "items": 3, "stage": "prod"}
    assert answer.headers["x-api"] == "templates" and len(answer.headers["x-request-id"]) == 36
    assert answer.headers["content-type"] == "application/json"


def test_the_event_holds_every_kind_of_variable(api: ApiGateway) -> None:
    body = {"amount": 1, "note": 'é "x"\n', "items": []}
    event = httpx.post(f"{api.url('prod')}/events/B-1", json=body, headers={"X-Channel": "web"}, timeout=30).json()
    assert event == {
        "account": "B-1",
        "amount": 1,
        "note": 'é "x"\n',
        "channel": "web",
        "items": 0,
        "stage": "prod",
        "resource": "/events/{id}",
        "method": "POST",
        "region": "eu-west-1",
        "encoded": "Qi0x",
    }
    # escapeJavaScript turns ' into \', which JSON refuses: AWS's documented pitfall, a 500 here too
    quoted = httpx.post(f"{api.url('prod')}/events/B-1", json={**body, "note": "it's"}, timeout=30)
    assert quoted.status_code == 500 and quoted.json() == {"message": "Internal server error"}


def test_a_lambda_error_selects_its_response_by_message(api: ApiGateway) -> None:
    failed = httpx.post(f"{api.url('prod')}/failures", json={}, timeout=30)
    assert failed.status_code == 400 and failed.json() == {"error": "bad input"}


def test_a_mock_request_template_picks_the_response_and_may_override_it(api: ApiGateway) -> None:
    assert httpx.get(f"{api.url('prod')}/status", timeout=30).json() == {"status": "up"}
    down = httpx.get(f"{api.url('prod')}/status", params={"down": "yes"}, timeout=30)
    assert down.status_code == 503 and down.json() == {"status": "down"} and down.headers["retry-after"] == "30"
    teapot = httpx.get(f"{api.url('prod')}/teapot", timeout=30)
    assert teapot.status_code == 418


def test_bad_input_gets_aws_answers_and_the_trace_shows_them(api: ApiGateway, sink: OtlpSink) -> None:
    deposits = f"{api.url('prod')}/accounts/A-1/deposits"
    not_json = httpx.post(deposits, content=b"{not json", headers={"content-type": "application/json"}, timeout=30)
    assert not_json.status_code == 400
    assert not_json.json()["message"].startswith("Could not parse request body into json")
    text = httpx.post(deposits, content=b"amount=1", headers={"content-type": "text/plain"}, timeout=30)
    assert text.status_code == 415 and text.json() == {"message": "Unsupported Media Type"}  # NEVER passes through
    huge = httpx.post(deposits, json={"amount": 1, "note": "x" * 200_000, "items": list(range(5000))}, timeout=30)
    assert huge.status_code == 201 and huge.json()["items"] == 5000
    deep = httpx.post(deposits, content=b"[" * 200_000, headers={"content-type": "application/json"}, timeout=30)
    assert deep.status_code == 400 and deep.json()["message"].startswith("Could not parse request body into json")
    too_long = httpx.post(deposits, content=b"x" * (10 * 1024 * 1024 + 1), timeout=60)
    assert (too_long.status_code, too_long.json()) == (413, {"message": "Request Too Long"})
    not_json_mock = httpx.post(f"{api.url('prod')}/events/B-1", content=b"{nope", timeout=30)
    assert not_json_mock.status_code == 400  # a body passed through to Lambda must be JSON

    def statuses() -> bool:
        return {400, 415} <= {s.attributes.get("http.response.status_code") for s in sink.wait_for(0, 0)}

    assert wait_until(statuses, timeout_s=10)


@pytest.mark.parametrize(
    ("integration", "message"),
    [
        ({"type": "mock", "requestTemplates": {"application/json": "#if($x"}}, "does not compile"),
        ({"type": "mock", "requestTemplates": {"application/json": 7}}, "templates must map"),
        ({"type": "mock", "passthroughBehavior": "SOMETIMES"}, "passthroughBehavior 'SOMETIMES'"),
        (
            {"type": "mock", "responses": {"default": {"statusCode": 200, "responseParameters": {"x": "'y'"}}}},
            "response parameter mapping",
        ),
        (
            {
                "type": "mock",
                "responses": {
                    "default": {
                        "statusCode": 200,
                        "responseParameters": {"method.response.header.X": "method.request.header.Y"},
                    }
                },
            },
            "response parameter mapping",
        ),
        ({"type": "mock", "cacheKeyParameters": ["view"]}, "cache key parameter 'view'"),
        ({"type": "aws", "uri": "arn:nothing"}, "aws uri must end with"),
        ({"type": "mock", "responses": {"(": {"statusCode": 200}}}, "valid pattern and statusCode"),
    ],
)
def test_definitions_aws_would_refuse_fail_at_import(integration: dict[str, Any], message: str) -> None:
    document = {"openapi": "3.0.1", "paths": {"/x": {"get": operation(integration)}}}
    with pytest.raises(DefinitionError, match=message):
        parse_definition(document)
