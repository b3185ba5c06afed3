"""OTLP log records: decoded from protobuf and JSON alike, a bad record refused alone, their times
checked, stored beside spans, read back by trace, replayed from the ingest log, kept as long."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from collector.normalize.admission import LOG_TOO_NEW, LOG_TOO_OLD, TimeBounds, admit
from collector.normalize.otel import MAX_JSON_CHARS
from collector.normalize.otlp_logs import decode_logs_json, decode_logs_protobuf
from collector.normalize.otlp_proto import UndecodableBody
from collector.query.trace_logs import severity_name
from collector.receivers.otlp_intake import JSON, LOGS, PROTOBUF, decode_logged_request, logged_request
from collector.storage.duckdb_store import DuckDBStore

TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
SPAN = bytes.fromhex("00f067aa0ba902b7")


def text(value: str) -> AnyValue:
    return AnyValue(string_value=value)


def record(**fields: object) -> LogRecord:
    defaults: dict[str, object] = {
        "time_unix_nano": time.time_ns(),
        "severity_number": 9,
        "severity_text": "INFO",
        "body": text("charged c1"),
        "trace_id": TRACE,
        "span_id": SPAN,
        "attributes": [KeyValue(key="customer", value=text("c1"))],
    }
    return LogRecord(**{**defaults, **fields})  # type: ignore[arg-type]


def protobuf_request(*records: LogRecord, service: str = "checkout") -> bytes:
    resource = Resource(attributes=[KeyValue(key="service.name", value=text(service))])
    logs = ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=list(records))])
    return bytes(ExportLogsServiceRequest(resource_logs=[logs]).SerializeToString())


def json_request(*records: dict[str, object], service: str = "checkout") -> bytes:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return orjson.dumps({"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": list(records)}]}]})


def json_record(**fields: object) -> dict[str, object]:
    return {
        "timeUnixNano": str(time.time_ns()),
        "severityNumber": 9,
        "severityText": "INFO",
        "body": {"stringValue": "charged c1"},
        "traceId": TRACE.hex().upper(),
        "spanId": SPAN.hex(),
        "attributes": [{"key": "customer", "value": {"stringValue": "c1"}}],
        **fields,
    }


def rows(body: bytes, media: str = PROTOBUF) -> list[dict[str, object]]:
    batch = decode_logs_protobuf(body) if media == PROTOBUF else decode_logs_json(body)
    found: list[dict[str, object]] = batch.logs.to_pylist()
    return found


def test_both_encodings_give_the_same_rows() -> None:
    now = time.time_ns()
    from_protobuf = rows(protobuf_request(record(time_unix_nano=now)))
    from_json = rows(json_request(json_record(timeUnixNano=str(now))), JSON)
    assert from_protobuf == from_json
    (row,) = from_protobuf
    assert row["trace_id"] == uuid.UUID(bytes=TRACE) and row["span_id"] == int.from_bytes(SPAN, "big")
    assert (row["service"], row["severity_number"], row["severity_text"], row["body"]) == (
        "checkout", 9, "INFO", "charged c1"
    )  # fmt: skip
    assert orjson.loads(str(row["attributes"])) == {"customer": "c1"}


def test_a_structured_body_is_json_and_a_long_one_is_cut() -> None:
    structured = AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="event", value=text("charge"))]))
    long_text = "x" * (MAX_JSON_CHARS + 10)
    (first, second) = rows(protobuf_request(record(body=structured), record(body=text(long_text))))
    assert orjson.loads(str(first["body"])) == {"event": "charge"}
    assert str(second["body"]).startswith("x" * 100) and str(second["body"]).endswith(
        f"({len(long_text):,} characters)"
    )


def test_time_falls_back_to_the_observed_time_and_no_ids_is_no_span() -> None:
    observed = time.time_ns()
    (row,) = rows(
        protobuf_request(record(time_unix_nano=0, observed_time_unix_nano=observed, trace_id=b"", span_id=b""))
    )
    assert row["time_ns"] == observed and row["trace_id"] is None and row["span_id"] is None


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"time_unix_nano": 0}, "needs a time"),
        ({"trace_id": b"\x01" * 15}, "trace_id must be 16 bytes"),
        ({"span_id": b"\x01" * 9}, "trace_id must be 16 bytes and span_id 8"),
        ({"severity_number": 99}, "severity_number must lie within 0-24"),
        ({"time_unix_nano": 2**64 - 1}, "within int64"),
    ],
)
def test_a_bad_record_is_refused_alone_with_its_reason(bad: dict[str, object], reason: str) -> None:
    batch = decode_logs_protobuf(protobuf_request(record(**bad), record()))
    assert batch.logs.num_rows == 1 and batch.rejected == 1 and reason in batch.rejection_reason


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"traceId": "zz" * 16}, "traceId is not hex"),
        ({"spanId": "00f0"}, "spanId must be 16 hex characters"),
        ({"timeUnixNano": "soon"}, "timeUnixNano must be an integer"),
        ({"severityNumber": True}, "severityNumber must be an integer"),
        ({"severityText": 5}, "severityText must be a string"),
        ({"attributes": {"a": 1}}, "attributes must be a list"),
    ],
)
def test_a_bad_json_record_is_refused_alone_with_its_reason(bad: dict[str, object], reason: str) -> None:
    batch = decode_logs_json(json_request(json_record(**bad), json_record()))
    assert batch.logs.num_rows == 1 and batch.rejected == 1 and reason in batch.rejection_reason


@pytest.mark.parametrize("body", [b"\xff\x01garbage", b"\x0a\x05\x0a\x03\xff\xff"])
def test_bytes_that_are_no_request_are_undecodable(body: bytes) -> None:
    with pytest.raises(UndecodableBody):
        decode_logs_protobuf(body)


@pytest.mark.parametrize("body", [b"{", b"[]", b'{"resourceLogs": [1]}'])
def test_json_that_is_no_request_is_undecodable(body: bytes) -> None:
    with pytest.raises(UndecodableBody):
        decode_logs_json(body)


def test_records_with_unbelievable_times_are_refused_with_the_reason() -> None:
    now = time.time_ns()
    batch = decode_logs_protobuf(
        protobuf_request(
            record(time_unix_nano=now - 10 * 86400 * 10**9), record(time_unix_nano=now + 2 * 3600 * 10**9), record()
        )
    )
    admitted = admit(batch, TimeBounds(retention_s=7 * 86400), now)
    assert admitted.batch.logs.num_rows == 1 and admitted.batch.rejected == 2
    assert admitted.rejected_by_reason == {LOG_TOO_OLD: 1, LOG_TOO_NEW: 1}


def test_a_logged_request_replays_to_the_same_records() -> None:
    for media, body in ((PROTOBUF, protobuf_request(record())), (JSON, json_request(json_record()))):
        replayed = decode_logged_request(logged_request(LOGS, media, body))
        assert replayed.logs.num_rows == 1 and replayed.span_count == 0


def test_records_are_stored_read_by_trace_and_kept_as_long_as_spans(tmp_path: Path) -> None:
    store = DuckDBStore(str(tmp_path / "logs.duckdb"))
    now = time.time_ns()
    other = bytes.fromhex("11" * 16)
    try:
        store.write(
            [
                decode_logs_protobuf(
                    protobuf_request(
                        record(time_unix_nano=now - 3600 * 10**9, body=text("old")),
                        record(time_unix_nano=now, severity_number=17, severity_text="", body=text("declined")),
                        record(time_unix_nano=now, trace_id=other, body=text("elsewhere")),
                    )
                )
            ]
        )
        logs = store.reader.trace_logs(TRACE, 10)
        assert [(log.body, log.span_id, log.severity_number) for log in logs] == [
            ("old", SPAN.hex(), 9), ("declined", SPAN.hex(), 17)
        ]  # fmt: skip
        assert severity_name(logs[1].severity_number) == "ERROR" and logs[0].attributes == {"customer": "c1"}
        assert len(store.reader.trace_logs(TRACE, 1)) == 1
        store.delete_older_than(now - 60 * 10**9)
        assert [log.body for log in store.reader.trace_logs(TRACE, 10)] == ["declined"]
    finally:
        store.close()
