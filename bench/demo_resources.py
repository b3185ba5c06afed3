"""What the whole demo costs: CPU (in cores) and memory (RSS and PSS) of `fluoro-demo all`, collector,
local cloud and every Lambda worker process included, at the default rate; and what the local
cloud adds to a warm API Gateway -> Lambda call over the handler's own time.

Runs the demo as its own process for `--seconds`, samples its whole process tree once a second
(psutil) after a warm-up, and prints the average and peak of each, with the budget
(1.5 cores, 2 GiB) as ratios. Several runs: the median of the averages.

The hop: at the end of each run, the banking stage's recent traces are read back from the demo's
collector; for each warm Lambda proxy call (the Lambda service span not a cold start) the stage
span's duration minus the function's Duration (AWS's REPORT line, which the Lambda service span
carries: the handler's own time, CPU share and the tracer's flush to its extension included) is
what the gateway, the Lambda service and the environment's protocol cost. Median and p90 against
the 5 ms budget.

    python -m bench.demo_resources --seconds 90 --runs 2
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx
import psutil

from demo_apps.local_collector import ROOT

BUDGET_CORES = 1.5
BUDGET_RSS_GIB = 2.0
BUDGET_HOP_MS = 5.0
STAGE = "bank-api/prod"


@dataclass(frozen=True)
class Sample:
    cores: float
    rss_gib: float  # the sum of every process's RSS: counts shared pages once per process
    pss_gib: float  # the sum of proportional set sizes: shared pages split between sharers


def tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    seconds = {}
    for process in processes:
        try:
            times = process.cpu_times()
            seconds[process.pid] = times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return seconds


def memory_gib(processes: list[psutil.Process]) -> tuple[float, float]:
    """(RSS, PSS) of the processes together."""
    rss = pss = 0
    for process in processes:
        try:
            info = process.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss / 2**30, pss / 2**30


def hops_ms(api_url: str, traces: int = 200) -> list[tuple[float, float, float]]:
    """(stage span minus the Lambda service's; the service's minus the function's Duration, as
    AWS's REPORT line gives it and the service span carries it; that Duration minus the
    function span) of each warm proxy call among the stage's latest traces: the gateway's part,
    the Lambda service's and environment's, and the tracer's flush inside the function (which
    AWS counts in the function's Duration too, so not in the hop)."""
    found = httpx.get(
        f"{api_url}/api/traces", params={"filter": f'service("{STAGE}")', "limit": traces}, timeout=60
    ).json()["traces"]
    hops = []
    for summary in found:
        spans = httpx.get(f"{api_url}/api/traces/{summary['trace_id']}", timeout=60).json()["spans"]
        by_parent: dict[str | None, list[dict[str, Any]]] = {}
        for span in spans:
            by_parent.setdefault(span["parent_span_id"], []).append(span)
        for stage in (s for s in spans if s["origin"] == "AWS::ApiGateway::Stage"):
            for service in (s for s in by_parent.get(stage["span_id"], []) if s["origin"] == "AWS::Lambda"):
                if service["attributes"].get("fluoro.lambda.cold_start") is not False:
                    continue
                handler = [  # the function's span, not its Invocation/Overhead phases
                    s
                    for s in by_parent.get(service["span_id"], [])
                    if s["origin"] == "AWS::Lambda::Function" and s["name"] == service["name"]
                ]
                reported = service["attributes"].get("fluoro.lambda.duration_ms")
                if handler and isinstance(reported, (int, float)):
                    gateway_ms = stage["duration_ms"] - service["duration_ms"]
                    flush_ms = reported - handler[0]["duration_ms"]
                    hops.append((gateway_ms, service["duration_ms"] - reported, flush_ms))
    return hops


