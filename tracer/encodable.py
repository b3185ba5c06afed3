"""A span the fast encoder could not take, rebuilt from values OTLP can carry.

The encoder (otlp_encoder.py) trusts what it reads, for speed, and most of what it reads came
through OpenTelemetry's API from user code: an attribute key that is not text, an integer
outside int64, a value nested past reason or holding itself, a name whose ``__str__`` raises, a
timestamp that is not a whole number would make it raise (or, for a large integer, write a
varint no decoder takes). The batch of up to 512 spans around such a span would be lost with
it, refused by the collector or never sent. So the encoder calls `rebuilt` for that one span
only, and only then: the good path pays nothing. What OTLP cannot carry becomes what it can
(an integer past int64 its decimal text, a value nested past `MAX_DEPTH` a short note, a key
that is not text its text when it is a plain value, else dropped), as the SDK's own attribute
cleaning turns unknown types into their text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, Status, StatusCode

MAX_DEPTH = 16  # nested mappings and sequences: deeper (or holding themselves) ends in a note
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1  # as otlp_encoder's varint takes them
UINT64_MAX = (1 << 64) - 1
TOO_DEEP = "(nested too deep)"
_PLAIN_KEYS = (str, int, float, bool)


def rebuilt(span: ReadableSpan) -> ReadableSpan:
    """`span` with every field the encoder reads made of values it can encode."""
    return ReadableSpan(
        name=_text(span._name),
        context=span._context,
        parent=span._parent,
        resource=span._resource,
        attributes=attributes(span._attributes),
        events=tuple(_event(event) for event in _items(span._events)),
        links=tuple(Link(link.context, attributes(link.attributes)) for link in _items(span._links)),
        kind=span._kind,
        status=_status(span._status),
        start_time=_timestamp(span._start_time),
        end_time=_timestamp(span._end_time),
        instrumentation_scope=span._instrumentation_scope,
    )


def attributes(given: object) -> dict[str, Any]:
    """A mapping of attributes, keyed by text, its values encodable."""
    if not isinstance(given, Mapping):
        return {}
    cleaned: dict[str, Any] = {}
    for key, value in _pairs(given):
        if isinstance(key, _PLAIN_KEYS) and key != "":
            cleaned[key if type(key) is str else _text(key)] = value_of(value, 0)
    return cleaned


def value_of(value: object, depth: int) -> Any:
    """`value` as an OTLP AnyValue can hold it."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        number = int(value)
        # _text: str() refuses an integer past 4,300 digits (Python's own bound), which then
        # keeps its type's name rather than costing the span
        return number if INT64_MIN <= number <= INT64_MAX else _text(number)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if value is None:
        return None
    if depth >= MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, Mapping):
        return {_text(key): value_of(item, depth + 1) for key, item in _pairs(value)}
    if isinstance(value, (list, tuple)):
        return tuple(value_of(item, depth + 1) for item in value)
    return _text(value)


def _event(event: Event) -> Event:
    return Event(_text(event.name), attributes(event.attributes), _timestamp(event.timestamp))


def _status(status: object) -> Status:
    if not isinstance(status, Status) or not isinstance(status.status_code, StatusCode):
        return Status(StatusCode.UNSET)
    description = status.description
    return Status(status.status_code, None if description is None else _text(description))


def _timestamp(stamp: object) -> int | None:
    """Nanoseconds as fixed64 holds them (None stays None: a span not ended)."""
    if stamp is None:
        return None
    try:
        nanos: int = int(stamp)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 0
    return min(max(nanos, 0), UINT64_MAX)


def _text(value: object) -> str:
    """Plain text for `value`: its own when it is text, else its ``str()``, else its type's name."""
    if type(value) is str:
        return value
    try:
        return str.__str__(value) if isinstance(value, str) else str(value)
    except Exception:  # noqa: BLE001 - a __str__ that raises, or recurses without end
        return type(value).__name__


def _pairs(mapping: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    try:
        return list(mapping.items())
    except Exception:  # noqa: BLE001 - a mapping whose items() raises holds nothing we can read
        return []


def _items(sequence: object) -> list[Any]:
    try:
        items: list[Any] = list(sequence)  # type: ignore[call-overload]
        return items
    except Exception:  # noqa: BLE001 - as _pairs
        return []
