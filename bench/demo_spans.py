"""The demo's own spans, recorded once and replayed scaled: what storing real spans costs on disk.

Synthetic spans say little about bytes on disk: compression feeds on what real instrumentation
writes (the AWS SDK's, the HTTP clients', API Gateway's and Lambda's attributes, X-Ray's
annotations, the demo's errors and throttles). So a demo run is recorded (``record``: the three
architectures under the demo's load against a fresh collector, its stored spans, annotations
and links exported as Parquet into bench/data/demo/), and ``replay`` writes that recording again
and again through the store, each copy with its trace ids XOR-ed with a copy key (distinct ids,
the recording's parent/child and link structure intact) and its times moved past the previous
copy's (time order, as spans arrive), linking and rolling up as the daemon does. bench/query.py
prints the bytes per span of the file that makes.

Usage: python -m bench.demo_spans record [--duration 90]   (re-records bench/data/demo/)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.model import ANNOTATION_SCHEMA, LINK_SCHEMA, SPAN_SCHEMA, SpanBatch  # noqa: E402
from collector.storage import rollup_sql  # noqa: E402
from collector.storage.duckdb_store import DuckDBStore  # noqa: E402

RECORDING = ROOT / "bench" / "data" / "demo"
# Bytes a span in the spans table of Jaeger v2.18's ClickHouse storage, from its maintainers'
# benchmark (10M spans of 1M traces in 722 MiB, CNCF blog, 2026-06-23): the 72-byte
# figure is of this kind, a spans table's.
JAEGER_CLICKHOUSE_SPANS_BYTES = 722 * 2**20 / 10_000_000
_EXPORTS = {
    # In the order the collector stored them (rowid), which is the order they arrived in: a
    # request's spans together (one process's, a Lambda invocation's), as a daemon's folds hold them.
    "spans.parquet": "SELECT s.* EXCLUDE (resource_id), r.resource FROM spans s "
    "LEFT JOIN resources r USING (resource_id) ORDER BY s.rowid",
    "annotations.parquet": "SELECT * FROM annotations ORDER BY rowid",
    "links.parquet": "SELECT * FROM span_links ORDER BY rowid",
}


@dataclass(frozen=True)
class Recording:
    spans: pa.Table  # SPAN_SCHEMA
    annotations: pa.Table
    links: pa.Table

    @property
    def duration_ns(self) -> int:
        starts = self.spans.column("start_ns").to_numpy()
        return int(starts.max() - starts.min()) + 1


def export(db: Path, out: Path) -> None:
    """The stored spans (resources joined back), annotations and links of `db` as Parquet in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(db), read_only=True)
    con.execute("SET arrow_lossless_conversion = true")  # UUIDs as UUIDs, as the store reads them
    try:
        for name, query in _EXPORTS.items():
            pq.write_table(con.sql(query).to_arrow_table(), out / name, compression="zstd")
    finally:
        con.close()


def load_recording(folder: Path = RECORDING) -> Recording:
    spans = pq.read_table(folder / "spans.parquet").select(SPAN_SCHEMA.names).cast(SPAN_SCHEMA)
    annotations = pq.read_table(folder / "annotations.parquet").cast(ANNOTATION_SCHEMA)
    links = pq.read_table(folder / "links.parquet").cast(LINK_SCHEMA)
    return Recording(spans, annotations, links)


def _rekeyed(ids: pa.ChunkedArray, key: np.ndarray) -> pa.Array:
    """UUIDs XOR-ed with a 16-byte key: a bijection, so a copy's ids are distinct and consistent."""
    storage = ids.combine_chunks()
    raw = np.frombuffer(storage.storage.buffers()[1], dtype=np.uint8)[: len(storage) * 16].reshape(-1, 16)
    mixed = (raw ^ key).tobytes()
    return pa.ExtensionArray.from_storage(
        pa.uuid(), pa.Array.from_buffers(pa.binary(16), len(storage), [None, pa.py_buffer(mixed)])
    )


def _copy(table: pa.Table, key: np.ndarray, shift_ns: int, id_columns: tuple[str, ...]) -> pa.Table:
    for name in id_columns:
        table = table.set_column(table.schema.get_field_index(name), name, _rekeyed(table.column(name), key))
    starts = table.schema.get_field_index("start_ns")
    return table.set_column(starts, "start_ns", pa.array(table.column("start_ns").to_numpy() + shift_ns, pa.int64()))


