"""The rows of ``calls`` a link run adds: entries, links, inferred targets and inits, in Arrow.

roles.py describes the roles; this computes their columns from a run's spans and its pairs
(child + partner, wherever the partner was found) with vectorized Arrow kernels, SQL's
three-valued logic kept where a column may be NULL (the ``calls`` table's semantics).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collector.service_map.keys import to_numpy_u64
from collector.service_map.roles import CALL_SCHEMA
from collector.service_map.run_spans import RunSpans
from spanlang.hops import ASYNC_TYPES, VIA_TYPES

_VIA = pa.array(VIA_TYPES)
_ASYNC = pa.array(ASYNC_TYPES)


def other_node(pairs: pa.Table) -> pa.ChunkedArray:
    """The child is on another node than its partner: another service, or both with other origins."""
    origin_differs = pc.fill_null(pc.not_equal(pairs.column("origin"), pairs.column("p_origin")), False)
    return pc.or_(pc.not_equal(pairs.column("service"), pairs.column("p_service")), origin_differs)


def via_target(pairs: pa.Table) -> pa.ChunkedArray:
    """The partner called a queue, stream, bus or bucket that stays on the map between the two
    (unless that target is the child's own node, as X-Ray's AWS::Lambda segment is)."""
    is_own_node = pc.and_kleene(
        pc.equal(pairs.column("p_target_name"), pairs.column("service")),
        not_distinct(pairs.column("p_target_type"), pairs.column("origin")),
    )
    return pc.fill_null(pc.and_kleene(pc.is_in(pairs.column("p_target_type"), _VIA), pc.invert(is_own_node)), False)


def not_distinct(left: pa.ChunkedArray, right: pa.ChunkedArray) -> pa.ChunkedArray:
    """SQL's IS NOT DISTINCT FROM: equal, two NULLs counting as equal."""
    both_null = pc.and_(pc.is_null(left), pc.is_null(right))
    return pc.or_(pc.fill_null(pc.equal(left, right), False), both_null)


def superseding(pairs: pa.Table) -> pa.ChunkedArray:
    """Pairs whose partner's guess at its target gives way to the instrumented child it reached."""
    return pc.and_(
        pc.and_(pc.equal(pairs.column("relation"), "parent"), pc.is_valid(pairs.column("p_target_type"))),
        pc.and_(other_node(pairs), pc.invert(via_target(pairs))),
    )


def run_calls(run: RunSpans, pairs: pa.Table) -> pa.Table:
    """Every call of the run (CALL_SCHEMA), the inferred ones its pairs supersede left out."""
    inits = run.spans.filter(run.is_init())
    return pa.concat_tables([_root_entries(run), _pair_entries(pairs), _inits(inits), _inferred(run, pairs)])


def _root_entries(run: RunSpans) -> pa.Table:
    spans = run.spans
    roots = spans.filter(pc.and_(pc.is_null(spans.column("parent_span_id")), run.not_init()))
    return entries_from_outside(roots, run.init_ns_of(roots))


def entries_from_outside(rows: pa.Table, init_ns: pa.ChunkedArray | pa.Array) -> pa.Table:
    """Requests into the rows' nodes from a caller the map does not know (a client): roots, and
    children whose parent never came."""
    return calls_of(
        rows,
        role="entry",
        caller=None,
        caller_type=None,
        callee=rows.column("service"),
        callee_type=rows.column("origin"),
        is_async=False,
        dwell_ns=None,
        init_ns=init_ns,
    )


