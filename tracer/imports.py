"""Timing module imports during a cold start, for the Initialization span's children.

Opt-in: call :func:`track_imports` at the very top of the handler module (before its other
imports). A finder placed first on ``sys.meta_path`` wraps each loader's ``exec_module`` and
records the module's inclusive import time. Only the outermost import of a nest is kept as a
candidate child (``import boto3`` includes ``botocore``), and only the slowest few are reported.
The hook removes itself after the first invocation; its cost is measured in
``bench/tracer_overhead.py``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

MAX_RECORDED = 256


@dataclass(frozen=True)
class ImportTiming:
    """One top-level import: module name and wall-clock interval (ns since the epoch)."""

    module: str
    start_ns: int
    end_ns: int

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


class _TimedLoader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader, tracker: ImportTracker) -> None:
        self._inner = inner
        self._tracker = tracker

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._tracker.enter()
        start_ns = time.time_ns()
        try:
            self._inner.exec_module(module)
        finally:
            self._tracker.leave(module.__name__, start_ns, time.time_ns())

    def __getattr__(self, name: str) -> Any:
        # Resource readers, get_source, is_package... belong to the real loader.
        return getattr(self._inner, name)


class ImportTracker(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the loader the rest of sys.meta_path finds."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self.timings: list[ImportTiming] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _TimedLoader(spec.loader, self)
                return spec
        return None

    def enter(self) -> None:
        self._local.depth = getattr(self._local, "depth", 0) + 1

    def leave(self, module: str, start_ns: int, end_ns: int) -> None:
        self._local.depth -= 1
        if self._local.depth == 0:
            with self._lock:
                if len(self.timings) < MAX_RECORDED:
                    self.timings.append(ImportTiming(module, start_ns, end_ns))

    def slowest(self, count: int) -> list[ImportTiming]:
        with self._lock:
            return sorted(self.timings, key=lambda t: t.duration_ns, reverse=True)[:count]

    def install(self) -> None:
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def uninstall(self) -> None:
        while self in sys.meta_path:
            sys.meta_path.remove(self)
