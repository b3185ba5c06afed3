"""The local Lambda service on real worker processes, its spans caught by an OTLP sink."""

from __future__ import annotations

import json
import os
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo_apps.cloud.aws_services import AwsServices
from demo_apps.cloud.lambdas.concurrent_calls import run_concurrently
from demo_apps.cloud.lambdas.lambda_api import LambdaApiServer
from demo_apps.cloud.lambdas.lambda_async import AsyncInvoker
from demo_apps.cloud.lambdas.lambda_config import DeployError, FunctionConfig, validate
from demo_apps.cloud.lambdas.lambda_errors import FunctionError, ResourceNotFound, TooManyRequests
from demo_apps.cloud.lambdas.lambda_service import LambdaService, LambdaSettings, reap_period_s
from demo_apps.cloud.lambdas.vpc import PrivateResource, Vpc, VpcConfig
from demo_apps.cloud.threaded_server import ThreadedServer
from demo_apps.otlp_sink import OtlpSink
from tests.integration.lambda_functions import CODE, config


def test_cold_then_warm_with_a_context_and_a_trace_header(service: LambdaService, sink: OtlpSink) -> None:
    service.deploy(config("echo", "echo", memory_mb=256))
    first = service.invoke("echo", {"n": 1})
    second = service.invoke("echo", {"n": 2})
    assert first["pid"] == second["pid"]  # the warm environment served the second
    assert service.stats("echo")["cold_starts"] == 1
    assert (first["function"], first["memory"], first["event"]) == ("echo", 256, {"n": 1})
    assert first["request_id"] != second["request_id"] and 0 < first["remaining_ms"] <= 3000
    assert first["trace_header"].startswith("Root=1-") and "Parent=" in first["trace_header"]
    spans = sink.wait_for(9, timeout_s=10)
    service.close()  # flushes the service's own spans
    spans = sink.wait_for(9, timeout_s=10)
    inits = [s for s in spans if s.name == "Initialization"]
    handlers = [s for s in spans if s.name == "echo" and s.attributes.get("fluoro.origin") == "AWS::Lambda::Function"]
    services = [s for s in spans if s.attributes.get("fluoro.origin") == "AWS::Lambda"]
    assert len(inits) == 1 and len(handlers) == 2 and len(services) == 2  # init on the cold start only
    assert inits[0].duration_ms >= 150  # the module's real init work (a 0.2 s sleep)
    by_id = {s.span_id: s for s in services}
    assert all(h.parent_span_id in by_id for h in handlers)  # the function's span under the service's
    assert [h.attributes["faas.coldstart"] for h in sorted(handlers, key=lambda s: s.start_ns)] == [True, False]
    for handler in handlers:  # the runtime's phases split each function span, as X-Ray's segment does
        phases = {s.name: s for s in spans if s.parent_span_id == handler.span_id and s.name != "Initialization"}
        assert sorted(phases) == ["Invocation", "Overhead"]
        assert phases["Invocation"].start_ns == handler.start_ns
        assert phases["Invocation"].end_ns <= phases["Overhead"].start_ns <= phases["Overhead"].end_ns
        assert phases["Overhead"].end_ns <= handler.end_ns


def test_a_pause_past_the_idle_timeout_and_the_reapers_period_ends_in_a_cold_start(sink: OtlpSink) -> None:
    """The reaper on its own clock (no reap_idle by hand), as the demo's idle gaps rely on it."""
    lambdas = LambdaService(LambdaSettings(otlp_endpoint=sink.endpoint, idle_timeout_s=1.0))
    try:
        lambdas.deploy(config("echo", "echo"))
        lambdas.invoke("echo", {})
        time.sleep(1.0 + reap_period_s(1.0) + 0.5)
        assert lambdas.stats("echo")["idle"] == 0  # reaped while nothing ran
        lambdas.invoke("echo", {})
        assert lambdas.stats("echo")["cold_starts"] == 2
    finally:
        lambdas.close()


def test_idle_environments_are_reaped_so_cold_starts_recur(service: LambdaService) -> None:
    service.deploy(config("echo", "echo"))
    first = service.invoke("echo", {})
    assert service.reap_idle(now=time.monotonic() + 3600) == 1
    second = service.invoke("echo", {})
    assert first["pid"] != second["pid"] and service.stats("echo")["cold_starts"] == 2


def test_reserved_concurrency_throttles_with_429(service: LambdaService, sink: OtlpSink) -> None:
    service.deploy(config("slow", "slow", reserved_concurrency=2, timeout_s=10))
    results = run_concurrently([lambda: service.invoke("slow", {"sleep_s": 1.0}) for _ in range(5)])
    throttled = [r for r in results if isinstance(r, TooManyRequests)]
    served = [r for r in results if isinstance(r, dict)]
    assert len(served) == 2 and len(throttled) == 3 and throttled[0].status == 429
    service.close()
    spans = sink.wait_for(1, timeout_s=10)
    flagged = [
        s for s in spans if s.attributes.get("fluoro.throttle") and s.attributes.get("fluoro.origin") == "AWS::Lambda"
    ]
    assert len(flagged) == 3  # the service's span shows where the 429 started


