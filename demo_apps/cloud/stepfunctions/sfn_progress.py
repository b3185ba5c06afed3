"""Where a standard execution is, below its top-level states: durable, so a restart loses nothing.

Beside the execution's own checkpoint (the top-level state to run next, ``sfn_store.py``), this
keeps, in the same SQLite file and each in one transaction:

- every Parallel branch and Map iteration: the state it runs next and that state's input, then,
  once it ends, its output, so a resumed Map runs only the iterations that had not finished and
  each of those from the state it had reached;
- every Task attempt: started, then its result, so a resumed Task whose call had answered is not
  called again, and one whose call was in flight at the crash is not started again either:
  its outcome is unknown, so it fails with ``States.TaskFailed`` (its Retry and Catch apply),
  which keeps Step Functions' promise that a standard workflow starts each task once.

A state's records go when it exits (so a loop that comes back to it starts it afresh). Keys
are scopes: a branch is ``<scope><state>\\x1f<index>\\x1f``, a Task ``<scope><state>\\x1e``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Any, Final

BRANCH: Final = "\x1f"
TASK: Final = "\x1e"
POSITION: Final = "\x1d"
DONE: Final = "\x1c"
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS progress (
    execution_arn TEXT NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL, value TEXT, PRIMARY KEY (execution_arn, key)
);
"""


def _like(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class ExecutionProgress:
    """One standard execution's progress records (the interpreter's ``Progress``)."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock, arn: str) -> None:
        self._db, self._lock, self._arn = db, lock, arn

    def _get(self, key: str) -> tuple[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT kind, value FROM progress WHERE execution_arn = ? AND key = ?", (self._arn, key)
            ).fetchone()
        return (str(row[0]), json.loads(row[1]) if row[1] is not None else None) if row else None

    def _put(self, key: str, kind: str, value: Any, clear_prefix: str | None = None) -> None:
        with self._lock:
            if clear_prefix is not None:
                self._db.execute(
                    "DELETE FROM progress WHERE execution_arn = ? AND key LIKE ? ESCAPE '\\'",
                    (self._arn, _like(clear_prefix)),
                )
            self._db.execute(
                "INSERT OR REPLACE INTO progress VALUES (?, ?, ?, ?)", (self._arn, key, kind, json.dumps(value))
            )
            self._db.commit()

    def exited(self, scope: str, state: str, following: str | None, document: Any) -> None:
        """`state` of `scope` exited: its records go, and the scope goes on at `following`."""
        with self._lock:
            self._db.execute(
                "DELETE FROM progress WHERE execution_arn = ? AND (key = ? OR key LIKE ? ESCAPE '\\')",
                (self._arn, scope + state + TASK, _like(scope + state + BRANCH)),
            )
            if scope:
                value = json.dumps({"next": following, "input": document})
                self._db.execute(
                    "INSERT OR REPLACE INTO progress VALUES (?, ?, 'position', ?)", (self._arn, scope + POSITION, value)
                )
            else:
                self._db.execute(
                    "UPDATE executions SET next_state = ?, next_input = ? WHERE arn = ?",
                    (following, json.dumps(document), self._arn),
                )
            self._db.commit()

    def position(self, scope: str) -> tuple[str | None, Any] | None:
        """Where a branch or iteration had got to: (state to run next, its input), or None."""
        found = self._get(scope + POSITION)
        return (found[1]["next"], found[1]["input"]) if found else None

    def branch_done(self, scope: str) -> tuple[bool, Any]:
        found = self._get(scope + DONE)
        return (True, found[1]) if found else (False, None)

    def branch_finished(self, scope: str, output: Any) -> None:
        """A branch or iteration ended: its output kept, its inner records gone, in one commit."""
        self._put(scope + DONE, "done", output, clear_prefix=scope)

    def task(self, key: str) -> tuple[str, Any] | None:
        """("started", None) or ("succeeded", result) of a Task attempt, or None."""
        return self._get(key)

    def task_started(self, key: str) -> None:
        self._put(key, "started", None)

    def task_succeeded(self, key: str, result: Any) -> None:
        self._put(key, "succeeded", result)

    def task_forgotten(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM progress WHERE execution_arn = ? AND key = ?", (self._arn, key))
            self._db.commit()
