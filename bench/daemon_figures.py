"""What a running daemon tells about itself: its process's CPU and peak memory (/proc), its
threads' CPU and stored spans (/metrics), and when it has stored and linked what it took.

Apart from bench/ingest.py, which drives the daemon and prints the figures."""

from __future__ import annotations

import os
import time
import urllib.request
from typing import Any

from bench.hostile import rss_kib


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mib(pid: int) -> float:
    return rss_kib(pid, "VmHWM") / 1024


def metric_samples(api: str) -> list[Any]:
    """Every sample of the daemon's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{api}/metrics", timeout=10) as response:
        text = response.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def cpu_by_role(api: str) -> dict[str, float]:
    """The daemon's CPU seconds per thread, executor threads summed by role."""
    roles = {
        "fluoro-writer": "writer",
        "fluoro-folder": "folder",
        "fluoro-housekeeping": "linker",
        "MainThread": "event loop",
    }
    totals: dict[str, float] = {}
    for sample in metric_samples(api):
        if sample.name == "fluoro_thread_cpu_seconds_total":
            name = sample.labels["thread"]
            role = roles.get(name, "decoders" if name.startswith("asyncio_") else "other")
            totals[role] = totals.get(role, 0.0) + sample.value
    return totals


def fold_acknowledged(api: str) -> None:
    """Every acknowledged span into DuckDB: a query has the daemon fold its ingest log first."""
    urllib.request.urlopen(f"{api}/api/services", timeout=60).read()


def stored_spans(api: str) -> int:
    fold_acknowledged(api)
    return int(sum(s.value for s in metric_samples(api) if s.name == "fluoro_spans_stored_total"))


def linker_settled(api: str, quiet_s: float = 3.0, timeout_s: float = 60.0) -> None:
    """Fold what is acknowledged, then wait until the linker's thread is idle for `quiet_s` (> its
    2 s period): it links a flood after it."""
    fold_acknowledged(api)
    deadline, used, quiet_since = time.monotonic() + timeout_s, cpu_by_role(api).get("linker", 0.0), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < quiet_s:
        time.sleep(0.5)
        now = cpu_by_role(api).get("linker", 0.0)
        if now > used + 0.01:
            used, quiet_since = now, time.monotonic()
