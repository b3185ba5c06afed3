"""Per-trace summaries kept beside the spans, so a search summarises its traces without them.

A trace search names up to a few hundred traces and tells, for each, its flags, span count,
services and duration: summed over all the trace's spans, that join scanned the trace id of
every span in the window (80 of the ~230 ms bench/query.py's filter search took at 10M spans).
Each write of spans therefore also writes ``trace_parts``: one row per trace it touched,
summarising that write's spans of the trace (trace_parts.py), in the same transaction, so parts
and spans never disagree. A search sums a trace's parts (a trace comes in one write, or a few).

The parts also tell where a trace's spans lie in time, so reading a trace by id scans the row
groups of its range (zone maps on the time-ordered start_ns) rather than every trace id stored.

An in-progress span gets a part of its own, keyed by its span id: its completion deletes the
span and so the part, and the completed span comes in a part of its write. A search counts a
part whole where its first span starts (in its span window): a write's spans of one trace start
within moments of each other, so this differs from counting span by span only for a trace whose
spans in one write start an hour apart. Retention drops a part once its last span is past the cutoff.
"""

from __future__ import annotations

from typing import Final

CREATE_TRACE_PARTS: Final = """CREATE TABLE trace_parts (
    trace_id UUID NOT NULL USING COMPRESSION rle,
    start_ns BIGINT NOT NULL,
    end_ns BIGINT NOT NULL,
    spans UINTEGER NOT NULL,
    error BOOLEAN NOT NULL,
    fault BOOLEAN NOT NULL,
    throttle BOOLEAN NOT NULL,
    cold_start BOOLEAN NOT NULL,
    services VARCHAR[] NOT NULL,
    in_progress_span_id UBIGINT)"""

# Files and lakes made before parts existed: every stored span summarised once, by the rule a
# write's parts follow (trace_parts.py computes them in Arrow).
_IN_PROGRESS_SPAN = "CASE WHEN in_progress THEN span_id END"
BACKFILL: Final = f"""INSERT INTO trace_parts
    SELECT trace_id, min(start_ns), max(start_ns + duration_ns), count(*), bool_or(error), bool_or(fault),
           bool_or(throttle), coalesce(bool_or(cold_start), false),
           coalesce(list(DISTINCT service) FILTER (WHERE service <> ''), []), {_IN_PROGRESS_SPAN}
    FROM spans GROUP BY trace_id, {_IN_PROGRESS_SPAN}"""

# A part goes once all its spans are past the cutoff: a trace read by id finds its remaining spans by its parts.
DELETE_OLDER_THAN: Final = "DELETE FROM trace_parts WHERE end_ns < ?"

# Where a trace's spans start, from its parts (NULLs when it has none): reading a trace by id
# then scans the row groups of that range instead of every stored span's trace id.
TRACE_RANGE: Final = "SELECT min(start_ns), max(end_ns) FROM trace_parts WHERE trace_id = ?"
EVERY_START_NS: Final = (-(2**63), 2**63 - 1)
