"""A disk that fills up under the real daemon: refused with 503, unhealthy, and back by itself.

The database lives on a small tmpfs of its own (mounting needs root, as `make test` has in CI;
elsewhere the test is skipped), filled to the last byte while the daemon runs, then freed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import duckdb
import grpc
import httpx
import pytest
from google.rpc.error_details_pb2 import RetryInfo

from tests.integration.daemon import Daemon
from tests.integration.test_collector_daemon import PROTOBUF, otel_spans, post
from tests.integration.test_otlp_grpc import EXPORT

DISK_MB = 48


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(path: Path) -> None:
    with open(path, "wb") as filler, contextlib.suppress(OSError):  # ENOSPC: full
        while True:
            filler.write(bytes(1 << 20))
            filler.flush()


def retry_delay_s(error: grpc.RpcError) -> int:
    """The delay a refusal's RetryInfo trailer asks for."""
    trailers = {item.key: item.value for item in error.trailing_metadata() or ()}
    return int(RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]).retry_delay.seconds)


def test_a_full_disk_refuses_with_503_and_ingest_resumes_when_it_has_room(small_disk: Path) -> None:
    daemon = Daemon(small_disk / "spans.duckdb").start()
    acknowledged: set[str] = set()
    try:
        for n in range(3):
            trace_id, body = otel_spans(f"before-{n}")
            assert post(daemon, body, PROTOBUF).status_code == 200
            acknowledged.add(trace_id)
        fill(small_disk / "filler")
        refused = []
        for n in range(10):  # the odd small write may still fit in space DuckDB holds already
            trace_id, body = otel_spans(f"full-{n}")
            answer = post(daemon, body, PROTOBUF)
            if answer.status_code == 200:
                acknowledged.add(trace_id)
            else:
                refused.append(answer)
        assert refused and {r.status_code for r in refused} == {503}
        assert all(r.headers["retry-after"] for r in refused)
        unavailable = []
        for n in range(5):  # over gRPC: UNAVAILABLE, with the delay in a RetryInfo
            trace_id, body = otel_spans(f"full-grpc-{n}")
            with grpc.insecure_channel(daemon.grpc_address) as channel:
                export: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(EXPORT)
                try:
                    export(body, timeout=10)
                    acknowledged.add(trace_id)
                except grpc.RpcError as exc:
                    unavailable.append(exc)
        assert unavailable and {e.code() for e in unavailable} == {grpc.StatusCode.UNAVAILABLE}
        delays = {retry_delay_s(e) for e in unavailable}
        assert delays == {5} and all("store unavailable" in (e.details() or "") for e in unavailable)
        health = httpx.get(f"{daemon.api_url}/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "unhealthy"
        (small_disk / "filler").unlink()
        for n in range(3):  # no restart: the next write finds room again
            trace_id, body = otel_spans(f"after-{n}")
            assert post(daemon, body, PROTOBUF).status_code == 200
            acknowledged.add(trace_id)
        assert httpx.get(f"{daemon.api_url}/healthz", timeout=10).status_code == 200
    finally:
        code, output = daemon.stop()
    assert code == 0, output
    stored = duckdb.connect(str(small_disk / "spans.duckdb"), read_only=True)
    traces = {row[0].hex for row in stored.execute("SELECT DISTINCT trace_id FROM spans").fetchall()}
    stored.close()
    assert traces == acknowledged  # every acknowledged trace, none of the refused ones