def test_a_timeout_discards_the_environment(service: LambdaService) -> None:
    # A full core: the CPU share must not slow the quick second call toward its 1 s timeout.
    service.deploy(config("slow", "slow", timeout_s=1, memory_mb=1769))
    with pytest.raises(FunctionError, match="timed out") as caught:
        service.invoke("slow", {"sleep_s": 3})
    assert caught.value.payload["errorType"] == "Sandbox.Timedout"
    assert service.stats("slow")["idle"] == 0
    assert service.invoke("slow", {"sleep_s": 0.01}) == {"slept": 0.01}
    assert service.stats("slow")["cold_starts"] == 2


def test_a_handler_error_comes_back_in_aws_shape(service: LambdaService) -> None:
    service.deploy(config("fail", "fail"))
    with pytest.raises(FunctionError) as caught:
        service.invoke("fail", {})
    assert caught.value.payload["errorType"] == "ValueError" and caught.value.payload["errorMessage"] == "bad input"
    assert service.stats("fail")["idle"] == 1  # an error does not discard the environment


def test_more_memory_buys_cpu(service: LambdaService) -> None:
    service.deploy(config("small", "burn", memory_mb=128, timeout_s=60))
    service.deploy(config("full", "burn", memory_mb=1769, timeout_s=60))
    service.invoke("small", {"rounds": 1000})  # cold starts out of the way
    service.invoke("full", {"rounds": 1000})

    def timed(name: str) -> float:
        started = time.perf_counter()
        service.invoke(name, {"rounds": 60_000})
        return time.perf_counter() - started

    small = statistics.median(timed("small") for _ in range(3))
    full = statistics.median(timed("full") for _ in range(3))
    assert small > 4 * full  # 128 MB has 7% of a core, 1,769 MB all of one


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"handler": "functions.nope", "name": "x"}, None),
        ({"handler": "missing_module.handler", "name": "x"}, "Handler module 'missing_module'"),
        ({"handler": "functions", "name": "x"}, "is not module.function"),
        ({"handler": "functions.echo", "name": "x", "memory_mb": 64}, "MemorySize 64"),
        ({"handler": "functions.echo", "name": "x", "timeout_s": 901}, "Timeout 901"),
        ({"handler": "functions.echo", "name": "x", "reserved_concurrency": 51}, "ReservedConcurrentExecutions 51"),
        ({"handler": "functions.echo", "name": "bad name!"}, "the name must be"),
    ],
)
def test_bad_definitions_fail_at_deploy(
    service: LambdaService, settings: dict[str, object], message: str | None
) -> None:
    definition = FunctionConfig(code_dir=CODE, **settings)  # type: ignore[arg-type]
    if message is None:  # the module exists, the function does not: that is an init error at invoke
        service.deploy(definition)
        with pytest.raises(FunctionError, match="init failed"):
            service.invoke("x", {})
        return
    with pytest.raises(DeployError, match=message):
        service.deploy(definition)


