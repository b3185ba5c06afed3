"""What hostile clients cost the daemon, against a quiet run (docs/ARCHITECTURE.md keeps the figures).

Starts ``fluoro serve`` on a temporary database, then:

1. shapes: one request of each worst shape at the maximum body size (20 MiB), each after the
   daemon's peak RSS is reset (``/proc/PID/clear_refs``, root only): many attribute keys in one
   span, values nested to the limit, a huge resource over many tiny spans, many tiny spans;
   prints the status, the time to the answer and the peak RSS above the idle daemon;
2. floods: a normal client (requests of 64 spans, one at a time, and a GET of /api/services
   between them, over a window of spans written before the phases, so every phase's page reads
   the same rows: the flood's own spans and the client's later ones do not make it slower)
   measured quiet; during a flood of X-Ray UDP datagrams from another process to
   a socket nobody reads (the control: what the flooder and the kernel cost this 2-core machine
   whoever the target); during the same flood to the daemon; then during a flood of hostile
   OTLP requests (nested values and many keys, 1 MiB each, from two processes); prints p50/p99
   of its acknowledgements and of the page, and p99 against the quiet run (and, for the UDP
   flood, against the control: the daemon's own share).

Bounded: fixed durations; every process stops by itself; loopback only.

Usage: python bench/hostile.py [--phase-s 15] [--skip-shapes]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from demo_apps.local_collector import run_collector  # noqa: E402
from tests.protowire import (  # noqa: E402
    array_value,
    attribute,
    delimited,
    fixed64,
    key_value,
    request,
    span,
    string_value,
)

MAX_BODY = 20 * 1024 * 1024
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def now_ns() -> int:
    return time.time_ns() - 1_000_000_000


def tiny_span(i: int, start_ns: int) -> bytes:
    return (
        delimited(1, (i // 8 + 1).to_bytes(16, "big"))
        + delimited(2, (i + 1).to_bytes(8, "big"))
        + fixed64(7, start_ns)
        + fixed64(8, start_ns + 1000)
    )


def many_keys(size: int) -> bytes:
    one = len(attribute("k0000000", string_value("v")))
    attributes = b"".join(attribute(f"k{i:07d}", string_value("v")) for i in range(size // one))
    return request([span(attributes, start_ns=now_ns())])


def deep_values(size: int) -> bytes:
    value = string_value("x")
    for _ in range(31):
        value = array_value(value)
    start = now_ns()
    one = span(attribute("deep", value), start_ns=start)
    count = size // (len(one) + 4)
    return request(
        [span(attribute("deep", value), span_id=(i + 1).to_bytes(8, "big"), start_ns=start) for i in range(count)]
    )


def huge_resource(size: int) -> bytes:
    resource = b"".join(delimited(1, key_value(f"r{i}", string_value("v" * 1000))) for i in range(2000))
    start = now_ns()
    tiny = [tiny_span(i, start) for i in range((size - len(resource)) // 50)]
    return request(tiny, resource=resource)


def tiny_spans(size: int) -> bytes:
    start = now_ns()
    return request([tiny_span(i, start) for i in range(size // 50)])


SHAPES = {
    "many keys": many_keys,
    "deep nesting": deep_values,
    "huge resource": huge_resource,
    "many tiny spans": tiny_spans,
}


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def post(port: int, body: bytes, connection: http.client.HTTPConnection | None = None) -> tuple[int, float]:
    own = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    own.request("POST", "/v1/traces", body, PROTOBUF)
    response = own.getresponse()
    response.read()
    return response.status, time.perf_counter() - started


def shapes(collector: Any, otlp: int) -> None:
    print(f"\n1. one request of each shape, {MAX_BODY // 2**20} MiB (peak RSS above the idle daemon)")
    for name, make in SHAPES.items():
        body = make(MAX_BODY - 4096)
        # A read folds what the last shape left logged, so the queue starts empty each time.
        urllib.request.urlopen(f"{collector.api_url}/api/services", timeout=120).read()
        idle_kib = rss_kib(collector.pid, "VmRSS")
        try:
            Path(f"/proc/{collector.pid}/clear_refs").write_text("5")  # resets VmHWM
        except OSError:
            print("   (cannot reset the peak RSS here: not root; peaks below are the run's)")
        status, seconds = post(otlp, body)
        peak_kib = rss_kib(collector.pid, "VmHWM")
        print(
            f"   {name:16} {len(body) / 2**20:5.1f} MiB  -> {status}  {seconds * 1000:7.0f} ms   "
            f"peak +{(peak_kib - idle_kib) / 1024:6.0f} MiB ({(peak_kib - idle_kib) * 1024 / len(body):4.1f}x the body)"
        )


def normal_body(n: int) -> bytes:
    start = now_ns()
    spans = [
        span(
            attribute("http.route", string_value("/ok")),
            trace_id=(n * 64 + i // 8 + 1).to_bytes(16, "big"),
            span_id=(n * 64 + i + 1).to_bytes(8, "big"),
            start_ns=start,
        )
        for i in range(64)
    ]
    return request(spans, resource=delimited(1, key_value("service.name", string_value("normal"))))


def seed(otlp: int, requests: int) -> tuple[float, float]:
    """Spans the page reads in every phase: the same rows, so a phase's page differs by contention alone."""
    started = time.time()
    connection = http.client.HTTPConnection("127.0.0.1", otlp, timeout=30)
    for n in range(requests):
        post(otlp, normal_body(1_000_000 + n), connection)
    connection.close()
    ended = time.time()
    time.sleep(1.5)  # the seeding connection leaves the writer's active senders (1 s), else it lingers for it
    return started - 1, ended + 1


