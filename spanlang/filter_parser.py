"""X-Ray filter expressions parsed with Lark (an LALR grammar) into ``filter_ast`` values.

The language is AWS X-Ray's: boolean keywords (``ok``, ``error``, ``fault``, ``throttle``,
``partial``, ``root`` and Fluoro's ``cold_start``) alone, negated with ``!`` or compared with
``= true``/``!= false``; numeric keywords (``responsetime``, ``duration`` in seconds,
``http.status``); string keywords with ``=``, ``!=``, ``CONTAINS``, ``BEGINSWITH``,
``ENDSWITH``; ``annotation.KEY``, and Fluoro's ``attribute.KEY`` and ``resource.KEY`` (any
OpenTelemetry span or resource attribute), alone or compared; ``log`` (a log record's body) with
the string comparisons; ``service(...)``, ``edge(a, b)`` and
``id("trace id")``; ``AND``, ``OR``, ``!``, parentheses, and juxtaposition meaning AND.
Errors carry the 1-based column and what the parser expected there.
"""

from __future__ import annotations

import math
import re
from functools import cache
from typing import Any, Literal

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from spanlang import filter_ast as ast

MAX_EXPRESSION_CHARS = 4000
# Nesting (parentheses, blocks, negations) an expression may have: far past any real filter,
# far below Python's recursion limit, which the tree's transform and the SQL compiler recurse to.
MAX_NESTING = 64
# Numbers past these are refused: responsetime and duration are seconds stored as int64 ns
# (~292 years), http.status three digits; annotation numbers any finite double.
MAX_SECONDS = 9.2e9

GRAMMAR = r"""
?start: or_expr

?or_expr: and_expr
        | or_expr _OR and_expr          -> or_
?and_expr: unary
         | and_expr _AND? unary         -> and_
?unary: _BANG unary                     -> not_
      | primary
?primary: "(" or_expr ")"
        | bool_test | num_test | str_test | annotation_test | attribute_test | log_test
        | service_test | edge_test | id_test

bool_test: BOOL_KEYWORD (EQ_OP BOOLEAN)?
num_test: NUM_KEYWORD NUM_OP NUMBER
str_test: STR_KEYWORD STR_OP STRING
annotation_test: ANNOTATION (ANY_OP value)?
attribute_test: ATTRIBUTE (ANY_OP value)?
log_test: LOG STR_OP STRING
?value: STRING | NUMBER | BOOLEAN

service_test: SERVICE "(" node_ref? ")" block?
edge_test: EDGE "(" node_ref "," node_ref ")" block?
id_test: ID "(" STRING ")"
block: "{" or_expr "}"
node_ref: STRING                        -> node_name
        | "id" "(" id_field ("," id_field)* ")" -> node_id
id_field: ID_FIELD ":" STRING

_OR.3: /OR\b/i
_AND.3: /AND\b/i
_BANG: "!"
SERVICE.3: /service(?=\s*\()/
EDGE.3: /edge(?=\s*\()/
ID.3: /id(?=\s*\()/
ID_FIELD.2: /(name|type)\b/
BOOL_KEYWORD.2: /(ok|error|fault|throttle|partial|root|cold_start)\b/
NUM_KEYWORD.2: /(responsetime|duration|http\.status)\b/
STR_KEYWORD.2: /(http\.url|http\.method|http\.useragent|name|user)\b/
ANNOTATION.2: /annotation\.[A-Za-z0-9_]+\b/
ATTRIBUTE.2: /(attribute|resource)\.[A-Za-z0-9_.:\/@-]+/
LOG.2: /log\b/
BOOLEAN.2: /(true|false)\b/
EQ_OP: "!=" | "="
NUM_OP: "!=" | "<=" | ">=" | "=" | "<" | ">"
STR_OP: "!=" | "=" | /CONTAINS\b/i | /BEGINSWITH\b/i | /ENDSWITH\b/i
ANY_OP: "!=" | "<=" | ">=" | "=" | "<" | ">" | /CONTAINS\b/i | /BEGINSWITH\b/i | /ENDSWITH\b/i
STRING: /"(?:[^"\\]|\\.)*"/
NUMBER: /-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/

%import common.WS
%ignore WS
"""

