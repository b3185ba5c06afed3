"""The X-Ray filter-expression parser: every construct, precedence, and errors with positions."""

from __future__ import annotations

import pytest

from spanlang import filter_ast as ast
from spanlang.filter_parser import parse_filter


@pytest.mark.parametrize("keyword", ["ok", "error", "fault", "throttle", "partial", "root", "cold_start"])
def test_boolean_keywords_alone_negated_and_compared(keyword: str) -> None:
    assert parse_filter(keyword) == ast.BoolTest(keyword, True)  # type: ignore[arg-type]
    assert parse_filter(f"!{keyword}") == ast.Not(ast.BoolTest(keyword, True))  # type: ignore[arg-type]
    assert parse_filter(f"{keyword} = true") == ast.BoolTest(keyword, True)  # type: ignore[arg-type]
    assert parse_filter(f"{keyword} = false") == ast.BoolTest(keyword, False)  # type: ignore[arg-type]
    assert parse_filter(f"{keyword} != false") == ast.BoolTest(keyword, True)  # type: ignore[arg-type]
    assert parse_filter(f"{keyword} != true") == ast.BoolTest(keyword, False)  # type: ignore[arg-type]


@pytest.mark.parametrize("keyword", ["responsetime", "duration", "http.status"])
@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_numeric_keywords(keyword: str, op: str) -> None:
    assert parse_filter(f"{keyword} {op} 2.5") == ast.NumTest(keyword, op, 2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("keyword", ["http.url", "http.method", "http.useragent", "name", "user"])
@pytest.mark.parametrize("op", ["=", "!=", "CONTAINS", "BEGINSWITH", "ENDSWITH", "contains"])
def test_string_keywords(keyword: str, op: str) -> None:
    parsed = parse_filter(f'{keyword} {op} "a \\"quoted\\" b"')
    assert parsed == ast.StrTest(keyword, op.upper(), 'a "quoted" b')  # type: ignore[arg-type]


def test_annotations_set_or_compared_by_type() -> None:
    assert parse_filter("annotation.customer") == ast.AnnotationTest("customer")
    assert parse_filter('annotation.customer = "c1"') == ast.AnnotationTest("customer", "=", "c1")
    assert parse_filter("annotation.amount >= 100") == ast.AnnotationTest("amount", ">=", 100.0)
    assert parse_filter("annotation.vip = true") == ast.AnnotationTest("vip", "=", True)
    assert parse_filter('annotation.tier BEGINSWITH "gold"') == ast.AnnotationTest("tier", "BEGINSWITH", "gold")


def test_attributes_and_resource_attributes_set_or_compared_by_type() -> None:
    assert parse_filter("attribute.http.route") == ast.AttributeTest("attribute", "http.route")
    assert parse_filter('attribute.messaging.destination.name = "q"') == ast.AttributeTest(
        "attribute", "messaging.destination.name", "=", "q"
    )
    assert parse_filter("attribute.http.response.status_code>=500") == ast.AttributeTest(
        "attribute", "http.response.status_code", ">=", 500.0
    )
    assert parse_filter("resource.faas.coldstart != true") == ast.AttributeTest(
        "resource", "faas.coldstart", "!=", True
    )
    assert parse_filter('resource.k8s-pod/name:x@1 ENDSWITH "-7"') == ast.AttributeTest(
        "resource", "k8s-pod/name:x@1", "ENDSWITH", "-7"
    )
    block = parse_filter('service("a") { attribute.db.system = "dynamodb" AND !resource.cloud.region }')
    assert block == ast.ServiceTest(
        ast.NodeRef("a"),
        ast.And(
            (
                ast.AttributeTest("attribute", "db.system", "=", "dynamodb"),
                ast.Not(ast.AttributeTest("resource", "cloud.region")),
            )
        ),
        1,
    )


def test_log_records_by_their_body() -> None:
    assert parse_filter('log CONTAINS "declined"') == ast.LogTest("CONTAINS", "declined")
    assert parse_filter('log != "x" OR log beginswith "y"') == ast.Or(
        (ast.LogTest("!=", "x"), ast.LogTest("BEGINSWITH", "y"))
    )
    assert parse_filter('service("a") { log = "z" }') == ast.ServiceTest(ast.NodeRef("a"), ast.LogTest("=", "z"), 1)


def test_service_edge_and_id() -> None:
    assert parse_filter('service("orders")') == ast.ServiceTest(ast.NodeRef("orders"), None, 1)
    assert parse_filter("service()") == ast.ServiceTest(None, None, 1)
    typed = parse_filter('service(id(name: "withdraw", type: "AWS::Lambda::Function")) { fault }')
    assert typed == ast.ServiceTest(ast.NodeRef("withdraw", "AWS::Lambda::Function"), ast.BoolTest("fault"), 1)
    edge = parse_filter('edge("api", id(name: "accounts", type: "AWS::DynamoDB::Table")) { throttle }')
    assert edge == ast.EdgeTest(
        ast.NodeRef("api"), ast.NodeRef("accounts", "AWS::DynamoDB::Table"), ast.BoolTest("throttle"), 1
    )
    xray = parse_filter('id("1-5759e988-bd862e3fe1be46a994272793")')
    assert xray == ast.TraceIdTest(bytes.fromhex("5759e988bd862e3fe1be46a994272793"))
    assert parse_filter(f'id("{"ab" * 16}")') == ast.TraceIdTest(bytes.fromhex("ab" * 16))


def test_and_binds_tighter_than_or_and_juxtaposition_is_and() -> None:
    parsed = parse_filter("error OR fault AND throttle")
    assert parsed == ast.Or((ast.BoolTest("error"), ast.And((ast.BoolTest("fault"), ast.BoolTest("throttle")))))
    assert parse_filter("ok !partial duration < 3") == ast.And(
        (ast.BoolTest("ok"), ast.Not(ast.BoolTest("partial")), ast.NumTest("duration", "<", 3.0))
    )
    grouped = parse_filter("(error OR fault) and throttle")
    assert grouped == ast.And((ast.Or((ast.BoolTest("error"), ast.BoolTest("fault"))), ast.BoolTest("throttle")))


def test_the_aws_documentation_examples_parse() -> None:
    examples = [
        "responsetime > 5",
        "duration >= 5 AND duration <= 8",
        'service("api.example.com") { fault = true OR responsetime > 2.5 } AND annotation.account = "12345"',
        'edge("api.example.com", "backend.example.com") { fault = true }',
        'http.url BEGINSWITH "http://api.example.com/" AND http.url CONTAINS "/v2/" AND !service("api.example.com")',
        "ok !partial duration <3",
    ]
    for text in examples:
        parse_filter(text)


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("ok AND", 7, "unexpected end of expression"),
        ('responsetime > "x"', 16, "expected a number"),
        ("foo", 1, "unexpected 'foo'"),
        ("(ok", 4, "expected )"),
        ("http.status CONTAINS 3", 13, "expected a comparison"),
        ('id("zz")', 4, "id() needs a trace id"),
        ('service("a") {', 15, "unexpected end"),
        ("annotation.a CONTAINS 3", 14, "needs a quoted string"),
        ('annotation."k" = 1', 1, "unexpected 'annotation.'"),
        ("annotation.k' OR 1=1 --", 13, "unexpected"),
        ("attribute.http.route CONTAINS 3", 22, "needs a quoted string"),
        ("attribute.ok > true", 14, "true/false can only be compared"),
        ('attribute."k" = 1', 1, "unexpected 'attribute.'"),
        ("attribute.k' OR 1=1 --", 12, "unexpected"),
        ("resource = 1", 1, "unexpected 'resource'"),
        ('log > "a"', 5, "expected = != CONTAINS BEGINSWITH ENDSWITH"),
        ("log CONTAINS 3", 14, 'expected a "quoted string"'),
        ("log", 4, "unexpected end"),
        ("  ", 1, "empty"),
    ],
)
def test_malformed_expressions_say_where_and_what(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ast.FilterError) as caught:
        parse_filter(text)
    assert caught.value.column == column
    assert fragment in caught.value.reason


def test_overlong_expressions_are_refused() -> None:
    with pytest.raises(ast.FilterError, match="longer than"):
        parse_filter("ok OR " * 1000 + "ok")
