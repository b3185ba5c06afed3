"""Cost against bills computed by hand, on every backend: cold and warm Lambda invocations (x86 and
arm64), an API Gateway request, DynamoDB capacity, an SQS send, standard and express workflows."""

from __future__ import annotations

import pytest

from collector.cost.prices import PriceSheet
from collector.cost.report import trace_cost, window_cost
from collector.storage.protocols import Store, TimeWindow
from spanlang.filter_parser import parse_filter
from tests.contract.test_store_contract import SECOND, T0, batch, trace_bytes
from tests.factories import at as span

PRICES = PriceSheet.load()
WINDOW = TimeWindow(T0 - 60 * SECOND, T0 + 3600 * SECOND)
MIB = 1024 * 1024
REST, REQUEST, X86_GBS, ARM_GBS = 3.5e-6, 2e-7, 0.0000166667, 0.0000133334
WRU, SQS, TRANSITION, EXPRESS, EXPRESS_GBS = 6.25e-7, 4e-7, 2.5e-5, 1e-6, 0.0000166667
HANDLER = '{"faas.trigger":"http","faas.max_memory":%d}'
ARM = '{"service.name":"quote","host.arch":"arm64"}'

# Trace 1, cold (x86, 256 MB): the gateway, the handler (120.4 ms) after its 300.2 ms init: billed
# ceil(420.6) = 421 ms of 0.25 GB; it writes a DynamoDB item (1 WRU) and sends an SQS message.
COLD = REST + REQUEST + 0.25 * 0.421 * X86_GBS + WRU + SQS
# Trace 2, warm (arm64, 1024 MB): 10.0001 ms billed as 11 ms of 1 GB.
WARM = REQUEST + 0.011 * ARM_GBS
# Trace 3: a standard workflow entering three states; trace 4: an express one of 250 ms, billed as
# 300 ms of 64 MB.
STANDARD = 3 * TRANSITION
EXPRESS_RUN = EXPRESS + 0.0625 * 0.3 * EXPRESS_GBS


def billed_traffic() -> list[object]:
    cold = [
        span(1, 1, None, 0, 0.5, service="bank-api/prod", kind="SERVER", origin="AWS::ApiGateway::Stage"),
        span(1, 2, 1, 0.01, 0.1204, service="withdraw", kind="SERVER", origin="AWS::Lambda::Function",
             attributes=HANDLER % (256 * MIB), cold_start=True),
        span(1, 3, 2, 0.0, 0.3002, service="withdraw", name="Initialization", origin="AWS::Lambda::Function"),
        span(1, 4, 2, 0.02, 0.01, service="withdraw", kind="CLIENT", target_type="AWS::DynamoDB::Table",
             target_name="accounts",
             attributes='{"rpc.method":"UpdateItem","aws.dynamodb.consumed_capacity":'
                        '["{\\"TableName\\":\\"accounts\\",\\"CapacityUnits\\":1.0}"]}'),
        span(1, 5, 2, 0.05, 0.01, service="withdraw", kind="PRODUCER", target_type="AWS::SQS::Queue",
             target_name="alerts", attributes='{"rpc.method":"SendMessage"}'),
    ]  # fmt: skip
    warm = [
        span(2, 1, None, 1, 0.0100001, service="quote", kind="SERVER", origin="AWS::Lambda::Function",
             attributes=HANDLER % (1024 * MIB), resource=ARM),
    ]  # fmt: skip
    machine = '{"aws.stepfunctions.workflow_type":"%s"}'
    state = '{"aws.stepfunctions.state.type":"Task"}'
    standard = [
        span(3, 1, None, 2, 1.0, service="settle", kind="SERVER", origin="AWS::StepFunctions::StateMachine",
             attributes=machine % "STANDARD"),
        *(span(3, 2 + n, 1, 2 + n * 0.1, 0.05, service="settle", origin="AWS::StepFunctions::StateMachine",
               attributes=state) for n in range(3)),
    ]  # fmt: skip
    express = [
        span(4, 1, None, 3, 0.25, service="resize", kind="SERVER", origin="AWS::StepFunctions::StateMachine",
             attributes=machine % "EXPRESS"),
    ]  # fmt: skip
    return [batch(*cold), batch(*warm), batch(*standard), batch(*express)]


@pytest.fixture
def billed(store: Store) -> Store:
    store.write(billed_traffic())  # type: ignore[arg-type]
    return store