_ESCAPE = re.compile(r"\\(.)")
_WORD = re.compile(r"[A-Za-z0-9_.]+")
_HEX_TRACE = re.compile(r"[0-9a-fA-F]{32}")
_XRAY_TRACE = re.compile(r"1-([0-9a-fA-F]{8})-([0-9a-fA-F]{24})")
_TERMINAL_WORDS = {
    "_OR": "OR",
    "_AND": "AND",
    "_BANG": "!",
    "LPAR": "(",
    "RPAR": ")",
    "LBRACE": "{",
    "RBRACE": "}",
    "COMMA": ",",
    "COLON": ":",
    "SERVICE": "service(",
    "EDGE": "edge(",
    "ID": "id(",
    "BOOL_KEYWORD": "a boolean keyword",
    "NUM_KEYWORD": "a numeric keyword",
    "STR_KEYWORD": "a string keyword",
    "ANNOTATION": "annotation.KEY",
    "ATTRIBUTE": "attribute.KEY or resource.KEY",
    "LOG": "log",
    "BOOLEAN": "true or false",
    "EQ_OP": "= or !=",
    "NUM_OP": "a comparison (= != < <= > >=)",
    "STR_OP": "= != CONTAINS BEGINSWITH ENDSWITH",
    "ANY_OP": "a comparison",
    "STRING": 'a "quoted string"',
    "NUMBER": "a number",
    "ID_FIELD": "name or type",
}


def _unquote(token: Token) -> str:
    return _ESCAPE.sub(r"\1", str(token)[1:-1])


def _value(token: Token) -> ast.AnnotationValue:
    if token.type == "STRING":
        return _unquote(token)
    if token.type == "BOOLEAN":
        return str(token) == "true"
    return _finite(token)


def _finite(token: Token) -> float:
    number = float(token)
    if not math.isfinite(number):
        raise ast.FilterError(f"the number {str(token)[:40]} is out of range", token.column or 0)
    return number


def _bounded_number(keyword: str, token: Token) -> float:
    number = _finite(token)
    bound = 1e3 if keyword == "http.status" else MAX_SECONDS
    if abs(number) > bound:
        unit = "" if keyword == "http.status" else " seconds"
        raise ast.FilterError(f"{keyword} must lie within ±{bound:g}{unit}, got {str(token)[:40]}", token.column or 0)
    return number


def _comparison(op: Token, value: Token) -> tuple[str, ast.AnnotationValue]:
    """The operator and value of an annotation or attribute test, refused when they cannot meet."""
    parsed = _value(value)
    operator = str(op).upper()
    if isinstance(parsed, bool) and operator not in ("=", "!="):
        raise ast.FilterError(f"true/false can only be compared with = or !=, not {operator}", op.column or 0)
    if isinstance(parsed, float) and operator in ("CONTAINS", "BEGINSWITH", "ENDSWITH"):
        raise ast.FilterError(f"{operator} needs a quoted string", op.column or 0)
    return operator, parsed


def parse_trace_id(text: str, column: int) -> bytes:
    """16 bytes from a hex or X-Ray trace id inside ``id("...")``."""
    if _HEX_TRACE.fullmatch(text):
        return bytes.fromhex(text)
    match = _XRAY_TRACE.fullmatch(text)
    if match:
        return bytes.fromhex(match.group(1) + match.group(2))
    raise ast.FilterError(f"id() needs a trace id (32 hex digits or 1-xxxxxxxx-y{{24}}), got {text!r}", column)