def write_code(folder: Path, answer: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(
        f"def handler(event, context):\n    return {{'answer': {answer!r}, 'version': context.function_version}}\n"
    )


def test_an_alias_keeps_its_version_when_latest_changes(service: LambdaService, tmp_path: Path) -> None:
    code = tmp_path / "code"
    write_code(code, "v1")
    service.deploy(FunctionConfig(name="calc", handler="app.handler", code_dir=code))
    assert service.publish_version("calc") == "1"
    service.put_alias("calc", "prod", "1")
    write_code(code, "v2")  # new code on $LATEST
    service.deploy(FunctionConfig(name="calc", handler="app.handler", code_dir=code))
    assert service.invoke("calc", {}, qualifier="prod") == {"answer": "v1", "version": "1"}
    assert service.invoke("calc", {}) == {"answer": "v2", "version": "$LATEST"}
    assert service.invoke("calc", {}, qualifier="1")["answer"] == "v1"
    assert service.publish_version("calc") == "2"
    service.put_alias("calc", "prod", "2")  # only moving the alias moves its traffic
    assert service.invoke("calc", {}, qualifier="prod") == {"answer": "v2", "version": "2"}
    with pytest.raises(ResourceNotFound):
        service.invoke("calc", {}, qualifier="9")


def test_a_weighted_alias_splits_traffic(service: LambdaService, tmp_path: Path) -> None:
    code = tmp_path / "code"
    write_code(code, "old")
    service.deploy(FunctionConfig(name="calc", handler="app.handler", code_dir=code))
    service.publish_version("calc")
    write_code(code, "new")
    service.deploy(FunctionConfig(name="calc", handler="app.handler", code_dir=code))
    service.publish_version("calc")
    service.put_alias("calc", "live", "1", additional_version="2", weight=0.3)
    answers = [service.invoke("calc", {}, qualifier="live")["answer"] for _ in range(60)]
    assert 8 <= answers.count("new") <= 30  # ~30% to version 2


def test_a_weighted_alias_refuses_latest(service: LambdaService, tmp_path: Path) -> None:
    code = tmp_path / "code"
    write_code(code, "v1")
    service.deploy(FunctionConfig(name="calc", handler="app.handler", code_dir=code))
    service.publish_version("calc")
    for version, additional in (("$LATEST", "1"), ("1", "$LATEST")):
        with pytest.raises(
            DeployError, match=r"\$LATEST is not supported for an alias pointing to more than 1 version"
        ):
            service.put_alias("calc", "live", version, additional_version=additional, weight=0.5)
    service.put_alias("calc", "dev", "$LATEST")  # alone, $LATEST is fine


def test_qualified_references_invoke_their_version_and_say_which(service: LambdaService, tmp_path: Path) -> None:
    """As event sources name functions: name:alias, name:version or the ARN with a qualifier;
    the version that ran is told back (X-Amz-Executed-Version answers a number for an alias)."""
    code = tmp_path / "code"
    write_code(code, "v1")
    service.deploy(FunctionConfig(name="calc", handler="app.handler", code_dir=code))
    service.publish_version("calc")
    service.put_alias("calc", "live", "1")
    write_code(code, "v2")
    service.deploy(FunctionConfig(name="calc", handler="app.handler", code_dir=code))
    assert service.invoke_versioned("calc:live", {}) == ({"answer": "v1", "version": "1"}, "1")
    assert service.invoke_versioned(service.arn("calc:1"), {})[1] == "1"
    assert service.invoke_versioned("calc", {}) == ({"answer": "v2", "version": "$LATEST"}, "$LATEST")
    assert service.config("calc:live").name == "calc"
    with pytest.raises(ResourceNotFound):
        service.config("calc:nope")
    invoker = AsyncInvoker(service, lambda url, body: None)
    api = LambdaApiServer(service, invoker).start()
    try:
        for path, params in (("calc", {"Qualifier": "live"}), (service.arn("calc:live"), {}), ("calc", {})):
            answer = httpx.post(f"{api.endpoint}/2015-03-31/functions/{path}/invocations", params=params, content=b"{}")
            expected = "$LATEST" if path == "calc" and not params else "1"
            assert answer.headers["x-amz-executed-version"] == expected and answer.json()["version"] == expected
    finally:
        api.stop()
        invoker.close()


def test_boto3_invokes_through_the_rest_api(service: LambdaService, aws: AwsServices) -> None:
    import boto3
    from botocore.exceptions import ClientError

    service.deploy(config("echo", "echo"))
    service.deploy(config("fail", "fail"))
    service.deploy(config("slow", "slow", reserved_concurrency=0))
    invoker = AsyncInvoker(service, lambda url, body: None)
    api = LambdaApiServer(service, invoker).start()
    client = boto3.client(
        "lambda", endpoint_url=api.endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    try:
        answer = client.invoke(FunctionName="echo", Payload=json.dumps({"via": "boto3"}))
        assert answer["StatusCode"] == 200 and json.loads(answer["Payload"].read())["event"] == {"via": "boto3"}
        failed = client.invoke(FunctionName="fail", Payload=b"{}")
        assert failed["FunctionError"] == "Unhandled"
        assert json.loads(failed["Payload"].read())["errorType"] == "ValueError"
        queued = client.invoke(FunctionName="echo", InvocationType="Event", Payload=b"{}")
        assert queued["StatusCode"] == 202 and queued["Payload"].read() == b""  # read: its connection goes back
        with pytest.raises(ClientError) as throttled:
            client.invoke(FunctionName="slow", Payload=b"{}")
        assert throttled.value.response["Error"]["Code"] == "TooManyRequestsException"
        with pytest.raises(ClientError) as missing:
            client.invoke(FunctionName="nope", Payload=b"{}")
        assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
        header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        traced = httpx.post(
            f"{api.endpoint}/2015-03-31/functions/echo/invocations",
            content=b"{}",
            headers={"X-Amzn-Trace-Id": header},
            timeout=30,
        ).json()
        assert traced["trace_header"].startswith("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=")
        assert "53995c3f42cd8ad8" not in traced["trace_header"]  # the service's own span is the parent now
    finally:
        client.close()
        api.stop()
        invoker.close()


def test_package_size_limits_are_checked_at_deploy(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text("def handler(event, context):\n    return 1\n")
    (code / "model.bin").write_bytes(os.urandom(300_000))  # random bytes do not compress
    definition = FunctionConfig(name="big", handler="app.handler", code_dir=code)
    validate(definition, 10)  # within AWS's limits
    with pytest.raises(DeployError, match="zipped"):
        validate(definition, 10, max_zipped_bytes=200_000)
    with pytest.raises(DeployError, match="unzipped"):
        validate(definition, 10, max_unzipped_bytes=200_000)


def test_only_a_vpc_function_in_an_admitted_group_reaches_a_private_resource(sink: OtlpSink) -> None:
    async def ledger(request: Any) -> Any:
        from starlette.responses import PlainTextResponse

        return PlainTextResponse("ledger ok")

    from starlette.applications import Starlette
    from starlette.routing import Route

    backend = ThreadedServer(Starlette(routes=[Route("/", ledger)]), name="ledger").start()
    vpc = Vpc()
    vpc.add_subnet("private-a", "10.0.1.0/24")
    vpc.add_security_group("app-sg")
    vpc.add_security_group("ledger-sg", admits=("app-sg",))
    resource = PrivateResource(vpc, "ledger", (backend.host, backend.port), "ledger-sg").start()
    lambdas = LambdaService(LambdaSettings(otlp_endpoint=sink.endpoint), vpc=vpc)
    try:
        inside = VpcConfig(subnets=("private-a",), security_groups=("app-sg",))
        lambdas.deploy(config("inside", "reach", vpc=inside, timeout_s=10))
        lambdas.deploy(config("outside", "reach", timeout_s=10))
        url = f"http://127.0.0.1:{resource.port}/"
        answer = lambdas.invoke("inside", {"url": url})
        assert answer["status"] == 200 and answer["body"] == "ledger ok" and answer["ip"].startswith("10.0.1.")
        with pytest.raises(FunctionError) as caught:
            lambdas.invoke("outside", {"url": url})
        assert "Timeout" in caught.value.payload["errorType"]
        with pytest.raises(DeployError, match="subnet 'private-z'"):
            lambdas.deploy(config("lost", "reach", vpc=VpcConfig(("private-z",), ("app-sg",))))
    finally:
        lambdas.close()
        resource.stop()
        backend.stop()


@pytest.mark.parametrize(
    ("handler", "event", "answer", "subsegment"),
    [
        ("xray_handler.handler", {"amount": 5}, {"debited": 5}, "debit"),
        ("powertools_handler.handler", {"amount": 7}, {"charged": 7}, "## handler"),
    ],
)
def test_x_ray_sdk_handlers_report_inside_the_function_segment(
    sink: OtlpSink, handler: str, event: dict[str, Any], answer: dict[str, Any], subsegment: str
) -> None:
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(10)
    address = f"127.0.0.1:{daemon.getsockname()[1]}"
    lambdas = LambdaService(LambdaSettings(otlp_endpoint=sink.endpoint, xray_daemon=address))
    try:
        lambdas.deploy(FunctionConfig(name="legacy", handler=handler, code_dir=CODE, timeout_s=10))
        assert lambdas.invoke("legacy", event) == answer
        assert lambdas.invoke("legacy", event) == answer  # warm: no Initialization this time
        same_trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        for _ in range(2):  # one trace invoking the function twice (a workflow's Map, a batch)
            assert lambdas.invoke("legacy", event, same_trace) == answer
        segments: list[dict[str, Any]] = []
        while len(segments) < 4:
            header, _, body = daemon.recv(65536).partition(b"\n")
            assert json.loads(header) == {"format": "json", "version": 1}
            segments.append(json.loads(body))
    finally:
        lambdas.close()
        daemon.close()
    services = [s for s in sink.wait_for(2) if s.attributes.get("fluoro.origin") == "AWS::Lambda"]
    cold, warm, *again = sorted(segments, key=lambda d: d["start_time"])
    for segment in (cold, warm, *again):  # the runtime records the function segment, as Lambda does
        assert (segment["name"], segment["origin"]) == ("legacy", "AWS::Lambda::Function")
        assert segment["parent_id"] in {s.span_id for s in services}
        assert segment["trace_id"].replace("-", "")[1:] in {s.trace_id for s in services}
        names = [child["name"] for child in segment["subsegments"]]
        assert subsegment in names and "type" not in segment  # the SDK's work, inside the function's segment
        assert {"Invocation", "Overhead"} <= set(names)
        if subsegment == "## handler":  # Powertools streamed its method's subsegment first: put back inside
            (handler_doc,) = [c for c in segment["subsegments"] if c["name"] == subsegment]
            assert [c["name"] for c in handler_doc["subsegments"]] == ["## powertools_handler.charge"]
    assert "Initialization" in [c["name"] for c in cold["subsegments"]]
    assert "Initialization" not in [c["name"] for c in warm["subsegments"]]
