"""A bound on DuckDB's memory, for a daemon that runs for days.

DuckDB's buffer pool keeps every block it writes or reads until it nears its ``memory_limit``,
80% of the machine by default: a collector's memory grew with its file (the demo's spans
replayed 500k at a time: DuckDB's cached blocks 38 -> 347 MiB as the file reached 431 MiB), a
cache and not a leak, but resident. Bounded, DuckDB evicts cached blocks (read again from the
file, which the kernel's page cache also holds) and spills what a statement holds beyond the
bound to ``<file>.tmp`` (a lake's in-memory connection: ``.tmp`` in the working directory)
rather than failing it. docs/ARCHITECTURE.md, *A bound on DuckDB's memory*, has the figures.
"""

from __future__ import annotations

from typing import Final

from collector.storage.protocols import StoreUnavailable

# A fold's appends alone hold ~60-100 MiB of DuckDB's memory: below this every fold of a flood
# would spill. The top, 1 TiB, is a sanity bound on a typed number, not a need.
MIN_MEMORY_LIMIT_MIB: Final = 256
MAX_MEMORY_LIMIT_MIB: Final = 1024 * 1024
# `fluoro serve`'s bound unless told otherwise.
DEFAULT_MEMORY_LIMIT_MIB: Final = 1024


def memory_limit_statement(mib: int) -> str:
    """The SET that bounds a database instance's buffer pool (every cursor shares it) to `mib`
    MiB; StoreUnavailable for a bound outside the range."""
    if not MIN_MEMORY_LIMIT_MIB <= mib <= MAX_MEMORY_LIMIT_MIB:
        raise StoreUnavailable(
            f"a memory limit of {mib} MiB is outside {MIN_MEMORY_LIMIT_MIB}-{MAX_MEMORY_LIMIT_MIB} MiB"
        )
    return f"SET memory_limit = '{int(mib)}MiB'"