@v_args(inline=True)
class _ToAst(Transformer[Token, ast.Expr]):
    def or_(self, left: ast.Expr, right: ast.Expr) -> ast.Expr:
        parts = left.parts if isinstance(left, ast.Or) else (left,)
        return ast.Or((*parts, right))

    def and_(self, left: ast.Expr, right: ast.Expr) -> ast.Expr:
        parts = left.parts if isinstance(left, ast.And) else (left,)
        return ast.And((*parts, right))

    def not_(self, part: ast.Expr) -> ast.Expr:
        return ast.Not(part)

    def bool_test(self, keyword: Token, op: Token | None = None, value: Token | None = None) -> ast.Expr:
        wanted = value is None or (str(value) == "true") == (str(op) == "=")
        return ast.BoolTest(str(keyword), wanted)  # type: ignore[arg-type]

    def num_test(self, keyword: Token, op: Token, value: Token) -> ast.Expr:
        return ast.NumTest(str(keyword), str(op), _bounded_number(str(keyword), value))  # type: ignore[arg-type]

    def str_test(self, keyword: Token, op: Token, value: Token) -> ast.Expr:
        return ast.StrTest(str(keyword), str(op).upper(), _unquote(value))  # type: ignore[arg-type]

    def annotation_test(self, key: Token, op: Token | None = None, value: Token | None = None) -> ast.Expr:
        name = str(key)[len("annotation.") :]
        if op is None or value is None:
            return ast.AnnotationTest(name)
        return ast.AnnotationTest(name, *_comparison(op, value))

    def attribute_test(self, key: Token, op: Token | None = None, value: Token | None = None) -> ast.Expr:
        source, _, name = str(key).partition(".")
        kind: Literal["attribute", "resource"] = "resource" if source == "resource" else "attribute"
        if op is None or value is None:
            return ast.AttributeTest(kind, name)
        return ast.AttributeTest(kind, name, *_comparison(op, value))

    def log_test(self, keyword: Token, op: Token, value: Token) -> ast.Expr:
        return ast.LogTest(str(op).upper(), _unquote(value))  # type: ignore[arg-type]

    def node_name(self, name: Token) -> ast.NodeRef:
        return ast.NodeRef(_unquote(name))

    def node_id(self, *fields: tuple[str, str]) -> ast.NodeRef:
        values = dict(fields)
        return ast.NodeRef(values.get("name"), values.get("type"))

    def id_field(self, field: Token, value: Token) -> tuple[str, str]:
        return str(field), _unquote(value)

    def block(self, expr: ast.Expr) -> ast.Expr:
        return expr

    def service_test(self, keyword: Token, *rest: Any) -> ast.Expr:
        node = next((r for r in rest if isinstance(r, ast.NodeRef)), None)
        block = next((r for r in rest if r is not None and not isinstance(r, ast.NodeRef)), None)
        return ast.ServiceTest(node, block, keyword.column or 0)

    def edge_test(self, keyword: Token, source: ast.NodeRef, target: ast.NodeRef, block: Any = None) -> ast.Expr:
        return ast.EdgeTest(source, target, block, keyword.column or 0)

    def id_test(self, keyword: Token, value: Token) -> ast.Expr:
        return ast.TraceIdTest(parse_trace_id(_unquote(value), value.column or 0))


@cache
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)


def _expected(names: set[str]) -> str:
    words = sorted({_TERMINAL_WORDS.get(n, n.lower()) for n in names})
    return ", ".join(words[:8]) + (" ..." if len(words) > 8 else "")


def _describe(exc: UnexpectedInput, text: str) -> ast.FilterError:
    column = int(getattr(exc, "column", 0) or 0)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        expected = getattr(exc, "expected", None) or getattr(exc, "accepts", None) or set()
        return ast.FilterError(f"unexpected end of expression; expected {_expected(set(expected))}", len(text) + 1)
    if isinstance(exc, UnexpectedToken):
        return ast.FilterError(
            f"unexpected {str(exc.token)!r}; expected {_expected(set(exc.accepts or exc.expected))}", column
        )
    if isinstance(exc, UnexpectedCharacters):
        at = exc.pos_in_stream or 0
        word = _WORD.match(text, at)
        found = word.group(0) if word else text[at]
        return ast.FilterError(f"unexpected {found!r}; expected {_expected(set(exc.allowed or ()))}", column)
    return ast.FilterError(str(exc).splitlines()[0], column)


def _first_column(node: Tree[Token] | Token) -> int:
    """The column of the first token under `node` (found with a loop: the node may be deep)."""
    while isinstance(node, Tree):
        if not node.children:
            return 1
        node = node.children[0]
    return node.column or 1


def _check_nesting(tree: Tree[Token]) -> None:
    """FilterError when the tree is deeper than MAX_NESTING (walked with a list, not recursion)."""
    stack: list[tuple[Tree[Token], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise ast.FilterError(f"the expression nests deeper than {MAX_NESTING} levels", _first_column(node))
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def parse_filter(text: str) -> ast.Expr:
    """The expression `text` means; raises FilterError with a column and what was expected."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ast.FilterError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters", 1)
    if not text.strip():
        raise ast.FilterError("the expression is empty", 1)
    try:
        tree = _parser().parse(text)
        _check_nesting(tree)
        return _ToAst().transform(tree)
    except UnexpectedInput as exc:
        raise _describe(exc, text) from None
    except VisitError as exc:
        if isinstance(exc.orig_exc, ast.FilterError):
            raise exc.orig_exc from None
        raise


def quoted(text: str) -> str:
    """`text` as the language writes a string: in double quotes, `"` and `\\` escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
