"""Arguments win over OTEL_* variables, which win over defaults."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading

import pytest
from opentelemetry.sdk.resources import Resource

import tracer
from tracer.runtime import build_resource
from tracer.settings import MAX_BATCH_DELAY_MS, MAX_COUNT_LIMIT, MAX_QUEUE_SPANS, parse_key_value_list, resolve_settings


def test_defaults() -> None:
    settings = resolve_settings({})
    assert settings.service_name == "unknown_service"
    assert settings.traces_endpoint == "http://127.0.0.1:4318/v1/traces"
    assert settings.sampler == "parentbased_always_on"
    assert settings.propagators == ("tracecontext", "baggage", "xray")
    assert not settings.disabled and not settings.lambda_environment


def test_environment() -> None:
    settings = resolve_settings(
        {
            "OTEL_SERVICE_NAME": "orders",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=dev,team=pay%20ments",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc,x-tenant=t1",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_PROPAGATORS": "tracecontext, xray",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "AWS_LAMBDA_FUNCTION_NAME": "orders-fn",
        }
    )
    assert settings.service_name == "orders"
    # in a Lambda environment, its architecture as OpenTelemetry names it (Lambda prices arm64 apart)
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    assert settings.resource_attributes == {"deployment.environment": "dev", "team": "pay ments", "host.arch": arch}
    assert settings.traces_endpoint == "http://collector:4318/v1/traces"
    assert settings.headers == {"authorization": "Bearer abc", "x-tenant": "t1"}
    assert settings.compression == "gzip"
    assert (settings.sampler, settings.sampler_arg) == ("parentbased_traceidratio", "0.25")
    assert settings.propagators == ("tracecontext", "xray")
    assert settings.batch_delay_ms == 200
    assert settings.lambda_environment


def test_signal_endpoint_is_verbatim_and_arguments_win() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://a:1/custom",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:2",
        "OTEL_SERVICE_NAME": "env-name",
    }
    assert resolve_settings(env).traces_endpoint == "http://a:1/custom"
    explicit = resolve_settings(env, service_name="arg-name", endpoint="http://c:3/v1/traces")
    assert (explicit.service_name, explicit.traces_endpoint) == ("arg-name", "http://c:3/v1/traces")
    assert resolve_settings({"AWS_LAMBDA_FUNCTION_NAME": "fn"}).service_name == "fn"


def test_malformed_lists_are_skipped() -> None:
    assert parse_key_value_list("a=1,,broken,=x,b = 2") == {"a": "1", "b": "2"}


def test_sdk_disabled_makes_configure_a_no_op() -> None:
    assert tracer.configure("x", env={"OTEL_SDK_DISABLED": "true"}) is None
    assert tracer.active() is None


def test_configure_twice_is_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    try:
        first = tracer.configure("twice", env=env, set_global=False)
        assert tracer.configure("twice", env=env, set_global=False) is first
        second = tracer.configure("changed", env=env, set_global=False)
        assert second is not first and tracer.active() is second
    finally:
        tracer.shutdown()
    assert tracer.active() is None


def test_public_api_is_pinned() -> None:
    assert sorted(tracer.__all__) == [
        "EVENTBRIDGE_CARRIER_KEY",
        "OtlpHttpExporter",
        "Tracing",
        "TracingMiddleware",
        "XRayRulesSampler",
        "active",
        "annotate",
        "configure",
        "extract_from",
        "flush",
        "instrument_aws",
        "instrument_http",
        "message_carriers",
        "put_metadata",
        "resolve_settings",
        "shutdown",
        "stats",
        "traced",
        "track_imports",
        "xray_header",
    ]
    for name in tracer.__all__:
        assert hasattr(tracer, name)


def test_unusable_settings_turn_tracing_off_without_raising(caplog: pytest.LogCaptureFixture) -> None:
    assert tracer.configure("x", endpoint="grpc://nowhere:4317", set_global=False) is None
    assert "tracing is off" in caplog.text
    assert tracer.configure("x", env={"OTEL_TRACES_SAMPLER": "xray", "OTEL_TRACES_SAMPLER_ARG": "/nope.json"}) is None
    assert tracer.active() is None


def test_the_resource_is_the_sdks_own_without_its_thread_pool_unless_detectors_are_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"OTEL_SERVICE_NAME": "orders", "OTEL_RESOURCE_ATTRIBUTES": "team=pay,service.name=ignored"}
    for key in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    built = build_resource(resolve_settings(env))
    assert dict(built.attributes) == dict(Resource.create({"service.name": "orders"}).attributes)
    assert built.attributes["team"] == "pay" and built.attributes["telemetry.sdk.language"] == "python"
    with_process = {**env, "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel,process"}
    monkeypatch.setenv("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "otel,process")
    settings = resolve_settings(with_process)
    assert settings.resource_detectors == ("process",)
    assert build_resource(settings).attributes["process.pid"] == os.getpid()
    assert resolve_settings({"OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": " otel , "}).resource_detectors == ()


def test_batch_sizes_come_from_the_environment_within_a_bound() -> None:
    assert (resolve_settings({}).batch_max_queue, resolve_settings({}).batch_max_spans) == (2048, 512)
    sized = resolve_settings({"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10"})
    assert (sized.batch_max_queue, sized.batch_max_spans) == (100, 10)
    huge = resolve_settings(
        {
            "OTEL_BSP_MAX_QUEUE_SIZE": "9" * 40,
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "9" * 40,
            "OTEL_BSP_SCHEDULE_DELAY": "9" * 40,
        }
    )
    assert huge.batch_max_queue == huge.batch_max_spans == MAX_QUEUE_SPANS
    assert huge.batch_delay_ms == MAX_BATCH_DELAY_MS and MAX_BATCH_DELAY_MS / 1000 < threading.TIMEOUT_MAX
    for bad in ("-5", "0", "many", "1e3"):
        settings = resolve_settings({"OTEL_BSP_MAX_QUEUE_SIZE": bad, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": bad})
        assert (settings.batch_max_queue, settings.batch_max_spans) == (2048, 512)


def test_the_cold_start_path_loads_no_more_than_it_runs() -> None:
    """`import tracer` + configure() leaves the SDK's export module, the ASGI middleware, the event
    carriers, X-Ray's sampling rules and http.client unloaded; asking for them loads them."""
    program = (
        "import sys, tracer; tracer.configure('cold', endpoint='http://127.0.0.1:9/v1/traces')\n"
        "lazy = ['opentelemetry.sdk.trace.export', 'tracer.asgi', 'tracer.events',\n"
        "        'tracer.xray_sampling_rules', 'tracer.sdk_exporters', 'http.client']\n"
        "print([m for m in lazy if m in sys.modules])\n"
        "from opentelemetry.sdk.trace.export import SpanExporter\n"
        "print(issubclass(tracer.OtlpHttpExporter, SpanExporter), 'tracer.sdk_exporters' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split("\n")[:2] == ["[]", "True True"]


def test_the_span_attribute_length_limit_wins_over_the_general_one() -> None:
    assert resolve_settings({}).attribute_value_length is None
    assert resolve_settings({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "64"}).attribute_value_length == 64
    both = {"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "64", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "16"}
    assert resolve_settings(both).attribute_value_length == 16
    for bad in ("0", "-1", "lots", "9" * 5000):
        assert resolve_settings({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": bad}).attribute_value_length is None


def test_span_count_limits_come_from_the_environment_within_a_bound() -> None:
    assert (resolve_settings({}).attribute_count_limit, resolve_settings({}).link_count_limit) == (128, 128)
    env = {
        "OTEL_ATTRIBUTE_COUNT_LIMIT": "64",
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "16",
        "OTEL_SPAN_EVENT_COUNT_LIMIT": "9" * 30,
        "OTEL_SPAN_LINK_COUNT_LIMIT": "zero",
        "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": "4",
        "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": "-3",
    }
    limited = resolve_settings(env)
    assert (limited.attribute_count_limit, limited.event_count_limit, limited.link_count_limit) == (
        16,
        MAX_COUNT_LIMIT,
        128,
    )
    assert (limited.event_attribute_count_limit, limited.link_attribute_count_limit) == (4, 128)
