"""One C heap for the daemon, and its freed pages given back to the kernel after each fold.

A daemon's memory under a flood comes in waves: a fold frees a whole fold's decoded batches at
once (the C decoder's columns and the requests' bodies, ~500 bytes a span, up to ~300k spans),
then the next fold's DuckDB appends and the link run's Arrow buffers are allocated. Three
allocators shared the process: glibc's malloc (Python, the decoder, gRPC), pyarrow's bundled
mimalloc and DuckDB's own jemalloc, and each kept what it freed for its own callers: the peak
RSS was the sum of their high-water marks, not of what was live at once.

So the ``fluoro`` command (ui/entry.py) has pyarrow allocate from glibc too, chosen before
pyarrow loads (its C++ reads ARROW_DEFAULT_MEMORY_POOL once; ``pa.set_memory_pool`` later
covers only the calls made from Python: 614-627 MiB against 534-569 in the floods below; a
user's own choice of pool still wins), and the folder calls glibc's ``malloc_trim`` after each
fold: glibc does not return freed pages in the middle of its arenas by itself. Written by hand
because no library exposes ``malloc_trim``; it is a no-op where the C library has none (musl,
macOS). Cost: 5-15 ms a fold on the folder's thread (1-2 folds a second under a flood). The
engine also trims after each link run (every 2 s), so what a run's Arrow work freed goes back
between bursts: RSS 10 s after a 400k flood 426-467 MiB against 515-530, the steady 10k
spans/s collector CPU unchanged (10.6, 11.3% of a core against 11.7, 10.1).

Figures (400k-span HTTP floods of bench/ingest.py's shape against the daemon, peak RSS, two or
three runs each): 818-861 MiB before, 753-779 with pyarrow on glibc alone, 534-569 with both;
the acknowledged rate unchanged (150-188k spans/s on this noisy machine).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable, MutableMapping

ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def share_heap_with_arrow(environ: MutableMapping[str, str]) -> None:
    """Before pyarrow loads: have it allocate from the C library's malloc, unless `environ`
    (the process's environment) already chose a pool."""
    if not environ.get(ARROW_POOL_VARIABLE):
        environ[ARROW_POOL_VARIABLE] = "system"


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError, TypeError):  # no C library by that name, or no malloc_trim in it
        return None
    return trim


def release_free_heap() -> None:
    """Give the C heap's free pages back to the kernel (glibc only; elsewhere nothing)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
