"""Parameters of the Jaeger-compatible API, parsed by hand so every refusal is in Jaeger's shape.

Times are microseconds since the epoch (``endTs`` and ``lookback`` milliseconds), durations as Go
writes them (``1.2s``, ``1m30s``, ``250ms``), tags a JSON object. A trace search becomes a filter
expression: the service's spans (``service("S") { ... }``) with the operation, durations and tags
asked of the same span; ``error``, ``http.status_code``, ``http.method`` and ``http.url`` are
the span's own, any other tag key an X-Ray annotation.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Final

import orjson

from collector.api.params import MAX_EPOCH_S, MAX_WINDOW_S
from collector.storage.protocols import TimeWindow
from spanlang import filter_ast as ast

MAX_TRACES: Final = 1000
MAX_EPOCH_US: Final = int(MAX_EPOCH_S) * 10**6  # within int64 nanoseconds, as the rest of the API
_UNITS: Final = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", re.ASCII)
MAX_DURATION_NS: Final = 10**9 * 9_200_000_000  # what responsetime can compare (the filter parser's bound)


def _digits(text: str) -> bool:
    """ASCII digits only: "²".isdigit(), yet int() refuses it."""
    return text.isascii() and text.isdigit()


class JaegerBadRequest(ValueError):
    """A parameter Jaeger's API would refuse; the message says which and why."""


def parse_duration_ns(text: str, name: str) -> int:
    """A Go duration (``1.2s``, ``1m30s``, ``250ms``) in ns."""
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text.strip():
        raise JaegerBadRequest(f"{name}: {text[:40]!r} is not a duration like 1.2s, 150ms or 1m30s")
    duration_ns = round(sum(float(number) * _UNITS[unit] for number, unit in parts))
    if duration_ns > MAX_DURATION_NS:
        raise JaegerBadRequest(f"{name}: {text[:40]!r} is longer than any trace")
    return duration_ns


def whole_number(text: str | None, default: int, name: str, most: int, unit: str) -> int:
    """A time or a span in `unit` (microseconds, milliseconds), at most `most`."""
    if text is None or text == "":
        return default
    if not _digits(text) or len(text) > len(str(most)) or int(text) > most:
        raise JaegerBadRequest(f"{name}: {text[:40]!r} is not a number of {unit} up to {most}")
    return int(text)


def bounded_window(start_ns: int, end_ns: int) -> TimeWindow:
    """[start, end), refused as the rest of the API refuses it: empty, or longer than its bound."""
    if start_ns >= end_ns:
        raise JaegerBadRequest("start must be before end")
    if end_ns - start_ns > MAX_WINDOW_S * 10**9:
        raise JaegerBadRequest(f"the window may span at most {MAX_WINDOW_S // 86400} days")
    return TimeWindow(start_ns, end_ns)


def _count(text: str | None, default: int, name: str) -> int:
    if not text:
        return default
    if not _digits(text) or len(text) > 4 or not 0 < int(text) <= MAX_TRACES:
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
            if not _digits(value) or len(value) > 3:
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


@dataclass(frozen=True)
class TraceSearch:
    """A trace search's window, filter expression and most traces."""

    window: TimeWindow
    expr: ast.Expr
    limit: int


def trace_search(
    service: str,
    operation: str | None,
    tags: str | None,
    start: str | None,
    end: str | None,
    min_duration: str | None,
    max_duration: str | None,
    limit: str | None,
) -> TraceSearch:
    """The search `GET /jaeger/api/traces` asks for; JaegerBadRequest says what is wrong."""
    if not service:
        raise JaegerBadRequest("parameter 'service' is required")
    end_us = whole_number(end, time.time_ns() // 1000, "end", MAX_EPOCH_US, "microseconds since the epoch")
    start_us = whole_number(start, end_us - 3600 * 10**6, "start", MAX_EPOCH_US, "microseconds since the epoch")
    window = bounded_window(start_us * 1000, end_us * 1000)
    least = parse_duration_ns(min_duration, "minDuration") if min_duration else None
    most = parse_duration_ns(max_duration, "maxDuration") if max_duration else None
    expr = search_expression(service, operation, least, most, _tag_tests(tags))
    return TraceSearch(window, expr, _count(limit, 20, "limit"))
