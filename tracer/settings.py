"""The tracer's settings: explicit arguments first, then the OTEL_* environment, then defaults.

Reading the environment happens once, in :func:`resolve_settings`; everything downstream takes
the frozen :class:`Settings` value, so tests build settings without touching ``os.environ``.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import unquote

from tracer import semconv
from tracer.tail_keep import TailKeepSettings

_logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
TRACES_PATH = "/v1/traces"
DEFAULT_PROPAGATORS = ("tracecontext", "baggage", "xray")
DEFAULT_SAMPLER = "parentbased_always_on"
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
MAX_QUEUE_SPANS = 1 << 20  # OTEL_BSP_* sizes past this are taken as this (a bound on held spans)
DEFAULT_COUNT_LIMIT = 128  # OpenTelemetry's, for a span's attributes, events and links
MAX_COUNT_LIMIT = 65_536  # counts past this are taken as this (a bound on what one span holds)
MAX_BATCH_DELAY_MS = 3_600_000  # and delays past an hour as an hour (a thread cannot wait for ever)
HOST_ARCHES = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64", "arm64": "arm64"}  # OTel's names


_NO_ENTRIES: Mapping[str, str] = MappingProxyType({})


class Settings(NamedTuple):
    """Everything `configure()` needs, resolved from arguments and the environment. (A
    NamedTuple, not a frozen dataclass: building a dataclass's methods costs ~0.8 ms of every cold
    start, measured at import.)"""

    service_name: str = "unknown_service"
    traces_endpoint: str = DEFAULT_ENDPOINT + TRACES_PATH
    headers: Mapping[str, str] = _NO_ENTRIES
    compression: str = "none"
    sampler: str = DEFAULT_SAMPLER
    sampler_arg: str | None = None
    propagators: tuple[str, ...] = DEFAULT_PROPAGATORS
    resource_attributes: Mapping[str, str] = _NO_ENTRIES
    disabled: bool = False
    export_timeout_s: float = 10.0
    # How long ended spans may wait in the batch before export (OTEL_BSP_SCHEDULE_DELAY, ms);
    # 1 s rather than the SDK's 5 s, so a developer watching a local UI sees spans promptly.
    batch_delay_ms: int = 1000
    # Ended spans that may wait for export (OTEL_BSP_MAX_QUEUE_SIZE), and the most a request
    # carries (OTEL_BSP_MAX_EXPORT_BATCH_SIZE), the SDK's defaults; the queue is capped so a
    # typo cannot make it unbounded.
    batch_max_queue: int = 2048
    batch_max_spans: int = 512
    # Span limits, as the SDK reads them: the most characters an attribute's string value keeps
    # (OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT, else OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT; None: no
    # limit), the most attributes, events and links a span keeps (OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT,
    # else OTEL_ATTRIBUTE_COUNT_LIMIT; OTEL_SPAN_EVENT_COUNT_LIMIT; OTEL_SPAN_LINK_COUNT_LIMIT),
    # and attributes an event or a link keeps (OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT,
    # OTEL_LINK_ATTRIBUTE_COUNT_LIMIT).
    attribute_value_length: int | None = None
    attribute_count_limit: int = DEFAULT_COUNT_LIMIT
    event_count_limit: int = DEFAULT_COUNT_LIMIT
    link_count_limit: int = DEFAULT_COUNT_LIMIT
    event_attribute_count_limit: int = DEFAULT_COUNT_LIMIT
    link_attribute_count_limit: int = DEFAULT_COUNT_LIMIT
    # True when running inside a Lambda-style environment: spans recorded during init are
    # held back and joined to the first invocation's trace under ``Initialization``.
    lambda_environment: bool = False
    # Record the Lambda runtime's own ``Invocation`` and ``Overhead`` children of the function
    # span. On AWS the Lambda service records them itself, so this is off there; the local
    # cloud, which plays that service, turns it on (FLUORO_LAMBDA_PHASES=1).
    lambda_phases: bool = False
    # Resource detectors beyond "otel" (OTEL_EXPERIMENTAL_RESOURCE_DETECTORS, e.g. "process"):
    # only then does the SDK's Resource.create, with its thread pool, run (runtime.build_resource).
    resource_detectors: tuple[str, ...] = ()
    # Tail-keep: traces head sampling dropped are recorded and kept when they fail (tail_keep.py).
    tail_keep: TailKeepSettings = TailKeepSettings()


def parse_key_value_list(text: str) -> dict[str, str]:
    """Parse the W3C-baggage-like ``k1=v1,k2=v2`` lists OTEL_* variables use (values URL-encoded)."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _logger.warning("ignoring malformed key=value item %r", item.strip())
            continue
        pairs[unquote(key.strip())] = unquote(value.strip())
    return pairs


def resolve_traces_endpoint(endpoint: str | None, env: Mapping[str, str]) -> str:
    """The OTLP traces URL: an explicit endpoint is used verbatim, as is
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; OTEL_EXPORTER_OTLP_ENDPOINT gets /v1/traces appended."""
    if endpoint:
        return endpoint
    signal = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if signal:
        return signal
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or DEFAULT_ENDPOINT
    return base.rstrip("/") + TRACES_PATH


