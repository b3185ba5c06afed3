"""``attribute.KEY`` and ``resource.KEY`` filter tests compiled to SQL over the stored JSON.

A span's attributes are one JSON object (``spans.attributes``), its resource's another
(``resources.resource``, one row per distinct resource); the key is read with a JSON Pointer
(``/`` + the key, ``~`` and ``/`` escaped), bound as a parameter like every value. The tests
mean what annotation tests mean (spanlang/memory_filter.py holds the same rules in memory): a
missing key never matches; a string comparison holds for a string value, a numeric one for a
number, true/false for a boolean; ``!=`` holds for a present value of another type.

Speed: parsing a span's JSON costs several times scanning its text (10M spans: ~400 ms
against ~150 ms), so each test is ANDed with a test DuckDB runs first and that passes every
matching row: the JSON text contains the key, and for ``=``,
``CONTAINS``, ``BEGINSWITH`` and ``ENDSWITH`` the value. The writers (orjson and the C
decoder's buffer.h) escape only ``"``, ``\\`` and control characters, so text without those
appears in the JSON as it is; text with them gets no pre-test.
"""

from __future__ import annotations

from typing import Final

from collector.storage.protocols import Statement
from spanlang import filter_ast as ast

_NUM_OPS: Final = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_STR_FUNCTIONS: Final = {"CONTAINS": "contains", "BEGINSWITH": "starts_with", "ENDSWITH": "ends_with"}
_NUMBER_TYPES: Final = "('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')"


def json_pointer(key: str) -> str:
    """RFC 6901: the pointer to `key` at the top of an object."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def written_as_is(text: str) -> bool:
    """Whether `text` appears unchanged inside the stored JSON (nothing in it is escaped)."""
    return bool(text) and '"' not in text and "\\" not in text and all(ord(c) >= 0x20 for c in text)


def attribute_condition(test: ast.AttributeTest, alias: str) -> Statement:
    """The test over one row: span `alias` (``s`` or ``r``) of ``spans``."""
    if test.source == "resource":
        inner = value_condition(test, "res.resource")
        text = f"{alias}.resource_id IN (SELECT res.resource_id FROM resources res WHERE {inner.text})"
        return Statement(text, inner.params)
    return value_condition(test, f"{alias}.attributes")


def value_condition(test: ast.AttributeTest, column: str) -> Statement:
    """The test over `column`, a JSON object's text, with the pre-tests ahead of the exact one."""
    pre = [needle for needle in _needles(test) if written_as_is(needle)]
    exact = _exact(test, column, json_pointer(test.key))
    if not pre:
        return exact
    tests = " AND ".join(f"contains({column}, ?)" for _ in pre)
    return Statement(f"{tests} AND ({exact.text})", (*pre, *exact.params))


def _needles(test: ast.AttributeTest) -> list[str]:
    """Text every match's JSON contains: the value first (rarer than a key), then the key."""
    found = []
    if isinstance(test.value, str) and test.op in ("=", *_STR_FUNCTIONS):
        found.append(test.value)
    return [*found, test.key]


def _exact(test: ast.AttributeTest, column: str, pointer: str) -> Statement:
    """The test itself. Most forms parse the object once: ``json_extract`` gives the value's own
    JSON text, which is ``true``/``false`` for a boolean, a bare number for a number, and for a
    string the quoted text DuckDB's writer makes, as ``to_json`` makes it of the value."""
    value, op = test.value, test.op
    held = f"CAST(json_extract({column}, ?) AS VARCHAR)"
    if op is None:
        return Statement(f"json_exists({column}, ?)", (pointer,))
    if isinstance(value, bool):  # missing: NULL; != holds for a present value of another type
        return Statement(f"{held} {_NUM_OPS[op]} ?", (pointer, str(value).lower()))
    if isinstance(value, float):  # a bare number casts; quoted text, true, null, [..] do not
        return Statement(f"TRY_CAST({held} AS DOUBLE) {_NUM_OPS[op]} ?", (pointer, value))
    if op in ("=", "!="):
        return Statement(f"{held} {_NUM_OPS[op]} CAST(to_json(CAST(? AS VARCHAR)) AS VARCHAR)", (pointer, value))
    is_string = f"json_type({column}, ?) = 'VARCHAR'"
    string = f"json_extract_string({column}, ?)"
    if op in _STR_FUNCTIONS:
        return Statement(f"{is_string} AND {_STR_FUNCTIONS[op]}({string}, ?)", (pointer, pointer, value))
    return Statement(f"{is_string} AND {string} {_NUM_OPS[op]} ?", (pointer, pointer, value))
