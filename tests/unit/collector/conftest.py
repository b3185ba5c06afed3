"""Fixtures of the collector's unit tests: the ingest pipeline's log and manual clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clocks import ManualClock
from tests.unit.collector.pipeline_support import RecordingLog


@pytest.fixture
def log(tmp_path: Path) -> RecordingLog:
    return RecordingLog(str(tmp_path / "spans.ingest"))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
