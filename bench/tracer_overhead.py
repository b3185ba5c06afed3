"""What tracing a trivial function costs, per call, in whole-process CPU (export included).

Scenarios, each in a fresh worker process, run several times (medians printed):

- bare:             the function alone
- otel:             stock OpenTelemetry: start_as_current_span + BatchSpanProcessor + the stock
                    OTLP/HTTP exporter
- otel_off:         the same with the ALWAYS_OFF sampler
- xray:             aws-xray-sdk ``capture`` with its UDP emitter
- traced:           Fluoro ``@traced`` exporting OTLP/HTTP (sampled roots)
- traced_child:     ``@traced`` under a sampled parent
- traced_unsampled: ``@traced`` under an unsampled parent
- traced_tail:      ``@traced`` roots at 1% head sampling with tail-keep on (the default) and no
                    failure: 99% are recorded, held and discarded when they end
- traced_tail_off:  the same with tail-keep off (FLUORO_TAIL_KEEP=off), for comparison

CPU is ``time.process_time()`` of the worker (all its threads, so the export thread's encoding
counts) from before the loop to after the final flush. The receiver runs in its own process,
so its decoding does not count. Also printed: the wall time of ``import tracer`` +
``configure()`` against ``import opentelemetry.sdk.trace``, and what the import hook of
``tracer.track_imports()`` adds to importing boto3.

Usage: python bench/tracer_overhead.py [--calls 20000] [--runs 5]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCENARIOS = [
    "bare", "otel", "otel_off", "xray", "traced", "traced_child", "traced_unsampled", "traced_tail", "traced_tail_off",
]  # fmt: skip
HEAD_RATIO = 0.01


def trivial(x: int) -> int:
    return x + 1


# ---------------------------------------------------------------- worker scenarios


def run_bare(calls: int, endpoint: str, udp_port: int) -> float:
    start = time.process_time()
    for i in range(calls):
        trivial(i)
    return time.process_time() - start


def run_otel(calls: int, endpoint: str, udp_port: int, *, sampled: bool = True) -> float:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

    provider = TracerProvider(
        sampler=ALWAYS_ON if sampled else ALWAYS_OFF, resource=Resource.create({"service.name": "bench"})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    otel_tracer = provider.get_tracer("bench")

    def wrapped(x: int) -> int:
        with otel_tracer.start_as_current_span("trivial"):
            return trivial(x)

    start = time.process_time()
    for i in range(calls):
        wrapped(i)
    provider.shutdown()
    return time.process_time() - start


def run_xray(calls: int, endpoint: str, udp_port: int) -> float:
    from aws_xray_sdk.core import xray_recorder

    xray_recorder.configure(
        daemon_address=f"127.0.0.1:{udp_port}", sampling=False, context_missing="LOG_ERROR", service="bench"
    )

    @xray_recorder.capture("trivial")
    def wrapped(x: int) -> int:
        return trivial(x)

    start = time.process_time()
    # One segment per 100 calls, as a handler's segment holds its subsegments; the SDK streams
    # subsegments past its threshold, so every one is serialized and sent.
    for batch in range(0, calls, 100):
        xray_recorder.begin_segment("bench")
        for i in range(batch, min(batch + 100, calls)):
            wrapped(i)
        xray_recorder.end_segment()
    return time.process_time() - start


def run_traced(
    calls: int, endpoint: str, udp_port: int, *, parent: str = "none", ratio: float = 1.0, tail_keep: bool = True
) -> float:
    from opentelemetry import context as context_api
    from opentelemetry import trace as trace_api

    import tracer

    sampler = "parentbased_always_on"
    if ratio < 1.0:
        os.environ["OTEL_TRACES_SAMPLER_ARG"] = str(ratio)
        sampler = "parentbased_traceidratio"
    tracing = tracer.configure("bench", endpoint=endpoint, sampler=sampler, set_global=False, tail_keep=tail_keep)
    assert tracing is not None

    @tracer.traced
    def wrapped(x: int) -> int:
        return trivial(x)

    token = None
    if parent != "none":
        flags = trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED if parent == "sampled" else 0)
        parent_ctx = trace_api.SpanContext(0x6B0A5256B8E293D9E0487522A64239A7, 0x1234, False, flags)
        token = context_api.attach(trace_api.set_span_in_context(trace_api.NonRecordingSpan(parent_ctx)))
    start = time.process_time()
    for i in range(calls):
        wrapped(i)
    stats = tracing.stats()
    tracer.shutdown()
    elapsed = time.process_time() - start
    if token is not None:
        context_api.detach(token)
    if stats is not None and (stats.held_spans or stats.dropped_spans):
        print(
            f"  warning: tail-keep still holds {stats.held_spans} spans, dropped {stats.dropped_spans}", file=sys.stderr
        )
    return elapsed


def worker(scenario: str, calls: int, endpoint: str, udp_port: int) -> None:
    # Both batch processors read this: a queue big enough that no span is dropped, so every
    # span is really encoded and sent (the default 2048 would drop most of a tight loop's).
    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(calls * 2)
    runners: dict[str, Any] = {
        "bare": run_bare,
        "otel": run_otel,
        "otel_off": lambda c, e, u: run_otel(c, e, u, sampled=False),
        "xray": run_xray,
        "traced": run_traced,
        "traced_child": lambda c, e, u: run_traced(c, e, u, parent="sampled"),
        "traced_unsampled": lambda c, e, u: run_traced(c, e, u, parent="unsampled"),
        "traced_tail": lambda c, e, u: run_traced(c, e, u, ratio=HEAD_RATIO),
        "traced_tail_off": lambda c, e, u: run_traced(c, e, u, ratio=HEAD_RATIO, tail_keep=False),
    }
    runners[scenario](min(calls, 2000), endpoint, udp_port)  # warm-up: imports, connections
    cpu_s = runners[scenario](calls, endpoint, udp_port)
    print(json.dumps({"scenario": scenario, "cpu_s": cpu_s, "calls": calls}))


# ---------------------------------------------------------------- receiver process


def sink(ready_fd: int) -> None:
    sys.path.insert(0, ROOT)
    from demo_apps.otlp_sink import OtlpSink

    otlp = OtlpSink(keep=False).start()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)

    def drain() -> None:
        while True:
            udp.recv(65536)

    threading.Thread(target=drain, daemon=True).start()
    os.write(ready_fd, f"{otlp.endpoint} {udp.getsockname()[1]}\n".encode())
    sys.stdin.read()  # until the parent closes our stdin


# ---------------------------------------------------------------- driver


def received_spans(endpoint: str) -> int:
    with urllib.request.urlopen(endpoint.replace("/v1/traces", "/stats"), timeout=5) as response:
        return int(json.load(response)["spans"])


def run_worker(scenario: str, calls: int, endpoint: str, udp_port: int) -> tuple[float, int, bool]:
    """CPU µs per call, the spans the sink received from the run, and whether that is every span
    the scenario exports (tail-keep's 1% within five standard deviations)."""
    before = received_spans(endpoint)
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            scenario,
            "--calls",
            str(calls),
            "--endpoint",
            endpoint,
            "--udp-port",
            str(udp_port),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    exported = received_spans(endpoint) - before
    expected = 0 if scenario in ("bare", "otel_off", "xray", "traced_unsampled") else calls + min(calls, 2000)
    complete = exported == expected
    if scenario.startswith("traced_tail"):  # head sampling at 1%, no failure: about 1% exported
        expected = round(HEAD_RATIO * (calls + min(calls, 2000)))
        complete = abs(exported - expected) <= 5 * expected**0.5 + 5
    if not complete:
        print(f"  warning: {scenario} exported {exported} spans, expected {expected}", file=sys.stderr)
    return float(result["cpu_s"]) / calls * 1e6, exported, complete


def wall_ms_once(code: str, setup: str = "pass") -> float:
    """Wall time of `code` in a fresh process, after an untimed `setup`."""
    program = f"{setup}\nimport time\n_t0 = time.perf_counter()\n{code}\nprint(time.perf_counter() - _t0)"
    out = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
    )
    return float(out.stdout.strip().splitlines()[-1]) * 1000


