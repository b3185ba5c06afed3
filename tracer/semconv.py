"""Attribute names Fluoro writes on spans, shared by the tracer and the collector.

OpenTelemetry's semantic conventions are used where they exist (``faas.*``, ``http.*``,
``aws.*``, ``cloud.*``); the X-Ray notions that OpenTelemetry has no name for live under
``fluoro.*``. The collector imports this module (and only this module) from ``tracer`` so both
sides agree on the spelling.
"""

from __future__ import annotations

from typing import Final

# X-Ray's error taxonomy: error = 4xx, throttle = 429 or a throttling exception,
# fault = 5xx or an unhandled exception. They can combine (a 429 is error and throttle).
ERROR: Final = "fluoro.error"
FAULT: Final = "fluoro.fault"
THROTTLE: Final = "fluoro.throttle"

# Why a span was exported: "head" (head sampling kept its trace) or "tail:REASON" (tail-keep
# kept a trace head sampling dropped: tail:error, tail:throttle, tail:cold_start, tail:slow), and
# for head-sampled spans below 100%, how many requests each stands for (tracer/sampling_weight.py).
SAMPLING: Final = "fluoro.sampling"
SAMPLING_WEIGHT: Final = "fluoro.sampling.weight"
# An API Gateway stage's kind of API, REST or HTTP (they are priced apart): on the stage's span.
APIGATEWAY_API_TYPE: Final = "fluoro.apigateway.api_type"
# OpenTelemetry's host.arch (amd64, arm64): a Lambda function's architecture, priced apart.
HOST_ARCH: Final = "host.arch"

# X-Ray's origin, e.g. AWS::Lambda::Function or AWS::ApiGateway::Stage.
ORIGIN: Final = "fluoro.origin"
# The downstream a client span calls, as the service map names it: e.g. type
# AWS::DynamoDB::Table, name "accounts".
TARGET_TYPE: Final = "fluoro.target.type"
TARGET_NAME: Final = "fluoro.target.name"

# X-Ray annotations (indexed, filterable) and metadata (free-form JSON) are span attributes
# under these prefixes: ``fluoro.annotation.customer`` = "c1";
# ``fluoro.metadata.default.order`` = '{"id": 7}' (JSON text).
ANNOTATION_PREFIX: Final = "fluoro.annotation."
METADATA_PREFIX: Final = "fluoro.metadata."

# The response body captured by @traced(capture_response=True), JSON text, size-capped.
RESPONSE: Final = "fluoro.response"

# The init phase of a cold start, as X-Ray names its subsegment.
INITIALIZATION_SPAN_NAME: Final = "Initialization"
INVOCATION_SPAN_NAME: Final = "Invocation"
OVERHEAD_SPAN_NAME: Final = "Overhead"
IMPORT_MODULE: Final = "fluoro.import.module"

# OpenTelemetry FaaS semantic conventions.
FAAS_TRIGGER: Final = "faas.trigger"
FAAS_INVOCATION_ID: Final = "faas.invocation_id"
FAAS_NAME: Final = "faas.name"
FAAS_VERSION: Final = "faas.version"
FAAS_COLDSTART: Final = "faas.coldstart"
FAAS_INSTANCE: Final = "faas.instance"
FAAS_MAX_MEMORY: Final = "faas.max_memory"
CLOUD_RESOURCE_ID: Final = "cloud.resource_id"
CLOUD_PROVIDER: Final = "cloud.provider"
# The upstream event source, e.g. aws:sqs or aws.events, on handler spans.
EVENT_SOURCE: Final = "fluoro.event.source"

# OpenTelemetry HTTP semantic conventions (stable names).
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
HTTP_ROUTE: Final = "http.route"
URL_PATH: Final = "url.path"
URL_QUERY: Final = "url.query"
URL_SCHEME: Final = "url.scheme"
URL_FULL: Final = "url.full"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
CLIENT_ADDRESS: Final = "client.address"
USER_AGENT: Final = "user_agent.original"
# Older names some instrumentations still write; the collector reads both.
HTTP_METHOD_OLD: Final = "http.method"
HTTP_STATUS_CODE_OLD: Final = "http.status_code"
HTTP_URL_OLD: Final = "http.url"

# AWS SDK conventions written by opentelemetry-instrumentation-botocore.
RPC_SYSTEM: Final = "rpc.system"
RPC_SERVICE: Final = "rpc.service"
RPC_METHOD: Final = "rpc.method"
AWS_REQUEST_ID: Final = "aws.request_id"
AWS_DYNAMODB_TABLE_NAMES: Final = "aws.dynamodb.table_names"
AWS_S3_BUCKET: Final = "aws.s3.bucket"
AWS_SQS_QUEUE_URL: Final = "aws.sqs.queue_url"
AWS_KINESIS_STREAM: Final = "aws.kinesis.stream_name"
AWS_LAMBDA_FUNCTION: Final = "aws.lambda.function_name"
AWS_EVENTBRIDGE_BUS: Final = "aws.eventbridge.event_bus"
AWS_STEPFUNCTIONS_ARN: Final = "aws.step_functions.state_machine.arn"
MESSAGING_SYSTEM: Final = "messaging.system"
MESSAGING_DESTINATION: Final = "messaging.destination.name"
DB_SYSTEM: Final = "db.system"
PEER_SERVICE: Final = "peer.service"
# Names for addresses (``host[:port]=name,...``), the OpenTelemetry Java agent's setting.
PEER_SERVICE_MAPPING_ENV: Final = "OTEL_INSTRUMENTATION_COMMON_PEER_SERVICE_MAPPING"

# The X-Ray trace header, used by API Gateway, Lambda and SQS (``AWSTraceHeader``).
XRAY_HEADER: Final = "X-Amzn-Trace-Id"
XRAY_SQS_ATTRIBUTE: Final = "AWSTraceHeader"
LAMBDA_TRACE_ENV: Final = "_X_AMZN_TRACE_ID"

# Origins Fluoro writes (X-Ray's segment origin values).
ORIGIN_LAMBDA_FUNCTION: Final = "AWS::Lambda::Function"
ORIGIN_LAMBDA_SERVICE: Final = "AWS::Lambda"
ORIGIN_API_GATEWAY: Final = "AWS::ApiGateway::Stage"
ORIGIN_STATE_MACHINE: Final = "AWS::StepFunctions::StateMachine"
ORIGIN_CLOUDFRONT: Final = "AWS::CloudFront::Distribution"
