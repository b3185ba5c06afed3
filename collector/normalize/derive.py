"""X-Ray's notions of a span, derived in this one place for every receiver.

Decoders only decode (decoded.py); this module says what a span means, from the facts they
read, the same way whether the span came as OTLP protobuf (C or Python), OTLP/JSON or an X-Ray
segment (xray.py states a segment's fields as the OpenTelemetry attributes they mean). Fluoro's
tracer writes ``fluoro.*`` attributes (tracer/semconv.py); any other SDK writes only the
semantic conventions; both land on the same map:

- service: the resource's ``service.name`` (else ``unknown_service``; a span of no resource,
  an X-Ray subsegment sent alone, belongs to none: ``""``); version: the span's
  ``faas.version``, else the resource's ``faas.version`` or ``service.version``;
- flags: ``fluoro.error|fault|throttle``, or the http status (4xx error, 429 throttle, 5xx
  fault); a span that ended in ERROR with no flag is a fault when it recorded an exception, is a
  SERVER span, or has no status to explain it;
- cold start: ``faas.coldstart``; origin: ``fluoro.origin``, else AWS::Lambda::Function for a
  FaaS invocation;
- the downstream a CLIENT or PRODUCER span calls: ``fluoro.target.*``, else the AWS SDK's
  attributes (``rpc.system = aws-api``), ``db.system`` (+ namespace), ``messaging.system``
  (+ destination), ``peer.service``, else the server address (+ port);
- annotations: ``fluoro.annotation.*`` and the keys an ``aws.xray.annotations`` list names.

Why numpy over the facts rather than a function per span: a request's spans are derived
together, each rule a few array operations (``bench/derive.py``: ~0.1 us a span against ~3 us
for a Python function per span), which lets the C decoder leave all meaning here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collector.model import ANNOTATION_SCHEMA, SPAN_SCHEMA, SpanBatch
from collector.normalize.decoded import ANNOTATION_FACT, FACT_KEY_INDEX, FACT_KEYS, DecodedBatch, ValueType
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
K = FACT_KEY_INDEX
# plain ints: numpy compares an IntEnum member ~10x slower than an int
NONE, STR, BOOL, INT, DOUBLE, ARRAY = (int(t) for t in ValueType if t <= ValueType.ARRAY)


def aws_node_type(service: str) -> str:
    """The node type of an AWS service as the SDK names it (rpc.service, X-Ray's name)."""
    return SERVICE_TYPES_BY_LOWER.get(service.lower(), f"AWS::{service}" if service else "AWS")


def queue_name(queue_url: str) -> str | None:
    """An SQS queue's name, the last part of its URL."""
    return queue_url.rstrip("/").rsplit("/", 1)[-1] or None


def http_status_number(text: str) -> int:
    """A status sent as a string: its number if ASCII digits ("²" is a digit to str.isdigit), else -1."""
    if not (text.isascii() and text.isdigit()):
        return -1
    significant = text.lstrip("0")  # int() takes any number of digits: a long one is no status either
    return int(significant or "0") if len(significant) <= 4 else 10_000


class Texts:
    """The strings derived columns are taken from: every fact's text, a null, then the constants
    and composed texts added. A derived string column is, until taken, one index per span."""

    def __init__(self, fact_texts: pa.Array) -> None:
        self._parts: list[pa.Array] = [fact_texts, pa.nulls(1, pa.string())]
        self.null = len(fact_texts)
        self._size = self.null + 1
        self._pool: pa.Array | None = None

    def add(self, texts: list[str | None] | pa.Array) -> np.ndarray:
        """Indices of `texts`, added (a None stays a null)."""
        array = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.string())
        start = self._size
        self._parts.append(array)
        self._size += len(array)
        self._pool = None
        return np.arange(start, self._size, dtype=np.int64)

    def column(self, index: np.ndarray) -> pa.Array:
        if self._pool is None:
            self._pool = pa.concat_arrays(self._parts)
        return self._pool.take(pa.array(index))


