"""The three demo architectures end to end: deployed from their SAM templates into the local
cloud, driven by their traffic at once (as `make demo` runs them) for a short bounded run
(steady, burst, idle, steady), traced into a real `fluoro serve`, and then read back through the
query API and the tracer's pytest plugin's collector mode (``FluoroTraces`` over what that
collector received since the run began)."""

from __future__ import annotations

import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo_apps.architectures import Demo, DemoSettings
from demo_apps.local_collector import LocalCollector, get_json, run_collector
from tests.waiting import wait_until
from tracer.testing.fluoro_traces import FluoroTraces, FoundTrace
from tracer.testing.sources import CollectorSpans

# The run's throttles, faults and cold starts are the machine's as much as the demo's: on a
# machine busy with other tests, most publishes were throttled and no poison record was sent.
pytestmark = pytest.mark.serial

ARCHITECTURES = ("banking", "images", "social")
# A compressed cycle: the idle gap outlasts the environments' idle timeout, so cold starts recur.
CYCLE = (("steady", 6.0, 1.0), ("burst", 3.0, 6.0), ("idle", 6.0, 0.0), ("steady", 5.0, 1.0))
Map = dict[str, Any]


@pytest.fixture(scope="module")
def collector() -> Iterator[LocalCollector]:
    with tempfile.TemporaryDirectory() as folder, run_collector(Path(folder) / "e2e.duckdb") as running:
        yield running


@dataclass(frozen=True)
class Ran:
    """What the run left in the cloud for one architecture, read before it stopped."""

    dead_letters: list[str]
    cdn_hits: int
    states_entered: list[list[str]]  # per finished workflow execution, the states it entered


@dataclass(frozen=True)
class Volleys:
    """What banking's simultaneous withdrawals met (withdrawal_volleys)."""

    statuses: list[int]
    lambda_throttles: int  # the demo's count of banking's refused invocations, after them
    statement: httpx.Response
    unknown_statement: httpx.Response


@dataclass(frozen=True)
class Runs:
    """The architectures' one run: when it began, what each left, and the volleys."""

    started_s: float
    ran: dict[str, Ran]
    volleys: Volleys

    def traces(self, collector: LocalCollector) -> FluoroTraces:
        """What the plugin's collector mode gives: the traces the collector received since the run began."""
        return FluoroTraces(CollectorSpans(collector.api_url, self.started_s))


@pytest.fixture(scope="module")
def runs(collector: LocalCollector) -> Runs:
    """One 20-second run of the three architectures at once (one after another, ~30 s each),
    stopped and its spans flushed before the tests read it."""
    settings = DemoSettings(
        collector.traces_url,
        collector.xray_address,
        rps=4,
        duration_s=20,
        fault_rate=0.3,
        idle_timeout_s=3,
        retry_delays_s=(0.5, 1.0),
        cycle=CYCLE,
        # a stage limit the burst passes, but not before withdraw's reserved concurrency runs out
        parameters={"banking": {"ThrottleRate": "12", "ThrottleBurst": "8"}},
        collector_api=collector.api_url,  # each deployed stack becomes a group
    )
    started_s = time.time()
    demo = Demo(list(ARCHITECTURES), settings).start()
    try:
        while demo.running:
            time.sleep(0.5)
        volleys = withdrawal_volleys(demo)  # the traffic has ended; the cloud still traces
        time.sleep(4)  # the last asynchronous work: retries, dead letters, workflows
        ran = {name: inspect(demo, name, dead_letters_expected=name != "banking") for name in ARCHITECTURES}
        return Runs(started_s, ran, volleys)
    finally:
        demo.stop()


