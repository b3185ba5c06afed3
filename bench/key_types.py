"""Which column types to use for trace and span ids: insert and lookup speed in DuckDB.

Builds the same N spans as Arrow tables with trace ids as 16-byte BLOBs, 32-char hex VARCHARs,
UUIDs parsed from text, and UUIDs straight from Arrow's UUID type (span ids are UBIGINTs);
inserts each into a file database, and times a trace-by-id lookup and a parent/child
self-join. Prints medians of several runs and ratios to BLOB.

Usage: python bench/key_types.py [--spans 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid

import duckdb
import numpy as np
import pyarrow as pa


def make_ids(spans: int, per_trace: int) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    traces = [rng.bytes(16) for _ in range(spans // per_trace + 1)]
    trace_ids = [traces[i // per_trace] for i in range(spans)]
    span_ids = rng.integers(1, 2**63, size=spans, dtype=np.uint64)
    parents = np.where(np.arange(spans) % per_trace == 0, 0, np.roll(span_ids, 1)).astype(np.uint64)
    return trace_ids, span_ids, parents


def table(kind: str, trace_ids: list[bytes], span_ids: np.ndarray, parents: np.ndarray) -> pa.Table:
    if kind == "blob":
        trace_col = pa.array(trace_ids, pa.binary(16))
    elif kind == "uuid-arrow":
        trace_col = pa.array(trace_ids, pa.uuid())  # Arrow's UUID extension type: DuckDB reads it as UUID
    elif kind == "varchar":
        trace_col = pa.array([t.hex() for t in trace_ids], pa.string())
    else:
        trace_col = pa.array([str(uuid.UUID(bytes=t)) for t in trace_ids], pa.string())
    start = np.arange(len(span_ids), dtype=np.int64) * 1000
    return pa.table({"trace_id": trace_col, "span_id": span_ids, "parent_span_id": parents, "start_ns": start})


def run(kind: str, data: pa.Table, probe: object) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(os.path.join(tmp, "k.duckdb"))
        trace_type = {"blob": "BLOB", "varchar": "VARCHAR", "uuid": "UUID", "uuid-arrow": "UUID"}[kind]
        con.execute(
            f"CREATE TABLE spans (trace_id {trace_type}, span_id UBIGINT, parent_span_id UBIGINT, start_ns BIGINT)"
        )
        con.register("batch", data)
        t0 = time.perf_counter()
        con.execute("INSERT INTO spans SELECT * FROM batch")
        insert_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        con.execute("SELECT count(*) FROM spans WHERE trace_id = ?", [probe]).fetchall()
        lookup_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        con.execute(
            "SELECT count(*) FROM spans c JOIN spans p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id"
        ).fetchall()
        join_s = time.perf_counter() - t0
        con.close()
    return insert_s, lookup_s, join_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    trace_ids, span_ids, parents = make_ids(args.spans, 10)
    probe_bytes = trace_ids[len(trace_ids) // 2]
    probes = {
        "blob": probe_bytes,
        "varchar": probe_bytes.hex(),
        "uuid": str(uuid.UUID(bytes=probe_bytes)),
        "uuid-arrow": uuid.UUID(bytes=probe_bytes),
    }
    results = {}
    for kind in ("blob", "varchar", "uuid", "uuid-arrow"):
        data = table(kind, trace_ids, span_ids, parents)
        runs = [run(kind, data, probes[kind]) for _ in range(args.runs)]
        results[kind] = [statistics.median(r[i] for r in runs) for i in range(3)]
    print(f"{args.spans:,} spans, median of {args.runs} runs (ratio to BLOB)")
    print(f"  {'trace_id type':<10} {'insert':>16} {'lookup by id':>18} {'parent join':>18}")
    base = results["blob"]
    for kind, (ins, look, join) in results.items():
        print(
            f"  {kind:<10} {ins * 1000:9.1f} ms {ins / base[0]:4.2f}x {look * 1000:9.2f} ms {look / base[1]:4.2f}x"
            f" {join * 1000:9.1f} ms {join / base[2]:4.2f}x"
        )


if __name__ == "__main__":
    main()
