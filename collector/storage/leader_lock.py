"""One collector at a time: a PostgreSQL advisory lock held on a connection of its own.

In lake mode every collector writes spans, but the work derived from all of them (linking the
service map, the rollup, expiring orphans, retention, compaction) is done by one: the holder
of this lock. A session-level advisory lock lives as long as the connection that took it, so a
collector that dies (SIGKILL included) lets go the moment PostgreSQL sees its connection close,
and the next collector to ask takes over where the lake's own state says the work stands.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # imported where used: only lake mode takes these locks, and a daemon on a
    import psycopg  # DuckDB file does not carry PostgreSQL's driver (~9 MiB)

_logger = logging.getLogger(__name__)

# Keys of pg_try_advisory_lock: fixed numbers only Fluoro uses in the catalog's database.
LEADER_KEY: Final = 0x466C756F726F01  # "Fluoro" 01: linking and maintenance
SCHEMA_KEY: Final = 0x466C756F726F02  # creating the lake's tables


class LeaderLock:
    """Asks for the lock when asked whether it is held; reconnects after the connection is lost."""

    def __init__(
        self, conninfo: str, key: int = LEADER_KEY, connect_timeout_s: int = 5, password: str | None = None
    ) -> None:
        self._conninfo = conninfo
        self._password = password
        self._key = key
        self._connect_timeout_s = connect_timeout_s
        self._con: psycopg.Connection[tuple[object, ...]] | None = None
        self._held = False
        self._mutex = threading.Lock()

    def held(self) -> bool:
        """Whether this process leads now: the lock taken (now or before) on a live connection."""
        import psycopg

        with self._mutex:
            try:
                if self._con is None or self._con.closed:
                    self._held = False
                    self._con = psycopg.connect(
                        with_password(self._conninfo, self._password),
                        autocommit=True,
                        connect_timeout=self._connect_timeout_s,
                    )
                if self._held:
                    self._con.execute("SELECT 1")  # still alive: the lock is ours while it is
                    return True
                row = self._con.execute("SELECT pg_try_advisory_lock(%s)", [self._key]).fetchone()
                self._held = bool(row and row[0])
                if self._held:
                    _logger.info("this collector now links and maintains the lake")
            except psycopg.Error as exc:
                _logger.warning("the lake's leader lock is unreachable: %s", exc)
                self._drop()
            return self._held

    @property
    def holding(self) -> bool:
        """Whether the lock was held when last asked (asks nothing of PostgreSQL)."""
        return self._held

    def _drop(self) -> None:
        if self._con is not None:
            self._con.close()
        self._con, self._held = None, False

    def release(self) -> None:
        with self._mutex:
            self._drop()


def with_lock(conninfo: str, key: int, password: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
    """A connection that holds `key` (waiting for it): close it to let go."""
    import psycopg

    con = psycopg.connect(with_password(conninfo, password), autocommit=True)
    con.execute("SELECT pg_advisory_lock(%s)", [key])
    return con


def with_password(conninfo: str, password: str | None) -> str:
    """The connection string psycopg gets (never logged: libpq's errors do not quote it)."""
    from psycopg.conninfo import make_conninfo

    return conninfo if password is None else make_conninfo(conninfo, password=password)