def inspect(demo: Demo, name: str, dead_letters_expected: bool) -> Ran:
    stack, cloud = demo.stacks[name], demo.cloud
    sqs = cloud.client("sqs")
    letters: list[str] = []
    queues = [v for v in stack.template.outputs.values() if isinstance(v, str) and "/123456789012/" in v]
    deadline = time.monotonic() + (30 if dead_letters_expected else 0)  # retries back off: give them time
    while True:
        for queue in queues:  # the architectures name their DLQs as outputs
            answer = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            letters += [m["Body"] for m in answer.get("Messages", [])]
        if letters or time.monotonic() >= deadline:
            break
    entered = []
    for arn in stack.machines.values():
        for execution in cloud.stepfunctions.executions(arn)[:5]:
            history = cloud.stepfunctions.get_execution_history(execution.arn)["events"]
            entered.append(
                [e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("StateEntered")]
            )
    return Ran(letters, sum(cdn.hits for cdn, _ in stack.cdns.values()), entered)


def service_map(collector: LocalCollector, check: Callable[[Map], bool], timeout_s: float = 30.0) -> Map:
    """The map once `check` holds (the collector links hops every 2 s)."""

    def ready() -> Map:
        found: Map = get_json(f"{collector.api_url}/api/service-map")
        return found if check(found) else {}

    def describe() -> str:
        found = get_json(f"{collector.api_url}/api/service-map")
        figures = {f"{n['name']} ({n['type']})": n["figures"] for n in found["nodes"]}
        return f"the map's edges: {sorted(edges(found))}; its nodes' figures: {figures}"

    return wait_until(ready, timeout_s, poll_s=1.0, describe=describe)


def nodes(found: Map) -> dict[tuple[str, str], Map]:
    return {(n["name"], n["type"]): n for n in found["nodes"]}


def edges(found: Map) -> dict[tuple[str, str], Map]:
    names = {n["id"]: n["name"] for n in found["nodes"]}
    return {(names[e["source"]], names[e["target"]]): e for e in found["edges"]}


def has_edges(*wanted: tuple[str, str]) -> Callable[[Map], bool]:
    return lambda found: set(wanted) <= set(edges(found))


def has_counted(*wanted: tuple[str, str, str]) -> Callable[[Map], bool]:
    """Each (node name, node type, figure) counted at least once: a hop's first calls put it on
    the map, and its later ones (an async retry's fault) may be linked in a later run."""

    def check(found: Map) -> bool:
        by_node = nodes(found)
        return all(((by_node.get((n, t)) or {}).get("figures") or {}).get(f, 0) > 0 for n, t, f in wanted)

    return check


def all_of(*checks: Callable[[Map], bool]) -> Callable[[Map], bool]:
    return lambda found: all(check(found) for check in checks)


def services_of(found: list[FoundTrace]) -> set[str]:
    """Every service in the traces found."""
    return {span.service for trace in found for span in trace.spans}


def consumers_are_linked(found: Map, consumers: list[str]) -> None:
    """No orphaned consumer trace: each consumer is reached from a producer, never a bare client."""
    reached = edges(found)
    for consumer in consumers:
        callers = {caller for caller, callee in reached if callee == consumer}
        assert callers and "client" not in callers, f"{consumer} is called by {callers}"


def withdrawal_volleys(demo: Demo, volleys: int = 3, size: int = 8) -> Volleys:
    """Simultaneous withdrawals through the stage: its burst (8) lets them all in at once, past
    withdraw's reserved concurrency (4). The Poisson burst of the run reaches that limit only when
    invocations happen to overlap (cold starts, a slow machine); these always do. Then the legacy
    core's statements, a known account's and an unknown one's."""
    url = f"{demo.stacks['banking'].api_url('BankApi')}/withdraw"
    start = threading.Barrier(size)

    def withdraw(number: int) -> int:
        start.wait(timeout=10)
        body = {"account": f"acc-{number:03d}", "amount": 20}
        return httpx.post(url, json=body, timeout=30).status_code

    statuses: list[int] = []
    with ThreadPoolExecutor(size) as pool:
        for _ in range(volleys):
            statuses += pool.map(withdraw, range(size))
            time.sleep(1.0)  # the stage's bucket refills (12 a second)
    (throttles,) = [row.lambda_throttles for row in demo.snapshot() if row.name == "banking"]
    statements = f"{demo.stacks['banking'].api_url('BankApi')}/statements"
    known, unknown = (httpx.get(f"{statements}/{account}", timeout=30) for account in ("acc-007", "nobody"))
    return Volleys(statuses, throttles, known, unknown)


