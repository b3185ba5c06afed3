"""SQL of the per-minute rollup of ``calls``, so a map over hours reads minutes, not millions.

``call_minutes`` (counts per minute and hop) and ``latency_minutes`` (per minute, hop and
latency bucket) hold the sums the map's figures are made of; collector/storage/map_sql.py reads
them beside raw ``calls`` for the window's partial minutes and anything not rolled up yet.
Rows are only ever added:

- the writer rolls up whole minutes once they are ``SETTLE_NS`` old (children normally find
  their parents by then) and moves the watermark ``rollup_state.rolled_until``;
- a write whose calls start before the watermark (a late span, an orphan given up on) adds
  them as extra rows at once, and an inferred call superseded by its instrumented callee
  after being rolled up is taken back with a row of negative counts (min/max left NULL).

So at any moment ``rollup(minutes < watermark) + calls(start >= watermark)`` counts every call
exactly once. Templates are filled with constant table names and conditions, never input.
"""

from __future__ import annotations

from typing import Final

MINUTE_NS: Final = 60 * 10**9
SETTLE_NS: Final = 120 * 10**9
BUCKETS_PER_DECADE: Final = 10

# What a caller waits for: a cold start's init comes before the handler runs.
WAITED: Final = "(CASE WHEN role = 'init' THEN duration_ns ELSE duration_ns + coalesce(init_ns, 0) END)"
INIT_WAITED: Final = "(CASE WHEN role = 'init' THEN 0 ELSE coalesce(init_ns, 0) END)"
LATENCY_BUCKET: Final = f"floor(log10(greatest({WAITED}, 1000) / 1e6) * {BUCKETS_PER_DECADE})::INTEGER"
DWELL_BUCKET: Final = (  # greatest() skips NULLs, so the CASE keeps calls without a dwell out
    f"CASE WHEN dwell_ns IS NOT NULL THEN floor(log10(greatest(dwell_ns, 1000) / 1e6) * {BUCKETS_PER_DECADE})"
    "::INTEGER END"
)
CONSUMED: Final = "(role = 'entry' AND caller IS NULL AND linked)"
HOP_KEY: Final = "caller, caller_type, callee, callee_type, role, async"

# Hops are named once in `hop_keys`; the rollup groups by an integer id, far cheaper to
# aggregate than the seven key columns (strings among them) it stands for.
HOP_KEY_COLUMNS: Final = """
    hop_id INTEGER NOT NULL, caller VARCHAR, caller_type VARCHAR, callee VARCHAR NOT NULL, callee_type VARCHAR,
    role VARCHAR NOT NULL, async BOOLEAN NOT NULL, consumed BOOLEAN NOT NULL
"""
# Counts per minute and hop; latency (kind 0: waited, kind 1: queue dwell) per minute, hop and
# bucket. Apart, because the counts need no bucket dimension: the bucket table has 10-20 times
# the rows, and aggregating six counts over it cost more than the rest of the map query.
# `requests` counts the calls stored; `estimated` sums their sampling weights (ESTIMATED): the
# requests they stand for when head sampling kept some of them (added by schema version 10;
# NULL in rows rolled before it, which count as their requests).
ROLLUP_COLUMNS: Final = """
    minute BIGINT NOT NULL, hop_id INTEGER NOT NULL, requests BIGINT NOT NULL, ok BIGINT NOT NULL,
    errors BIGINT NOT NULL, faults BIGINT NOT NULL, throttles BIGINT NOT NULL, cold BIGINT NOT NULL,
    estimated DOUBLE
"""
LATENCY_COLUMNS: Final = """
    minute BIGINT NOT NULL, hop_id INTEGER NOT NULL, kind TINYINT NOT NULL, bucket INTEGER NOT NULL,
    requests BIGINT NOT NULL, init_ns BIGINT NOT NULL, waited_ns BIGINT NOT NULL, min_ns BIGINT, max_ns BIGINT,
    estimated DOUBLE
"""
# A call stands for its span's sampling weight (spanlang/derive.py: 1/p for a span head
# sampling kept with probability p, 0 for one tail-keep kept, NULL for 1).
ESTIMATED: Final = "coalesce(weight, 1)"

