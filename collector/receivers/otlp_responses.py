"""The Export responses of OTLP's trace and logs services, with partial success, in either encoding.

The two services answer alike but name what they refused differently (``rejected_spans``,
``rejected_log_records``); HTTP and gRPC both answer through here.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse


def export_response_bytes(signal: str, rejected: int, reason: str) -> bytes:
    """The protobuf Export response of `signal` ("traces" or "logs")."""
    if signal == "logs":
        logs = ExportLogsServiceResponse()
        if rejected:
            logs.partial_success.rejected_log_records = rejected
            logs.partial_success.error_message = reason
        return bytes(logs.SerializeToString())
    traces = ExportTraceServiceResponse()
    if rejected:
        traces.partial_success.rejected_spans = rejected
        traces.partial_success.error_message = reason
    return bytes(traces.SerializeToString())


def export_response_json(signal: str, rejected: int, reason: str) -> dict[str, Any]:
    """The OTLP/JSON Export response of `signal`."""
    if not rejected:
        return {}
    field = "rejectedLogRecords" if signal == "logs" else "rejectedSpans"
    return {"partialSuccess": {field: rejected, "errorMessage": reason}}