def test_banking(collector: LocalCollector, runs: Runs) -> None:
    ran, volleys, fluoro_traces = runs.ran["banking"], runs.volleys, runs.traces(collector)
    # withdraw's refusals reach the client as AWS answers them, a 500, and the demo counts them
    assert 500 in volleys.statuses, volleys.statuses
    assert volleys.lambda_throttles >= volleys.statuses.count(500)
    # the legacy core's XML statement, made JSON by the stage's Velocity response template
    statement, unknown = volleys.statement, volleys.unknown_statement
    assert statement.json() == {"statement": {"account": "acc-007", "lines": 3}}, statement.text
    assert statement.headers["cache-control"] == "max-age=60"
    assert (unknown.status_code, unknown.json()) == (404, {"message": "no such account"})
    wanted = [
        ("client", "bank-api/prod"),
        ("bank-api/prod", "withdraw"),
        ("bank-api/prod", "balance"),
        ("withdraw", "bank-accounts"),
        ("withdraw", "private-ledger"),  # an HTTP downstream, named by the local cloud
        ("withdraw", "bank"),
        ("bank", "notify-customer"),
        ("start-overdraft-workflow", "overdraft-workflow"),
        ("overdraft-workflow", "assess-fee"),
        ("notify-customer", "bank-notices"),
    ]
    counted = [
        ("bank-api/prod", "AWS::ApiGateway::Stage", "throttles"),
        ("bank-api/prod", "AWS::ApiGateway::Stage", "errors"),  # 400s, 402s, 404s
        ("withdraw", "AWS::Lambda::Function", "faults"),  # the downstream fault rate
        ("overdraft-workflow", "AWS::StepFunctions::StateMachine", "requests"),
    ]
    found = service_map(collector, all_of(has_edges(*wanted), has_counted(*counted)))
    assert set(wanted) <= set(edges(found)), sorted(edges(found))
    assert has_counted(*counted)(found)
    assert not [n["name"] for n in found["nodes"] if n["name"].startswith("127.0.0.1")]
    assert edges(found)["withdraw", "bank"]["is_async"] and edges(found)["bank", "notify-customer"]["is_async"]
    consumers_are_linked(found, ["notify-customer", "start-overdraft-workflow"])
    # throttles at their true source: reserved concurrency on the Lambda nodes (withdraw's, the
    # fee functions'), the stage's own limit; never a node that only passed a 429 on
    sources = {(s["name"], s["type"]) for s in found["throttle_sources"]}
    assert ("withdraw", "AWS::Lambda") in sources
    assert {kind for _, kind in sources} <= {"AWS::Lambda", "AWS::ApiGateway::Stage"}
    assert nodes(found)[("withdraw", "AWS::Lambda::Function")]["cold_start"]["inits"] > 0
    cold = fluoro_traces.find('service("withdraw") { cold_start }')
    assert cold and "Initialization" in {s.name for s in cold[0].spans}
    for caller, callee in wanted[1:]:  # the plugin's edges are the map's
        fluoro_traces.assert_edge(caller, callee)
    # the standard workflow ran state by state, and its executions are on the map
    assert ran.states_entered and all(states[0] == "AssessFee" for states in ran.states_entered)
    assert any({"FreezeOrCharge", "RecordCase"} <= set(states) for states in ran.states_entered)
    # the Powertools (X-Ray SDK) function joins the same traces as the OpenTelemetry ones
    notified = fluoro_traces.find('service("notify-customer")')
    assert {"bank-api/prod", "withdraw", "notify-customer"} <= services_of(notified)
    # withdraw's Powertools Logger lines reached the collector beside their traces
    overdrawn = fluoro_traces.find('service("withdraw") { log BEGINSWITH "insufficient funds" }')
    assert overdrawn, "no trace has withdraw's overdraft log line"
    logs = get_json(f"{collector.api_url}/api/traces/{overdrawn[0].trace_id}/logs")["logs"]
    assert {"withdrawing", "insufficient funds: overdraft event sent"} <= {r["body"] for r in logs}


