"""The SQL behind span metrics: a window's entry spans per node and operation, with a histogram.

Entry spans are a node's requests (SERVER and CONSUMER spans, and roots); each counts as the
requests it stands for (its sampling weight) in the weighted columns, and failures count whole.
The histogram's bounds are bound parameters, its columns cumulative as Prometheus's are.
"""

from __future__ import annotations

from collections.abc import Sequence

from collector.storage.protocols import Statement, TimeWindow

_WEIGHT = "coalesce(sampling_weight, 1)"


def operations_statement(window: TimeWindow, bounds_s: Sequence[float]) -> Statement:
    """Rows: service, node type, operation, count, weighted count, errors, faults, throttles, cold
    starts, summed duration (ns), then the weighted count at or under each bound."""
    buckets = "".join(f", sum({_WEIGHT}) FILTER (WHERE duration_ns <= ?)" for _ in bounds_s)
    text = f"""
        SELECT service, coalesce(origin, 'service'), name, count(*), sum({_WEIGHT}), sum(error::INTEGER),
               sum(fault::INTEGER), sum(throttle::INTEGER), sum(coalesce(cold_start, false)::INTEGER),
               sum(duration_ns){buckets}
        FROM spans
        WHERE start_ns >= ? AND start_ns < ? AND NOT in_progress
          AND (parent_span_id IS NULL OR kind IN ('SERVER', 'CONSUMER'))
        GROUP BY ALL
    """
    return Statement(text, (*(round(bound * 1e9) for bound in bounds_s), window.start_ns, window.end_ns))
