"""Lake mode against a DuckDB file, in the same process: storing and linking, queries, bytes.

Starts a throwaway PostgreSQL cluster (tests/postgres_cluster.py: Debian's server, loopback),
then for each backend, a DuckDB file and a DuckLake (that catalog, Parquet in a temporary
folder), writes --spans realistic spans (bench/query.py's traces) in folds of 100k spans, each
linked as the leader links, with the lake's upkeep (flush, merge, expiry) at the end; then
prints the load rate, the median of --runs runs of the map, a filter search and a trace by id
over the hour, the bytes on disk per span, and each lake figure as a ratio of the file's.

Bounded: fixed counts, temporary files and cluster, removed at the end; loopback only.

Usage: python bench/lake.py [--spans 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.query import HOUR_NS, SEARCH, load, median_ms  # noqa: E402
from collector.query.service_map import MapQuery, service_map  # noqa: E402
from collector.storage import rollup_sql  # noqa: E402
from collector.storage.duckdb_store import DuckDBStore  # noqa: E402
from collector.storage.lake_location import LakeLocation  # noqa: E402
from collector.storage.lake_map import LakeMapTables  # noqa: E402
from collector.storage.protocols import TimeWindow  # noqa: E402
from spanlang.filter_parser import parse_filter  # noqa: E402
from tests.postgres_cluster import PostgresCluster  # noqa: E402


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure(store: DuckDBStore, total_spans: int, runs: int, on_disk: Callable[[], int]) -> dict[str, float]:
    t0_ns = time.time_ns() - HOUR_NS
    started = time.perf_counter()
    sample = load(store, total_spans, t0_ns)
    load_s = time.perf_counter() - started
    store.roll_up_calls(t0_ns + HOUR_NS + rollup_sql.MINUTE_NS)
    if isinstance(store.map_tables, LakeMapTables):
        store.map_tables.upkeep(keep_s=0)
    window = TimeWindow(t0_ns, t0_ns + HOUR_NS + 10**9)
    expr = parse_filter(SEARCH)
    trace_key = uuid.UUID(str(sample)).bytes
    figures = {"load spans/s": total_spans / load_s}
    figures["map ms"], _ = median_ms(lambda: service_map(store.reader, MapQuery(window)), runs)
    figures["search ms"], _ = median_ms(lambda: store.reader.search_traces(window, expr, 100), runs)
    figures["trace ms"], _ = median_ms(lambda: store.reader.trace_spans(trace_key), runs)
    store.close()
    figures["bytes/span"] = on_disk() / total_spans
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fluoro-lake-bench-"))
    cluster = PostgresCluster().start()
    try:
        file_path = workdir / "spans.duckdb"
        file_figures = measure(DuckDBStore(str(file_path)), args.spans, args.runs, lambda: file_path.stat().st_size)
        location = LakeLocation.parse(cluster.new_database(), str(workdir / "lake-data"))
        lake_figures = measure(
            DuckDBStore("", location), args.spans, args.runs, lambda: folder_bytes(workdir / "lake-data")
        )
        print(f"\n{args.spans:,} spans, median of {args.runs} runs per query")
        print(f"  {'':<16}{'DuckDB file':>14}{'DuckLake':>14}{'lake / file':>13}")
        for name, file_value in file_figures.items():
            lake_value = lake_figures[name]
            print(f"  {name:<16}{file_value:>14,.1f}{lake_value:>14,.1f}{lake_value / file_value:>12.2f}x")
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
