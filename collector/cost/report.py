"""What a window, a node, a function or one trace cost: billed lines priced by a sheet.

Storage prices each stored span's billed items (collector/storage/cost_sql.py says which spans
bill what); this shapes them for readers: per key, its items, its total, what it costs per
million requests and, at the window's rate, per hour. Head-sampled spans stand for the requests
they were sampled from, so a window's cost is an estimate when sampling kept only some of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from collector.cost.prices import PriceSheet
from collector.storage.protocols import CostKey, CostLine, SpanReader, TimeWindow
from spanlang import filter_ast as ast

MAX_COST_ENTRIES: Final = 1000
HOUR_NS: Final = 3600 * 10**9


@dataclass(frozen=True, slots=True)
class CostItem:
    """One billed item: how many units (requests, GB-seconds, transitions...) and their cost."""

    item: str
    quantity: float
    amount: float


@dataclass(frozen=True, slots=True)
class CostEntry:
    """What one key cost: a node (`name`, `type`), a function or service (`name`), a trace or a
    span (`name`: its id). `requests` counts its billed requests (for a function, its invocations)."""

    name: str | None
    type: str | None
    total: float
    requests: float
    per_million_requests: float | None
    per_hour: float | None
    items: tuple[CostItem, ...]


@dataclass(frozen=True, slots=True)
class CostReport:
    """Costs by `group_by` over the window, costliest first, in the sheet's currency."""

    group_by: CostKey
    start_ns: int
    end_ns: int
    currency: str
    region: str
    prices_taken: str
    total: float
    entries: tuple[CostEntry, ...]


def _entry(key: tuple[str | None, ...], lines: Sequence[CostLine], hours: float | None) -> CostEntry:
    total = sum(line.amount for line in lines)
    # A function's requests are its invocations, not the calls its code made; a node's, its
    # billed requests (each item of a span counts the span once at most).
    invocations = sum(line.quantity for line in lines if line.item == "lambda.request")
    requests = invocations or max((line.requests for line in lines), default=0.0)
    return CostEntry(
        name=key[0],
        type=key[1] if len(key) > 1 else None,
        total=total,
        requests=requests,
        per_million_requests=total / requests * 1e6 if requests else None,
        per_hour=total / hours if hours else None,
        items=tuple(CostItem(line.item, line.quantity, line.amount) for line in lines),
    )


def shaped(
    key: CostKey, lines: Sequence[CostLine], window: TimeWindow, sheet: PriceSheet, *, per_hour: bool = True
) -> CostReport:
    """Lines grouped per key into entries, costliest first."""
    by_key: dict[tuple[str | None, ...], list[CostLine]] = {}
    for line in lines:
        by_key.setdefault(line.key, []).append(line)
    hours = (window.end_ns - window.start_ns) / HOUR_NS if per_hour else None
    entries = sorted((_entry(k, v, hours) for k, v in by_key.items()), key=lambda e: (-e.total, e.name or ""))
    return CostReport(
        group_by=key,
        start_ns=window.start_ns,
        end_ns=window.end_ns,
        currency=sheet.currency,
        region=sheet.region,
        prices_taken=sheet.taken,
        total=sum(entry.total for entry in entries),
        entries=tuple(entries),
    )


def window_cost(
    reader: SpanReader,
    window: TimeWindow,
    expr: ast.Expr | None,
    key: CostKey,
    sheet: PriceSheet,
    limit: int = MAX_COST_ENTRIES,
) -> CostReport:
    """The window's cost (of traces matching `expr`) by `key`, its `limit` costliest entries."""
    return shaped(key, reader.cost_lines(window, expr, key, sheet.prices, limit), window, sheet)


def trace_cost(reader: SpanReader, trace_id: bytes, window: TimeWindow, sheet: PriceSheet) -> CostReport:
    """What one trace cost, by span (its spans starting in `window`)."""
    lines = reader.cost_lines(window, None, "span", sheet.prices, MAX_COST_ENTRIES, trace_id)
    return shaped("span", lines, window, sheet, per_hour=False)
