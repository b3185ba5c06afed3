"""A link run over a flood's backlog: its peak memory and time, in parts against one transaction.

Under a flood the linker falls behind (its thread gets little of 2 cores), and its next run
takes everything stored since: ~400,000 spans after bench/ingest.py's 2 s flood. This stores
--spans spans of bench/ingest.py's realistic requests in row-group folds, as the pipeline
does, then times one ``link_new_spans`` over all of them and measures how far it raised the
process's peak RSS (VmHWM, reset after storing), once with the store's parts
(duckdb_map.LINK_RUN_ROWS spans a transaction) and once in one transaction (the baseline).
Each case runs in a fresh process, alternated, --runs times; prints medians and the ratio.

Usage: python bench/link_backlog.py [--spans 400000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SPANS_PER_REQUEST = 512


def one_case(spans: int, in_parts: bool) -> dict[str, float]:
    """Store the backlog, link it once; this process's figures."""
    from bench.hostile import rss_kib
    from bench.ingest import unique_requests
    from collector.ingest.limits import ROW_GROUP_SPANS
    from collector.normalize.otlp_proto import decode_protobuf
    from collector.storage.duckdb_store import DuckDBStore

    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(os.path.join(tmp, "backlog.duckdb"))
        if not in_parts:
            store.map_tables.run_rows = None
        per_fold = ROW_GROUP_SPANS // SPANS_PER_REQUEST
        bodies = unique_requests(spans // SPANS_PER_REQUEST, seed=7)
        for first in range(0, len(bodies), per_fold):
            store.write([decode_protobuf(body) for body in bodies[first : first + per_fold]])
        del bodies
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current RSS
        before_mib = rss_kib(os.getpid(), "VmRSS") / 1024
        started = time.perf_counter()
        linked = store.link_new_spans()
        elapsed_s = time.perf_counter() - started
        grown_mib = rss_kib(os.getpid(), "VmHWM") / 1024 - before_mib
        store.close()
    return {"linked": linked, "seconds": elapsed_s, "peak_growth_mib": grown_mib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=400_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--case", choices=["parts", "whole"], help=argparse.SUPPRESS)  # one case, in this process
    args = parser.parse_args()
    if args.case:
        print(json.dumps(one_case(args.spans, args.case == "parts")))
        return
    figures: dict[str, list[dict[str, float]]] = {"parts": [], "whole": []}
    for _ in range(args.runs):
        for case in ("whole", "parts"):
            command = [sys.executable, __file__, "--spans", str(args.spans), "--case", case]
            ran = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
            figures[case].append(json.loads(ran.stdout.strip().splitlines()[-1]))
    print(f"a link run over a backlog of {figures['parts'][0]['linked']:,.0f} spans, medians of {args.runs}:")
    for key, unit in (("peak_growth_mib", "MiB peak RSS growth"), ("seconds", "s")):
        whole = statistics.median(f[key] for f in figures["whole"])
        parts = statistics.median(f[key] for f in figures["parts"])
        print(f"  {unit:22s} one transaction {whole:8.1f}   in parts {parts:8.1f}   ratio {parts / whole:.2f}")


if __name__ == "__main__":
    main()
