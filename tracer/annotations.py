"""X-Ray annotations and metadata on the current span, with X-Ray's rules.

Annotations are indexed and filterable: keys ``[A-Za-z0-9_]+`` of at most 500 characters, values
str/int/float/bool (strings cut to 1,000 characters, integers past int64 kept as numbers, in a
float, as X-Ray's own numbers are), at most 50 per trace. Metadata is any JSON-able value,
size-capped, with secrets redacted. Both drop bad input with one warning: telemetry never raises
into user code.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Final

from opentelemetry import trace as trace_api

from tracer import semconv

_logger = logging.getLogger(__name__)

MAX_ANNOTATIONS_PER_TRACE: Final = 50
MAX_ANNOTATION_STRING_CHARS: Final = 1000
MAX_ANNOTATION_KEY_CHARS: Final = 500  # X-Ray's rule
_INT64_MAX: Final = (1 << 63) - 1
_FLOAT_MAX: Final = int(sys.float_info.max)
_LOGGED_KEY_CHARS: Final = 100  # of a dropped key, in its warning: a key can be a whole request
MAX_METADATA_BYTES: Final = 16 * 1024
REDACTED: Final = "[REDACTED]"
_SENSITIVE_KEY_PATTERN: Final = (
    r"pass(word|wd)?|secret|token|authori[sz]ation|api[-_]?key|credential|cookie|private[-_]?key"
)
_TRACKED_TRACES: Final = 4096


def is_annotation_key(key: str) -> bool:
    """X-Ray's annotation keys: ``[A-Za-z0-9_]+``, at most 500 characters (tested without a
    regex compiled at import)."""
    return len(key) <= MAX_ANNOTATION_KEY_CHARS and key.isascii() and key.replace("_", "a").isalnum()


@functools.cache
def _sensitive_key() -> re.Pattern[str]:
    return re.compile(_SENSITIVE_KEY_PATTERN, re.IGNORECASE)  # compiled on first metadata, not at import


class AnnotationBudget:
    """Counts annotations per trace (this process's share), for X-Ray's 50-per-trace limit.

    Bounded: the least recently used trace is forgotten past `max_traces`.
    """

    def __init__(self, max_traces: int = _TRACKED_TRACES) -> None:
        self._counts: OrderedDict[int, set[str]] = OrderedDict()
        self._max_traces = max_traces
        self._lock = threading.Lock()

    def admit(self, trace_id: int, key: str) -> bool:
        """True if `key` may be set on `trace_id` (a key already set may always be replaced)."""
        with self._lock:
            keys = self._counts.get(trace_id)
            if keys is None:
                keys = self._counts[trace_id] = set()
                if len(self._counts) > self._max_traces:
                    self._counts.popitem(last=False)
            else:
                self._counts.move_to_end(trace_id)
            if key in keys:
                return True
            if len(keys) >= MAX_ANNOTATIONS_PER_TRACE:
                return False
            keys.add(key)
            return True


def _drop(reason: str, key: object) -> None:
    # Named by its type when not text: a key's own repr() may raise, or run to any length.
    shown = repr(key[:_LOGGED_KEY_CHARS]) if type(key) is str else f"of type {type(key).__name__}"
    _logger.warning("fluoro: dropped %s for key %s", reason, shown)


def annotate_span(span: trace_api.Span, budget: AnnotationBudget, key: str, value: str | int | float | bool) -> None:
    """Set annotation `key` on `span` if it follows X-Ray's rules; warn and drop otherwise."""
    if not span.is_recording():
        return
    if not isinstance(key, str) or not is_annotation_key(key):
        _drop("annotation: key must match [A-Za-z0-9_]+ (500 characters at most)", key)
        return
    if not isinstance(value, (str, int, float, bool)):
        _drop(f"annotation: value of type {type(value).__name__} (str, int, float, bool)", key)
        return
    if isinstance(value, str) and len(value) > MAX_ANNOTATION_STRING_CHARS:
        value = value[:MAX_ANNOTATION_STRING_CHARS]
    elif isinstance(value, int) and not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        if abs(value) > _FLOAT_MAX:
            _drop("annotation: a number past a double's range", key)
            return
        value = float(value)  # OTLP's integers are int64; X-Ray's numbers are doubles anyway
    if not budget.admit(span.get_span_context().trace_id, key):
        _drop(f"annotation: over {MAX_ANNOTATIONS_PER_TRACE} per trace", key)
        return
    span.set_attribute(semconv.ANNOTATION_PREFIX + key, value)


def redact(value: object) -> object:
    """A copy of `value` with the values under sensitive-looking keys replaced."""
    if isinstance(value, Mapping):
        return {str(k): (REDACTED if _sensitive_key().search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def metadata_json(key: str, value: object) -> str | None:
    """`value` as redacted JSON text within the size cap, or None if it cannot be encoded."""
    if _sensitive_key().search(key):
        return json.dumps(REDACTED)
    try:
        text = json.dumps(redact(value), default=str, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return None
    if len(text.encode()) > MAX_METADATA_BYTES:
        return json.dumps({"truncated": True, "bytes": len(text.encode())})
    return text


def put_span_metadata(span: trace_api.Span, key: str, value: object, namespace: str) -> None:
    """Set metadata `namespace.key` on `span` as JSON text; warn and drop what cannot be kept."""
    if not span.is_recording():
        return
    if not isinstance(key, str) or not key or not isinstance(namespace, str) or not namespace:
        _drop("metadata: key and namespace must be non-empty strings", key)
        return
    if namespace.startswith("AWS."):
        _drop("metadata: namespaces starting with 'AWS.' are reserved", namespace)
        return
    text = metadata_json(key, value)
    if text is None:
        _drop("metadata: value is not JSON-serializable", key)
        return
    span.set_attribute(f"{semconv.METADATA_PREFIX}{namespace}.{key}", text)
