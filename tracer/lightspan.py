"""The span Fluoro's own instrumentation records: an OpenTelemetry span without the SDK's cost.

Why not the SDK's ``Span``: creating and ending one costs ~15-25 µs here (a lock per span,
bounded containers, a sampler call even under a sampled parent, ``start_as_current_span``'s
generator-based context manager). ``@traced`` runs on every call of user code, so its span is
this class instead: a plain ``ReadableSpan`` subclass with a dict of attributes, ended straight
into the same span processors. It *is* an ``opentelemetry.trace.Span``, so it sits in the OTel
context and spans from any OTel instrumentation nest under it; exporters see a ``ReadableSpan``.
``bench/tracer_overhead.py`` measures the difference.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util import types

MAX_ATTRIBUTES = 128
MAX_EVENTS = 128
MAX_LINKS = 128
# An exception's message and trace as a span keeps them: a message can carry a whole request
# (``ValueError(f"bad {payload}")``), and one outsize span can make the collector refuse the
# export request that holds it with 511 others. The trace keeps its end: the raise and message.
MAX_EXCEPTION_MESSAGE_CHARS = 4096
MAX_STACKTRACE_CHARS = 16384
_PRIMITIVES = (str, bool, int, float)


# What one span keeps, as the SDK's SpanLimits say it (settings.py reads them): characters of a
# string value (None: no limit), then how many attributes, events, links, and attributes of
# each event and of each link. A tuple, not a dataclass: defining one costs ~1 ms of every cold
# start (bench/tracer_overhead.py's import ratio).
SpanLimits = tuple[int | None, int, int, int, int, int]
DEFAULT_LIMITS: SpanLimits = (None, MAX_ATTRIBUTES, MAX_EVENTS, MAX_LINKS, MAX_ATTRIBUTES, MAX_ATTRIBUTES)
UNSET_STATUS = Status(StatusCode.UNSET)  # every LightSpan's until set: the encoder tests identity


def clean_attribute_value(value: object) -> types.AttributeValue | None:
    """The value as OpenTelemetry accepts it (primitive or homogeneous tuple), else None."""
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, (list, tuple)) and value:
        first_type = type(value[0])
        if first_type in (str, bool, int, float) and all(type(v) is first_type for v in value):
            return tuple(value)
    return None


class LightSpan(trace_api.Span, ReadableSpan):
    """A recording span that is mutated by its own thread and ended exactly once."""

    # OpenTelemetry's default span limits; BoundedLightSpan sets its own.
    _max_attributes = MAX_ATTRIBUTES
    _max_events = MAX_EVENTS
    _max_links = MAX_LINKS
    _max_event_attributes = MAX_ATTRIBUTES
    _max_link_attributes = MAX_ATTRIBUTES
    _max_length: int | None = None
    # What the limits turned away, for OTLP's dropped counts: zero on the class until one bites.
    _dropped_attributes = 0
    _dropped_events = 0
    _dropped_links = 0

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        start_time_ns: int,
        resource: Resource,
        scope: InstrumentationScope,
        on_end: Callable[[ReadableSpan], None],
        attributes: dict[str, types.AttributeValue] | None = None,
        links: Sequence[Link] = (),
    ) -> None:
        # ReadableSpan.__init__ is skipped on purpose: these are the fields its properties read.
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._start_time = start_time_ns
        self._end_time: int | None = None
        self._resource = resource
        self._instrumentation_scope = scope
        self._instrumentation_info = None
        self._attributes: dict[str, types.AttributeValue] = attributes if attributes is not None else {}
        # Empty tuples until first use: most spans never get an event or a link, and two
        # fewer containers per span is less work for the garbage collector.
        self._events: list[Event] | tuple[Event, ...] = ()
        self._links: list[Link] | tuple[Link, ...] = tuple(links)
        self._status = UNSET_STATUS
        self._on_end = on_end
        self._span_context = context  # the same, typed as never None (ReadableSpan's is Optional)

    def get_span_context(self) -> SpanContext:
        return self._span_context

    def is_recording(self) -> bool:
        return self._end_time is None

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time if end_time is not None else time.time_ns()
        self._on_end(self)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self._end_time is not None or not key:
            return
        cleaned = clean_attribute_value(value)
        if cleaned is None:
            return
        if key in self._attributes or len(self._attributes) < self._max_attributes:
            self._attributes[key] = cleaned
        else:
            self._dropped_attributes += 1

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        if self._end_time is not None:
            return
        if len(self._events) >= self._max_events:
            self._dropped_events += 1
            return
        stamp = timestamp if timestamp is not None else time.time_ns()
        if attributes:  # none: nothing to bound (as before, and as the SDK's Event keeps it)
            attributes = self._bounded_attributes(attributes, self._max_event_attributes)
        self._events = [*self._events, Event(name, attributes, stamp)]

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._end_time is not None or not context.is_valid:
            return
        if len(self._links) >= self._max_links:
            self._dropped_links += 1
            return
        if attributes:
            attributes = self._bounded_attributes(attributes, self._max_link_attributes)
        self._links = [*self._links, Link(context, attributes)]

    def _bounded_attributes(self, attributes: types.Attributes, max_count: int) -> BoundedAttributes:
        """An event's or link's attributes as the SDK's spans keep them: cleaned, at most
        `max_count`, strings cut to the length limit, the rest counted as dropped."""
        try:
            return BoundedAttributes(max_count, attributes, immutable=True, max_value_len=self._max_length)
        except Exception:  # noqa: BLE001 - a value holding itself: the API must not raise
            from tracer.encodable import attributes as encodable  # rarely needed: out of the import

            return BoundedAttributes(max_count, encodable(attributes), immutable=True, max_value_len=self._max_length)

    @property
    def dropped_attributes(self) -> int:
        return self._dropped_attributes

    @property
    def dropped_events(self) -> int:
        return self._dropped_events

    @property
    def dropped_links(self) -> int:
        return self._dropped_links

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return  # OK is final, as the API specifies
        if isinstance(status, StatusCode):
            status = Status(status, description)
        self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        stacktrace = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
        event_attributes: dict[str, Any] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception)[:MAX_EXCEPTION_MESSAGE_CHARS],
            "exception.stacktrace": stacktrace[-MAX_STACKTRACE_CHARS:],
            "exception.escaped": str(escaped),
        }
        if attributes:
            event_attributes.update(attributes)
        self.add_event("exception", event_attributes, timestamp)

    def __repr__(self) -> str:
        return f"LightSpan(name={self._name!r}, span_id={self._span_context.span_id:016x})"


def truncated(value: types.AttributeValue, max_length: int) -> types.AttributeValue:
    """A string (or each string of a sequence) cut to `max_length` characters, as the SDK's
    span limits cut them; other values as they are."""
    if isinstance(value, str):
        return value[:max_length]
    if isinstance(value, tuple) and value and isinstance(value[0], str):
        return tuple(str(item)[:max_length] for item in value)
    return value


class BoundedLightSpan(LightSpan):
    """A LightSpan under span limits other than OpenTelemetry's defaults, as the SDK's own spans
    take them from OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT, OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT,
    OTEL_SPAN_EVENT_COUNT_LIMIT, OTEL_SPAN_LINK_COUNT_LIMIT, OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT and
    OTEL_LINK_ATTRIBUTE_COUNT_LIMIT (settings.py reads them): string values of a span's, its
    events' and its links' attributes keep at most `limits[0]` characters, and each
    keeps at most so many. A subclass, so spans under the defaults pay nothing."""

    def __init__(self, *args: Any, limits: SpanLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        (
            self._max_length,
            self._max_attributes,
            self._max_events,
            self._max_links,
            self._max_event_attributes,
            self._max_link_attributes,
        ) = limits
        given = list(self._attributes.items())
        self._attributes = {key: self._bounded(value) for key, value in given[: self._max_attributes]}
        self._dropped_attributes = len(given) - len(self._attributes)
        links = self._links
        self._links = [
            Link(link.context, self._bounded_attributes(link.attributes, self._max_link_attributes))
            for link in links[: self._max_links]
        ]
        self._dropped_links = len(links) - len(self._links)

    def _bounded(self, value: types.AttributeValue) -> types.AttributeValue:
        return value if self._max_length is None else truncated(value, self._max_length)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        cleaned = clean_attribute_value(value)
        if cleaned is not None:
            super().set_attribute(key, self._bounded(cleaned))
