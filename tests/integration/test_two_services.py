"""Two real FastAPI services under uvicorn on loopback ports, traced with configure(), calling
each other through httpx; their OTLP goes to a local sink and must form one trace per request."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from demo_apps.local_collector import free_port
from demo_apps.otlp_sink import OtlpSink, ReceivedSpan
from tests.waiting import wait_until
from tracer import semconv

ROOT = Path(__file__).resolve().parents[2]


def start_service(role: str, port: int, sink: OtlpSink, downstream: str = "") -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ROLE": role,
        "DOWNSTREAM": downstream,
        "OTEL_SERVICE_NAME": role,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": sink.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    if downstream:  # the frontend names its downstream as the local cloud names its services
        env["OTEL_INSTRUMENTATION_COMMON_PEER_SERVICE_MAPPING"] = downstream.removeprefix("http://") + "=payments"
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.integration.services:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def serving(role: str, sink: OtlpSink, downstream: str = "", tries: int = 3) -> tuple[str, subprocess.Popen[bytes]]:
    """A healthy service on a free port, and its URL. A port found free can be taken by another
    test worker before the service binds it: the service then exits, and starts on another."""
    for _ in range(tries):
        port = free_port()
        process, url = start_service(role, port, sink, downstream), f"http://127.0.0.1:{port}"
        if started(process, url):
            return url, process
    raise AssertionError(f"{role} did not start on any of {tries} ports")


def started(process: subprocess.Popen[bytes], url: str) -> bool:
    """Whether the service at `url` became healthy (False: it exited first)."""
    wait_until(lambda: process.poll() is not None or healthy(url), 20.0, poll_s=0.1, describe=lambda: f"{url} silent")
    return process.poll() is None


@pytest.fixture(scope="module")
def system() -> Iterator[tuple[str, str, OtlpSink]]:
    with OtlpSink() as sink:
        processes = []
        try:
            back_url, back = serving("payments", sink)
            processes.append(back)
            front_url, front = serving("frontend", sink, downstream=back_url)
            processes.append(front)
            yield front_url, back_url, sink
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=10)


def trace_of(sink: OtlpSink, front_url: str, outcome: str, required: set[tuple[str, str]]) -> list[ReceivedSpan]:
    """Call the frontend; return its trace once the `required` (service, kind-or-name) spans are in."""
    response = httpx.get(f"{front_url}/checkout/{outcome}", timeout=10)
    header = response.headers["x-amzn-trace-id"]
    trace_id = header.split(";")[0].removeprefix("Root=1-").replace("-", "")

    def spans() -> list[ReceivedSpan]:
        return [s for s in sink.wait_for(0, 0) if s.trace_id == trace_id]

    def complete() -> bool:
        found = spans()
        return required <= {(s.service, s.kind) for s in found} | {(s.service, s.name) for s in found}

    wait_until(
        complete, 10, poll_s=0.05, describe=lambda: f"trace {trace_id}: {[(s.service, s.name) for s in spans()]}"
    )
    time.sleep(0.3)  # both services flush every 100 ms: let stragglers of this trace land
    return spans()


def flags(span: ReceivedSpan) -> set[str]:
    return {name for name in (semconv.ERROR, semconv.THROTTLE, semconv.FAULT) if span.attributes.get(name)}


def is_ancestor(ancestor: ReceivedSpan, span: ReceivedSpan, spans: list[ReceivedSpan]) -> bool:
    """True if `ancestor` is on `span`'s parent chain (frameworks may add spans in between)."""
    by_id = {s.span_id: s for s in spans}
    current = by_id.get(span.parent_span_id)
    while current is not None:
        if current.span_id == ancestor.span_id:
            return True
        current = by_id.get(current.parent_span_id)
    return False


def the(spans: list[ReceivedSpan], service: str, kind: str) -> ReceivedSpan:
    matches = [s for s in spans if s.service == service and s.kind == kind]
    assert len(matches) == 1, [(s.service, s.kind, s.name, s.span_id, s.parent_span_id) for s in spans]
    (match,) = matches
    return match


