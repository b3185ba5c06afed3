"""Ingest throughput of the running daemon over loopback, against its in-process ceiling.

Starts ``fluoro serve`` on a temporary database, then:

1. ceiling: decode + insert of the same kind of requests in this process, one thread, no HTTP,
   in folds of a row group as the pipeline folds under load (spans/s);
2. flood: several sender processes POST OTLP/HTTP protobuf requests of 512 spans (realistic
   attributes, 20 services) as fast as the daemon acknowledges them; prints sustained spans/s
   stored (until the last is in DuckDB, not just in the ingest log), p50/p99 acknowledgement
   latency, the collector's CPU and peak RSS (when the flood is stored, and again once the
   linker has worked it off), and checks that stored == acknowledged (refusals apart); then the same
   flood over OTLP/gRPC (a channel a sender, as the SDK's exporter keeps) into a second daemon
   on a fresh store, and its rate's ratio to HTTP's;
3. steady: two senders paced at 5,000 spans/s each, after a few seconds at that rate (the flood's
   last linking and checkpoint are not the steady state); prints the collector's CPU as % of one
   core over a window long enough to hold several folds and checkpoints, its share by thread
   (the daemon's /metrics), and its CPU a span once the window's spans are stored and linked;
4. bytes on disk per span, after the daemon has shut down and checkpointed.

Senders build their requests before the clock starts (each one afresh, so trace and span ids
are unique as real SDKs make them), so their own CPU stays small. Bounded: fixed counts, and
every process stops by itself.

With --lake, the daemon stores into a DuckLake on a throwaway PostgreSQL catalog (lake mode,
docs/SCALING.md), its Parquet files under the temporary folder.

Usage: python bench/ingest.py [--spans 400000] [--senders 3] [--steady-s 60] [--steady-only] [--lake]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import multiprocessing as mp
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.daemon_figures import (  # noqa: E402
    cpu_by_role,
    fold_acknowledged,
    linker_settled,
    proc_cpu_s,
    proc_peak_rss_mib,
    stored_spans,
)
from collector.ingest.limits import ROW_GROUP_SPANS  # noqa: E402 - after the path is set
from demo_apps.local_collector import run_collector  # noqa: E402
from tests.postgres_cluster import PostgresCluster  # noqa: E402

SPANS_PER_REQUEST = 512
SPANS_PER_TRACE = 8
STEADY_WARM_UP_S = 5.0
SERVICES = [f"svc-{i:02d}" for i in range(20)]
ROUTES = ["/accounts/{id}", "/withdraw", "/images/{key}", "/posts", "/health"]


@functools.cache
def service_resources() -> dict[str, Any]:
    from opentelemetry.sdk.resources import Resource

    return {s: Resource.create({"service.name": s, "cloud.provider": "aws"}) for s in SERVICES}


def encoded_request(seed: int) -> bytes:
    """One encoded request of 512 spans (64 traces of 8), its ids drawn from `seed`."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    from tracer.otlp_encoder import OtlpEncoder

    rng = random.Random(seed)
    scope = InstrumentationScope("bench", "1.0")
    resources = service_resources()
    now = time.time_ns()
    spans = []
    for _ in range(SPANS_PER_REQUEST // SPANS_PER_TRACE):
        trace_id = rng.getrandbits(128) | 1
        parent = None
        for depth in range(SPANS_PER_TRACE):
            service = rng.choice(SERVICES)
            status = rng.choices([200, 404, 429, 500], weights=[90, 5, 3, 2])[0]
            context = SpanContext(trace_id, rng.getrandbits(64) | 1, False, TraceFlags(1))
            start = now - rng.randint(0, 5_000_000_000)
            attributes: dict[str, Any] = {
                "http.request.method": rng.choice(["GET", "POST"]),
                "http.route": rng.choice(ROUTES),
                "http.response.status_code": status,
                "url.path": "/accounts/42",
                "faas.invocation_id": f"{rng.getrandbits(64):016x}",
                "fluoro.annotation.customer": f"c{rng.randint(1, 500)}",
            }
            if depth % 3 == 2:
                attributes.update(
                    {"rpc.system": "aws-api", "rpc.service": "DynamoDB", "aws.dynamodb.table_names": ("accounts",)}
                )
            spans.append(
                ReadableSpan(
                    name=f"op-{depth}",
                    context=context,
                    parent=parent,
                    resource=resources[service],
                    attributes=attributes,
                    kind=SpanKind.SERVER if depth == 0 else SpanKind.CLIENT,
                    status=Status(StatusCode.ERROR if status >= 500 else StatusCode.UNSET),
                    start_time=start,
                    end_time=start + rng.randint(1_000_000, 300_000_000),
                    instrumentation_scope=scope,
                )
            )
            parent = context
    return OtlpEncoder().encode(spans)


def unique_requests(count: int, seed: int) -> list[bytes]:
    """`count` requests, each built afresh: unique trace and span ids, as real SDKs make them."""
    return [encoded_request(seed * 100_000 + n) for n in range(count)]


def http_poster(port: int) -> Callable[[bytes], bool]:
    """Sends one request over OTLP/HTTP on a kept-alive connection; True when answered 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(body: bytes) -> bool:
        connection.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
        response = connection.getresponse()
        response.read()
        return response.status == 200

    return post


def grpc_poster(port: int) -> Callable[[bytes], bool]:
    """Sends one request over OTLP/gRPC on one channel (as the SDK's exporter does); True when OK."""
    import grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")

    def post(body: bytes) -> bool:
        try:
            export(body, timeout=30)
        except grpc.RpcError:
            return False
        return True

    return post


POSTERS = {"http": http_poster, "grpc": grpc_poster}


def sender(
    target: tuple[str, int], requests: int, seed: int, rate_per_s: float, results: Any, ready: Any, go: Any
) -> None:
    bodies = unique_requests(requests, seed)
    ready.put(seed)
    go.wait()
    transport, port = target
    post = POSTERS[transport](port)
    latencies, failures = [], 0
    started = time.perf_counter()
    for i, body in enumerate(bodies):
        if rate_per_s:
            delay = started + i / rate_per_s - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        sent = time.perf_counter()
        ok = post(body)
        latencies.append(time.perf_counter() - sent)
        failures += not ok
    results.put((latencies, failures))


def run_senders(
    target: tuple[str, int], senders: int, requests_each: int, rate_per_s: float, seed: int
) -> tuple[list[float], int, float]:
    ctx = mp.get_context("fork")
    results, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=sender, args=(target, requests_each, seed + i, rate_per_s, results, ready, go))
        for i in range(senders)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=300)
    started = time.perf_counter()
    go.set()
    latencies: list[float] = []
    failures = 0
    for _ in procs:
        got, failed = results.get(timeout=600)
        latencies += got
        failures += failed
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join(10)
    return latencies, failures, elapsed


