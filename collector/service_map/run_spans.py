"""A link run's spans: what each wants (its parent, what it links to), indexed by key.

A run is every span written since the last run (every 2 s); most parents arrive in the same
run as their children, so most wants are met within it (roles.py says what is wanted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collector.service_map.keys import KeyIndex, to_numpy_u64
from collector.service_map.roles import INIT_NAME, PARTNER_COLUMNS, WANT_COLUMNS, WANT_SCHEMA

# An Initialization span as a cold start's row needs it: where it is, and how long it took.
INIT_SCHEMA = pa.schema(
    [
        ("trace_id", pa.uuid()),
        ("service", pa.string()),
        ("parent_span_id", pa.uint64()),
        ("duration_ns", pa.int64()),
        ("start_ns", pa.int64()),
    ]
)


@dataclass(frozen=True)
class RunSpans:
    """A run's finished spans (in-progress ones have no final figures yet), with `linked`;
    `stored_inits` are Initialization spans stored before the run (INIT_SCHEMA) that its cold
    starts may need: a cold start's init is its own whichever run brings which."""

    spans: pa.Table
    index: KeyIndex
    stored_inits: pa.Table | None = None

    def with_stored_inits(self, stored_inits: pa.Table) -> RunSpans:
        return RunSpans(self.spans, self.index, stored_inits)

    def inits(self) -> pa.Table:
        """The run's Initialization spans (INIT_SCHEMA)."""
        return self.spans.filter(self.is_init()).select(INIT_SCHEMA.names).cast(INIT_SCHEMA)

    def unmatched_inits(self) -> pa.Table:
        """The run's Initialization spans no cold start of the run claims: only those may belong
        to a cold start stored before it (most runs bring both, and storage need not look)."""
        inits = self.inits()
        if not inits.num_rows:
            return inits
        cold = pc.and_(pc.fill_null(self.column("cold_start"), False), self.not_init())
        claimed = {key for keys in cold_init_keys(self.spans.filter(cold)) for key in keys}
        return inits.filter(pa.array([key not in claimed for key in init_keys(inits)], pa.bool_()))

    @classmethod
    def of(cls, spans: pa.Table, links: pa.Table) -> RunSpans:
        # One chunk: Arrow's kernels cost per chunk, and a run concatenates many small writes.
        finished = spans.combine_chunks()
        if pc.any(finished.column("in_progress")).as_py():
            finished = finished.filter(pc.invert(finished.column("in_progress")))
        if links.num_rows:
            linking = KeyIndex(links.column("trace_id"), links.column("span_id"))
            has_link = linking.find(finished.column("trace_id"), to_numpy_u64(finished.column("span_id"))) >= 0
        else:
            has_link = np.zeros(finished.num_rows, dtype=bool)
        finished = finished.append_column("linked", pa.array(has_link))
        finished = finished.rename_columns(["weight" if n == "sampling_weight" else n for n in finished.column_names])
        return cls(finished, KeyIndex(finished.column("trace_id"), finished.column("span_id")))

    def column(self, name: str) -> pa.ChunkedArray:
        return self.spans.column(name)

    def wants(self, links: pa.Table) -> pa.Table:
        """What each span waits for: its parent (not an Initialization span's), and what it links to."""
        spans = self.spans
        has_parent = pc.and_(pc.is_valid(spans.column("parent_span_id")), self.not_init())
        children = spans.filter(has_parent)
        parent_wants = _want_table(
            children,
            children.column("trace_id"),
            children.column("parent_span_id"),
            "parent",
            self.init_ns_of(children),
        )
        if not links.num_rows:
            return parent_wants
        rows = self.index.find(links.column("trace_id"), to_numpy_u64(links.column("span_id")))
        found = rows >= 0
        linking = spans.take(pa.array(rows[found]))
        linked = links.filter(pa.array(found))
        link_wants = _want_table(
            linking, linked.column("linked_trace_id"), linked.column("linked_span_id"), "link", None
        )
        return pa.concat_tables([parent_wants, link_wants]).combine_chunks()

    def partners(self) -> pa.Table:
        """The run's spans as partners (PARTNER_SCHEMA's columns)."""
        return self.spans.select(["trace_id", "span_id", *PARTNER_COLUMNS])

    def init_ns_of(self, rows: pa.Table) -> pa.Array:
        """Each cold-start row's init duration (None for the rest, or when no Initialization
        span of it is in the run or stored before it): the longest Initialization span beside it
        (same trace, service and parent: OpenTelemetry) or under it (X-Ray's subsegment)."""
        cold = pc.fill_null(rows.column("cold_start"), False)
        inits = self.inits()
        if self.stored_inits is not None and self.stored_inits.num_rows:
            inits = pa.concat_tables([inits, self.stored_inits.cast(INIT_SCHEMA)])
        if not inits.num_rows or not pc.any(cold).as_py():
            return pa.nulls(rows.num_rows, pa.int64())
        init_ns: list[int | None] = [None] * rows.num_rows
        longest: dict[tuple[object, object, object], int] = {}
        columns = ("trace_id", "service", "parent_span_id", "duration_ns")
        for trace, service, parent, duration in zip(*(inits.column(c).to_pylist() for c in columns), strict=True):
            key = (trace, service, parent)
            longest[key] = max(duration, longest.get(key, duration))
        for row in np.nonzero(cold.to_numpy(zero_copy_only=False))[0]:
            trace, service = rows.column("trace_id")[row].as_py(), rows.column("service")[row].as_py()
            beside = longest.get((trace, service, rows.column("parent_span_id")[row].as_py()))
            under = longest.get((trace, service, rows.column("span_id")[row].as_py()))
            init_ns[row] = beside if beside is not None else under
        return pa.array(init_ns, pa.int64())

    def is_init(self) -> pa.ChunkedArray:
        """Spans that are a Lambda's Initialization (its cold start's init), SQL's `name = ...`."""
        return pc.fill_null(pc.equal(self.column("name"), INIT_NAME), False)

    def not_init(self) -> pa.ChunkedArray:
        """SQL's `name <> 'Initialization'`: a NULL name is neither."""
        return pc.fill_null(pc.not_equal(self.column("name"), INIT_NAME), False)


