"""What a span means: X-Ray's notions derived from OpenTelemetry attributes, in this one place.

Fluoro's tracer writes ``fluoro.*`` attributes (tracer/semconv.py); any other OpenTelemetry
SDK writes only the semantic conventions. Both must land on the same map, so each notion is
read from Fluoro's attribute when present and derived from the conventions otherwise. Every
receiver comes here: both Python OTLP paths call :func:`span_meaning` per span; an X-Ray
segment's fields are first stated as the attributes they mean (xray.py); and the C decoder of
OTLP protobuf, which only decodes, asks :func:`span_meaning` once per distinct *signature* of a
span's :data:`FACT_KEYS` values and applies the answer to every span that shares it (see
_otlpfast.c: the texts the rules only copy are stood for by markers, so a signature does not
vary with URLs or ids). For that, the rules below read the text of no key outside
:data:`TEXT_READ_KEYS`; they may copy any text.

- flags: http status (4xx error, 429 throttle, 5xx fault), an ``exception`` event on a span
  that ended in ERROR (an unhandled exception), ERROR status on a server span;
- cold start: ``faas.coldstart``;
- the downstream target of a client span: AWS SDK attributes (``rpc.system = aws-api``),
  ``db.system`` (+ ``db.name``), ``messaging.system`` (+ destination), ``peer.service``,
  else the server address (the host, without a port);
- annotations: ``fluoro.annotation.*``, and the keys an ADOT-style ``aws.xray.annotations``
  attribute lists;
- a resource's service (``service.name``, else ``unknown_service``) and version, capped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracer import semconv

AWS_SERVICE_TYPES = {
    "DynamoDB": "AWS::DynamoDB::Table",
    "S3": "AWS::S3::Bucket",
    "SQS": "AWS::SQS::Queue",
    "Kinesis": "AWS::Kinesis::Stream",
    "Lambda": "AWS::Lambda::Function",
    "EventBridge": "AWS::Events::EventBus",
    "SFN": "AWS::StepFunctions::StateMachine",
    "SNS": "AWS::SNS::Topic",
}
# case-insensitive, and botocore's service ids ("dynamodb", "events") as the X-Ray SDK names them
SERVICE_TYPES_BY_LOWER = {
    **{k.lower(): v for k, v in AWS_SERVICE_TYPES.items()},
    "events": "AWS::Events::EventBus",
    "stepfunctions": "AWS::StepFunctions::StateMachine",
    "states": "AWS::StepFunctions::StateMachine",
}
MAX_NAME_CHARS = 200  # X-Ray's limit on a segment's name
UNKNOWN_SERVICE = "unknown_service"

ANNOTATION_LIST_KEY = "aws.xray.annotations"  # ADOT's list of the attributes to index
# Every attribute key span_meaning reads; the C decoder hands it these and no others.
FACT_KEYS = (
    "http.response.status_code", "http.status_code", "http.request.method", "http.method", "http.route",
    "url.full", "http.url", "url.path", "user_agent.original", "http.user_agent", "faas.version",
    "enduser.id", "fluoro.origin", "fluoro.target.type", "fluoro.target.name", "rpc.system", "rpc.service",
    "aws.s3.bucket", "aws.sqs.queue_url", "messaging.url", "aws.kinesis.stream_name",
    "aws.lambda.function_name", "faas.invoked_name", "messaging.destination.name",
    "aws.dynamodb.table_names", "db.system", "db.namespace", "db.name", "messaging.system", "peer.service",
    "server.address", "net.peer.name", "faas.trigger", "faas.invocation_id",
    "fluoro.error", "fluoro.fault", "fluoro.throttle", "faas.coldstart", "fluoro.sampling", "fluoro.sampling.weight",
)  # fmt: skip
# The keys whose text a rule looks into (compares, parses, lowercases, cuts or composes); any
# other key's text is only tested for being a non-empty string, and copied.
TEXT_READ_KEYS = frozenset(
    {
        semconv.HTTP_RESPONSE_STATUS_CODE,
        semconv.HTTP_STATUS_CODE_OLD,
        semconv.RPC_SYSTEM,
        semconv.RPC_SERVICE,
        semconv.AWS_SQS_QUEUE_URL,
        "messaging.url",
        semconv.SAMPLING,
    }
)
# A head-sampled span stands for at most this many requests (a probability of 2^-20): past it an
# estimate is noise, and a hostile weight must not swamp a node's rate.
MAX_SAMPLING_WEIGHT = float(1 << 20)


def http_status_of(attributes: Mapping[str, Any]) -> int | None:
    """The response status (100-999) a span's attributes carry, else None."""
    value = attributes.get(semconv.HTTP_RESPONSE_STATUS_CODE, attributes.get(semconv.HTTP_STATUS_CODE_OLD))
    if isinstance(value, str) and value.isascii() and value.isdigit():  # "²".isdigit(), yet int() refuses it
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 999:
        return value
    return None


