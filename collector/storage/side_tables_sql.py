"""SQL of the small tables beside the spans: groups (a name, its filter expression, when it was
saved) and insights."""

from __future__ import annotations

from typing import Final

CREATE_GROUPS: Final = """CREATE TABLE IF NOT EXISTS trace_groups (
    name VARCHAR NOT NULL, filter VARCHAR NOT NULL, created_ns BIGINT NOT NULL)"""
SELECT_GROUPS: Final = "SELECT name, filter, created_ns FROM trace_groups ORDER BY name"
SELECT_GROUP: Final = "SELECT name, filter, created_ns FROM trace_groups WHERE name = ?"
# A lake's tables have no keys: a save replaces the name's row in one transaction, as a file's
# does; and a lake's DELETE has no RETURNING, so a delete counts first.
COUNT_GROUP: Final = "SELECT count(*) FROM trace_groups WHERE name = ?"
DELETE_GROUP: Final = "DELETE FROM trace_groups WHERE name = ?"
INSERT_GROUP: Final = "INSERT INTO trace_groups VALUES (?, ?, ?)"

# Insights (collector/insights): one row per insight, its whole record as JSON, replaced as it changes.
CREATE_INSIGHTS: Final = """CREATE TABLE IF NOT EXISTS insights (
    id VARCHAR NOT NULL, grp VARCHAR, state VARCHAR NOT NULL, start_ns BIGINT NOT NULL, end_ns BIGINT,
    body VARCHAR NOT NULL)"""
DELETE_INSIGHT: Final = "DELETE FROM insights WHERE id = ?"
INSERT_INSIGHT: Final = "INSERT INTO insights VALUES (?, ?, ?, ?, ?, ?)"
# Insights that overlap [start, end), newest first.
SELECT_INSIGHTS: Final = """SELECT body FROM insights WHERE start_ns < ? AND (end_ns IS NULL OR end_ns >= ?)
    ORDER BY start_ns DESC, id LIMIT ?"""
# The same, of one scope (a group, or all traces: NULL) and, when given, one state.
SELECT_SCOPE_INSIGHTS: Final = """SELECT body FROM insights WHERE start_ns < ? AND (end_ns IS NULL OR end_ns >= ?)
    AND grp IS NOT DISTINCT FROM ? AND (CAST(? AS VARCHAR) IS NULL OR state = ?)
    ORDER BY start_ns DESC, id LIMIT ?"""
SELECT_OPEN_INSIGHTS: Final = "SELECT body FROM insights WHERE state = 'open'"
DELETE_INSIGHTS_BEFORE: Final = "DELETE FROM insights WHERE end_ns IS NOT NULL AND end_ns < ?"
