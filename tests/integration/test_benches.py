"""The in-process benches still run, at their smallest: a change to the query layer or storage
cannot leave them broken until someone next measures. Their figures are for people (bench/,
medians and ratios), never asserted here."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.daemon import ROOT


@pytest.mark.parametrize(
    "args",
    [
        ["bench/query.py", "--spans", "100000", "--runs", "1", "--demo-spans", "100000"],
        ["bench/link.py", "--runs", "1"],
        ["bench/link_backlog.py", "--spans", "20000", "--runs", "1"],
    ],
    ids=["query", "link", "link backlog"],
)
def test_a_bench_runs_to_its_figures(args: list[str]) -> None:
    ran = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "median" in ran.stdout, ran.stdout[-2000:]