MIGRATION: Final = (
    f"CREATE TABLE hop_keys ({HOP_KEY_COLUMNS})",
    f"CREATE TABLE call_minutes ({ROLLUP_COLUMNS})",
    f"CREATE TABLE latency_minutes ({LATENCY_COLUMNS})",
    "CREATE TABLE rollup_state (rolled_until BIGINT NOT NULL)",
    "INSERT INTO rollup_state VALUES (0)",
)

_SAME_HOP = """h.caller IS NOT DISTINCT FROM x.caller AND h.caller_type IS NOT DISTINCT FROM x.caller_type
    AND h.callee = x.callee AND h.callee_type IS NOT DISTINCT FROM x.callee_type AND h.role = x.role
    AND h.async = x.async AND h.consumed = x.consumed"""


def name_new_hops(source: str, where: str) -> str:
    """INSERT into hop_keys the hops of `source` rows meeting `where` that have no id yet."""
    return f"""
    INSERT INTO hop_keys
    SELECT (SELECT coalesce(max(hop_id), 0) FROM hop_keys) + row_number() OVER (), x.*
    FROM (SELECT DISTINCT {HOP_KEY}, {CONSUMED} AS consumed FROM {source} WHERE {where}) x
    WHERE NOT EXISTS (SELECT 1 FROM hop_keys h WHERE {_SAME_HOP})
    """


def _from_rows(source: str, where: str) -> str:
    return f"""FROM (
        SELECT *, {CONSUMED} AS consumed, {WAITED} AS waited, {INIT_WAITED} AS init_waited,
               {LATENCY_BUCKET} AS bucket, {DWELL_BUCKET} AS dwell_bucket, {ESTIMATED} AS estimated
        FROM {source} WHERE {where}
    ) x
    JOIN hop_keys h ON {_SAME_HOP}"""


def rollup_insert(
    source: str, where: str, sign: int = 1, *, group_id: int | None = None, ctes: str = ""
) -> tuple[str, str, str]:
    """INSERTs of the per-minute sums of `source` rows meeting `where` (counts, latency, dwell);
    sign -1 takes them back out. Run name_new_hops with the same source and condition first.
    With `group_id`, into a group's rollup (group_rollup.py), `ctes` (a WITH clause) before each."""
    if sign not in (1, -1):
        raise ValueError("sign is 1 or -1")
    counts_table, latency_table, key = "call_minutes", "latency_minutes", ""
    if group_id is not None:
        counts_table, latency_table, key = "group_minutes", "group_latency_minutes", f"{int(group_id)}, "
    minute = f"x.start_ns // {MINUTE_NS} * {MINUTE_NS}"
    rows = _from_rows(source, where)
    waited_low_high = "min(x.waited), max(x.waited)" if sign == 1 else "NULL, NULL"
    dwell_low_high = "min(x.dwell_ns), max(x.dwell_ns)" if sign == 1 else "NULL, NULL"
    estimated = f"{sign} * sum(x.estimated)"
    counts = f"""
    INSERT INTO {counts_table} {ctes}
    SELECT {key}{minute}, h.hop_id, {sign} * count(*), {sign} * sum((NOT (x.error OR x.fault OR x.throttle))::INTEGER),
           {sign} * sum(x.error::INTEGER), {sign} * sum(x.fault::INTEGER), {sign} * sum(x.throttle::INTEGER),
           {sign} * sum(x.cold_start::INTEGER), {estimated}
    {rows} GROUP BY ALL"""
    latency = f"""
    INSERT INTO {latency_table} {ctes}
    SELECT {key}{minute}, h.hop_id, 0, x.bucket, {sign} * count(*), {sign} * sum(x.init_waited), {sign} * sum(x.waited),
           {waited_low_high}, {estimated}
    {rows} GROUP BY ALL"""
    dwell = f"""
    INSERT INTO {latency_table} {ctes}
    SELECT {key}{minute}, h.hop_id, 1, x.dwell_bucket, {sign} * count(*), 0, 0, {dwell_low_high}, {estimated}
    {rows} WHERE x.dwell_bucket IS NOT NULL GROUP BY ALL"""
    return counts, latency, dwell


