"""The SQL behind cost: what each stored span is billed for, priced and added up by a key.

``LINES`` turns the spans of a window (of traces matching a filter) into billing lines (span,
node, function, item, quantity), by AWS's rules as of the price sheet's date:

- a Lambda invocation (its handler span): a request, and GB-seconds of its memory for its
  billed duration, the handler's time plus a cold start's init, rounded up to the millisecond
  (``host.arch`` arm64 at the arm price); 128 MB when the span does not say;
- an API Gateway stage's request (``fluoro.apigateway.api_type`` HTTP at the HTTP API price);
- a Step Functions execution: standard, a transition per state it entered; express, a request
  and GB-seconds of 64 MB for its duration rounded up to 100 ms;
- calls to SQS (a request per 64 KB of body), EventBridge ``PutEvents`` (an event per entry),
  Kinesis ``PutRecord(s)`` (a PUT payload unit per record), and DynamoDB calls that recorded
  their consumed capacity (read or write request units by the operation).

Aggregates weigh each line by its span's sampling weight (how many requests it stands for);
one trace's own lines are its own. Prices are bound parameters; templates take fixed fragments.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

from collector.storage.filter_sql import compile_trace_predicate
from collector.storage.protocols import CostKey, Statement, TimeWindow
from collector.storage.search_sql import ROOTS_CTE, span_window
from spanlang import filter_ast as ast
from tracer import semconv

KEY_COLUMNS: Final[Mapping[CostKey, int]] = {"node": 2, "function": 1, "trace": 1, "span": 1}

_LAMBDA, _STAGE, _MACHINE = "'AWS::Lambda::Function'", "'AWS::ApiGateway::Stage'", "'AWS::StepFunctions::StateMachine'"
_ATTR = "json_extract_string(attributes, '$.\"{key}\"')"
_NUMBER = "TRY_CAST(json_extract_string(attributes, '$.\"{key}\"') AS DOUBLE)"
_WRITES = "('PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem', 'TransactWriteItems')"
# A DynamoDB call's capacity units: the sum of its ConsumedCapacity entries' CapacityUnits
# (each entry JSON text, as the AWS SDK instrumentation records them). The entries are the
# client's text: one that is not JSON is skipped (parsing it would fail the whole statement,
# and with it everyone's cost report), as are units that are not a finite, non-negative number;
# NULL when none is usable (the call then has no line).
_CAPACITY_UNITS = """list_sum(list_filter(list_transform(
        json_extract_string(attributes, '$."aws.dynamodb.consumed_capacity"[*]'),
        c -> CASE WHEN json_valid(c) THEN TRY_CAST(json_extract_string(c, '$.CapacityUnits') AS DOUBLE) END),
        u -> isfinite(u) AND u >= 0))"""

_BILLED = f"""billed AS (
    SELECT s.trace_id, s.span_id, s.parent_span_id, s.service, s.origin, s.name, s.kind, s.target_type, s.target_name,
           s.duration_ns, s.attributes, s.resource_id, coalesce(s.sampling_weight, 1) AS w
    FROM spans s WHERE s.start_ns >= ? AND s.start_ns < ? AND NOT s.in_progress {{filter}}
      AND (s.origin IN ({_LAMBDA}, {_STAGE}, {_MACHINE})
           OR s.target_type IN ('AWS::SQS::Queue', 'AWS::Events::EventBus', 'AWS::Kinesis::Stream',
                                'AWS::DynamoDB::Table'))
), invocations AS (
    SELECT b.*, coalesce({_NUMBER.format(key=semconv.FAAS_MAX_MEMORY)}, 134217728) / 1073741824 AS memory_gb,
           CASE WHEN json_extract_string(r.resource, '$."{semconv.HOST_ARCH}"') = 'arm64' THEN 'arm64'
                ELSE 'x86_64' END AS arch
    FROM billed b LEFT JOIN (SELECT DISTINCT resource_id, resource FROM resources) r USING (resource_id)
    WHERE b.origin = {_LAMBDA} AND {_ATTR.format(key=semconv.FAAS_TRIGGER)} IS NOT NULL
), inits AS (
    SELECT trace_id, parent_span_id, max(duration_ns) AS init_ns FROM billed
    WHERE origin = {_LAMBDA} AND name = 'Initialization' GROUP BY ALL
), executions AS (
    SELECT *, {_ATTR.format(key="aws.stepfunctions.workflow_type")} AS workflow FROM billed
    WHERE origin = {_MACHINE} AND kind = 'SERVER' AND {_ATTR.format(key="aws.stepfunctions.workflow_type")} IS NOT NULL
), states AS (
    SELECT trace_id, service, count(*) AS entered FROM billed
    WHERE origin = {_MACHINE} AND {_ATTR.format(key="aws.stepfunctions.state.type")} IS NOT NULL GROUP BY ALL
), calls AS (
    SELECT *, {_ATTR.format(key="rpc.method")} AS method FROM billed WHERE target_type IS NOT NULL AND kind <> 'SERVER'
)"""

# Each line: trace, span, node, node type, function (whose code made the charge), item, quantity,
# requests (1 on one line per billed span), and the span's sampling weight.
_LINES = f"""lines AS (
    SELECT trace_id, span_id, service AS node, {_LAMBDA} AS node_type, service AS function, 'lambda.request' AS item,
           1.0 AS quantity, 1 AS requests, w FROM invocations
    UNION ALL
    SELECT i.trace_id, i.span_id, i.service, {_LAMBDA}, i.service, 'lambda.gb_second.' || i.arch,
           i.memory_gb * ceil((i.duration_ns + coalesce(n.init_ns, 0)) / 1e6) / 1000, 0, i.w
    FROM invocations i LEFT JOIN inits n ON n.trace_id = i.trace_id AND n.parent_span_id = i.span_id
    UNION ALL
    SELECT trace_id, span_id, service, {_STAGE}, NULL,
           CASE WHEN {_ATTR.format(key=semconv.APIGATEWAY_API_TYPE)} = 'HTTP' THEN 'apigateway.http_request'
                ELSE 'apigateway.rest_request' END, 1.0, 1, w
    FROM billed WHERE origin = {_STAGE} AND kind = 'SERVER'
    UNION ALL
    SELECT e.trace_id, e.span_id, e.service, {_MACHINE}, NULL, 'stepfunctions.transition',
           coalesce(t.entered, 0), 1, e.w
    FROM executions e LEFT JOIN states t ON t.trace_id = e.trace_id AND t.service = e.service
    WHERE e.workflow = 'STANDARD'
    UNION ALL
    SELECT trace_id, span_id, service, {_MACHINE}, NULL, unnest(['stepfunctions.express_request',
           'stepfunctions.express_gb_second']),
           unnest([1.0, 0.0625 * ceil(duration_ns / 1e8) / 10]), unnest([1, 0]), w
    FROM executions WHERE workflow = 'EXPRESS'
    UNION ALL
    SELECT trace_id, span_id, target_name, target_type, service,
           CASE WHEN target_name LIKE '%.fifo' THEN 'sqs.fifo_request' ELSE 'sqs.request' END,
           greatest(1, ceil(coalesce({_NUMBER.format(key="messaging.message.body.size")}, 0) / 65536)), 1, w
    FROM calls WHERE target_type = 'AWS::SQS::Queue'
    UNION ALL
    SELECT trace_id, span_id, target_name, target_type, service, 'eventbridge.event',
           greatest(1, coalesce({_NUMBER.format(key="messaging.batch.message_count")}, 1)), 1, w
    FROM calls WHERE target_type = 'AWS::Events::EventBus' AND coalesce(method, 'PutEvents') = 'PutEvents'
    UNION ALL
    SELECT trace_id, span_id, target_name, target_type, service, 'kinesis.put_payload_unit',
           greatest(1, coalesce({_NUMBER.format(key="messaging.batch.message_count")}, 1)), 1, w
    FROM calls WHERE target_type = 'AWS::Kinesis::Stream' AND method IN ('PutRecord', 'PutRecords')
    UNION ALL
    SELECT trace_id, span_id, target_name, target_type, service,
           CASE WHEN method IN {_WRITES} THEN 'dynamodb.write_request_unit' ELSE 'dynamodb.read_request_unit' END,
           units, 1, w
    FROM (SELECT *, {_CAPACITY_UNITS} AS units FROM calls WHERE target_type = 'AWS::DynamoDB::Table'
          AND json_extract(attributes, '$."aws.dynamodb.consumed_capacity"') IS NOT NULL)
    WHERE units IS NOT NULL
)"""

_KEYS: Final[Mapping[CostKey, str]] = {
    "node": "node, node_type",
    "function": "function",
    "trace": "trace_id",
    "span": "span_id",
}


def prices_table(prices: Mapping[str, float]) -> Statement:
    """The sheet as a VALUES table `p(item, price)`, its prices bound."""
    rows = ", ".join("(?, ?)" for _ in prices)
    params = tuple(value for item, price in sorted(prices.items()) for value in (item, float(price)))
    return Statement(f"p(item, price) AS (VALUES {rows})", params)


def cost_statement(
    window: TimeWindow,
    expr: ast.Expr | None,
    key: CostKey,
    prices: Mapping[str, float],
    limit: int,
    trace_id: uuid.UUID | None = None,
) -> Statement:
    """Rows: the key's columns, item, quantity, amount, requests, of the costliest keys.

    With `trace_id`, that trace's own lines (each counted once); otherwise the window's (of
    traces matching `expr`), each weighed by its span's sampling weight."""
    filter_text = ""
    filter_params: tuple[Any, ...] = ()
    if trace_id is not None:
        filter_text, filter_params = "AND s.trace_id = ?", (trace_id,)
    elif expr is not None:
        predicate = compile_trace_predicate(expr, span_window(window))
        filter_text = f"AND s.trace_id IN (SELECT r.trace_id FROM roots r WHERE {predicate.text})"
        filter_params = predicate.params
    weight = "1" if trace_id is not None else "w"
    columns = _KEYS[key]
    priced = prices_table(prices)
    # A line's quantity comes from the client's attributes (a body size, a count, a memory size):
    # one that is not a finite, non-negative number bills nothing.
    where = "WHERE isfinite(l.quantity) AND l.quantity >= 0"
    if key == "function":
        where += " AND l.function IS NOT NULL"
    text = f"""WITH {ROOTS_CTE}, {priced.text}, {_BILLED.format(filter=filter_text)}, {_LINES}, grouped AS (
        SELECT {columns}, l.item, sum(l.quantity * {weight}) AS quantity,
               sum(l.quantity * {weight} * p.price) AS amount, sum(l.requests * {weight}) AS requests
        FROM lines l JOIN p USING (item) {where} GROUP BY ALL
    ), ranked AS (
        SELECT {columns}, sum(amount) AS total FROM grouped GROUP BY ALL ORDER BY total DESC, {columns} LIMIT ?
    )
    SELECT g.* FROM grouped g SEMI JOIN ranked k USING ({columns}) ORDER BY {columns}, g.item"""
    params = (window.start_ns, window.end_ns, *priced.params, window.start_ns, window.end_ns, *filter_params, limit)
    return Statement(text, params)
