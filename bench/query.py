"""Query speed over 1M, 10M (and 100M) realistic spans: the maps, filter and attribute search, trace by id, analytics.

Generates traces of 10 spans across 3 of 20 services (a gateway stage, a function calling
DynamoDB, a second function calling S3 or SQS, with internal spans), 1% faults, 0.5%
throttles, 2% cold starts, one `customer` annotation per trace, attributes as OpenTelemetry's
instrumentations write them for each kind of span, at most 10M spans an hour (2,800 spans/s,
a busy estate's; 100M spans are ten hours), and writes them through the store in time order,
in batches of 100k spans each covering its stretch of the range, each linked into ``calls``,
rolling whole minutes up as it goes, as a daemon stores spans as they arrive (so a row group
holds its own stretch of time, and a range scan skips the others by their zone maps). Then
prints the median of --runs runs of each query over the whole range (its first and last
minute partial, read from raw calls; with more than an hour, the map over the last hour too)
and, as the baseline in the same process, the map's edge aggregate as a raw self-join of
spans on parent_span_id (what resolving hops ahead of the query replaces). Last, the bytes on
disk per span of the demo's own spans, a recorded demo run replayed scaled (bench/demo_spans.py).

Columns are built with numpy, not span by span in Python, so generating 10M spans stays in
minutes. Bounded: fixed counts, a temporary file, removed at the end.

With ``--trace-ids xray`` trace ids carry their trace's start second in the first four bytes,
as X-Ray's, Fluoro's tracer's and OpenTelemetry's X-Ray id generator's do (stock SDKs' are
random, the default here): zone maps on `trace_id` can then skip row groups by time.

Usage: python bench/query.py [--spans 1000000 10000000] [--runs 5] [--trace-ids random|xray]
       (100M: --spans 100000000, ~15 min, ~7 GB)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import demo_spans  # noqa: E402
from collector.model import ANNOTATION_SCHEMA, LINK_SCHEMA, SPAN_SCHEMA, SpanBatch  # noqa: E402
from collector.query.analytics import TimeSeries, time_series  # noqa: E402
from collector.query.map_view import ServiceMap  # noqa: E402
from collector.query.service_map import MapQuery, service_map  # noqa: E402
from collector.storage import rollup_sql  # noqa: E402
from collector.storage.duckdb_memory import memory_limit_statement  # noqa: E402
from collector.storage.duckdb_store import DuckDBStore  # noqa: E402
from collector.storage.protocols import Group, Statement, Subject, TimeWindow  # noqa: E402
from spanlang.filter_parser import parse_filter  # noqa: E402

SPANS_PER_TRACE = 10
HOUR_NS = 3600 * 10**9
SPANS_PER_HOUR = 10_000_000
DEMO_REPLAY_SPANS = 1_000_000
# (parent index, service tier, kind, role) per span of a trace; tier 0 = gateway, 1 and 2 = functions.
TEMPLATE = [
    (-1, 0, "SERVER", "entry"),
    (0, 0, "CLIENT", "call"),
    (1, 1, "SERVER", "entry"),
    (2, 1, "INTERNAL", "work"),
    (3, 1, "CLIENT", "dynamodb"),
    (2, 1, "CLIENT", "call"),
    (5, 2, "SERVER", "entry"),
    (6, 2, "INTERNAL", "work"),
    (7, 2, "CLIENT", "s3"),
    (6, 2, "INTERNAL", "work"),
]
SEARCH = 'service("svc-05") { fault } AND annotation.customer = "c1"'
# Any OpenTelemetry attribute: a route (1 gateway span in 40), a number on DynamoDB calls.
ATTRIBUTE_SEARCH = 'attribute.http.route = "/accounts/17"'
ATTRIBUTE_RANGE = 'service("accounts") { attribute.aws.dynamodb.consumed_capacity >= 9.5 }'
# A group as deploying a SAM stack makes one: every entry point and function of an architecture
# (here a third of the services), any of them on the trace.
GROUP = " OR ".join(f'service("svc-{i:02d}")' for i in (0, 1, 4, 5, 6, 7, 12, 13, 14))
SELF_JOIN_EDGES = """
    SELECT p.service, c.service, count(*), sum(c.fault::INT), quantile_cont(c.duration_ns, [0.5, 0.9, 0.99])
    FROM spans c JOIN spans p ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id
    WHERE c.start_ns >= ? AND c.start_ns < ? AND p.service <> c.service
    GROUP BY ALL