def _pair_entries(pairs: pa.Table) -> pa.Table:
    is_link = pc.equal(pairs.column("relation"), "link")
    pairs = pairs.filter(pc.or_(is_link, other_node(pairs)))
    is_link = pc.equal(pairs.column("relation"), "link")
    via = via_target(pairs)
    dwell = pc.subtract(pairs.column("start_ns"), pc.add(pairs.column("p_start_ns"), pairs.column("p_duration_ns")))
    return calls_of(
        pairs,
        role=pc.if_else(is_link, "link", "entry"),
        caller=pc.if_else(via, pairs.column("p_target_name"), pairs.column("p_service")),
        caller_type=pc.if_else(via, pairs.column("p_target_type"), pairs.column("p_origin")),
        callee=pairs.column("service"),
        callee_type=pairs.column("origin"),
        is_async=pc.or_(is_link, pc.fill_null(pc.is_in(pairs.column("p_target_type"), _VIA), False)),
        dwell_ns=pc.if_else(pc.or_(is_link, via), dwell, pa.scalar(None, pa.int64())),
        init_ns=pc.if_else(is_link, pa.scalar(None, pa.int64()), pairs.column("init_ns")),
    )


def _inits(inits: pa.Table) -> pa.Table:
    return calls_of(
        inits,
        role="init",
        caller=None,
        caller_type=None,
        callee=inits.column("service"),
        callee_type=inits.column("origin"),
        is_async=False,
        dwell_ns=None,
        init_ns=inits.column("duration_ns"),
        linked=False,
    )


def _inferred(run: RunSpans, pairs: pa.Table) -> pa.Table:
    spans = run.spans
    guessed = pc.and_(pc.is_valid(spans.column("target_type")), pc.is_valid(spans.column("target_name")))
    given_way = pairs.filter(superseding(pairs))
    if given_way.num_rows:
        rows = run.index.find(given_way.column("want_trace_id"), to_numpy_u64(given_way.column("want_span_id")))
        kept = np.ones(spans.num_rows, dtype=bool)
        kept[rows[rows >= 0]] = False
        guessed = pc.and_(guessed, pa.array(kept))
    targets = spans.filter(guessed)
    is_producer = pc.equal(targets.column("kind"), "PRODUCER")
    return calls_of(
        targets,
        role="inferred",
        caller=targets.column("service"),
        caller_type=targets.column("origin"),
        callee=targets.column("target_name"),
        callee_type=targets.column("target_type"),
        is_async=pc.or_(is_producer, pc.fill_null(pc.is_in(targets.column("target_type"), _ASYNC), False)),
        dwell_ns=None,
    )


def calls_of(
    rows: pa.Table,
    *,
    role: str | pa.ChunkedArray,
    caller: pa.ChunkedArray | None,
    caller_type: pa.ChunkedArray | None,
    callee: pa.ChunkedArray,
    callee_type: pa.ChunkedArray,
    is_async: bool | pa.ChunkedArray,
    dwell_ns: pa.ChunkedArray | None,
    init_ns: pa.ChunkedArray | pa.Array | None = None,
    linked: bool | None = None,
) -> pa.Table:
    """Calls of `rows` (spans or wants) in one role; the other columns are the rows' own."""
    count = rows.num_rows

    def const(value: object, type_: pa.DataType) -> pa.Array:
        return pa.nulls(count, type_) if value is None else pa.repeat(pa.scalar(value, type_), count)

    columns = [
        rows.column("trace_id"),
        rows.column("span_id"),
        rows.column("parent_span_id"),
        rows.column("start_ns"),
        const(role, pa.string()) if isinstance(role, str) else role,
        const(None, pa.string()) if caller is None else caller,
        const(None, pa.string()) if caller_type is None else caller_type,
        callee,
        callee_type,
        const(is_async, pa.bool_()) if isinstance(is_async, bool) else is_async,
        rows.column("duration_ns"),
        rows.column("error"),
        rows.column("fault"),
        rows.column("throttle"),
        pc.fill_null(rows.column("cold_start"), False),
        const(None, pa.int64()) if init_ns is None else init_ns,
        const(None, pa.int64()) if dwell_ns is None else dwell_ns,
        rows.column("linked") if linked is None else const(linked, pa.bool_()),
        rows.column("function_version"),
        rows.column("weight"),
    ]
    return pa.Table.from_arrays(columns, schema=CALL_SCHEMA)