def test_images(collector: LocalCollector, runs: Runs) -> None:
    ran, fluoro_traces = runs.ran["images"], runs.traces(collector)
    wanted = [
        ("images-api/prod", "upload-image"),
        ("upload-image", "image-uploads"),
        ("image-uploads", "resize-image"),
        ("resize-image", "image-thumbnails"),
        ("resize-image", "image-metadata"),
        ("thumbnails-cdn", "image-thumbnails"),
        ("image-info", "image-metadata"),
    ]
    counted = [
        ("resize-image", "AWS::Lambda::Function", "faults"),  # the corrupt uploads
        ("resize-image", "AWS::Lambda::Function", "cold_starts"),
        ("thumbnails-cdn", "AWS::CloudFront::Distribution", "requests"),
    ]
    found = service_map(collector, all_of(has_edges(*wanted), has_counted(*counted)))
    assert set(wanted) <= set(edges(found)), sorted(edges(found))
    assert has_counted(*counted)(found)
    assert edges(found)["image-uploads", "resize-image"]["is_async"]
    consumers_are_linked(found, ["resize-image"])
    assert ran.cdn_hits > 0
    assert any("incoming/" in letter for letter in ran.dead_letters), "no corrupt upload reached the DLQ"
    # the X-Ray SDK function's segments join the API's traces
    assert {"images-api/prod", "image-info"} <= services_of(fluoro_traces.find('service("image-info")'))
    fluoro_traces.assert_edge("image-uploads", "resize-image")  # the S3 event notification's hop
    assert fluoro_traces.find('service("resize-image") { fault }')  # the corrupt uploads, found by filter


def test_social(collector: LocalCollector, runs: Runs) -> None:
    ran, fluoro_traces = runs.ran["social"], runs.traces(collector)
    wanted = [
        ("social-api/prod", "publish-post"),
        ("publish-post", "posts"),
        ("posts", "analyze-posts"),
        ("analyze-posts", "social-trends"),
        ("analyze-posts", "moderation"),
        ("moderation", "moderate-post"),
        ("moderation", "social-moderation"),
    ]
    counted = [("analyze-posts", "AWS::Lambda::Function", "faults")]  # the poison records
    found = service_map(collector, all_of(has_edges(*wanted), has_counted(*counted)))
    assert set(wanted) <= set(edges(found)), sorted(edges(found))
    assert has_counted(*counted)(found)
    assert edges(found)["posts", "analyze-posts"]["is_async"]
    consumers_are_linked(found, ["analyze-posts"])
    assert any("KinesisBatchInfo" in letter for letter in ran.dead_letters), "no poison record was set aside"
    assert ran.states_entered and all(states[0] == "Decide" for states in ran.states_entered)
    moderation = fluoro_traces.find('service("moderation")')
    assert moderation
    spans = moderation[0].spans
    assert {"Decide", "Record"} <= {s.name for s in spans}
    assert "moderate-post" in {s.service for s in spans}  # the X-Ray SDK function, in the same trace
    fluoro_traces.assert_edge("posts", "analyze-posts")


def test_each_architecture_is_a_group_with_only_its_own_traces(collector: LocalCollector, runs: Runs) -> None:
    """Deploying each architecture made its group, and a group's map holds its own
    architecture's nodes and none of the others'."""
    groups = {g["name"]: g["filter"] for g in get_json(f"{collector.api_url}/api/groups")["groups"]}
    assert set(groups) >= {"banking", "images", "social"}
    assert 'service("withdraw")' in groups["banking"] and 'service("bank-api/prod")' in groups["banking"]
    own = {"banking": "withdraw", "images": "resize-image", "social": "analyze-posts"}
    for group, function in own.items():
        query = urllib.parse.urlencode({"group": group, "start": f"{time.time() - 3600:.0f}"})
        names = {n["name"] for n in get_json(f"{collector.api_url}/api/service-map?{query}")["nodes"]}
        assert function in names, (group, names)
        assert not names & ({f for g, f in own.items() if g != group}), (group, names)
