"""Fixtures of the collector's unit tests: the ingest pipeline's log and manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clocks import ManualClock
from tests.unit.collector.pipeline_support import RecordingLog


@pytest.fixture
def log(tmp_path: Path) -> Iterator[RecordingLog]:
    opened = RecordingLog(str(tmp_path / "spans.ingest"))
    yield opened
    opened.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
