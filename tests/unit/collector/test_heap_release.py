"""The daemon's heap (collector/process_heap.py): freed pages go back to the kernel after each
fold, once the folded batches are let go, and pyarrow allocates from the same heap."""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
import weakref

import pyarrow as pa
import pytest

from collector import process_heap
from collector.ingest.pending import WriteOutcome
from collector.ingest.pipeline import IngestPipeline
from collector.metrics import CollectorMetrics
from tests.clocks import ManualClock
from tests.unit.collector.pipeline_support import PROMPT, FakeWriter, RecordingLog, batch_of, decode_record, record_of
from tests.waiting import wait_until


def test_the_heap_is_released_after_each_fold_once_its_batches_are_let_go(
    log: RecordingLog, clock: ManualClock
) -> None:
    writer = FakeWriter()
    released: list[bool] = []  # per release: whether the folded batch was gone by then
    batches: list[weakref.ref[pa.Table]] = []

    def after_fold() -> None:
        released.append(all(b() is None for b in batches))

    pipeline = IngestPipeline(writer, log, decode_record, CollectorMetrics(), PROMPT, (), clock, after_fold)
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    for first in (1, 10):
        batch = batch_of(3, first)
        batches.append(weakref.ref(batch.spans))
        assert pipeline.submit(batch, 1, outcomes.append, None, record_of(3, first))
        del batch
        wait_until(lambda: len(outcomes) == len(batches))
        pipeline.flush()
        wait_until(lambda: len(released) == len(batches))
    assert writer.writes == [3, 3]
    assert released == [True, True]
    assert pipeline.stop()


def test_a_failed_fold_releases_nothing_until_a_fold_succeeds(log: RecordingLog, clock: ManualClock) -> None:
    writer = FakeWriter()
    writer.failing = True
    released: list[int] = []
    pipeline = IngestPipeline(
        writer, log, decode_record, CollectorMetrics(), PROMPT, (), clock, lambda: released.append(len(writer.writes))
    )
    pipeline.start()
    outcomes: list[WriteOutcome] = []
    assert pipeline.submit(batch_of(2), 1, outcomes.append, None, record_of(2))
    wait_until(lambda: len(outcomes) == 1)
    clock.advance(PROMPT.fold_interval_s)
    wait_until(lambda: not pipeline.healthy)
    assert released == []
    writer.failing = False
    clock.advance(1.0)
    wait_until(lambda: pipeline.healthy and released == [1])
    assert pipeline.stop()


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_release_gives_freed_pages_in_the_middle_of_the_heap_back() -> None:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    chunk_bytes, chunks = 96 * 1024, 480  # under glibc's mmap threshold: from the heap itself
    blocks = sorted(libc.malloc(chunk_bytes) for _ in range(chunks + 1))
    for block in blocks:
        ctypes.memset(block, 1, chunk_bytes)  # resident
    *freed, pin = blocks  # the highest kept: the freed ones cannot join the heap's top, which free trims
    for block in freed:
        libc.free(block)
    before_kib = _rss_kib()
    process_heap.release_free_heap()
    after_kib = _rss_kib()
    libc.free(pin)
    assert before_kib - after_kib > chunk_bytes * chunks // 1024 // 2  # most of the 45 MiB


def test_arrow_is_given_the_c_heap_unless_the_environment_chose_a_pool() -> None:
    environ = {"PATH": "/bin"}
    process_heap.share_heap_with_arrow(environ)
    assert environ == {"PATH": "/bin", process_heap.ARROW_POOL_VARIABLE: "system"}
    chosen = {process_heap.ARROW_POOL_VARIABLE: "jemalloc"}
    process_heap.share_heap_with_arrow(chosen)
    assert chosen == {process_heap.ARROW_POOL_VARIABLE: "jemalloc"}


@pytest.mark.parametrize(("chosen", "pool"), [(None, "system"), ("mimalloc", "mimalloc")])
def test_the_fluoro_command_runs_on_the_c_heap(chosen: str | None, pool: str) -> None:
    """ui/entry.py, as the `fluoro` script and demo_apps/local_collector.py start it."""
    report = "import atexit; atexit.register(lambda: print(__import__('pyarrow').default_memory_pool().backend_name))"
    environ = {k: v for k, v in os.environ.items() if k != process_heap.ARROW_POOL_VARIABLE}
    if chosen:
        environ[process_heap.ARROW_POOL_VARIABLE] = chosen
    script = f"import sys; sys.argv = ['fluoro', '--help']; from ui.entry import main; {report}; main()"
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "serve" in run.stdout and run.stdout.split()[-1] == pool
