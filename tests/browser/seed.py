"""Known traces for the browser tests, sent with the stock OpenTelemetry SDK over OTLP/HTTP.

An API Gateway stage calls a Lambda function that writes DynamoDB; one request faults, one is
throttled by DynamoDB, the first is a cold start with its Initialization span; the function
sends a message that a consumer picks up (an async hop); the faulting one writes log records
through Python's logging and the SDK's OTLP log exporter, one of them an XSS payload; and a
service whose name is an XSS payload, which every page must show as plain characters.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind

XSS: Final = "<img src=x onerror=alert(1)>"
REQUESTS: Final = 6


def _tracer(traces_url: str, service: str) -> tuple[TracerProvider, trace.Tracer]:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
    return provider, provider.get_tracer("browser-seed")


def _logger(traces_url: str, service: str) -> tuple[LoggerProvider, logging.Logger]:
    """Python logging into OTLP log records (with the span they are written in), over OTLP/HTTP."""
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=traces_url.replace("/v1/traces", "/v1/logs")))
    )
    logger = logging.getLogger(f"browser-seed.{service}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.handlers = [LoggingHandler(logger_provider=provider)]
    return provider, logger


def seed(traces_url: str) -> dict[str, str]:
    """Sends the traces; returns trace ids by role ("fault", "throttle", "cold", "ok", "xss")."""
    log_provider, log = _logger(traces_url, "withdraw")
    providers = {name: _tracer(traces_url, name) for name in ("bank-api", "withdraw", "notify", XSS)}
    api, fn, notify, hostile = (providers[n][1] for n in ("bank-api", "withdraw", "notify", XSS))
    ids: dict[str, str] = {}
    for i in range(REQUESTS):
        fault, throttled, cold = i == 1, i == 2, i == 0
        status = 500 if fault else 429 if throttled else 200
        with api.start_as_current_span("POST /withdraw", kind=SpanKind.SERVER) as root:
            root.set_attributes(
                {
                    "fluoro.origin": "AWS::ApiGateway::Stage",
                    "http.response.status_code": status,
                    "http.request.method": "POST",
                    "url.full": "https://bank.local/prod/withdraw",
                }
            )
            if cold:
                with fn.start_as_current_span("Initialization") as init:
                    init.set_attribute("fluoro.origin", "AWS::Lambda::Function")
                    time.sleep(0.03)
            send = _handler(fn, log, i, cold=cold, throttled=throttled, fault=fault)
        with notify.start_as_current_span(
            "deliver",
            kind=SpanKind.CONSUMER,
            context=trace.set_span_in_context(trace.INVALID_SPAN),
            links=[Link(send.get_span_context())],
        ):
            pass
        role = "fault" if fault else "throttle" if throttled else "cold" if cold else "ok"
        ids[role] = f"{root.get_span_context().trace_id:032x}"
    with hostile.start_as_current_span(XSS, kind=SpanKind.SERVER) as bad:
        hostile_attributes: dict[str, str | int] = {
            "http.response.status_code": 200,
            "fluoro.annotation.note": XSS,
            XSS: XSS,
        }
        bad.set_attributes({**hostile_attributes, "fluoro.sampling": f"tail:{XSS}"})
    ids["xss"] = f"{bad.get_span_context().trace_id:032x}"
    for provider, _ in providers.values():
        provider.shutdown()
    log_provider.shutdown()
    return ids


def _handler(fn: trace.Tracer, log: logging.Logger, i: int, *, cold: bool, throttled: bool, fault: bool) -> trace.Span:
    """The function's span and its calls (DynamoDB, an SQS message); returns the producer span."""
    with fn.start_as_current_span("withdraw", kind=SpanKind.SERVER) as handler:
        handler.set_attributes(
            {
                "fluoro.origin": "AWS::Lambda::Function",
                "faas.coldstart": cold,
                "faas.trigger": "http",
                "fluoro.annotation.customer": f"c{i}",
            }
        )
        with fn.start_as_current_span("DynamoDB.UpdateItem", kind=SpanKind.CLIENT) as ddb:
            ddb.set_attributes({"fluoro.target.type": "AWS::DynamoDB::Table", "fluoro.target.name": "accounts"})
            if throttled:
                ddb.set_attributes({"fluoro.throttle": True, "fluoro.error": True})
                handler.set_attributes({"fluoro.throttle": True, "fluoro.error": True})
        if fault:
            log.info("debiting account c%d", i)
            log.error("ledger unavailable: %s", XSS)
            handler.set_attribute("fluoro.fault", True)
            handler.add_event(
                "exception",
                {
                    "exception.type": "LedgerError",
                    "exception.message": "ledger unavailable",
                    "exception.stacktrace": "Traceback: ledger.py line 7",
                },
            )
        with fn.start_as_current_span("notify", kind=SpanKind.PRODUCER) as send:
            send.set_attributes({"fluoro.target.type": "AWS::SQS::Queue", "fluoro.target.name": "alerts"})
    return send
