"""The in-memory half of linking: one run's spans paired and turned into calls, in Arrow and numpy.

A link run used to resolve its spans through four temporary DuckDB tables (the run's spans,
what each wants, the pairs, the new calls), each statement converting and copying every row
again: ~135 ms a run of 20,000 spans, a quarter of the collector's CPU at a steady 10,000
spans/s (bench/ingest.py). Most parents arrive in the same run as their children, so the run
pairs its own spans here, by key, in a few vectorized passes, and call_rows.py builds the rows
of ``calls``: half the CPU (a 20,480-span run 142-147 -> 72-78 ms, measured). What is left over
(children waiting in ``pending``, partners stored by earlier runs) is DuckDB's, in
duckdb_calls.py; calls_sql.py describes the roles both follow.

Keys are (trace_id, span_id). They are matched through a 64-bit mix of both, sorted and
searched with numpy, and every match is checked against the full key, so a collision of the
mix (or a crafted one) costs a slower match, never a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collector.storage.calls_sql import INIT_NAME, LOOKBACK_NS, SKEW_NS

# pending's columns but since_ns: what a child needs to become a call once its partner is known
WANT_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "start_ns",
    "service",
    "origin",
    "duration_ns",
    "error",
    "fault",
    "throttle",
    "cold_start",
    "function_version",
    "linked",
    "want_trace_id",
    "want_span_id",
    "relation",
)
PARTNER_COLUMNS = ("service", "origin", "target_type", "target_name", "start_ns", "duration_ns")
_MIX_A = np.uint64(0x9E3779B97F4A7C15)
_MIX_B = np.uint64(0xC2B2AE3D27D4EB4F)


class KeyIndex:
    """Rows of a table found by (trace_id, span_id); the keys are unique in the table."""

    def __init__(self, trace_ids: pa.ChunkedArray | pa.Array, span_ids: pa.ChunkedArray | pa.Array) -> None:
        self._trace = trace_words(trace_ids)
        self._span = to_numpy_u64(span_ids)
        mixed = _mix(self._trace, self._span)
        self._order = np.argsort(mixed, kind="stable")
        self._sorted = mixed[self._order]

    def find(self, trace_ids: pa.ChunkedArray | pa.Array, span_ids: np.ndarray) -> np.ndarray:
        """For each key, its row here, or -1."""
        rows = np.full(len(span_ids), -1, dtype=np.int64)
        if len(self._sorted) == 0 or len(span_ids) == 0:
            return rows
        trace = trace_words(trace_ids)
        mixed = _mix(trace, span_ids)
        at = np.searchsorted(self._sorted, mixed)
        inside = at < len(self._sorted)
        candidate = np.where(inside, at, 0)
        same_mix = inside & (self._sorted[candidate] == mixed)
        row = self._order[candidate]
        exact = same_mix & (self._span[row] == span_ids) & np.all(self._trace[row] == trace, axis=1)
        rows[exact] = row[exact]
        for probe in np.nonzero(same_mix & ~exact)[0]:  # mixes that collide: walk the run of equals
            rows[probe] = self._walk(int(at[probe]), trace[probe], span_ids[probe])
        return rows

    def _walk(self, at: int, trace: np.ndarray, span_id: np.uint64) -> int:
        value = self._sorted[at]
        while at < len(self._sorted) and self._sorted[at] == value:
            row = int(self._order[at])
            if self._span[row] == span_id and bool(np.all(self._trace[row] == trace)):
                return row
            at += 1
        return -1


def trace_words(trace_ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """UUID trace ids as an (n, 2) array of their two 64-bit halves (no copy when one chunk)."""
    array = trace_ids.combine_chunks() if isinstance(trace_ids, pa.ChunkedArray) else trace_ids
    storage = array.storage if isinstance(array, pa.ExtensionArray) else array
    words = np.frombuffer(storage.buffers()[1], dtype=np.uint64)
    return words[2 * storage.offset : 2 * (storage.offset + len(storage))].reshape(-1, 2)


def to_numpy_u64(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.uint64)


def _mix(trace: np.ndarray, span: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return span ^ (trace[:, 0] * _MIX_A) ^ (trace[:, 1] * _MIX_B)


@dataclass(frozen=True)
class RunSpans:
    """A run's finished spans (in-progress ones have no final figures yet), with `linked`."""

    spans: pa.Table
    index: KeyIndex

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
        return cls(finished, KeyIndex(finished.column("trace_id"), finished.column("span_id")))

    def column(self, name: str) -> pa.ChunkedArray:
        return self.spans.column(name)

    def wants(self, links: pa.Table) -> pa.Table:
        """What each span waits for: its parent (not an Initialization span's), and what it links to."""
        spans = self.spans
        has_parent = pc.and_(pc.is_valid(spans.column("parent_span_id")), self.not_init())
        children = spans.filter(has_parent)
        parent_wants = _want_table(children, children.column("trace_id"), children.column("parent_span_id"), "parent")
        if not links.num_rows:
            return parent_wants
        rows = self.index.find(links.column("trace_id"), to_numpy_u64(links.column("span_id")))
        found = rows >= 0
        linking = spans.take(pa.array(rows[found]))
        linked = links.filter(pa.array(found))
        link_wants = _want_table(linking, linked.column("linked_trace_id"), linked.column("linked_span_id"), "link")
        return pa.concat_tables([parent_wants, link_wants]).combine_chunks()

    def pair(self, wants: pa.Table) -> tuple[pa.Table, pa.Table]:
        """(pairs, unpaired): the wants whose partner is in this run and started within the
        lookback of the child (with the partner's columns), and the others."""
        rows = self.index.find(wants.column("want_trace_id"), to_numpy_u64(wants.column("want_span_id")))
        found = rows >= 0
        partner_start = self.column("start_ns").to_numpy()[np.where(found, rows, 0)]
        child_start = wants.column("start_ns").to_numpy()
        found &= (partner_start >= child_start - LOOKBACK_NS) & (partner_start <= child_start + SKEW_NS)
        paired = wants.filter(pa.array(found))
        partners = self.spans.take(pa.array(rows[found])).select(list(PARTNER_COLUMNS))
        for name in PARTNER_COLUMNS:
            paired = paired.append_column(f"p_{name}", partners.column(name))
        paired = paired.append_column("p_stored", pa.array(np.zeros(paired.num_rows, dtype=bool)))
        return paired, wants.filter(pa.array(~found))

    def partners(self) -> pa.Table:
        """The run's spans as partners, for children waiting in `pending`."""
        return self.spans.select(["trace_id", "span_id", *PARTNER_COLUMNS])

    def is_init(self) -> pa.ChunkedArray:
        """Spans that are a Lambda's Initialization (its cold start's init), SQL's `name = ...`."""
        return pc.fill_null(pc.equal(self.column("name"), INIT_NAME), False)

    def not_init(self) -> pa.ChunkedArray:
        """SQL's `name <> 'Initialization'`: a NULL name is neither."""
        return pc.fill_null(pc.not_equal(self.column("name"), INIT_NAME), False)


def _want_table(children: pa.Table, want_trace: pa.ChunkedArray, want_span: pa.ChunkedArray, relation: str) -> pa.Table:
    own = WANT_COLUMNS[: WANT_COLUMNS.index("linked")]  # the child's own columns, in pending's order
    columns = {name: children.column(name) for name in own}
    columns["cold_start"] = pc.fill_null(columns["cold_start"], False)
    columns["linked"] = (
        children.column("linked") if relation == "parent" else pa.array(np.ones(children.num_rows, dtype=bool))
    )
    columns["want_trace_id"] = want_trace
    columns["want_span_id"] = want_span
    columns["relation"] = pa.repeat(pa.scalar(relation, pa.string()), children.num_rows)
    return pa.table(columns)