"""


def batch_of(
    rng: np.random.Generator,
    traces: int,
    t0_ns: int,
    span_ns: int = HOUR_NS,
    services: int = 20,
    xray_ids: bool = False,
) -> SpanBatch:
    """`traces` traces starting in [t0, t0 + span) across `services` services, as one SpanBatch.

    A fifth of the services are gateway stages, two fifths first functions, two fifths second ones.
    `xray_ids`: trace ids as X-Ray makes them (and Fluoro's tracer, and OpenTelemetry's X-Ray id
    generator): the trace's start second in the first four bytes, the rest random."""
    n = traces * SPANS_PER_TRACE
    trace_ids, span_ids, parents, has_parent = _identities(rng, traces)
    position = np.tile(np.arange(SPANS_PER_TRACE), traces)
    tiers = np.tile(np.array([t for _, t, *_ in TEMPLATE]), traces)
    service = _services(rng, traces, services)
    trace_starts = t0_ns + np.sort(rng.integers(0, span_ns, traces))
    if xray_ids:
        epochs = np.repeat((trace_starts // 10**9).astype(">u4"), SPANS_PER_TRACE)
        trace_ids[:, :4] = epochs.view(np.uint8).reshape(-1, 4)
    start = np.repeat(trace_starts, SPANS_PER_TRACE) + position * 2_000_000
    duration = rng.lognormal(np.log(20e6), 0.8, n).astype(np.int64) + (SPANS_PER_TRACE - position) * 3_000_000
    roles = np.tile(np.array([r for *_, r in TEMPLATE], dtype=object), traces)
    fault = rng.random(n) < 0.01
    throttle = (rng.random(n) < 0.005) & ~fault
    entry = roles == "entry"
    cold = entry & (tiers > 0) & (rng.random(n) < 0.02)
    target_type = np.select([roles == "dynamodb", roles == "s3"], ["AWS::DynamoDB::Table", "AWS::S3::Bucket"], None)
    target_name = np.select([roles == "dynamodb", roles == "s3"], ["accounts", "thumbnails"], None)
    origin = np.where(entry, np.where(tiers == 0, "AWS::ApiGateway::Stage", "AWS::Lambda::Function"), None)
    kinds = np.tile(np.array([k for _, _, k, _ in TEMPLATE], dtype=object), traces)
    columns: dict[str, Any] = {
        "trace_id": pa.Array.from_buffers(pa.binary(16), n, [None, pa.py_buffer(trace_ids.tobytes())]),
        "span_id": pa.array(span_ids),
        "parent_span_id": pa.array(parents, mask=~has_parent),
        "service": pa.array(service.tolist(), pa.string()),
        "name": pa.array(np.where(entry, "handler", roles).tolist(), pa.string()),
        "kind": pa.array(kinds.tolist(), pa.string()),
        "start_ns": pa.array(start),
        "duration_ns": pa.array(duration),
        "status_code": pa.array(np.where(fault, 2, 0).astype(np.uint8)),
        "http_status": pa.array(np.where(fault, 500, np.where(throttle, 429, 200)).astype(np.uint16), mask=~entry),
        "error": pa.array(throttle),
        "fault": pa.array(fault),
        "throttle": pa.array(throttle),
        "cold_start": pa.array(cold),
        "origin": pa.array(origin.tolist(), pa.string()),
        "target_type": pa.array(target_type.tolist(), pa.string()),
        "target_name": pa.array(target_name.tolist(), pa.string()),
        "in_progress": pa.array(np.zeros(n, dtype=bool)),
        "source": pa.array(["otlp"] * n, pa.string()),
        "attributes": _attributes(rng, roles, tiers),
    }
    spans = _span_table(columns, n)
    return SpanBatch(spans, _customer_annotations(rng, spans, position), LINK_SCHEMA.empty_table())


def _attribute_pool(role: str, tier: int, size: int) -> list[str]:
    """`size` distinct attribute objects (JSON) of a span of `role`, as OpenTelemetry's
    instrumentations write them: routes, tables, buckets, request ids, consumed capacity."""
    pool = []
    for i in range(size):
        if role == "entry" and tier == 0:
            fields: dict[str, Any] = {"http.route": f"/accounts/{i % 40}", "http.request.method": "GET"}
        elif role == "entry":
            fields = {"faas.trigger": "http", "faas.invocation_id": f"{i:08x}-7c1e-4d2b-9a3f"}
        elif role == "dynamodb":
            fields = {
                "db.system": "dynamodb", "rpc.method": "GetItem", "aws.dynamodb.table_names": ["accounts"],
                "aws.request_id": f"R{i:019d}", "aws.dynamodb.consumed_capacity": (i % 20) / 2,
            }  # fmt: skip
        elif role == "s3":
            fields = {"rpc.service": "S3", "aws.s3.bucket": "thumbnails", "aws.s3.key": f"img/{i}.png"}
        elif role == "call":
            fields = {"http.request.method": "POST", "server.address": f"fn-{i % 12}.lambda", "net.peer.port": 443}
        else:
            fields = {"code.function": "work", "thread.id": i % 8}
        pool.append(orjson.dumps(fields).decode())
    return pool


def _attributes(rng: np.random.Generator, roles: np.ndarray, tiers: np.ndarray) -> pa.Array:
    """Each span's attributes, drawn from a pool of its role's (distinct values, as real spans
    have, so that the column compresses and scans as theirs do)."""
    out = np.empty(len(roles), dtype=object)
    for role in ("entry", "call", "work", "dynamodb", "s3"):
        for tier in (0, 1, 2):
            where = np.flatnonzero((roles == role) & (tiers == tier))
            if len(where):
                pool = np.array(_attribute_pool(role, tier, 4096), dtype=object)
                out[where] = pool[rng.integers(0, len(pool), len(where))]
    return pa.array(out.tolist(), pa.string())


def _identities(rng: np.random.Generator, traces: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Trace ids (n x 16 bytes), span ids, parent span ids and which spans have a parent."""
    n = traces * SPANS_PER_TRACE
    trace_bytes = rng.bytes(16 * traces)
    trace_ids = np.repeat(np.frombuffer(trace_bytes, dtype=np.uint8).reshape(traces, 16), SPANS_PER_TRACE, axis=0)
    span_ids = rng.integers(1, 2**63, size=n, dtype=np.uint64)
    base = np.arange(traces) * SPANS_PER_TRACE
    parent_pos = np.array([p for p, *_ in TEMPLATE])
    parent_index = (np.repeat(base, SPANS_PER_TRACE) + np.tile(parent_pos, traces)).astype(np.int64)
    has_parent = np.tile(parent_pos >= 0, traces)
    parents = np.where(has_parent, span_ids[np.clip(parent_index, 0, n - 1)], 0)
    return trace_ids, span_ids, parents, has_parent


def _services(rng: np.random.Generator, traces: int, services: int) -> np.ndarray:
    """Each span's service: each trace picks one service per tier."""
    first, second = services // 5, services * 3 // 5
    tier_service = np.stack(
        [rng.integers(0, first, traces), rng.integers(first, second, traces), rng.integers(second, services, traces)]
    )
    names = np.array([f"svc-{i:02d}" for i in range(services)], dtype=object)
    tiers = np.array([t for _, t, *_ in TEMPLATE])
    return names[tier_service[np.tile(tiers, traces), np.repeat(np.arange(traces), SPANS_PER_TRACE)]]


def _span_table(columns: dict[str, Any], n: int) -> pa.Table:
    """The columns as SPAN_SCHEMA's table, the ones not given all NULL."""
    arrays = []
    for field in SPAN_SCHEMA:
        if field.name in columns:
            array = columns[field.name]
            if field.name == "trace_id":
                array = pa.ExtensionArray.from_storage(pa.uuid(), array)
            arrays.append(array)
        else:
            arrays.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA)


def _customer_annotations(rng: np.random.Generator, spans: pa.Table, position: np.ndarray) -> pa.Table:
    """One `customer` annotation (of 100 customers) on each trace's root."""
    roots = np.flatnonzero(position == 0)
    traces = len(roots)
    customers = [f"c{i}" for i in rng.integers(0, 100, traces)]
    return pa.Table.from_arrays(
        [
            spans.column("trace_id").take(roots),
            spans.column("span_id").take(roots),
            spans.column("start_ns").take(roots),
            pa.array(["customer"] * traces),
            pa.array(customers),
            pa.nulls(traces, pa.float64()),
            pa.nulls(traces, pa.bool_()),
        ],
        schema=ANNOTATION_SCHEMA,
    )


def size_of(result: object) -> str:
    """What a query answered, in a few words."""
    if isinstance(result, ServiceMap):
        return f"{len(result.nodes)} nodes/{len(result.edges)} edges"
    if isinstance(result, TimeSeries):
        return f"{len(result.points)} points"
    return str(len(result)) if isinstance(result, list) else "?"


def median_ms(run: Callable[[], object], runs: int) -> tuple[float, object]:
    timings, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = run()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), result


def hours_for(total_spans: int) -> int:
    return max(1, -(-total_spans // SPANS_PER_HOUR))


def load(
    store: DuckDBStore,
    total_spans: int,
    t0_ns: int,
    span_ns: int,
    traces_per_batch: int = 10_000,
    xray_ids: bool = False,
) -> object:
    """Write and link `total_spans` over [t0, t0 + span) in time order, in batches, rolling up
    whole minutes as they settle, as the daemon does; one trace id written (its uuid), for the
    trace-by-id query."""
    rng = np.random.default_rng(7)
    sample_trace = None
    batches = max(1, total_spans // (traces_per_batch * SPANS_PER_TRACE))
    slice_ns = span_ns // batches
    for i in range(batches):
        batch = batch_of(rng, traces_per_batch, t0_ns + i * slice_ns, slice_ns, xray_ids=xray_ids)
        sample_trace = batch.spans.column("trace_id")[0].as_py()
        store.write([batch])
        store.link_new_spans()
        if i % 20 == 19:  # the daemon rolls up every 15 s; here every 2M spans
            store.roll_up_calls(t0_ns + i * slice_ns - rollup_sql.SETTLE_NS)
    return sample_trace


def median_bounded_ms(store: DuckDBStore, run: Callable[[], object], runs: int, limit_mib: int) -> float:
    """The median ms of `run` with DuckDB's memory bounded to `limit_mib` (as `fluoro serve
    --memory-limit-mib` does), lifted again after: each query timed both ways in one process."""
    store.reader.rows(Statement(memory_limit_statement(limit_mib)))
    try:
        return median_ms(run, runs)[0]
    finally:
        store.reader.rows(Statement("RESET memory_limit"))


def bench(total_spans: int, runs: int, workdir: str, xray_ids: bool = False, limit_mib: int | None = None) -> None:
    path = os.path.join(workdir, f"q{total_spans}.duckdb")
    store = DuckDBStore(path)
    hours = hours_for(total_spans)
    span_ns = hours * HOUR_NS
    t0_ns = time.time_ns() - span_ns
    started = time.perf_counter()
    sample_trace = load(store, total_spans, t0_ns, span_ns, xray_ids=xray_ids)
    load_s = time.perf_counter() - started
    rollup_started = time.perf_counter()
    store.roll_up_calls(t0_ns + span_ns + rollup_sql.MINUTE_NS)  # the rest: the daemon does it every 15 s
    rollup_s = time.perf_counter() - rollup_started
    window = TimeWindow(t0_ns, t0_ns + span_ns + 10**9)
    last_hour = TimeWindow(window.end_ns - HOUR_NS, window.end_ns)
    (calls,) = store.reader.rows(Statement("SELECT count(*) FROM calls"))[0]
    print(
        f"\n{total_spans:,} spans over {hours} h, {'X-Ray' if xray_ids else 'random'} trace ids ({calls:,} calls rows):"
        f" loaded in {load_s:.0f} s "
        f"({total_spans / load_s:,.0f} spans/s incl. resolving calls), rolled up in {rollup_s:.1f} s, "
        f"file {store.file_size_bytes() / 2**20:,.0f} MiB"
    )
    expr = parse_filter(SEARCH)
    store.groups.save_group(Group("architecture", GROUP, time.time_ns()))
    group_started = time.perf_counter()
    for _ in range(hours + 1):  # the group's rollup, from the oldest call, an hour a pass
        store.roll_up_calls(t0_ns + span_ns + rollup_sql.MINUTE_NS)
    print(f"  the group's rollup: {time.perf_counter() - group_started:.1f} s")

    def group_map() -> ServiceMap:
        saved = store.groups.group("architecture")
        assert saved is not None
        return service_map(store.reader, MapQuery(window, parse_filter(saved.filter), group=saved.name))

    trace_key = uuid.UUID(str(sample_trace)).bytes
    queries: list[tuple[str, Callable[[], object], float]] = [
        ("service map", lambda: service_map(store.reader, MapQuery(window)), 100 if hours == 1 else 300),
        ("group's map", group_map, 500),
        ("filter search", lambda: store.reader.search_traces(window, expr, 100), 200),
        ("attribute search", lambda: store.reader.search_traces(window, parse_filter(ATTRIBUTE_SEARCH), 100), 500),
        ("attribute range", lambda: store.reader.search_traces(window, parse_filter(ATTRIBUTE_RANGE), 100), 500),
        ("trace by id", lambda: store.reader.trace_spans(trace_key), 50),
        *([("map, last hour", lambda: service_map(store.reader, MapQuery(last_hour)), 300)] if hours > 1 else []),
        ("analytics (all)", lambda: time_series(store.reader, window, None, Subject(), None), 500),
        ("analytics (node)", lambda: time_series(store.reader, window, None, Subject("svc-05"), None), 500),
    ]
    baseline_ms, _ = median_ms(
        lambda: store.reader.rows(Statement(SELF_JOIN_EDGES, (window.start_ns, window.end_ns))), runs
    )
    bound_header = f"{f'{limit_mib} MiB bound':>18}" if limit_mib else ""
    print(f"  {'query':<18}{'median ms':>10}{'target':>9}{'vs self-join':>14}{bound_header}  result")
    for name, run, target in queries:
        took, result = median_ms(run, runs)
        bound_column = ""
        if limit_mib:
            bound_ms = median_bounded_ms(store, run, runs, limit_mib)
            bound_column = f"{bound_ms:>10.1f} ({bound_ms / took:.2f}x)"
        print(f"  {name:<18}{took:>10.1f}{target:>9}{took / baseline_ms:>13.2f}x{bound_column}  {size_of(result)}")
    print(f"  {'raw self-join edges':<18}{baseline_ms:>10.1f}{'':>9}{1:>13.2f}x  (baseline, same process)")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--trace-ids",
        choices=["random", "xray"],
        default="random",
        help="random: as stock OpenTelemetry SDKs make them; xray: the start second first (X-Ray, Fluoro's tracer)",
    )
    parser.add_argument("--demo-spans", type=int, default=DEMO_REPLAY_SPANS, help="the demo replay's size for storage")
    parser.add_argument(
        "--memory-limit-mib",
        type=int,
        default=None,
        help="also time each query with DuckDB's memory bounded to this (fluoro serve's --memory-limit-mib)",
    )
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="fluoro-query-bench-")
    try:
        for total in args.spans:
            bench(total, args.runs, workdir, xray_ids=args.trace_ids == "xray", limit_mib=args.memory_limit_mib)
        print(demo_spans.file_size(args.demo_spans, workdir).report())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
