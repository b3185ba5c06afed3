"""The linker: spans in, the map's calls out. One pure function for every case.

Zipkin's dependency linker is a pure function of a trace's spans; ours is the same idea for
spans that arrive in pieces. A link run hands it what was written since the last run; storage
hands it the two things only storage knows, read by key: children stored earlier that still
wait for a partner this run may hold, and spans stored earlier that the run's children want.
:func:`link` pairs every child with its partner by the same rules wherever each was found
(roles.py), builds every call with the same rules (call_rows.py), and says what storage must
keep: the calls, the children still waiting, the waiting children met, and the guesses at an
uninstrumented target that a stored call made and an instrumented callee now replaces.

In two steps, because what storage must read depends on what the run cannot pair itself:
:func:`prepare` pairs the run's own spans and names the partners it still wants; storage reads
those; :func:`link` does the rest. Both are pure: the same inputs give the same calls, whichever
collector or process runs them. :func:`expired_calls` is the rule for children whose partner
never came.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collector.service_map.call_rows import entries_from_outside, run_calls, superseding
from collector.service_map.keys import KeyIndex, to_numpy_u64
from collector.service_map.roles import INIT_NAME, LOOKBACK_NS, PARTNER_COLUMNS, PARTNER_SCHEMA, SKEW_NS, WANT_SCHEMA
from collector.service_map.run_spans import RunSpans, cold_init_keys, init_keys

PAIR_SCHEMA = pa.schema(
    [
        *WANT_SCHEMA,
        *(pa.field(f"p_{name}", PARTNER_SCHEMA.field(name).type) for name in PARTNER_COLUMNS),
        pa.field("p_stored", pa.bool_()),
    ]
)
KEY_SCHEMA = pa.schema([("trace_id", pa.uuid()), ("span_id", pa.uint64())])


@dataclass(frozen=True)
class PreparedRun:
    """A run with its own pairs made; `unmet` are the wants whose partner is not in it."""

    run: RunSpans
    pairs: pa.Table  # PAIR_SCHEMA
    unmet: pa.Table  # WANT_SCHEMA

    def wanted_keys(self) -> pa.Table:
        """The partners to look for among stored spans (trace_id, span_id; may repeat)."""
        return pa.table([self.unmet.column("want_trace_id"), self.unmet.column("want_span_id")], schema=KEY_SCHEMA)

    def wanted_start_range(self) -> tuple[int, int]:
        """Where those partners can start: [earliest, latest] ns (empty when nothing is wanted)."""
        if not self.unmet.num_rows:
            return 0, -1
        bounds = pc.min_max(self.unmet.column("start_ns")).as_py()
        return bounds["min"] - LOOKBACK_NS, bounds["max"] + SKEW_NS

    def own_keys(self) -> pa.Table:
        """The run's span keys: children waiting for any of them are met now."""
        return self.run.spans.select(["trace_id", "span_id"])


@dataclass(frozen=True)
class Linked:
    """What a run leaves for storage to keep."""

    calls: pa.Table  # CALL_SCHEMA: new rows of `calls`
    still_waiting: pa.Table  # WANT_SCHEMA: children whose partner is nowhere yet
    met: pa.Table  # WANT_SCHEMA: children that waited and are paired now (they stop waiting)
    superseded: pa.Table  # stored `inferred` calls given up: trace_id, span_id, start_ns
    inits: pa.Table  # INIT_SCHEMA: the run's Initialization spans no cold start of it took, for stored ones


def cold_starts(spans: pa.Table) -> pa.Table:
    """The run's cold-start rows (trace_id, start_ns) without an Initialization span in the run:
    storage reads the ones stored in their traces before the run, for prepare."""
    is_init = pc.fill_null(pc.equal(spans.column("name"), INIT_NAME), False)
    cold = spans.filter(pc.and_(pc.fill_null(spans.column("cold_start"), False), pc.invert(is_init)))
    if not cold.num_rows:
        return cold.select(["trace_id", "start_ns"])
    in_run = set(init_keys(spans.filter(pc.and_(is_init, pc.invert(spans.column("in_progress"))))))
    needs = [beside not in in_run and under not in in_run for beside, under in cold_init_keys(cold)]
    return cold.filter(pa.array(needs, pa.bool_())).select(["trace_id", "start_ns"])


