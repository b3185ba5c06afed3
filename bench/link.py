"""Linking speed: a link run's milliseconds per 20,480 spans, by where the partners are.

The daemon links every 2 s whatever was written since (about 20,000 spans at a steady 10,000
spans/s). This builds runs of 40 requests of 512 spans (bench/ingest.py's realistic traces of 8
spans over 20 services), stores them and times ``link_new_spans`` in three cases:

1. together: every parent in the same run as its children (the common case);
2. parents first: the parents' run is linked before the children's (children find their
   partners among stored spans);
3. children first: the children wait for their parents (the parents' run meets them).

Baseline, same process: storing the same spans (``DuckDBStore.write``), so the ratio says what
linking adds to storing. Prints medians of --runs runs. Bounded: fixed counts, temporary files.

Usage: python bench/link.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from bench.ingest import unique_requests  # noqa: E402
from collector.model import SpanBatch  # noqa: E402
from collector.normalize.otlp_proto import decode_protobuf  # noqa: E402
from collector.storage.duckdb_store import DuckDBStore  # noqa: E402

REQUESTS_PER_RUN = 40  # x 512 spans = 20,480: a 2 s link run at 10,000 spans/s


def split_by_depth(batch: SpanBatch) -> tuple[SpanBatch, SpanBatch]:
    """(roots and their direct children, the deeper spans): two halves of the same traces."""
    spans = batch.spans
    ids = set(spans.filter(pc.is_null(spans.column("parent_span_id"))).column("span_id").to_pylist())
    shallow = pc.or_(
        pc.is_null(spans.column("parent_span_id")),
        pc.is_in(spans.column("parent_span_id"), pa.array(list(ids), pa.uint64())),
    )
    shallow = pc.fill_null(shallow, False)
    parents = SpanBatch(spans.filter(shallow), batch.annotations, batch.links)
    children = SpanBatch(spans.filter(pc.invert(shallow)), batch.annotations.slice(0, 0), batch.links.slice(0, 0))
    return parents, children


def timed_ms(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def one_round(seed: int) -> dict[str, float]:
    batches = [decode_protobuf(body) for body in unique_requests(REQUESTS_PER_RUN, seed)]
    halves = [split_by_depth(b) for b in batches]
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(os.path.join(tmp, "together.duckdb"))
        figures["store"] = timed_ms(lambda: store.write(batches))
        figures["together"] = timed_ms(store.link_new_spans)
        store.close()
        for name, first, second in (("parents first", 0, 1), ("children first", 1, 0)):
            store = DuckDBStore(os.path.join(tmp, f"{name}.duckdb"))
            store.write([h[first] for h in halves])
            elapsed = timed_ms(store.link_new_spans)
            store.write([h[second] for h in halves])
            figures[name] = elapsed + timed_ms(store.link_new_spans)
            store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    one_round(1)  # warm up: imports, DuckDB's first plans
    rounds = [one_round(10 + n) for n in range(args.runs)]
    spans = REQUESTS_PER_RUN * 512
    store_ms = statistics.median(r["store"] for r in rounds)
    print(f"link runs of {spans:,} spans, median of {args.runs}")
    print(f"  {'storing them (baseline)':<26}{store_ms:8.1f} ms")
    for case in ("together", "parents first", "children first"):
        ms = statistics.median(r[case] for r in rounds)
        print(f"  {'linking, ' + case:<26}{ms:8.1f} ms  {ms / store_ms:5.2f}x storing")


if __name__ == "__main__":
    main()
