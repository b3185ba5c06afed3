"""AWS SDK (botocore) client spans with X-Ray's notions, and trace context on async hops.

opentelemetry-instrumentation-botocore makes the spans and puts the X-Ray header on every AWS
HTTP request. Fluoro's hooks add what X-Ray shows and OTel does not:

- the downstream as a target the service map can draw (DynamoDB table, S3 bucket, SQS queue,
  Kinesis stream, EventBridge bus, Lambda function, state machine, SNS topic);
- error/fault/throttle from the response (throttling error codes, 429, 5xx, Lambda's
  FunctionError);
- the trace context on the messages themselves, so the consumer can link to the producer
  after the hop: SQS ``AWSTraceHeader`` system attribute, EventBridge entries' ``TraceHeader``,
  and a ``_fluoro_trace`` object in JSON-object Kinesis records (see tracer.events);
- in Lambda, the call's own span in the ``X-Amzn-Trace-Id`` header, where botocore would copy
  the invocation's (``prefer_the_call_span``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Final
from urllib.parse import unquote

import wrapt
from opentelemetry import trace as trace_api
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tracer import semconv
from tracer.events import KINESIS_CARRIER_KEY
from tracer.propagation import xray_header
from tracer.runtime import ACTIVE, Tracing
from tracer.taxonomy import THROTTLING_ERROR_CODES, mark_http_status

_logger = logging.getLogger(__name__)
_W3C = TraceContextTextMapPropagator()
MAX_KINESIS_RECORD_BYTES: Final = 1024 * 1024


def _last_segment(value: str, separator: str) -> str:
    return value.rstrip(separator).rsplit(separator, 1)[-1]


def aws_target(service: str, params: Mapping[str, Any]) -> tuple[str, str] | None:
    """(type, name) of the resource an AWS call addresses, as X-Ray names the node."""
    if service == "dynamodb":
        table = params.get("TableName") or next(iter(params.get("RequestItems") or {}), None)
        return ("AWS::DynamoDB::Table", str(table)) if table else ("AWS::DynamoDB", "DynamoDB")
    if service == "s3":
        bucket = params.get("Bucket")
        return ("AWS::S3::Bucket", str(bucket)) if bucket else ("AWS::S3", "S3")
    if service == "sqs" and params.get("QueueUrl"):
        return "AWS::SQS::Queue", _last_segment(str(params["QueueUrl"]), "/")
    if service == "kinesis" and (params.get("StreamName") or params.get("StreamARN")):
        name = params.get("StreamName") or _last_segment(str(params["StreamARN"]), "/")
        return "AWS::Kinesis::Stream", str(name)
    if service == "lambda" and params.get("FunctionName"):
        name = str(params["FunctionName"])
        if name.startswith("arn:"):
            name = name.split(":")[6]
        return "AWS::Lambda::Function", name.split(":")[0]
    if service == "events":
        entries = params.get("Entries") or [{}]
        bus = (entries[0] if isinstance(entries[0], Mapping) else {}).get("EventBusName") or "default"
        return "AWS::Events::EventBus", _last_segment(str(bus), "/")
    if service in ("stepfunctions", "sfn") and params.get("stateMachineArn"):
        return "AWS::StepFunctions::StateMachine", _last_segment(str(params["stateMachineArn"]), ":")
    if service == "sns" and params.get("TopicArn"):
        return "AWS::SNS::Topic", _last_segment(str(params["TopicArn"]), ":")
    return None


def _with_kinesis_carrier(data: Any, carrier: Mapping[str, str]) -> Any:
    """`data` with the carrier added when it is a JSON object; anything else is left alone."""
    raw = data.encode() if isinstance(data, str) else data
    if not isinstance(raw, (bytes, bytearray)) or len(raw) > MAX_KINESIS_RECORD_BYTES:
        return data
    if not raw.lstrip().startswith(b"{"):
        return data
    try:
        document = json.loads(raw)
    except ValueError:
        return data
    if not isinstance(document, dict):
        return data
    document[KINESIS_CARRIER_KEY] = dict(carrier)
    encoded = json.dumps(document, separators=(",", ":")).encode()
    return encoded.decode() if isinstance(data, str) else encoded


def inject_into_messages(span: trace_api.Span, service: str, operation: str, params: MutableMapping[str, Any]) -> None:
    """Put the producer span's context on the messages an SQS, EventBridge or Kinesis call sends."""
    context = span.get_span_context()
    if not context.is_valid:
        return
    header = xray_header(context)
    if service == "sqs" and operation in ("SendMessage", "SendMessageBatch"):
        entries = [params] if operation == "SendMessage" else params.get("Entries") or []
        for entry in entries:
            system = entry.setdefault("MessageSystemAttributes", {})
            system.setdefault(semconv.XRAY_SQS_ATTRIBUTE, {"DataType": "String", "StringValue": header})
    elif service == "events" and operation == "PutEvents":
        for entry in params.get("Entries") or []:
            entry.setdefault("TraceHeader", header)
    elif service == "kinesis" and operation in ("PutRecord", "PutRecords"):
        carrier: dict[str, str] = {semconv.XRAY_HEADER: header}
        _W3C.inject(carrier, trace_api.set_span_in_context(span))
        records = [params] if operation == "PutRecord" else params.get("Records") or []
        for record in records:
            if "Data" in record:
                record["Data"] = _with_kinesis_carrier(record["Data"], carrier)