def flags_of(
    attributes: Mapping[str, Any], status_code: int, kind: str, has_exception: bool
) -> tuple[bool, bool, bool]:
    """(error, fault, throttle) for a span."""
    http_status = http_status_of(attributes)
    error = bool(attributes.get(semconv.ERROR)) or (http_status is not None and 400 <= http_status < 500)
    throttle = bool(attributes.get(semconv.THROTTLE)) or http_status == 429
    fault = bool(attributes.get(semconv.FAULT)) or (http_status is not None and http_status >= 500)
    if status_code == 2 and not (error or throttle or fault):
        # ERROR status with no 4xx to explain it: an unhandled exception or a server failure.
        fault = has_exception or kind == "SERVER" or http_status is None
    return error, fault, throttle


def _first_string(attributes: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], str) and value[0]:
            return value[0]
    return None


def aws_target(attributes: Mapping[str, Any]) -> tuple[str, str] | None:
    """The resource an AWS SDK span (opentelemetry-instrumentation-botocore and peers) calls."""
    service = _first_string(attributes, semconv.RPC_SERVICE) or ""
    node_type = SERVICE_TYPES_BY_LOWER.get(service.lower(), f"AWS::{service}" if service else "AWS")
    queue_url = _first_string(attributes, semconv.AWS_SQS_QUEUE_URL, "messaging.url")
    function = _first_string(attributes, semconv.AWS_LAMBDA_FUNCTION, "faas.invoked_name")
    name = (
        _first_string(attributes, semconv.AWS_DYNAMODB_TABLE_NAMES)
        or _first_string(attributes, semconv.AWS_S3_BUCKET)
        or (queue_url.rstrip("/").rsplit("/", 1)[-1] if queue_url else None)
        or _first_string(attributes, semconv.AWS_KINESIS_STREAM)
        or function
        or _first_string(attributes, semconv.MESSAGING_DESTINATION)
        or service
    )
    return (node_type, name) if name else None


def target_of(attributes: Mapping[str, Any], kind: str) -> tuple[str | None, str | None]:
    """(type, name) of the downstream a CLIENT or PRODUCER span calls."""
    explicit_type = attributes.get(semconv.TARGET_TYPE)
    explicit_name = attributes.get(semconv.TARGET_NAME)
    if isinstance(explicit_type, str) and isinstance(explicit_name, str):
        return explicit_type, explicit_name
    if kind not in ("CLIENT", "PRODUCER"):
        return None, None
    if attributes.get(semconv.RPC_SYSTEM) == "aws-api":
        found = aws_target(attributes)
        return found if found else (None, None)
    db_system = _first_string(attributes, semconv.DB_SYSTEM)
    if db_system:
        return "database", _first_string(attributes, "db.namespace", "db.name") or db_system
    messaging = _first_string(attributes, semconv.MESSAGING_SYSTEM)
    if messaging:
        return "queue", _first_string(attributes, semconv.MESSAGING_DESTINATION) or messaging
    peer = _first_string(attributes, semconv.PEER_SERVICE)
    if peer:
        return "service", peer
    host = _first_string(attributes, semconv.SERVER_ADDRESS, "net.peer.name")
    if host:
        return "remote", host  # as X-Ray names it: a port (a local service's is ephemeral) is no new node
    return None, None


def origin_of(attributes: Mapping[str, Any]) -> str | None:
    """X-Ray's origin: Fluoro's attribute, else AWS::Lambda::Function for FaaS invocations."""
    origin = attributes.get(semconv.ORIGIN)
    if isinstance(origin, str):
        return origin
    if attributes.get(semconv.FAAS_TRIGGER) or attributes.get(semconv.FAAS_INVOCATION_ID):
        return semconv.ORIGIN_LAMBDA_FUNCTION
    return None


