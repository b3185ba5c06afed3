"""The rows of ``calls`` a link run adds: entries, links, inferred targets and inits, in Arrow.

calls_sql.py describes the roles; this computes their columns from a run's spans and its pairs
(child + partner, wherever the partner was found) with vectorized Arrow kernels, SQL's
three-valued logic kept where a column may be NULL (run_links.py says why not in DuckDB).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collector.storage.calls_sql import ASYNC_TYPES, VIA_TYPES
from collector.storage.run_links import RunSpans, to_numpy_u64

# The columns of `calls` (calls_sql.CALL_COLUMNS), in its order.
CALL_SCHEMA = pa.schema(
    [
        ("trace_id", pa.uuid()),
        ("span_id", pa.uint64()),
        ("parent_span_id", pa.uint64()),
        ("start_ns", pa.int64()),
        ("role", pa.string()),
        ("caller", pa.string()),
        ("caller_type", pa.string()),
        ("callee", pa.string()),
        ("callee_type", pa.string()),
        ("async", pa.bool_()),
        ("duration_ns", pa.int64()),
        ("error", pa.bool_()),
        ("fault", pa.bool_()),
        ("throttle", pa.bool_()),
        ("cold_start", pa.bool_()),
        ("init_ns", pa.int64()),
        ("dwell_ns", pa.int64()),
        ("linked", pa.bool_()),
        ("function_version", pa.string()),
    ]
)

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
    entries = pa.concat_tables([_root_entries(run), _pair_entries(pairs)])
    entries = _with_init_durations(inits, entries)
    return pa.concat_tables([entries, _inits(inits), _inferred(run, pairs)])


def _root_entries(run: RunSpans) -> pa.Table:
    spans = run.spans
    roots = spans.filter(pc.and_(pc.is_null(spans.column("parent_span_id")), run.not_init()))
    return _calls(
        roots,
        role="entry",
        caller=None,
        caller_type=None,
        callee=roots.column("service"),
        callee_type=roots.column("origin"),
        is_async=False,
        dwell_ns=None,
    )


def _pair_entries(pairs: pa.Table) -> pa.Table:
    is_link = pc.equal(pairs.column("relation"), "link")
    pairs = pairs.filter(pc.or_(is_link, other_node(pairs)))
    is_link = pc.equal(pairs.column("relation"), "link")
    via = via_target(pairs)
    dwell = pc.subtract(pairs.column("start_ns"), pc.add(pairs.column("p_start_ns"), pairs.column("p_duration_ns")))
    return _calls(
        pairs,
        role=pc.if_else(is_link, "link", "entry"),
        caller=pc.if_else(via, pairs.column("p_target_name"), pairs.column("p_service")),
        caller_type=pc.if_else(via, pairs.column("p_target_type"), pairs.column("p_origin")),
        callee=pairs.column("service"),
        callee_type=pairs.column("origin"),
        is_async=pc.or_(is_link, pc.fill_null(pc.is_in(pairs.column("p_target_type"), _VIA), False)),
        dwell_ns=pc.if_else(pc.or_(is_link, via), dwell, pa.scalar(None, pa.int64())),
    )


def _inits(inits: pa.Table) -> pa.Table:
    return _calls(
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
    return _calls(
        targets,
        role="inferred",
        caller=targets.column("service"),
        caller_type=targets.column("origin"),
        callee=targets.column("target_name"),
        callee_type=targets.column("target_type"),
        is_async=pc.or_(is_producer, pc.fill_null(pc.is_in(targets.column("target_type"), _ASYNC), False)),
        dwell_ns=None,
    )


def _with_init_durations(inits: pa.Table, entries: pa.Table) -> pa.Table:
    """A cold start's init duration: the Initialization span (of `inits`, this run's) beside the
    handler span (same parent: OpenTelemetry) or under it (X-Ray's subsegment)."""
    cold = pc.and_(entries.column("cold_start"), pc.equal(entries.column("role"), "entry"))
    if not inits.num_rows or not pc.any(cold).as_py():
        return entries
    longest: dict[tuple[Any, Any, Any], int] = {}
    for trace, service, parent, duration in zip(
        *(inits.column(c).to_pylist() for c in ("trace_id", "service", "parent_span_id", "duration_ns")), strict=True
    ):
        key = (trace, service, parent)
        longest[key] = max(duration, longest.get(key, duration))
    init_ns: list[int | None] = [None] * entries.num_rows
    for row in np.nonzero(cold.to_numpy(zero_copy_only=False))[0]:
        trace, callee = entries.column("trace_id")[row].as_py(), entries.column("callee")[row].as_py()
        beside = longest.get((trace, callee, entries.column("parent_span_id")[row].as_py()))
        under = longest.get((trace, callee, entries.column("span_id")[row].as_py()))
        init_ns[row] = beside if beside is not None else under
    index = CALL_SCHEMA.get_field_index("init_ns")
    return entries.set_column(index, CALL_SCHEMA.field(index), pa.array(init_ns, pa.int64()))


def _calls(
    rows: pa.Table,
    *,
    role: str | pa.ChunkedArray,
    caller: pa.ChunkedArray | None,
    caller_type: pa.ChunkedArray | None,
    callee: pa.ChunkedArray,
    callee_type: pa.ChunkedArray,
    is_async: bool | pa.ChunkedArray,
    dwell_ns: pa.ChunkedArray | None,
    init_ns: pa.ChunkedArray | None = None,
    linked: bool | None = None,
) -> pa.Table:
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
    ]
    return pa.Table.from_arrays(columns, schema=CALL_SCHEMA)
