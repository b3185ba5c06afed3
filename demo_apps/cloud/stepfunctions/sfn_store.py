"""Step Functions' durable store: state machines, standard executions and their histories.

SQLite (the standard library's, one file) because a standard workflow must outlive the
emulator: every history event and every checkpoint — the state to run next and its input,
written as a state exits — is committed before the execution goes on, so a restarted emulator
resumes each RUNNING execution where it stopped and no finished state runs twice (below the
top-level states, branches, iterations and Task attempts: ``sfn_progress.py``). Express
workflows never come here; AWS keeps no durable history for them either.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from demo_apps.cloud.stepfunctions.sfn_progress import SCHEMA as PROGRESS_SCHEMA
from demo_apps.cloud.stepfunctions.sfn_progress import ExecutionProgress

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS machines (
    arn TEXT PRIMARY KEY, name TEXT NOT NULL, definition TEXT NOT NULL, type TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    arn TEXT PRIMARY KEY, machine_arn TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
    input TEXT NOT NULL, output TEXT, error TEXT, cause TEXT, started REAL NOT NULL, stopped REAL,
    trace_header TEXT, next_state TEXT, next_input TEXT
);
CREATE TABLE IF NOT EXISTS events (
    execution_arn TEXT NOT NULL, id INTEGER NOT NULL, type TEXT NOT NULL, timestamp REAL NOT NULL,
    details TEXT NOT NULL, PRIMARY KEY (execution_arn, id)
);
"""


@dataclass(frozen=True)
class Execution:
    arn: str
    machine_arn: str
    name: str
    status: str
    input: str
    output: str | None
    error: str | None
    cause: str | None
    started: float
    stopped: float | None
    trace_header: str | None
    next_state: str | None
    next_input: str | None


class ExecutionStore:
    """Thread-safe; every write is committed at once."""

    def __init__(self, path: Path | None = None) -> None:
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self._db.executescript(_SCHEMA + PROGRESS_SCHEMA)
        self._lock = threading.Lock()

    def put_machine(self, arn: str, name: str, definition: str, kind: str) -> None:
        self._write(
            "INSERT OR REPLACE INTO machines VALUES (?, ?, ?, ?, ?)", (arn, name, definition, kind, time.time())
        )

    def machines(self) -> list[tuple[str, str, str, str]]:
        """(arn, name, definition, type) of every machine."""
        with self._lock:
            rows = self._db.execute("SELECT arn, name, definition, type FROM machines").fetchall()
        return [tuple(row) for row in rows]

    def create(self, execution: Execution) -> None:
        self._write(
            "INSERT INTO executions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                execution.arn,
                execution.machine_arn,
                execution.name,
                execution.status,
                execution.input,
                None,
                None,
                None,
                execution.started,
                None,
                execution.trace_header,
                execution.next_state,
                execution.next_input,
            ),
        )

    def progress(self, arn: str) -> ExecutionProgress:
        """The execution's records below its top-level states (branches, iterations, Task attempts)."""
        return ExecutionProgress(self._db, self._lock, arn)

    def finish(
        self, arn: str, status: str, output: Any = None, error: str | None = None, cause: str | None = None
    ) -> bool:
        """Mark a RUNNING execution finished; False if it already was (a StopExecution came first)."""
        text = None if output is None and status != "SUCCEEDED" else json.dumps(output)
        with self._lock:
            changed = self._db.execute(
                "UPDATE executions SET status = ?, output = ?, error = ?, cause = ?, stopped = ?, next_state = NULL "
                "WHERE arn = ? AND status = 'RUNNING'",
                (status, text, error, cause, time.time(), arn),
            ).rowcount
            self._db.execute("DELETE FROM progress WHERE execution_arn = ?", (arn,))
            self._db.commit()
        return changed == 1

    def add_event(self, arn: str, kind: str, details: dict[str, Any]) -> int:
        with self._lock:
            return self._insert_event(arn, kind, details)

    def add_state_event(self, arn: str, kind: str, details: dict[str, Any]) -> int | None:
        """A state's event, kept only while the execution runs: a stopped execution's history ends
        with its ExecutionAborted (or TimedOut), as AWS's does, not with what its interrupted
        Task says as it unwinds."""
        with self._lock:
            row = self._db.execute("SELECT status FROM executions WHERE arn = ?", (arn,)).fetchone()
            return self._insert_event(arn, kind, details) if row and row[0] == "RUNNING" else None

    def _insert_event(self, arn: str, kind: str, details: dict[str, Any]) -> int:
        (last,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM events WHERE execution_arn = ?", (arn,)).fetchone()
        self._db.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?)", (arn, last + 1, kind, time.time(), json.dumps(details))
        )
        self._db.commit()
        return int(last) + 1

    def events(self, arn: str) -> list[tuple[int, str, float, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, type, timestamp, details FROM events WHERE execution_arn = ? ORDER BY id", (arn,)
            ).fetchall()
        return [(int(i), str(t), float(ts), json.loads(d)) for i, t, ts, d in rows]

    def get(self, arn: str) -> Execution | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM executions WHERE arn = ?", (arn,)).fetchone()
        return Execution(*row) if row else None

    def running(self) -> list[Execution]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM executions WHERE status = 'RUNNING' ORDER BY started").fetchall()
        return [Execution(*row) for row in rows]

    def list(self, machine_arn: str) -> list[Execution]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM executions WHERE machine_arn = ? ORDER BY started DESC", (machine_arn,)
            ).fetchall()
        return [Execution(*row) for row in rows]

    def prune(self, keep: int) -> None:
        """Forget all but the newest `keep` finished executions (the in-memory express store)."""
        with self._lock:
            self._db.execute(
                "DELETE FROM executions WHERE status != 'RUNNING' AND arn NOT IN "
                "(SELECT arn FROM executions ORDER BY started DESC LIMIT ?)",
                (keep,),
            )
            self._db.execute("DELETE FROM events WHERE execution_arn NOT IN (SELECT arn FROM executions)")
            self._db.commit()

    def _write(self, sql: str, parameters: tuple[Any, ...]) -> None:
        with self._lock:
            self._db.execute(sql, parameters)
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()
