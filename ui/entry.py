"""The ``fluoro`` command's entry point: the process's heap chosen before anything loads pyarrow.

pyarrow's C++ reads its allocator from the environment once, when it loads, and every ``fluoro``
command (``serve`` above all) imports it through the collector: so the choice is made here,
before ``ui.cli`` is imported (collector/process_heap.py says why one heap).
"""

from __future__ import annotations

import os

from collector.process_heap import share_heap_with_arrow


def main() -> None:
    share_heap_with_arrow(os.environ)
    from ui.cli import main as cli  # after the choice: this import loads pyarrow

    cli()