def note_dirty(source: str, where: str) -> str:
    """Note the minutes of `source` rows meeting `where` for the groups to roll again."""
    return f"INSERT INTO rollup_dirty SELECT DISTINCT start_ns // {MINUTE_NS} * {MINUTE_NS} FROM {source} WHERE {where}"


ROLLED_UNTIL: Final = "SELECT rolled_until FROM rollup_state"
_ROLLING = "start_ns >= ? AND start_ns < ?"
ROLL_UP: Final = (name_new_hops("calls", _ROLLING), *rollup_insert("calls", _ROLLING))
MOVE_WATERMARK: Final = "UPDATE rollup_state SET rolled_until = ?"
DELETE_OLDER_THAN: Final = (
    "DELETE FROM call_minutes WHERE minute + 60000000000 <= ?",
    "DELETE FROM latency_minutes WHERE minute + 60000000000 <= ?",
    "DELETE FROM group_minutes WHERE minute + 60000000000 <= ?",
    "DELETE FROM group_latency_minutes WHERE minute + 60000000000 <= ?",
    "DELETE FROM rollup_dirty WHERE minute + 60000000000 <= ?",
    "DELETE FROM group_throttle_minutes WHERE minute + 60000000000 <= ?",
)

# Schema version 10: each span's sampling weight, carried to its calls and summed by the rollups.
SAMPLING_WEIGHT_COLUMNS: Final = (
    ("spans", "sampling_weight"),
    ("calls", "weight"),
    ("pending", "weight"),
    *((table, "estimated") for table in ("call_minutes", "latency_minutes", "group_minutes", "group_latency_minutes")),
)


def add_double_column(table: str, column: str) -> str:
    """ALTER `table` (a constant name) to have a DOUBLE `column` (NULL in its rows so far)."""
    return f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} DOUBLE"


SAMPLING_WEIGHT_MIGRATION: Final = tuple(add_double_column(t, c) for t, c in SAMPLING_WEIGHT_COLUMNS)

# Groups' rollups (group_rollup.py): the same sums per group, for the whole minutes a group has
# rolled, [rolled_from, rolled_until), computed for its filter as it was then; minutes the main
# rollup changed afterwards (late calls, withdrawn guesses) are noted in rollup_dirty and rolled
# again for every group.
GROUP_TABLES: Final = (
    """CREATE TABLE IF NOT EXISTS group_rollup (group_id INTEGER NOT NULL, name VARCHAR NOT NULL,
        filter VARCHAR NOT NULL, rolled_from BIGINT NOT NULL, rolled_until BIGINT NOT NULL)""",
    f"CREATE TABLE IF NOT EXISTS group_minutes (group_id INTEGER NOT NULL, {ROLLUP_COLUMNS})",
    f"CREATE TABLE IF NOT EXISTS group_latency_minutes (group_id INTEGER NOT NULL, {LATENCY_COLUMNS})",
    "CREATE TABLE IF NOT EXISTS rollup_dirty (minute BIGINT NOT NULL)",
    # Per group and minute: throttled traces by where their 429 started (map_sql.THROTTLE_SOURCES).
    """CREATE TABLE IF NOT EXISTS group_throttle_minutes (group_id INTEGER NOT NULL, minute BIGINT NOT NULL,
        name VARCHAR, type VARCHAR, traces BIGINT NOT NULL)""",
)
