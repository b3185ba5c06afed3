"""Query parameters of the API: time windows and trace ids, with clear errors.

Times are ISO-8601 (``2026-11-28T04:00:00Z``) or epoch seconds (``1795838400``, fractions
allowed). A window defaults to the last 15 minutes and is capped, so no query is unbounded.
Trace ids are OpenTelemetry's 32 hex digits (either case) or X-Ray's ``1-xxxxxxxx-y{24}``.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

from collector.storage.protocols import TimeWindow
from spanlang import filter_ast
from spanlang.filter_parser import parse_filter

DEFAULT_WINDOW_S = 15 * 60
MAX_WINDOW_S = 31 * 24 * 3600
MAX_EPOCH_S = 9_000_000_000.0  # within int64 nanoseconds (9.22e9 s)
MAX_EPOCH_YEAR = 2255
_HEX_TRACE = re.compile(r"[0-9a-fA-F]{32}")
_XRAY_TRACE = re.compile(r"1-([0-9a-fA-F]{8})-([0-9a-fA-F]{24})")


FILTER_HELP = 'an X-Ray filter expression, e.g. service("orders") { fault } AND annotation.customer = "c1"'


class BadParameter(ValueError):
    """A query parameter the API cannot use; the message says which and why."""


def parse_time_ns(value: str, name: str) -> int:
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is None:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise BadParameter(f"{name} must be ISO-8601 or epoch seconds, got {value[:64]!r}") from exc
        if moment.tzinfo is None:
            raise BadParameter(f"{name} must carry a time zone (e.g. Z), got {value[:64]!r}")
        seconds = moment.timestamp()
    # Times are stored as int64 nanoseconds since 1970: nothing before or past that range exists.
    if not 0 <= seconds <= MAX_EPOCH_S:
        raise BadParameter(f"{name} must lie between 1970 and {MAX_EPOCH_YEAR} (epoch seconds 0 to {MAX_EPOCH_S:.0f})")
    return int(seconds * 1_000_000_000)


def parse_window(start: str | None, end: str | None, now_ns: int | None = None) -> TimeWindow:
    """The [start, end) window a request asks for, defaulting to the last 15 minutes."""
    end_ns = parse_time_ns(end, "end") if end else (now_ns if now_ns is not None else time.time_ns())
    start_ns = parse_time_ns(start, "start") if start else end_ns - DEFAULT_WINDOW_S * 1_000_000_000
    if start_ns >= end_ns:
        raise BadParameter("start must be before end")
    if end_ns - start_ns > MAX_WINDOW_S * 1_000_000_000:
        raise BadParameter(f"the window may span at most {MAX_WINDOW_S // 86400} days")
    return TimeWindow(start_ns, end_ns)


def parse_trace_id(value: str) -> bytes:
    """16 bytes from an OpenTelemetry hex id or an X-Ray trace id."""
    text = value.strip()
    if _HEX_TRACE.fullmatch(text):
        return bytes.fromhex(text)
    match = _XRAY_TRACE.fullmatch(text)
    if match:
        return bytes.fromhex(match.group(1) + match.group(2))
    raise BadParameter(
        f"trace id must be 32 hex digits or an X-Ray id 1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy, got {value!r}"
    )


def parse_optional_filter(text: str | None) -> filter_ast.Expr | None:
    """The parsed filter, or None when absent or blank; FilterError says where it is wrong."""
    if text is None or not text.strip():
        return None
    return parse_filter(text)