class SpanFacts:
    """The facts of a batch's spans, looked up by key: `at(key)` is, per span, the index of its
    fact of that key, or of a sentinel (type NONE, null text, falsy) where it has none."""

    def __init__(self, facts: pa.Table, span_count: int) -> None:
        rows = facts.num_rows
        self.span_count = span_count
        self.none = rows
        key = _values(facts.column("key"))
        # Each column with the sentinel after the facts. A null number or double is read as
        # whatever its slot holds: only a fact of the type that has one is ever asked for it.
        self.type: np.ndarray = np.append(_values(facts.column("type")), NONE)
        self.number: np.ndarray = np.append(_values(facts.column("number")), 0)
        self.real: np.ndarray = np.append(_values(facts.column("real")), 0.0)
        self.truthy: np.ndarray = np.append(_values(facts.column("truthy")), False)
        self.text = facts.column("text").combine_chunks()
        self.text_length: np.ndarray = np.append(_text_lengths(self.text), 0)
        self.is_string: np.ndarray = self.type == STR
        # a non-empty string, or an array whose first element is one
        self.has_first_string: np.ndarray = ((self.type == STR) | (self.type == ARRAY)) & (self.text_length > 0)
        self.row = _values(facts.column("row"))
        self.key = key
        self.names = facts.column("name").combine_chunks()
        self.texts = Texts(self.text)
        self._at: np.ndarray = np.full((len(FACT_KEYS), span_count), rows, np.int64)
        keyed = key != ANNOTATION_FACT
        self._at[key[keyed], self.row[keyed]] = np.flatnonzero(keyed)

    def at(self, key: str) -> np.ndarray:
        index: np.ndarray = self._at[K[key]]
        return index

    def present(self, key: str) -> np.ndarray:
        present: np.ndarray = self._at[K[key]] != self.none
        return present

    def truthy_of(self, key: str) -> np.ndarray:
        truthy: np.ndarray = self.truthy[self._at[K[key]]]
        return truthy

    def string_at(self, index: np.ndarray) -> np.ndarray:
        """`index` where its fact is a string, else the sentinel."""
        return np.where(self.is_string[index], index, self.none)

    def string(self, key: str) -> np.ndarray:
        return self.string_at(self._at[K[key]])

    def non_empty_string(self, key: str) -> np.ndarray:
        index: np.ndarray = self._at[K[key]]
        return np.where(self.is_string[index] & (self.text_length[index] > 0), index, self.none)

    def first_string(self, *keys: str) -> np.ndarray:
        """The first key holding a non-empty string, or an array whose first element is one."""
        found = np.full(self.span_count, self.none, np.int64)
        for key in reversed(keys):
            index = self._at[K[key]]
            found = np.where(self.has_first_string[index], index, found)
        return found

    def either(self, first: str, second: str) -> np.ndarray:
        """Python's ``get(first) or get(second)``, as a string."""
        return self.string_at(np.where(self.truthy_of(first), self.at(first), self.at(second)))

    def coalesce(self, *indices: np.ndarray) -> np.ndarray:
        found = indices[-1]
        for index in reversed(indices[:-1]):
            found = np.where(index != self.none, index, found)
        return found

    def mapped(self, index: np.ndarray, rule: Callable[[str], str | None]) -> np.ndarray:
        """Text indices of `rule` applied to the text at `index` (sentinel where it gives None)."""
        wanted = index != self.none
        result = np.full(self.span_count, self.none, np.int64)
        if not wanted.any():
            return result
        texts = self.text.take(pa.array(index[wanted]))
        distinct = pc.unique(texts)
        results = [rule(text) for text in distinct.to_pylist()]
        added = self.texts.add(results)
        added[[value is None for value in results]] = self.none
        result[wanted] = added[_numbers_of(pc.index_in(texts, value_set=distinct), 0)]
        return result

    def constant(self, text: str) -> int:
        return int(self.texts.add([text])[0])


def _numbers_of(values: pa.Array | pa.ChunkedArray, fill: object) -> np.ndarray:
    if values.null_count:
        values = pc.fill_null(values, fill)
    return np.asarray(values.to_numpy(zero_copy_only=False))