def normal_client(otlp: int, page_url: str, seconds: float) -> tuple[list[float], list[float]]:
    acks, pages = [], []
    connection = http.client.HTTPConnection("127.0.0.1", otlp, timeout=30)
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        status, took = post(otlp, normal_body(n), connection)
        n += 1
        if status == 200:
            acks.append(took)
        started = time.perf_counter()
        with urllib.request.urlopen(page_url, timeout=30) as response:
            response.read()
        pages.append(time.perf_counter() - started)
        time.sleep(0.01)
    return acks, pages


def udp_flood(address: str, seconds: float) -> None:
    host, port = address.split(":")
    header = b'{"format": "json", "version": 1}\n'
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        start = time.time()
        body = (
            f'{{"name":"flood","id":"{n + 1:016x}","trace_id":"1-{int(start):08x}-{n:024x}",'
            f'"start_time":{start - 0.01},"end_time":{start}}}'
        ).encode()
        with contextlib.suppress(OSError):  # a full socket buffer: the flood goes on
            sock.sendto(header + body, (host, int(port)))
        n += 1


def hostile_otlp_flood(otlp: int, seconds: float) -> None:
    bodies = [deep_values(1024 * 1024), many_keys(1024 * 1024), b"\xff" * 100_000]
    connection = http.client.HTTPConnection("127.0.0.1", otlp, timeout=60)
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        try:
            post(otlp, bodies[n % len(bodies)], connection)
        except (OSError, http.client.HTTPException):
            connection = http.client.HTTPConnection("127.0.0.1", otlp, timeout=60)
        n += 1


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def floods(collector: Any, otlp: int, phase_s: float) -> None:
    window_start, window_end = seed(otlp, 200)
    page_url = f"{collector.api_url}/api/services?start={window_start}&end={window_end}"
    print(
        f"\n2. a normal client (64 spans a request, then GET /api/services of 12,800 seeded spans),"
        f" {phase_s:.0f} s a phase"
    )
    quiet: tuple[list[float], list[float]] | None = None
    control: tuple[list[float], list[float]] | None = None
    bystander = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never read
    bystander.bind(("127.0.0.1", 0))
    for phase in ("quiet", "UDP flood elsewhere", "UDP flood", "hostile OTLP flood"):
        attackers: list[mp.Process] = []
        if phase == "UDP flood elsewhere":
            attackers = [mp.Process(target=udp_flood, args=(f"127.0.0.1:{bystander.getsockname()[1]}", phase_s + 2))]
        elif phase == "UDP flood":
            attackers = [mp.Process(target=udp_flood, args=(collector.xray_address, phase_s + 2))]
        elif phase == "hostile OTLP flood":
            attackers = [mp.Process(target=hostile_otlp_flood, args=(otlp, phase_s + 2)) for _ in range(2)]
        for process in attackers:
            process.start()
        time.sleep(1.0 if attackers else 0)
        acks, pages = normal_client(otlp, page_url, phase_s)
        for process in attackers:
            process.join(timeout=phase_s + 30)
        quiet = quiet or (acks, pages)
        ack_ratio, page_ratio = p(acks, 0.99) / p(quiet[0], 0.99), p(pages, 0.99) / p(quiet[1], 0.99)
        if phase == "UDP flood elsewhere":
            control = (acks, pages)
        print(
            f"   {phase:19} acks p50 {p(acks, 0.5):6.1f} ms p99 {p(acks, 0.99):6.1f} ms ({ack_ratio:4.2f}x)"
            f"   page p50 {p(pages, 0.5):6.1f} ms p99 {p(pages, 0.99):6.1f} ms ({page_ratio:4.2f}x)"
            f"   {len(acks)} requests"
        )
        if phase == "UDP flood" and control:
            print(
                f"   {'':19} against the control: acks p50 {p(acks, 0.5) / p(control[0], 0.5):4.2f}x"
                f" p99 {p(acks, 0.99) / p(control[0], 0.99):4.2f}x, page p50 {p(pages, 0.5) / p(control[1], 0.5):4.2f}x"
                f" p99 {p(pages, 0.99) / p(control[1], 0.99):4.2f}x"
            )
    bystander.close()
    with urllib.request.urlopen(f"{collector.api_url}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    wanted = ("fluoro_xray_dropped_datagrams_total", 'fluoro_spans_received_total{receiver="xray_udp"}')
    for line in metrics.splitlines():
        if line.startswith(wanted):
            print(f"   {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase-s", type=float, default=15.0)
    parser.add_argument("--skip-shapes", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, run_collector(Path(scratch) / "hostile.duckdb") as collector:
        otlp = int(collector.traces_url.rsplit(":", 1)[1].split("/")[0])
        if not args.skip_shapes:
            shapes(collector, otlp)
        floods(collector, otlp, args.phase_s)


if __name__ == "__main__":
    main()