@pytest.mark.parametrize(
    ("outcome", "front_status", "expected_flags"),
    [
        ("ok", 200, set()),
        ("throttled", 429, {semconv.ERROR, semconv.THROTTLE}),
        ("broken", 502, {semconv.FAULT}),
    ],
)
def test_one_trace_across_two_services(
    system: tuple[str, str, OtlpSink], outcome: str, front_status: int, expected_flags: set[str]
) -> None:
    front_url, back_url, sink = system
    required = {("frontend", "SERVER"), ("frontend", "CLIENT"), ("payments", "SERVER")}
    if outcome != "throttled":
        required.add(("payments", "ledger write"))
    spans = trace_of(sink, front_url, outcome, required)
    assert len({s.trace_id for s in spans}) == 1
    front_server = the(spans, "frontend", "SERVER")
    front_client = the(spans, "frontend", "CLIENT")
    back_server = the(spans, "payments", "SERVER")
    assert front_server.parent_span_id == ""
    assert is_ancestor(front_server, front_client, spans)
    assert back_server.parent_span_id == front_client.span_id  # the hop between processes is direct
    assert front_server.name == "GET /checkout/{outcome}"
    assert back_server.name == "GET /charge/{outcome}"
    assert front_server.attributes[semconv.HTTP_RESPONSE_STATUS_CODE] == front_status
    annotated = [s for s in spans if s.attributes.get(semconv.ANNOTATION_PREFIX + "outcome") == outcome]
    assert [s.service for s in annotated] == ["frontend"]
    assert front_client.attributes[semconv.TARGET_NAME] == "payments"
    assert front_client.attributes[semconv.PEER_SERVICE] == "payments"
    assert back_url.startswith("http://127.0.0.1:")
    assert flags(front_server) == expected_flags
    assert flags(front_client) == expected_flags
    if outcome == "broken":
        assert flags(back_server) == {semconv.FAULT}
        (ledger,) = [s for s in spans if s.name == "ledger write"]
        assert is_ancestor(back_server, ledger, spans)
        assert flags(ledger) == {semconv.FAULT}
        assert any(name == "exception" for name, _ in ledger.events)
    else:
        assert flags(back_server) == expected_flags


UNSAMPLED_TRACE = "5759e988bd862e3fe1be46a994272793"


def unsampled_call(sink: OtlpSink, front_url: str, outcome: str, trace_id: str) -> list[ReceivedSpan]:
    """Call the frontend as a caller that did not sample the trace; its spans a while later."""
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-00"
    response = httpx.get(f"{front_url}/checkout/{outcome}", headers={"traceparent": traceparent}, timeout=10)
    assert response.status_code == 200
    time.sleep(0.6)  # both services flush every 100 ms
    return [s for s in sink.wait_for(0, 0) if s.trace_id == trace_id]


def test_an_unsampled_trace_leaves_nothing_when_all_goes_well(system: tuple[str, str, OtlpSink]) -> None:
    front_url, _, sink = system
    assert unsampled_call(sink, front_url, "ok", UNSAMPLED_TRACE.replace("5", "6")) == []


def test_a_downstream_service_keeps_its_own_failing_part_of_an_unsampled_trace(
    system: tuple[str, str, OtlpSink],
) -> None:
    # The frontend's part went well and was dropped; the payments service's ledger write failed
    # (then a retry succeeded): that part is kept whole, and says why.
    front_url, _, sink = system
    spans = unsampled_call(sink, front_url, "flaky", UNSAMPLED_TRACE)
    assert spans and {s.service for s in spans} == {"payments"}
    assert {s.attributes[semconv.SAMPLING] for s in spans} == {"tail:error"}
    server = the(spans, "payments", "SERVER")
    assert len([s for s in spans if s.name == "ledger write"]) == 2
    assert server.parent_span_id and server.parent_span_id not in {s.span_id for s in spans}  # the caller's span: gone