def wall_ms_alternated(programs: dict[str, tuple[str, str]], runs: int) -> dict[str, list[float]]:
    """Wall times (ms) of each (code, setup) in fresh processes, `runs` rounds of one each in
    turn: a ratio of two programs is then read round by round, each pair timed within the same
    second of the machine's load (blocks of 21 runs each drifted apart by 5-10% here)."""
    samples: dict[str, list[float]] = {name: [] for name in programs}
    for _ in range(runs):
        for name, (code, setup) in programs.items():
            samples[name].append(wall_ms_once(code, setup))
    return samples


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    """The median of round-by-round ratios."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--worker")
    parser.add_argument("--sink-fd", type=int)
    parser.add_argument("--endpoint", default="")
    parser.add_argument("--udp-port", type=int, default=0)
    args = parser.parse_args()
    if args.worker:
        sys.path.insert(0, ROOT)
        worker(args.worker, args.calls, args.endpoint, args.udp_port)
        return
    if args.sink_fd is not None:
        sink(args.sink_fd)
        return

    # Installed packages were byte-compiled by pip; compile ours too, so imports compare like
    # for like even where PYTHONDONTWRITEBYTECODE is set.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "tracer", "demo_apps"], cwd=ROOT, check=True)
    read_fd, write_fd = os.pipe()
    receiver = subprocess.Popen(
        [sys.executable, __file__, "--sink-fd", str(write_fd)], stdin=subprocess.PIPE, pass_fds=(write_fd,)
    )
    with os.fdopen(read_fd) as ready:
        endpoint, udp_port = ready.readline().split()
    try:
        per_call: dict[str, list[float]] = {s: [] for s in SCENARIOS}
        received, incomplete = 0, []
        for run in range(args.runs):
            for scenario in SCENARIOS:  # interleaved, so drift on a shared machine hits all alike
                cpu_us, exported, complete = run_worker(scenario, args.calls, endpoint, int(udp_port))
                per_call[scenario].append(cpu_us)
                received += exported
                incomplete += [] if complete else [scenario]
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    finally:
        assert receiver.stdin is not None
        receiver.stdin.close()
        receiver.wait(timeout=10)

    med = {s: statistics.median(v) for s, v in per_call.items()}
    print(f"\nCPU per call, whole process incl. export (median of {args.runs} runs x {args.calls} calls)")
    for scenario in SCENARIOS:
        spread = ", ".join(f"{v:.2f}" for v in per_call[scenario])
        print(f"  {scenario:<18} {med[scenario]:8.2f} µs   (runs: {spread})")
    verdict = "every exported span arrived" if not incomplete else f"MISSING spans in {sorted(set(incomplete))}"
    print(f"  sink: {received:,} spans received over all runs; {verdict}")
    print("\nRatios (targets in brackets)")
    print(f"  traced / otel                 {med['traced'] / med['otel']:.3f}   [<= 0.2]")
    print(f"  traced / xray                 {med['traced'] / med['xray']:.3f}   [<= 0.35]")
    print(f"  traced_child / otel           {med['traced_child'] / med['otel']:.3f}")
    print(f"  traced_unsampled / otel_off   {med['traced_unsampled'] / med['otel_off']:.3f}   [<= 0.1]")
    print(
        f"  traced_tail / otel            {med['traced_tail'] / med['otel']:.3f}   [<= 0.15]  (1% head, tail-keep on)"
    )
    print(f"  traced_tail_off / otel        {med['traced_tail_off'] / med['otel']:.3f}   (1% head, tail-keep off)")

    print_tail_memory()
    print_import_costs(max(11, args.runs))  # a few ms each: more runs, a steadier median


TAIL_MEMORY = """
import json, os, tracer
from opentelemetry import context, trace