def replay(store: DuckDBStore, recording: Recording, total_spans: int, t0_ns: int) -> int:
    """Write copies of `recording` from `t0_ns` on until `total_spans` are stored; spans written."""
    rng = np.random.default_rng(23)
    duration = recording.duration_ns
    first = int(recording.spans.column("start_ns").to_numpy().min())
    copies = max(1, total_spans // recording.spans.num_rows)
    for n in range(copies):
        key = rng.integers(0, 256, 16, dtype=np.uint8)
        shift = t0_ns - first + n * duration
        batch = SpanBatch(
            _copy(recording.spans, key, shift, ("trace_id",)),
            _copy(recording.annotations, key, shift, ("trace_id",)),
            _copy(recording.links, key, shift, ("trace_id", "linked_trace_id")),
        )
        store.write([batch])
        store.link_new_spans()
        if n % 20 == 19:
            store.roll_up_calls(t0_ns + n * duration - rollup_sql.SETTLE_NS)
    store.roll_up_calls(t0_ns + copies * duration + rollup_sql.MINUTE_NS)
    return copies * recording.spans.num_rows


@dataclass(frozen=True)
class FileSize:
    spans: int  # written
    file_bytes: int
    free_bytes: int  # blocks freed by rewrites (checkpoints, the link runs' updates), reused as the file grows
    table_bytes: tuple[tuple[str, int], ...] = ()  # what each table holds in the file, largest first

    @property
    def per_span(self) -> float:
        return self.file_bytes / self.spans

    @property
    def free_per_span(self) -> float:
        return self.free_bytes / self.spans

    def table_per_span(self, table: str) -> float:
        return dict(self.table_bytes).get(table, 0) / self.spans

    def report(self) -> str:
        """The bytes per span, and the spans table's apart from what indexes them for the map and
        search (Jaeger's ClickHouse figure counts its spans table alone)."""
        parts = ", ".join(f"{table} {held / self.spans:.1f}" for table, held in self.table_bytes if held >= self.spans)
        return (
            f"\nstorage on the demo's own spans (bench/data/demo replayed to {self.spans:,} spans, linked and"
            f" rolled up): {self.per_span:.0f} bytes per span  (target <= 72), of which {self.free_per_span:.0f}"
            f" in free blocks (freed by rewrites, reused as the file grows)\n  the spans table alone"
            f" {self.table_per_span('spans'):.1f} bytes per span (Jaeger's ClickHouse spans table in its 10M-span"
            f" benchmark: 722 MiB, {JAEGER_CLICKHOUSE_SPANS_BYTES:.0f})\n  by table: {parts}"
        )


def file_size(total_spans: int, workdir: str) -> FileSize:
    """The replayed recording's file (after a checkpoint): its size, how much of it is free
    blocks, and what each table holds."""
    path = os.path.join(workdir, "demo-replay.duckdb")
    store = DuckDBStore(path)
    try:
        written = replay(store, load_recording(), total_spans, t0_ns=1_800_000_000 * 10**9)
    finally:
        store.close()  # checkpoints: what is on disk is the compressed file
    con = duckdb.connect(path, read_only=True)
    try:
        (sizes,) = con.execute("SELECT block_size, free_blocks FROM pragma_database_size()").fetchall()
    finally:
        con.close()
    return FileSize(written, os.path.getsize(path), int(sizes[0]) * int(sizes[1]), bytes_by_table(path))


def bytes_by_table(path: str) -> tuple[tuple[str, int], ...]:
    """What each table of the file at `path` holds: on a copy, the tables are dropped one at a
    time, each followed by a checkpoint, and a table holds the blocks its drop freed. (DuckDB
    reports segments, not their bytes; recompressing a table into a file of its own would
    measure a fresh layout, not this one.)"""
    copy = path + ".by-table"
    shutil.copyfile(path, copy)
    con = duckdb.connect(copy)
    try:
        tables = [row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        held, used = [], _used_bytes(con)
        for table in tables:
            con.execute(f'DROP TABLE "{table}"')
            after = _used_bytes(con)
            held.append((table, used - after))
            used = after
    finally:
        con.close()
        os.remove(copy)
    return tuple(sorted(held, key=lambda item: -item[1]))


def _used_bytes(con: duckdb.DuckDBPyConnection) -> int:
    con.execute("CHECKPOINT")
    sizes = con.execute("SELECT block_size, total_blocks, free_blocks FROM pragma_database_size()").fetchone()
    size, total, free = sizes if sizes else (0, 0, 0)
    return int(size) * (int(total) - int(free))


def record(duration_s: float) -> None:
    """Run the demo against a fresh collector for `duration_s` and export what it stored."""
    from demo_apps.local_collector import run_collector

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp, "demo.duckdb")
        with run_collector(db) as collector:
            base = collector.traces_url.rsplit("/v1/traces", 1)[0]
            demo = [sys.executable, "-m", "demo_apps.demo_cli", "all", "--duration", str(duration_s)]
            subprocess.run([*demo, "--collector", base], cwd=ROOT, check=True)
        export(db, RECORDING)
    spans = load_recording().spans.num_rows
    print(f"recorded {spans:,} spans into {RECORDING}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["record"])
    parser.add_argument("--duration", type=float, default=90.0)
    args = parser.parse_args()
    record(args.duration)


if __name__ == "__main__":
    main()