def ceiling(requests: int, runs: int = 3) -> tuple[float, float, float]:
    """Spans/s of decode + insert in this process, on a fresh file, no HTTP, one thread, and
    the microseconds a span of each part: medians of `runs` (one run is ~2 s, and noisy)."""
    from collector.ingest.limits import ROW_GROUP_SPANS
    from collector.normalize.otlp_proto import decode_protobuf
    from collector.storage.duckdb_store import DuckDBStore

    bodies = unique_requests(requests, 99)
    per_fold = ROW_GROUP_SPANS // SPANS_PER_REQUEST  # as the pipeline folds under load
    spans = requests * SPANS_PER_REQUEST
    decode_us, write_us = [], []
    for _ in range(runs):
        tmp = tempfile.mkdtemp()
        try:
            store = DuckDBStore(os.path.join(tmp, "ceiling.duckdb"))
            decode_s = write_s = 0.0
            for i in range(0, len(bodies), per_fold):
                started = time.perf_counter()
                batches = [decode_protobuf(b) for b in bodies[i : i + per_fold]]
                decoded = time.perf_counter()
                store.write(batches)
                decode_s, write_s = decode_s + decoded - started, write_s + time.perf_counter() - decoded
            store.close()
        finally:
            shutil.rmtree(tmp)
        decode_us.append(decode_s / spans * 1e6)
        write_us.append(write_s / spans * 1e6)
    decode, write = statistics.median(decode_us), statistics.median(write_us)
    return 1e6 / (decode + write), decode, write


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def flood(collector: Any, target: tuple[str, int], spans: int, senders: int, ceiling_rate: float, seed: int) -> float:
    """Flood over one transport; the rate stored (spans/s)."""
    requests_each = max(1, spans // SPANS_PER_REQUEST // senders)
    sent = requests_each * senders * SPANS_PER_REQUEST
    stored_before = stored_spans(collector.api_url)
    cpu_before, threads_before = proc_cpu_s(collector.pid), cpu_by_role(collector.api_url)
    latencies, failures, elapsed = run_senders(target, senders, requests_each, 0, seed=seed)
    # The last acknowledged spans may still be in the ingest log: a query folds them into the
    # store, and the time it takes counts, so the rate is of spans in DuckDB, not just logged.
    folded_from = time.perf_counter()
    fold_acknowledged(collector.api_url)
    elapsed += time.perf_counter() - folded_from
    cpu_used = proc_cpu_s(collector.pid) - cpu_before
    threads = {k: v - threads_before.get(k, 0.0) for k, v in cpu_by_role(collector.api_url).items()}
    stored = stored_spans(collector.api_url) - stored_before
    name = {"http": "OTLP/HTTP", "grpc": "OTLP/gRPC"}[target[0]]
    print(f"\nflood over {name}: {senders} senders x {requests_each} requests x {SPANS_PER_REQUEST} spans")
    print(f"  sustained            {stored / elapsed:,.0f} spans/s stored  (target >= 150,000)")
    # A refused request (the queue full: 429 or RESOURCE_EXHAUSTED, retry later) is not
    # acknowledged; exporters send it again, these senders do not.
    acknowledged = sent - failures * SPANS_PER_REQUEST
    print(
        f"  stored / acknowledged {stored:,} / {acknowledged:,}  {'OK' if stored == acknowledged else 'MISMATCH'}"
        f"  (of {sent:,} sent; {failures} requests refused)"
    )
    print(
        f"  ack latency          p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms  (target p99 <= 100 ms)"
    )
    print(f"  collector CPU        {cpu_used / elapsed * 100:.0f}% of one core over {elapsed:.1f} s")
    per_million = ", ".join(f"{role} {seconds / stored * 1e6:.2f}" for role, seconds in sorted(threads.items()))
    print(f"  by thread            {per_million}  (core-seconds per million spans)")
    print(f"  collector peak RSS   {proc_peak_rss_mib(collector.pid):.0f} MiB  (target <= 512)")
    print(f"  ratio to ceiling     {stored / elapsed / ceiling_rate:.2f}")
    linker_settled(collector.api_url)
    print(f"  peak RSS, linked     {proc_peak_rss_mib(collector.pid):.0f} MiB  (the linker has worked the flood off)")
    return stored / elapsed


def steady(collector: Any, otlp: tuple[str, int], steady_s: float) -> None:
    rate_each = 5_000 / SPANS_PER_REQUEST  # two paced senders: one alone cannot keep 10k/s up
    run_senders(otlp, 2, int(rate_each * STEADY_WARM_UP_S), rate_each, seed=40)
    requests_each, api = int(rate_each * steady_s), collector.api_url
    linker_settled(api)  # nothing of the warm-up left to store or link: the window's work is its own
    cpu_before, threads_before = proc_cpu_s(collector.pid), cpu_by_role(api)
    _, _, elapsed = run_senders(otlp, 2, requests_each, rate_each, seed=50)
    cpu_used = proc_cpu_s(collector.pid) - cpu_before
    threads = {k: v - threads_before.get(k, 0.0) for k, v in cpu_by_role(api).items()}
    linker_settled(api)
    per_million = (proc_cpu_s(collector.pid) - cpu_before) / (2 * requests_each * SPANS_PER_REQUEST) * 1e6
    print(f"\nsteady: {2 * requests_each * SPANS_PER_REQUEST / elapsed:,.0f} spans/s for {elapsed:.1f} s")
    print(f"  collector CPU        {cpu_used / elapsed * 100:.1f}% of one core  (target <= 20%)")
    print(f"  stored and linked    {per_million:.2f} core-seconds per million spans (whole folds, however timed)")
    shares = ", ".join(f"{role} {seconds / elapsed * 100:.1f}%" for role, seconds in sorted(threads.items()))
    print(f"  by thread            {shares}")


def grpc_extra(lake: bool, stack: contextlib.ExitStack, tmp: str) -> tuple[str, ...]:
    """The gRPC flood's daemon's flags: in lake mode, a lake of its own."""
    if not lake:
        return ()
    cluster = PostgresCluster().start()
    stack.callback(cluster.stop)
    data, log = os.path.join(tmp, "grpc-lake-data"), os.path.join(tmp, "grpc-lake.ingest")
    return ("--lake", cluster.new_database(), "--lake-data", data, "--ingest-log", log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=400_000, help="spans in the flood phase")
    parser.add_argument("--senders", type=int, default=3)
    # Long enough for several folds (one every ~12 s at 10,000 spans/s) and DuckDB checkpoints.
    parser.add_argument("--steady-s", type=float, default=60.0)
    parser.add_argument("--steady-only", action="store_true", help="skip the ceiling and the flood")
    parser.add_argument(
        "--lake", action="store_true", help="the daemon stores into a DuckLake (a throwaway PostgreSQL catalog)"
    )
    args = parser.parse_args()

    if not args.steady_only:
        ceiling_rate, decode_us, write_us = ceiling(2 * ROW_GROUP_SPANS // SPANS_PER_REQUEST)
        print(f"ceiling (decode + insert, in process): {ceiling_rate:,.0f} spans/s  (median of 3)")
        print(f"  decode {decode_us:.2f} µs a span, DuckDB write {write_us:.2f} µs a span")
    tmp = tempfile.mkdtemp()
    db = os.path.join(tmp, "ingest.duckdb")
    with contextlib.ExitStack() as stack:
        extra: tuple[str, ...] = ()
        if args.lake:
            cluster = PostgresCluster().start()
            stack.callback(cluster.stop)
            lake_data, log = os.path.join(tmp, "lake-data"), os.path.join(tmp, "lake.ingest")
            extra = ("--lake", cluster.new_database(), "--lake-data", lake_data, "--ingest-log", log)
        with run_collector(Path(db), extra_args=extra) as collector:
            otlp = ("http", int(collector.traces_url.rsplit(":", 1)[1].split("/")[0]))
            if not args.steady_only:
                over_http = flood(collector, otlp, args.spans, args.senders, ceiling_rate, seed=1)
            steady(collector, otlp, args.steady_s)
            total = stored_spans(collector.api_url)
        if not args.steady_only:
            # A daemon of its own, on a fresh store, so each transport floods the same state.
            with run_collector(Path(tmp, "grpc.duckdb"), extra_args=grpc_extra(args.lake, stack, tmp)) as collector:
                grpc_port = int(collector.grpc_address.rsplit(":", 1)[1])
                over_grpc = flood(collector, ("grpc", grpc_port), args.spans, args.senders, ceiling_rate, seed=20)
            print(f"\ngRPC / HTTP           {over_grpc / over_http:.2f}  (stored spans/s, each on a fresh daemon)")
    if args.lake:
        size = sum(f.stat().st_size for f in Path(tmp, "lake-data").rglob("*") if f.is_file())
    else:
        size = os.path.getsize(db) + (os.path.getsize(db + ".wal") if os.path.exists(db + ".wal") else 0)
    print(f"\ndisk: {size / 1e6:.1f} MB for {total:,} spans = {size / total:.0f} bytes per span")
    print(json.dumps({"file_bytes": size, "spans": total}))
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