def measure(
    seconds: float, warmup_s: float, extra: list[str], api_url: str
) -> tuple[list[Sample], list[tuple[float, float, float]]]:
    command = [sys.executable, "-m", "demo_apps.demo_cli", "all", "--duration", str(seconds + warmup_s + 5), *extra]
    demo = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = psutil.Process(demo.pid)
    samples = []
    try:
        time.sleep(warmup_s)
        before, at = cpu_seconds(tree(root)), time.monotonic()
        deadline = at + seconds
        while time.monotonic() < deadline and demo.poll() is None:
            time.sleep(1.0)
            processes = tree(root)
            now, used = time.monotonic(), cpu_seconds(processes)
            # CPU of processes that lived through the second, plus whole lives of new ones
            spent = sum(t - before.get(pid, 0.0) for pid, t in used.items())
            samples.append(Sample(max(0.0, spent) / (now - at), *memory_gib(processes)))
            before, at = used, now
        hops = hops_ms(api_url)
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(90)
        except subprocess.TimeoutExpired:
            demo.kill()
    return samples, hops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--warmup", type=float, default=20.0, help="deploys and first cold starts, not counted")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--ui-port", type=int, default=8695)
    args = parser.parse_args()
    averages, peaks_rss, averages_rss, averages_pss, peaks_pss, hop_medians = [], [], [], [], [], []
    for run in range(args.runs):
        api_url = f"http://127.0.0.1:{args.ui_port}"
        samples, hops = measure(args.seconds, args.warmup, ["--ui-port", str(args.ui_port)], api_url)
        if not samples:
            raise SystemExit("the demo stopped before it could be measured")
        cores = statistics.fmean(s.cores for s in samples)
        rss, pss = [s.rss_gib for s in samples], [s.pss_gib for s in samples]
        averages.append(cores)
        averages_rss.append(statistics.fmean(rss))
        peaks_rss.append(max(rss))
        averages_pss.append(statistics.fmean(pss))
        peaks_pss.append(max(pss))
        peak_cores = max(s.cores for s in samples)
        if hops:
            totals = [gateway + service for gateway, service, _ in hops]
            hop_medians.append(statistics.median(totals))
            p90 = statistics.quantiles(totals, n=10)[-1] if len(totals) > 1 else totals[0]
            gateway_ms, service_ms, flush_ms = (statistics.median(part) for part in zip(*hops, strict=True))
            print(
                f"run {run + 1}: warm API Gateway -> Lambda hop over the handler: {len(hops)} calls, "
                f"median {statistics.median(totals):.2f} ms, p90 {p90:.2f} ms "
                f"(medians: gateway {gateway_ms:.2f}, Lambda service and environment {service_ms:.2f}; "
                f"not in the hop: the tracer's flush in the function's Duration {flush_ms:.2f})"
            )
        print(
            f"run {run + 1}: {len(samples)} s sampled; CPU avg {cores:.2f} cores (peak {peak_cores:.2f}); "
            f"RSS sum avg {statistics.fmean(rss):.2f} GiB (peak {max(rss):.2f}); "
            f"PSS avg {statistics.fmean(pss):.2f} GiB (peak {max(pss):.2f})"
        )
    cores, rss_avg, rss_peak = (
        statistics.median(averages),
        statistics.median(averages_rss),
        statistics.median(peaks_rss),
    )
    print(f"median CPU {cores:.2f} cores = {cores / BUDGET_CORES:.0%} of the {BUDGET_CORES} budget")
    print(
        f"median RSS sum avg {rss_avg:.2f} GiB, peak {rss_peak:.2f} GiB = "
        f"{rss_avg / BUDGET_RSS_GIB:.0%} / {rss_peak / BUDGET_RSS_GIB:.0%} of {BUDGET_RSS_GIB} GiB"
    )
    if hop_medians:
        hop = statistics.median(hop_medians)
        print(f"median warm hop {hop:.2f} ms = {hop / BUDGET_HOP_MS:.0%} of the {BUDGET_HOP_MS} ms budget")
    pss_avg, pss_peak = statistics.median(averages_pss), statistics.median(peaks_pss)
    print(
        f"median PSS avg {pss_avg:.2f} GiB, peak {pss_peak:.2f} GiB = "
        f"{pss_avg / BUDGET_RSS_GIB:.0%} / {pss_peak / BUDGET_RSS_GIB:.0%} of {BUDGET_RSS_GIB} GiB"
    )


if __name__ == "__main__":
    main()