def rss_kib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

t = tracer.configure("mem", endpoint="http://127.0.0.1:9/v1/traces", sampler="always_off", set_global=False)
roots = [t.spans.start("root", parent_context=context.Context()) for _ in range({traces})]
before = rss_kib()
for root in roots:  # five children each under roots that never end: held until the caps
    parent = trace.set_span_in_context(root)
    for _ in range(5):
        t.spans.start("child", parent_context=parent, attributes={{"n": 1}}).end()
stats = t.stats()
print(json.dumps({{"held": stats.held_spans, "dropped": stats.dropped_spans, "grew_kib": rss_kib() - before}}))
"""


def print_tail_memory() -> None:
    """Tail-keep's memory bound: traces whose roots never end hold at most the global cap."""
    print("\nTail-keep memory (always_off, roots that never end, five ended children each)")
    for traces in (2_000, 20_000, 200_000):
        out = subprocess.run(
            [sys.executable, "-c", TAIL_MEMORY.format(traces=traces)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        got = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"  {traces * 5:>9,} children: held {got['held']:>5,} (cap 4,096), dropped {got['dropped']:>9,},"
            f" RSS grew {got['grew_kib'] / 1024:6.1f} MiB"
        )


def print_import_costs(runs: int) -> None:
    """Cold-start cost: wall time of imports and set-up in fresh processes."""
    # Bytecode as an installed package has it (pip compiles site-packages; a checkout run with
    # PYTHONDONTWRITEBYTECODE would otherwise compile the tracer's edited modules every time).
    compileall.compile_dir(os.path.join(ROOT, "tracer"), quiet=1)
    samples = wall_ms_alternated(
        {
            "sdk": ("import opentelemetry.sdk.trace", "pass"),
            "ours": ("import tracer; tracer.configure('bench')", "pass"),
            "stock": (
                "import opentelemetry.sdk.trace as t; "
                "from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as E; "
                "from opentelemetry.sdk.trace.export import BatchSpanProcessor as B; "
                "p=t.TracerProvider(); p.add_span_processor(B(E()))",
                "pass",
            ),
            "boto": ("import boto3", "import tracer"),
            "hooked_boto": ("import boto3", "import tracer; tracer.track_imports()"),
        },
        runs,
    )
    ms = {name: statistics.median(times) for name, times in samples.items()}
    print(f"\nCold-start import wall time (median of {runs} fresh processes each, in turn; ratios round by round)")
    print(f"  import opentelemetry.sdk.trace             {ms['sdk']:8.1f} ms")
    ours_ratio = median_ratio(samples["ours"], samples["sdk"])
    print(f"  import tracer + configure()                {ms['ours']:8.1f} ms   ({ours_ratio:.2f}x)  [<= 1.2x]")
    stock_ratio = median_ratio(samples["stock"], samples["sdk"])
    print(f"  stock SDK + OTLP/HTTP exporter set up      {ms['stock']:8.1f} ms   ({stock_ratio:.2f}x)")
    print(f"  import boto3                               {ms['boto']:8.1f} ms")
    hook_ratio = median_ratio(samples["hooked_boto"], samples["boto"])
    print(f"  import boto3 under track_imports()         {ms['hooked_boto']:8.1f} ms   ({hook_ratio:.2f}x)")


if __name__ == "__main__":
    main()
