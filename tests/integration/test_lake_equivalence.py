"""Differential: a lake fed by several collectors answers as one embedded collector does.

The spans of a recorded demo run (tests/data/demo_run: 2,567 spans of 343 traces from the three
architectures, OTLP and X-Ray, annotations and links, exported from `make demo`'s database)
are written once into a DuckDB file and once into a lake through three stores, each span sent
to a collector drawn at random, so a trace's spans land on different collectors and in
different orders. Whoever leads links; then the service map (nodes, edges, figures, throttle
sources) must be equal, and so must the critical paths and consumers (async links) of a sample
of traces drawn with the split's seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from collector.model import SpanBatch
from collector.query.critical_path import critical_path_of, trace_with_consumers
from collector.query.service_map import MapQuery, service_map
from collector.storage.duckdb_store import DuckDBStore
from collector.storage.lake_location import LakeLocation
from collector.storage.protocols import TimeWindow
from tests.demo_run import MINUTE_NS, REQUEST_SPANS, recorded
from tests.postgres_cluster import PostgresCluster

COLLECTORS = 3
TRACES_COMPARED = 60


def keyed(table: pa.Table) -> list[tuple[bytes, int]]:
    return list(
        zip(
            pc.cast(table.column("trace_id"), pa.binary(16)).to_pylist(),
            table.column("span_id").to_pylist(),
            strict=True,
        )
    )


def requests_for(
    spans: pa.Table, annotations: pa.Table, links: pa.Table, shares: list[int], collector: int
) -> list[SpanBatch]:
    """The collector's share of the spans (in the recorded order), in requests of REQUEST_SPANS."""
    mine = spans.filter(pa.array([share == collector for share in shares]))
    mine_keys = set(keyed(mine))
    own_annotations = annotations.filter(pa.array([key in mine_keys for key in keyed(annotations)]))
    own_links = links.filter(pa.array([key in mine_keys for key in keyed(links)]))
    batches = []
    for offset in range(0, mine.num_rows, REQUEST_SPANS):
        part = mine.slice(offset, REQUEST_SPANS)
        part_keys = set(keyed(part))
        batches.append(
            SpanBatch(
                part,
                own_annotations.filter(pa.array([k in part_keys for k in keyed(own_annotations)], pa.bool_())),
                own_links.filter(pa.array([k in part_keys for k in keyed(own_links)], pa.bool_())),
            )
        )
    return batches


@pytest.fixture(scope="module")
def answers_embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DuckDBStore, int]]:
    spans, annotations, links = recorded()
    store = DuckDBStore(str(tmp_path_factory.mktemp("embedded") / "one.duckdb"))
    now_ns = settle(store, [requests_for(spans, annotations, links, [0] * spans.num_rows, 0)], [store], spans)
    yield store, now_ns
    store.close()


def settle(writer: DuckDBStore, shares: list[list[SpanBatch]], stores: list[DuckDBStore], spans: pa.Table) -> int:
    """Write every collector's requests, round-robin, linking between rounds as the daemons do
    every 2 s; then link, expire orphans and roll up as a collector does later."""
    latest_ns = int(pc.max(spans.column("start_ns")).as_py())
    now_ns = latest_ns + 10 * MINUTE_NS
    queues = [list(batches) for batches in shares]
    stores_by_share = stores if len(stores) == len(shares) else [writer] * len(shares)
    while any(queues):
        for store, queue in zip(stores_by_share, queues, strict=True):
            if queue:
                store.write([queue.pop(0)])
        for store in stores:
            store.link_new_spans(now_ns)
    for store in stores:
        store.link_new_spans(now_ns)
        store.expire_pending_calls(now_ns + 1)
        store.roll_up_calls(latest_ns - MINUTE_NS)  # some minutes rolled up, the rest read raw
    return now_ns


def answers(store: DuckDBStore, spans: pa.Table, traces: list[bytes]) -> dict[str, object]:
    window = TimeWindow(
        int(pc.min(spans.column("start_ns")).as_py()) - MINUTE_NS,
        int(pc.max(spans.column("start_ns")).as_py()) + MINUTE_NS,
    )
    return {
        "map": service_map(store.reader, MapQuery(window, None, 100)),
        "critical paths": [critical_path_of(t, trace_with_consumers(store.reader, t)) for t in traces],
        "consumers": [store.reader.linked_trace_ids(t, 100) for t in traces],
    }


@pytest.mark.parametrize("seed", [1, 2])
def test_a_lake_fed_by_collectors_at_random_answers_as_one_collector(
    seed: int, answers_embedded: tuple[DuckDBStore, int], postgres: PostgresCluster, tmp_path: Path
) -> None:
    spans, annotations, links = recorded()
    rng = random.Random(seed)
    shares = [rng.randrange(COLLECTORS) for _ in range(spans.num_rows)]
    location = LakeLocation.parse(postgres.new_database(), str(tmp_path / "lake-data"))
    stores = [DuckDBStore("", location) for _ in range(COLLECTORS)]
    try:
        settle(
            stores[0], [requests_for(spans, annotations, links, shares, c) for c in range(COLLECTORS)], stores, spans
        )
        # Every trace's critical path and consumers would take ~25 s over a lake (each read asks
        # the catalog first): a sample, different for each seed.
        traces = rng.sample(sorted(set(pc.cast(spans.column("trace_id"), pa.binary(16)).to_pylist())), TRACES_COMPARED)
        expected = answers(answers_embedded[0], spans, traces)
        lake = answers(stores[rng.randrange(COLLECTORS)], spans, traces)
        assert lake["map"] == expected["map"]
        assert lake["critical paths"] == expected["critical paths"]
        assert lake["consumers"] == expected["consumers"]
    finally:
        for store in stores:
            store.close()
