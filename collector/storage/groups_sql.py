"""SQL of the groups table: a name, its filter expression, when it was saved."""

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