def _values(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed-width column's values as numpy, nulls read as their slots hold them (no copy for
    numbers: a fill costs ~10 us a column)."""
    array = column.combine_chunks()
    if array.null_count == 0 or pa.types.is_boolean(array.type):
        return _numbers_of(array, False)
    data = np.frombuffer(array.buffers()[1], dtype=array.type.to_pandas_dtype(), count=len(array) + array.offset)
    return data[array.offset :]


def _text_lengths(texts: pa.Array) -> np.ndarray:
    """Bytes of each string (0 for a null), from its offsets."""
    if len(texts) == 0:
        return np.zeros(0, np.int64)
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int32, count=len(texts) + 1 + texts.offset)[texts.offset :]
    return np.diff(offsets)


def _numbers(table: pa.Table, column: str, fill: object = 0) -> np.ndarray:
    return _numbers_of(table.column(column), fill)


def derive(decoded: DecodedBatch) -> SpanBatch:
    """The span rows of a decoded batch: every derived column, services and annotations."""
    spans = decoded.spans
    if any(column.num_chunks != 1 for column in spans.columns):
        spans = spans.combine_chunks()  # a large request the Python path built a chunk at a time
    count = spans.num_rows
    facts = SpanFacts(decoded.facts, count)
    kind = spans.column("kind")
    http_status = _http_status(facts)
    error, fault, throttle = _flags(facts, http_status, kind, spans)
    target_type, target_name = _target(facts, kind)
    services, versions = _resource_texts(decoded, facts)
    resource_index = spans.column("resource_index").combine_chunks()
    of_resource = _numbers_of(resource_index, len(versions) - 1)
    span_version = facts.non_empty_string(semconv.FAAS_VERSION)
    version = np.where(span_version != facts.none, span_version, versions[of_resource])
    lambda_origin = facts.truthy_of(semconv.FAAS_TRIGGER) | facts.truthy_of(semconv.FAAS_INVOCATION_ID)
    origin = facts.coalesce(
        facts.string(semconv.ORIGIN),
        np.where(lambda_origin, facts.constant(semconv.ORIGIN_LAMBDA_FUNCTION), facts.none),
    )
    cold = facts.at(semconv.FAAS_COLDSTART)
    url = np.where(
        facts.truthy_of(semconv.URL_FULL),
        facts.at(semconv.URL_FULL),
        np.where(facts.truthy_of(semconv.HTTP_URL_OLD), facts.at(semconv.HTTP_URL_OLD), facts.at(semconv.URL_PATH)),
    )
    texts = facts.texts
    derived: dict[str, pa.Array | pa.ChunkedArray] = {
        "service": services,
        "http_method": texts.column(facts.either(semconv.HTTP_REQUEST_METHOD, semconv.HTTP_METHOD_OLD)),
        "http_route": texts.column(facts.string(semconv.HTTP_ROUTE)),
        "http_url": texts.column(facts.string_at(url)),
        "http_status": pa.array(http_status, pa.uint16(), mask=http_status < 0),
        "http_user_agent": texts.column(facts.either(semconv.USER_AGENT, "http.user_agent")),
        "error": pa.array(error),
        "fault": pa.array(fault),
        "throttle": pa.array(throttle),
        "cold_start": pa.array(facts.number[cold] != 0, mask=facts.type[cold] != BOOL),
        "origin": texts.column(origin),
        "target_type": texts.column(target_type),
        "target_name": texts.column(target_name),
        "function_version": texts.column(version),
        "user_id": texts.column(facts.string("enduser.id")),
        "resource": _resources(decoded, resource_index),
    }
    columns = [derived[name] if name in derived else spans.column(name) for name in SPAN_SCHEMA.names]
    table = pa.table([_one_chunk(column) for column in columns], schema=SPAN_SCHEMA)
    return SpanBatch(
        spans=table,
        annotations=_annotations(facts, spans),
        links=decoded.links,
        rejected=decoded.rejected,
        rejection_reason=decoded.rejection_reason,
    )


def _one_chunk(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _http_status(facts: SpanFacts) -> np.ndarray:
    """Per span, the response status (100-999), else -1; the new key wins whenever present."""
    new = semconv.HTTP_RESPONSE_STATUS_CODE
    index = np.where(facts.present(new), facts.at(new), facts.at(semconv.HTTP_STATUS_CODE_OLD))
    status = np.where(facts.type[index] == INT, facts.number[index], -1)
    as_text = (facts.type[index] == STR) & (facts.text_length[index] > 0)
    if as_text.any():
        numbers = np.array([http_status_number(t) for t in facts.text.take(pa.array(index[as_text])).to_pylist()])
        status[as_text] = numbers
    return np.where((status >= 100) & (status <= 999), status, -1)


def _flags(
    facts: SpanFacts, http_status: np.ndarray, kind: pa.ChunkedArray, spans: pa.Table
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(error, fault, throttle) per span."""
    has_status = http_status >= 0
    error = facts.truthy_of(semconv.ERROR) | ((http_status >= 400) & (http_status < 500))
    throttle = facts.truthy_of(semconv.THROTTLE) | (http_status == 429)
    fault = facts.truthy_of(semconv.FAULT) | (http_status >= 500)
    # ERROR status with no 4xx to explain it: an unhandled exception or a server failure.
    unexplained = (_numbers(spans, "status_code") == 2) & ~(error | throttle | fault)
    if unexplained.any():
        server = _numbers_of(pc.equal(kind, "SERVER"), False)
        has_exception = _numbers(spans, "has_exception", False)
        fault = np.where(unexplained, has_exception | server | ~has_status, fault)
    return error, fault, throttle


