"""The parsed form of an X-Ray filter expression: small frozen values, no behaviour.

The parser (``filter_parser``) builds these; the compiler (``filter_sql``) turns them into
parameterized SQL. Keeping them apart lets the parser be tested without a database and the
compiler without a grammar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BoolKeyword = Literal["ok", "error", "fault", "throttle", "partial", "root", "cold_start"]
NumKeyword = Literal["responsetime", "duration", "http.status"]
StrKeyword = Literal["http.url", "http.method", "http.useragent", "name", "user"]
NumOp = Literal["=", "!=", "<", "<=", ">", ">="]
StrOp = Literal["=", "!=", "CONTAINS", "BEGINSWITH", "ENDSWITH"]
AnnotationValue = str | float | bool

BOOL_KEYWORDS: tuple[str, ...] = ("ok", "error", "fault", "throttle", "partial", "root", "cold_start")
NUM_KEYWORDS: tuple[str, ...] = ("responsetime", "duration", "http.status")
STR_KEYWORDS: tuple[str, ...] = ("http.url", "http.method", "http.useragent", "name", "user")


class FilterError(ValueError):
    """A filter expression that cannot be used; says where (1-based column) and what was expected."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"column {column}: {message}")
        self.column = column
        self.reason = message


@dataclass(frozen=True)
class BoolTest:
    keyword: BoolKeyword
    value: bool = True


@dataclass(frozen=True)
class NumTest:
    keyword: NumKeyword
    op: NumOp
    value: float


@dataclass(frozen=True)
class StrTest:
    keyword: StrKeyword
    op: StrOp
    value: str


@dataclass(frozen=True)
class AnnotationTest:
    """``annotation.KEY`` alone (is set) or compared with a value."""

    key: str
    op: str | None = None
    value: AnnotationValue | None = None


@dataclass(frozen=True)
class AttributeTest:
    """``attribute.KEY`` (a span attribute) or ``resource.KEY`` (its resource's) alone (is set)
    or compared with a value, as annotations are: a string test holds for string values, a
    numeric one for numbers, true/false for booleans."""

    source: Literal["attribute", "resource"]
    key: str
    op: str | None = None
    value: AnnotationValue | None = None


@dataclass(frozen=True)
class LogTest:
    """``log OP "text"``: a log record of the trace (inside a block: of that span) whose body
    compares so (records written in no span count for the trace)."""

    op: StrOp
    value: str


@dataclass(frozen=True)
class NodeRef:
    """A map node: a name, optionally with its type (``id(name: "n", type: "T")``)."""

    name: str | None
    type: str | None = None


@dataclass(frozen=True)
class ServiceTest:
    """``service(node) { block }``: some span of the node (any node when None) satisfies block."""

    node: NodeRef | None
    block: Expr | None
    column: int = 0


@dataclass(frozen=True)
class EdgeTest:
    """``edge(a, b) { block }``: a call from a to b whose callee span satisfies block."""

    source: NodeRef
    target: NodeRef
    block: Expr | None
    column: int = 0


@dataclass(frozen=True)
class TraceIdTest:
    trace_id: bytes


@dataclass(frozen=True)
class And:
    parts: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    part: Expr


Expr = (
    BoolTest
    | NumTest
    | StrTest
    | AnnotationTest
    | AttributeTest
    | LogTest
    | ServiceTest
    | EdgeTest
    | TraceIdTest
    | And
    | Or
    | Not
)