def annotations_of(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Indexed annotations carried by a span's attributes."""
    found = {
        key[len(semconv.ANNOTATION_PREFIX) :]: value
        for key, value in attributes.items()
        if key.startswith(semconv.ANNOTATION_PREFIX)
        and len(key) > len(semconv.ANNOTATION_PREFIX)
        and isinstance(value, (str, int, float, bool))
    }
    listed = attributes.get(ANNOTATION_LIST_KEY)
    if isinstance(listed, (list, tuple)):
        for key in listed:
            value = attributes.get(key) if isinstance(key, str) else None
            if isinstance(value, (str, int, float, bool)):
                found.setdefault(key, value)
    return found


# Everything a span's row takes from its attributes, in SpanRow's order of those columns:
# http_method, http_route, http_url, http_status, http_user_agent, error, fault, throttle,
# cold_start, origin, target_type, target_name, function_version, user_id. A plain tuple: a
# NamedTuple's constructor cost the Python paths ~6% of their time.
SpanMeaning = tuple[
    str | None, str | None, str | None, int | None, str | None, bool, bool, bool,
    bool | None, str | None, str | None, str | None, str | None, str | None,
]  # fmt: skip


def span_meaning(
    attributes: Mapping[str, Any],
    kind: str,
    status_code: int,
    has_exception: bool,
    resource_version: str | None = None,
) -> SpanMeaning:
    """What a span means, from its attributes (and its resource's version)."""
    get = attributes.get
    error, fault, throttle = flags_of(attributes, status_code, kind, has_exception)
    target_type, target_name = target_of(attributes, kind)
    cold = get(semconv.FAAS_COLDSTART)
    return (
        _text(get(semconv.HTTP_REQUEST_METHOD) or get(semconv.HTTP_METHOD_OLD)),
        _text(get(semconv.HTTP_ROUTE)),
        _text(get(semconv.URL_FULL) or get(semconv.HTTP_URL_OLD) or get(semconv.URL_PATH)),
        http_status_of(attributes),
        _text(get(semconv.USER_AGENT) or get("http.user_agent")),
        error,
        fault,
        throttle,
        cold if isinstance(cold, bool) else None,
        origin_of(attributes),
        target_type,
        target_name,
        _text(get(semconv.FAAS_VERSION)) or resource_version,
        _text(get("enduser.id")),
    )


def sampling_weight_of(attributes: Mapping[str, Any]) -> float | None:
    """How many requests a span stands for in the map's request estimate: 0 for a span tail-keep
    kept (``fluoro.sampling`` = ``tail:...``; the head-sampled ones stand for the traces it
    dropped), its ``fluoro.sampling.weight`` when that is a number in [1, 2^20], else None (1)."""
    sampling = attributes.get(semconv.SAMPLING)
    if isinstance(sampling, str) and sampling.startswith("tail:"):
        return 0.0
    weight = attributes.get(semconv.SAMPLING_WEIGHT)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        return None
    return float(weight) if 1.0 <= weight <= MAX_SAMPLING_WEIGHT else None  # NaN fails both tests


def span_meaning_and_weight(
    attributes: Mapping[str, Any],
    kind: str,
    status_code: int,
    has_exception: bool,
    resource_version: str | None = None,
) -> tuple[Any, ...]:
    """span_meaning's answer and sampling_weight_of's, as the C decoder asks them in one call."""
    meaning = span_meaning(attributes, kind, status_code, has_exception, resource_version)
    return (*meaning, sampling_weight_of(attributes))


def resource_meaning(service: object, faas_version: object, service_version: object) -> tuple[str, str | None]:
    """(service, version) of a resource from its ``service.name``, ``faas.version`` and
    ``service.version`` values; every span of the resource repeats them, so they are capped."""
    version = faas_version or service_version
    return (
        service[:MAX_NAME_CHARS] if isinstance(service, str) and service else UNKNOWN_SERVICE,
        version[:MAX_NAME_CHARS] if isinstance(version, str) else None,
    )


def needs_annotations(attributes: Mapping[str, Any]) -> bool:
    """Cheap pre-check: most spans carry no annotation at all."""
    return ANNOTATION_LIST_KEY in attributes or any(key.startswith(semconv.ANNOTATION_PREFIX) for key in attributes)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
