"""What a Lambda event says about its trigger and the trace contexts it carries.

The trigger comes from the event's shape, as the AWS event formats define them: API Gateway
proxy events (REST v1 and HTTP v2), ``Records`` batches from SQS, SNS, Kinesis, S3 and DynamoDB
streams, and EventBridge events (``detail-type``; a ``Scheduled Event`` is a timer).

Carriers are the per-message trace contexts that become span links:

- SQS: the ``AWSTraceHeader`` system attribute (X-Ray format), else ``traceparent`` or
  ``X-Amzn-Trace-Id`` string message attributes.
- SNS: the same two names as ``MessageAttributes``.
- Kinesis: records have no attributes, so tracer's AWS hook adds a ``_fluoro_trace`` object
  (``{"traceparent": ...}``) to JSON-object payloads; it is read back here.
- EventBridge: the ``TraceHeader`` of the PutEvents entry, which the local cloud delivers as
  the event's top-level ``trace-header`` field.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.trace import SpanKind

from tracer import semconv

KINESIS_CARRIER_KEY: Final = "_fluoro_trace"
EVENTBRIDGE_CARRIER_KEY: Final = "trace-header"
MAX_LINKS: Final = 128
# The most of a request's own text (path, route, user agent, host) a span keeps: the sender
# chooses it, and every span waiting for export holds it (API Gateway allows 10 KB of headers).
MAX_REQUEST_TEXT: Final = 8192

_RECORD_SOURCES: Final = {
    "aws:sqs": "pubsub",
    "aws:sns": "pubsub",
    "aws:kinesis": "pubsub",
    "aws:s3": "datasource",
    "aws:dynamodb": "datasource",
}


@dataclass(frozen=True)
class Trigger:
    """The kind of event that invoked a handler."""

    name: str  # faas.trigger: http, pubsub, datasource, timer, other
    source: str  # e.g. aws:sqs, aws.events, apigateway
    kind: SpanKind


def _mapping(value: object) -> Mapping[str, Any]:
    """`value` if it is a mapping, else an empty one: events are the sender's to shape, and one
    malformed field must not cost the invocation its span."""
    return value if isinstance(value, Mapping) else {}


def _record_source(record: Mapping[str, Any]) -> str:
    source = record.get("eventSource") or record.get("EventSource") or ""
    return str(source)


def detect_trigger(event: object) -> Trigger:
    """faas.trigger and span kind from the event's shape."""
    if not isinstance(event, Mapping):
        return Trigger("other", "", SpanKind.SERVER)
    if (
        "httpMethod" in event
        or "routeKey" in event
        or (isinstance(event.get("requestContext"), Mapping) and "http" in event["requestContext"])
    ):
        return Trigger("http", "apigateway", SpanKind.SERVER)
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], Mapping):
        source = _record_source(records[0])
        return Trigger(_RECORD_SOURCES.get(source, "other"), source, SpanKind.CONSUMER)
    if "detail-type" in event and "source" in event:
        if event.get("detail-type") == "Scheduled Event":
            return Trigger("timer", str(event.get("source")), SpanKind.SERVER)
        return Trigger("pubsub", str(event.get("source")), SpanKind.CONSUMER)
    return Trigger("other", "", SpanKind.SERVER)


def http_headers(event: Mapping[str, Any]) -> dict[str, str]:
    """The request headers of an API Gateway proxy event (lower-cased names)."""
    headers = event.get("headers") or {}
    if not isinstance(headers, Mapping):
        return {}
    return {str(k).lower(): str(v) for k, v in headers.items() if v is not None}


def http_attributes(event: Mapping[str, Any]) -> dict[str, Any]:
    """HTTP semantic-convention attributes of an API Gateway proxy event (v1 or v2)."""
    http_v2 = _mapping(_mapping(event.get("requestContext")).get("http"))
    method = event.get("httpMethod") or http_v2.get("method")
    path = event.get("path") or event.get("rawPath") or http_v2.get("path")
    route_key = event.get("routeKey")
    route = event.get("resource") or (route_key.partition(" ")[2] if isinstance(route_key, str) else "")
    found = {semconv.HTTP_REQUEST_METHOD: method, semconv.URL_PATH: path, semconv.HTTP_ROUTE: route}
    attributes = {key: str(value)[:MAX_REQUEST_TEXT] for key, value in found.items() if value}
    headers = http_headers(event)
    for header, key in (("user-agent", semconv.USER_AGENT), ("host", semconv.SERVER_ADDRESS)):
        if header in headers:
            attributes[key] = headers[header][:MAX_REQUEST_TEXT]
    return attributes


def _sqs_carrier(record: Mapping[str, Any]) -> dict[str, str]:
    carrier: dict[str, str] = {}
    header = _mapping(record.get("attributes")).get(semconv.XRAY_SQS_ATTRIBUTE)
    if isinstance(header, str):
        carrier[semconv.XRAY_HEADER] = header
    for name, attribute in _mapping(record.get("messageAttributes")).items():
        if isinstance(attribute, Mapping) and isinstance(attribute.get("stringValue"), str):
            carrier.setdefault(str(name), attribute["stringValue"])
    return carrier


def _sns_carrier(record: Mapping[str, Any]) -> dict[str, str]:
    attributes = _mapping(_mapping(record.get("Sns")).get("MessageAttributes"))
    return {
        str(name): attribute["Value"]
        for name, attribute in attributes.items()
        if isinstance(attribute, Mapping) and isinstance(attribute.get("Value"), str)
    }


def _kinesis_carrier(record: Mapping[str, Any]) -> dict[str, str]:
    data = _mapping(record.get("kinesis")).get("data")
    if not isinstance(data, str):
        return {}
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return {}
    if not raw.lstrip().startswith(b"{") or KINESIS_CARRIER_KEY.encode() not in raw:
        return {}
    try:
        carrier = json.loads(raw).get(KINESIS_CARRIER_KEY)
    except (ValueError, AttributeError):
        return {}
    return {str(k): v for k, v in carrier.items() if isinstance(v, str)} if isinstance(carrier, Mapping) else {}


def message_carriers(event: object) -> list[dict[str, str]]:
    """One carrier per upstream message that carries a trace context (at most MAX_LINKS)."""
    if not isinstance(event, Mapping):
        return []
    if isinstance(event.get(EVENTBRIDGE_CARRIER_KEY), str) and "detail-type" in event:
        return [{semconv.XRAY_HEADER: event[EVENTBRIDGE_CARRIER_KEY]}]
    records = event.get("Records")
    if not isinstance(records, list):
        return []
    carriers = []
    for record in records[:MAX_LINKS]:
        if not isinstance(record, Mapping):
            continue
        source = _record_source(record)
        if source == "aws:sqs":
            carrier = _sqs_carrier(record)
        elif source == "aws:sns":
            carrier = _sns_carrier(record)
        elif source == "aws:kinesis":
            carrier = _kinesis_carrier(record)
        else:
            carrier = {}
        if carrier:
            carriers.append(carrier)
    return carriers