def _target(facts: SpanFacts, kind: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(type, name) text indices of the downstream each span calls."""
    none = facts.none
    explicit_type, explicit_name = facts.string(semconv.TARGET_TYPE), facts.string(semconv.TARGET_NAME)
    explicit = (explicit_type != none) & (explicit_name != none)
    calls = ~explicit & _numbers_of(pc.is_in(kind, value_set=pa.array(["CLIENT", "PRODUCER"])), False)
    rpc = facts.string(semconv.RPC_SYSTEM)
    aws_api = (rpc != none) & calls
    if aws_api.any():
        rpc_text = facts.text.take(pa.array(rpc[aws_api]))
        aws_api[aws_api] = _numbers_of(pc.equal(rpc_text, "aws-api"), False)
    rest = calls & ~aws_api
    aws_type, aws_name = _aws_target(facts, aws_api)
    database = facts.first_string(semconv.DB_SYSTEM)
    queue = facts.first_string(semconv.MESSAGING_SYSTEM)
    peer = facts.first_string(semconv.PEER_SERVICE)
    host = facts.first_string(semconv.SERVER_ADDRESS, "net.peer.name")
    cases = [explicit, aws_api & (aws_name != none)]
    types, names = [explicit_type, aws_type], [explicit_name, aws_name]
    for found, type_name, name in (
        (database, "database", facts.coalesce(facts.first_string("db.namespace", "db.name"), database)),
        (queue, "queue", facts.coalesce(facts.first_string(semconv.MESSAGING_DESTINATION), queue)),
        (peer, "service", peer),
        (host, "remote", _remote_name(facts, host, rest)),
    ):
        case = rest & (found != none)
        rest = rest & ~case
        cases.append(case)
        types.append(np.full(facts.span_count, facts.constant(type_name)) if case.any() else found)
        names.append(name)
    return np.select(cases, types, none), np.select(cases, names, none)


def _aws_target(facts: SpanFacts, aws_api: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What an AWS SDK span (opentelemetry-instrumentation-botocore and peers) calls."""
    none = facts.none
    if not aws_api.any():
        return np.full(facts.span_count, none), np.full(facts.span_count, none)
    service = np.where(aws_api, facts.first_string(semconv.RPC_SERVICE), none)
    node_type = facts.mapped(service, aws_node_type)
    node_type = np.where(service == none, facts.constant("AWS"), node_type)
    queue_url = np.where(aws_api, facts.first_string(semconv.AWS_SQS_QUEUE_URL, "messaging.url"), none)
    name = facts.coalesce(
        facts.first_string(semconv.AWS_DYNAMODB_TABLE_NAMES),
        facts.first_string(semconv.AWS_S3_BUCKET),
        facts.mapped(queue_url, queue_name),
        facts.first_string(semconv.AWS_KINESIS_STREAM),
        facts.first_string(semconv.AWS_LAMBDA_FUNCTION, "faas.invoked_name"),
        facts.first_string(semconv.MESSAGING_DESTINATION),
        service,
    )
    return node_type, name


def _remote_name(facts: SpanFacts, host: np.ndarray, remote: np.ndarray) -> np.ndarray:
    """The server address, with ``:port`` when an integer port was recorded."""
    port = np.where(facts.present(semconv.SERVER_PORT), facts.at(semconv.SERVER_PORT), facts.at("net.peer.port"))
    with_port = remote & (host != facts.none) & (facts.type[port] == INT)
    if not with_port.any():
        return host
    joined = pc.binary_join_element_wise(
        facts.text.take(pa.array(host[with_port])), pa.array(facts.number[port[with_port]]).cast(pa.string()), ":"
    )
    named = host.copy()
    named[with_port] = facts.texts.add(joined)
    return named


def _resource_texts(decoded: DecodedBatch, facts: SpanFacts) -> tuple[pa.DictionaryArray, np.ndarray]:
    """The service column, and each resource's version as a text index (the last: no resource)."""
    count = decoded.resources.num_rows
    by_resource: list[dict[int, dict[str, object]]] = [{} for _ in range(count)]
    wanted = {K["service.name"], K[semconv.FAAS_VERSION], K["service.version"]}
    for fact in decoded.resource_facts.to_pylist():
        if fact["key"] in wanted:
            by_resource[fact["row"]][fact["key"]] = fact
    services: list[str] = []
    versions: list[str | None] = []
    for found in by_resource:
        service = found.get(K["service.name"], {})
        text = service.get("text") if service.get("type") == STR else None
        services.append(text[:MAX_NAME_CHARS] if isinstance(text, str) and text else UNKNOWN_SERVICE)
        # faas.version, else service.version: a truthy value wins the `or`
        version = found.get(K[semconv.FAAS_VERSION], {})
        if not version.get("truthy"):
            version = found.get(K["service.version"], {})
        text = version.get("text") if version.get("type") == STR else None
        versions.append(text[:MAX_NAME_CHARS] if isinstance(text, str) else None)
    indices = decoded.spans.column("resource_index").combine_chunks()
    service_column = pa.DictionaryArray.from_arrays(
        pc.fill_null(indices, count), pa.array([*services, ""], pa.string())
    )
    version_index = np.append(facts.texts.add(versions), facts.none)
    version_index[[v is None for v in [*versions, None]]] = facts.none
    return service_column, version_index


def _resources(decoded: DecodedBatch, resource_index: pa.Array) -> pa.DictionaryArray:
    """The resource column: its JSON, shared by its spans (null where not stored)."""
    json = decoded.resources.column("json").combine_chunks()
    index = _numbers_of(resource_index, 0)
    stored = _numbers_of(pc.is_valid(resource_index), False)
    if len(json):
        stored &= _numbers_of(pc.is_valid(json), False)[index]
    else:
        stored[:] = False
    return pa.DictionaryArray.from_arrays(pa.array(index, pa.int32(), mask=~stored), pc.fill_null(json, ""))


def _annotations(facts: SpanFacts, spans: pa.Table) -> pa.Table:
    """The annotations table: each annotation fact holding a string, number or bool."""
    kind = facts.type[:-1]
    chosen = np.flatnonzero(
        (facts.key == ANNOTATION_FACT) & ((kind == STR) | (kind == BOOL) | (kind == INT) | (kind == DOUBLE))
    )
    rows = pa.array(facts.row[chosen])
    kinds = kind[chosen]
    numbers = np.where(kinds == INT, facts.number[chosen].astype(np.float64), facts.real[chosen])
    texts = facts.text.take(pa.array(chosen))
    return pa.table(
        [
            spans.column("trace_id").take(rows),
            spans.column("span_id").take(rows),
            spans.column("start_ns").take(rows),
            facts.names.take(pa.array(chosen)),
            pc.if_else(pa.array(kinds == STR), texts, pa.scalar(None, pa.string())),
            pa.array(numbers, pa.float64(), mask=(kinds != INT) & (kinds != DOUBLE)),
            pa.array(facts.number[chosen] != 0, pa.bool_(), mask=kinds != BOOL),
        ],
        schema=ANNOTATION_SCHEMA,
    )
