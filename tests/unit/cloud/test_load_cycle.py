"""The demo's load cycle keeps its promise: every idle gap ends with every environment reaped (so
cold starts recur after each), and its docstring tells the cycle the code runs."""

from __future__ import annotations

from demo_apps import load
from demo_apps.architectures import DemoSettings
from demo_apps.cloud.lambdas.lambda_service import reap_period_s
from demo_apps.load import CYCLE, phase_at


def test_every_idle_gap_outlasts_the_idle_timeout_and_the_reapers_period() -> None:
    idle_timeout_s = DemoSettings("http://127.0.0.1:4318/v1/traces").idle_timeout_s
    gaps = [length for name, length, multiplier in CYCLE if multiplier == 0]
    assert gaps and min(gaps) > idle_timeout_s + reap_period_s(idle_timeout_s)


def test_the_docstring_tells_the_cycle_the_code_runs() -> None:
    doc = " ".join((load.__doc__ or "").split())
    total_s = sum(length for _, length, _ in CYCLE)
    assert f"{total_s:g}-second cycle" in doc
    for name, length, multiplier in CYCLE:
        assert f"{length:g} s" in doc, name
        if multiplier > 1:
            assert f"{multiplier:g}x the rate" in doc


def test_phases_follow_the_cycle_and_repeat() -> None:
    total_s = sum(length for _, length, _ in CYCLE)
    assert phase_at(0.0) == ("steady", 1.0)
    assert phase_at(16.0) == ("burst", 5.0) and phase_at(16.0 + total_s) == ("burst", 5.0)
    assert phase_at(21.0) == ("idle", 0.0)