def test_each_trace_costs_its_hand_computed_bill(billed: Store) -> None:
    for trace, bill in ((1, COLD), (2, WARM), (3, STANDARD), (4, EXPRESS_RUN)):
        report = trace_cost(billed.reader, trace_bytes(trace), WINDOW, PRICES)
        assert report.total == pytest.approx(bill, rel=1e-9), trace
    cold = trace_cost(billed.reader, trace_bytes(1), WINDOW, PRICES)
    by_span = {entry.name: entry.total for entry in cold.entries}  # the trace view's cost by span
    assert by_span["0000000000000002"] == pytest.approx(REQUEST + 0.25 * 0.421 * X86_GBS)
    assert "0000000000000003" not in by_span  # the init is billed on its invocation


def test_the_window_costs_the_sum_of_its_traces_by_node_and_by_function(billed: Store) -> None:
    by_node = window_cost(billed.reader, WINDOW, None, "node", PRICES)
    assert by_node.total == pytest.approx(COLD + WARM + STANDARD + EXPRESS_RUN, rel=1e-9)
    nodes = {(e.name, e.type): e for e in by_node.entries}
    withdraw = nodes[("withdraw", "AWS::Lambda::Function")]
    assert withdraw.requests == 1 and withdraw.per_million_requests == pytest.approx(withdraw.total * 1e6)
    assert nodes[("accounts", "AWS::DynamoDB::Table")].total == pytest.approx(WRU)
    assert nodes[("alerts", "AWS::SQS::Queue")].total == pytest.approx(SQS)
    assert by_node.entries[0].name == "settle"  # costliest first
    by_function = window_cost(billed.reader, WINDOW, None, "function", PRICES)
    functions = {e.name: e for e in by_function.entries}
    assert set(functions) == {"withdraw", "quote"}  # gateways and workflows are no function's
    assert functions["withdraw"].total == pytest.approx(COLD - REST) and functions["withdraw"].requests == 1
    by_trace = window_cost(billed.reader, WINDOW, parse_filter('service("quote")'), "trace", PRICES)
    assert [(e.name, round(e.total, 15)) for e in by_trace.entries] == [(trace_bytes(2).hex(), round(WARM, 15))]


def test_head_sampled_spans_stand_for_the_requests_they_were_sampled_from(store: Store) -> None:
    weighted = span(5, 1, None, 0, 0.0100001, service="quote", kind="SERVER", origin="AWS::Lambda::Function",
                    attributes=HANDLER % (1024 * MIB), resource=ARM, sampling_weight=100.0)  # fmt: skip
    kept = span(6, 1, None, 1, 0.0100001, service="quote", kind="SERVER", origin="AWS::Lambda::Function",
                attributes=HANDLER % (1024 * MIB), resource=ARM, sampling_weight=0.0, fault=True)  # fmt: skip
    store.write([batch(weighted), batch(kept)])
    report = window_cost(store.reader, WINDOW, None, "node", PRICES)
    assert report.total == pytest.approx(100 * WARM) and report.entries[0].requests == 100
    assert trace_cost(store.reader, trace_bytes(6), WINDOW, PRICES).total == pytest.approx(WARM)  # its own cost


def test_http_apis_fifo_queues_events_and_stream_records_are_priced_apart(store: Store) -> None:
    calls = '{"rpc.method":"%s","messaging.batch.message_count":%d}'
    rows = [
        span(7, 1, None, 0, 0.01, service="shop/$default", kind="SERVER", origin="AWS::ApiGateway::Stage",
             attributes='{"fluoro.apigateway.api_type":"HTTP"}'),
        span(7, 2, 1, 0.001, 0.001, service="shop/$default", kind="PRODUCER", target_type="AWS::SQS::Queue",
             target_name="orders.fifo", attributes='{"rpc.method":"SendMessage","messaging.message.body.size":70000}'),
        span(7, 3, 1, 0.002, 0.001, service="shop/$default", kind="CLIENT", target_type="AWS::Events::EventBus",
             target_name="bus", attributes=calls % ("PutEvents", 3)),
        span(7, 4, 1, 0.003, 0.001, service="shop/$default", kind="CLIENT", target_type="AWS::Kinesis::Stream",
             target_name="clicks", attributes=calls % ("PutRecords", 5)),
        span(7, 5, 1, 0.004, 0.001, service="shop/$default", kind="CLIENT", target_type="AWS::Kinesis::Stream",
             target_name="clicks", attributes=calls % ("GetRecords", 5)),  # reading is not a PUT unit
    ]  # fmt: skip
    store.write([batch(*rows)])
    by_node = {e.name: e for e in window_cost(store.reader, WINDOW, None, "node", PRICES).entries}
    assert by_node["shop/$default"].total == pytest.approx(1e-6)  # an HTTP API request
    assert by_node["orders.fifo"].total == pytest.approx(2 * 5e-7)  # 70,000 bytes: two 64 KB requests
    assert by_node["bus"].total == pytest.approx(3 * 1e-6)  # three events
    assert by_node["clicks"].total == pytest.approx(5 * 1.4e-8)  # five records put, none for the read