def resolve_settings(
    env: Mapping[str, str],
    *,
    service_name: str | None = None,
    endpoint: str | None = None,
    sampler: str | None = None,
    sampler_arg: str | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    compression: str | None = None,
    propagators: tuple[str, ...] | None = None,
    tail_keep: bool | None = None,
) -> Settings:
    """Merge explicit arguments over the OTEL_* environment variables."""
    env_resource = parse_key_value_list(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    merged_resource = {**env_resource, **(resource_attributes or {})}
    lambda_environment = bool(env.get("AWS_LAMBDA_FUNCTION_NAME", "").strip())
    if lambda_environment and semconv.HOST_ARCH not in merged_resource:  # Lambda prices arm64 apart
        machine = platform.machine()
        merged_resource[semconv.HOST_ARCH] = HOST_ARCHES.get(machine, machine)
    name = (
        service_name
        or env.get("OTEL_SERVICE_NAME", "").strip()
        or merged_resource.get("service.name")
        or env.get("AWS_LAMBDA_FUNCTION_NAME", "").strip()
        or "unknown_service"
    )
    env_headers = parse_key_value_list(
        env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "") or env.get("OTEL_EXPORTER_OTLP_HEADERS", "")
    )
    env_compression = env.get("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "") or env.get(
        "OTEL_EXPORTER_OTLP_COMPRESSION", ""
    )
    env_propagators = tuple(p.strip().lower() for p in env.get("OTEL_PROPAGATORS", "").split(",") if p.strip())
    return Settings(
        service_name=name,
        traces_endpoint=resolve_traces_endpoint(endpoint, env),
        headers={**env_headers, **(headers or {})},
        compression=(compression or env_compression or "none").strip().lower(),
        sampler=(sampler or env.get("OTEL_TRACES_SAMPLER", "") or DEFAULT_SAMPLER).strip().lower(),
        sampler_arg=sampler_arg if sampler_arg is not None else env.get("OTEL_TRACES_SAMPLER_ARG"),
        propagators=propagators or env_propagators or DEFAULT_PROPAGATORS,
        resource_attributes=merged_resource,
        resource_detectors=_resource_detectors(env),
        disabled=env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE,
        lambda_environment=lambda_environment,
        lambda_phases=env.get("FLUORO_LAMBDA_PHASES", "").strip().lower() in _TRUE,
        batch_delay_ms=min(MAX_BATCH_DELAY_MS, _positive_int(env.get("OTEL_BSP_SCHEDULE_DELAY"), 1000)),
        batch_max_queue=min(MAX_QUEUE_SPANS, _positive_int(env.get("OTEL_BSP_MAX_QUEUE_SIZE"), 2048)),
        batch_max_spans=min(MAX_QUEUE_SPANS, _positive_int(env.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"), 512)),
        export_timeout_s=_positive_int(env.get("OTEL_EXPORTER_OTLP_TIMEOUT"), 10000) / 1000,
        **_span_limits(env),
        tail_keep=tail_keep_settings(env, tail_keep),
    )


def tail_keep_settings(env: Mapping[str, str], enabled: bool | None = None) -> TailKeepSettings:
    """FLUORO_TAIL_KEEP (on unless false/0/no/off), FLUORO_TAIL_SLOW_MS, FLUORO_TAIL_MAX_TRACE_SPANS
    and FLUORO_TAIL_MAX_SPANS; an explicit `enabled` wins over the environment."""
    if enabled is None:
        enabled = env.get("FLUORO_TAIL_KEEP", "").strip().lower() not in _FALSE
    slow_ms = _positive_int(env.get("FLUORO_TAIL_SLOW_MS"), 0)
    defaults = TailKeepSettings()
    return TailKeepSettings(
        enabled=enabled,
        slow_ms=float(slow_ms) if slow_ms else None,
        max_trace_spans=_positive_int(env.get("FLUORO_TAIL_MAX_TRACE_SPANS"), defaults.max_trace_spans),
        max_spans=_positive_int(env.get("FLUORO_TAIL_MAX_SPANS"), defaults.max_spans),
    )


def _resource_detectors(env: Mapping[str, str]) -> tuple[str, ...]:
    named = env.get("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "").split(",")
    return tuple(d.strip() for d in named if d.strip() not in ("", "otel"))


def _span_limits(env: Mapping[str, str]) -> dict[str, Any]:
    """The span limits' fields of Settings, from the variables the SDK reads."""
    return {
        "attribute_value_length": _first_limit(
            env, "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"
        ),
        "attribute_count_limit": _count_limit(env, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"),
        "event_count_limit": _count_limit(env, "OTEL_SPAN_EVENT_COUNT_LIMIT"),
        "link_count_limit": _count_limit(env, "OTEL_SPAN_LINK_COUNT_LIMIT"),
        "event_attribute_count_limit": _count_limit(env, "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT"),
        "link_attribute_count_limit": _count_limit(env, "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT"),
    }


def _first_limit(env: Mapping[str, str], *names: str) -> int | None:
    """The first of the variables set to a positive number (the span-specific one comes first)."""
    for name in names:
        limit = _positive_int(env.get(name), 0)
        if limit:
            return limit
    return None


def _count_limit(env: Mapping[str, str], *names: str) -> int:
    limit = _first_limit(env, *names)
    return DEFAULT_COUNT_LIMIT if limit is None else min(limit, MAX_COUNT_LIMIT)


def _positive_int(text: str | None, default: int) -> int:
    try:
        value = int(text) if text else default
    except ValueError:
        _logger.warning("ignoring non-integer setting %r", text)
        return default
    return value if value > 0 else default