def aws_request_hook(span: trace_api.Span, service: str, operation: str, params: Any) -> None:
    """Target attributes and message injection, before the call."""
    try:
        if not isinstance(params, MutableMapping):
            return
        target = aws_target(service, params)
        if target is not None and span.is_recording():
            span.set_attribute(semconv.TARGET_TYPE, target[0])
            span.set_attribute(semconv.TARGET_NAME, target[1])
        inject_into_messages(span, service, operation, params)
    except Exception:
        _logger.exception("fluoro: AWS request hook failed")


def aws_response_hook(span: trace_api.Span, service: str, operation: str, result: Any) -> None:
    """error/fault/throttle from the response or the error response."""
    try:
        if not isinstance(result, Mapping) or not span.is_recording():
            return
        status = (result.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        if isinstance(status, int):
            mark_http_status(span, status, SpanKind.CLIENT)
        code = (result.get("Error") or {}).get("Code")
        if code in THROTTLING_ERROR_CODES:
            span.set_attribute(semconv.THROTTLE, True)
            span.set_attribute(semconv.ERROR, True)
        if result.get("FunctionError"):
            span.set_attribute(semconv.FAULT, True)
    except Exception:
        _logger.exception("fluoro: AWS response hook failed")


def instrument_aws(tracing: Tracing | None = None) -> bool:
    """Trace every botocore/boto3 call through `tracing` (default: the active pipeline)."""
    tracing = tracing or ACTIVE.tracing
    if tracing is None:
        _logger.warning("fluoro: instrument_aws() called before configure(); nothing to do")
        return False
    instrumentor = BotocoreInstrumentor()  # type: ignore[no-untyped-call]
    if instrumentor.is_instrumented_by_opentelemetry:
        uninstrument_aws()
    instrumentor.instrument(
        tracer_provider=tracing.provider, request_hook=aws_request_hook, response_hook=aws_response_hook
    )
    wrapt.wrap_function_wrapper("botocore.endpoint", "Endpoint.prepare_request", prefer_the_call_span)
    return True


def prefer_the_call_span(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """Drop the X-Ray header botocore copied from Lambda's ``_X_AMZN_TRACE_ID`` (its recursion
    detection), so the instrumentation puts the call's own span there instead: what S3 passes on
    with an event notification then names the upload, not the whole invocation."""
    try:
        request = args[0]
        header = request.headers.get(semconv.XRAY_HEADER)
        from_environment = os.environ.get(semconv.LAMBDA_TRACE_ENV)
        ours = trace_api.get_current_span().get_span_context().is_valid
        if ours and header and from_environment and unquote(str(header)) == from_environment:
            del request.headers[semconv.XRAY_HEADER]
    except Exception:
        _logger.exception("fluoro: could not replace the recursion-detection header")
    return wrapped(*args, **kwargs)


def uninstrument_aws() -> None:
    """Undo instrument_aws()."""
    endpoint = getattr(sys.modules.get("botocore.endpoint"), "Endpoint", None)  # wrapped only if imported
    if getattr(getattr(endpoint, "prepare_request", None), "_self_wrapper", None) is prefer_the_call_span:
        unwrap(endpoint, "prepare_request")
    instrumentor = BotocoreInstrumentor()  # type: ignore[no-untyped-call]
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