def prepare(spans: pa.Table, links: pa.Table, stored_inits: pa.Table | None = None) -> PreparedRun:
    """Pair the run's spans (roles.LINKED_SPAN_COLUMNS) among themselves, its cold starts given
    the inits stored before it (INIT_SCHEMA: Initialization spans of their traces)."""
    run = RunSpans.of(spans, links)
    if stored_inits is not None:
        run = run.with_stored_inits(stored_inits)
    pairs, unmet = pair_wants(run.wants(links), run.partners(), run.index, stored=False, within_lookback=True)
    return PreparedRun(run, pairs, unmet)


def link(prepared: PreparedRun, stored_partners: pa.Table, waiting: pa.Table) -> Linked:
    """The run's calls, given the stored spans its unmet wants name (PARTNER_SCHEMA) and the
    stored children waiting for one of its spans (WANT_SCHEMA)."""
    stored_index = KeyIndex(stored_partners.column("trace_id"), stored_partners.column("span_id"))
    from_stored, still_waiting = pair_wants(
        prepared.unmet, stored_partners, stored_index, stored=True, within_lookback=True
    )
    # A waiting child met its partner: however long it waited, the key says it is the one. A
    # cold start that waited without its init may find it in this run too.
    run = prepared.run
    if waiting.num_rows:
        init_ns = pc.coalesce(waiting.column("init_ns"), run.init_ns_of(waiting))
        waiting = waiting.set_column(waiting.schema.get_field_index("init_ns"), "init_ns", init_ns)
    met, _ = pair_wants(waiting, run.partners(), run.index, stored=False, within_lookback=False)
    pairs = prepared.pairs
    if met.num_rows or from_stored.num_rows:  # a copy of every pair: only when there is more to add
        pairs = pa.concat_tables([pairs, met, from_stored]).combine_chunks()
    given_up = pairs.filter(pc.and_(pairs.column("p_stored"), superseding(pairs)))
    superseded = pa.table(
        {
            "trace_id": given_up.column("want_trace_id"),
            "span_id": given_up.column("want_span_id"),
            "start_ns": given_up.column("p_start_ns"),
        }
    )
    return Linked(
        run_calls(run, pairs), still_waiting, met.select(WANT_SCHEMA.names), superseded, run.unmatched_inits()
    )


def expired_calls(waiting: pa.Table) -> pa.Table:
    """Children that waited past the parent wait (WANT_SCHEMA) as entries from an unknown caller;
    a consumer whose message's producer never came has no call (it is an entry of its own)."""
    orphans = waiting.filter(pc.equal(waiting.column("relation"), "parent"))
    return entries_from_outside(orphans, orphans.column("init_ns"))


def pair_wants(
    wants: pa.Table, partners: pa.Table, index: KeyIndex, *, stored: bool, within_lookback: bool
) -> tuple[pa.Table, pa.Table]:
    """(pairs, unmet): the wants whose partner is among `partners` (found by `index`), with the
    partner's columns, and the others. `within_lookback`: the partner must also have started
    within LOOKBACK_NS before the child (or SKEW_NS after it)."""
    rows = index.find(wants.column("want_trace_id"), to_numpy_u64(wants.column("want_span_id")))
    found = rows >= 0
    if within_lookback and found.any():
        partner_start = partners.column("start_ns").to_numpy()[np.where(found, rows, 0)]
        child_start = wants.column("start_ns").to_numpy()
        found &= (partner_start >= child_start - LOOKBACK_NS) & (partner_start <= child_start + SKEW_NS)
    paired = wants.filter(pa.array(found))
    matched = partners.take(pa.array(rows[found]))
    columns = [*paired.columns, *(matched.column(name) for name in PARTNER_COLUMNS)]
    columns.append(pa.array(np.full(paired.num_rows, stored, dtype=bool)))
    return pa.Table.from_arrays(columns, schema=PAIR_SCHEMA), wants.filter(pa.array(~found))