InitKey = tuple[object, object, object]


def init_keys(inits: pa.Table) -> list[InitKey]:
    """Each Initialization span's (trace_id, service, parent_span_id)."""
    return list(zip(*(inits.column(c).to_pylist() for c in ("trace_id", "service", "parent_span_id")), strict=True))


def cold_init_keys(cold_rows: pa.Table) -> list[tuple[InitKey, InitKey]]:
    """Each cold-start row's init keys: beside it (its parent's) and under it (its own)."""
    columns = ("trace_id", "service", "parent_span_id", "span_id")
    return [
        ((trace, service, parent), (trace, service, own))
        for trace, service, parent, own in zip(*(cold_rows.column(c).to_pylist() for c in columns), strict=True)
    ]


def _want_table(
    children: pa.Table,
    want_trace: pa.ChunkedArray,
    want_span: pa.ChunkedArray,
    relation: str,
    init_ns: pa.Array | None,
) -> pa.Table:
    own = WANT_COLUMNS[: WANT_COLUMNS.index("linked")]  # the child's own columns, in pending's order
    columns = {name: children.column(name) for name in own}
    columns["cold_start"] = pc.fill_null(columns["cold_start"], False)
    columns["linked"] = (
        children.column("linked") if relation == "parent" else pa.array(np.ones(children.num_rows, dtype=bool))
    )
    columns["init_ns"] = init_ns if init_ns is not None else pa.nulls(children.num_rows, pa.int64())
    columns["want_trace_id"] = want_trace
    columns["want_span_id"] = want_span
    columns["relation"] = pa.repeat(pa.scalar(relation, pa.string()), children.num_rows)
    columns["weight"] = children.column("weight")
    return pa.Table.from_pydict(columns, schema=WANT_SCHEMA)
