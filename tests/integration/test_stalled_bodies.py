"""Clients that send most of a body and stop: the bytes they sent count against the bound on
bodies in flight, so the receiver stops waiting after body_wait_s (408), gives those bytes back
and serves the next sender. A real uvicorn server on loopback, raw sockets for the stalled
clients."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from collector.capped_body import InflightBytes
from collector.engine import Collector, CollectorSettings
from collector.receivers.otlp_http import OtlpHttpReceiver
from collector.receivers.otlp_intake import OtlpReceiverSettings
from tests.integration.in_thread import uvicorn_in_thread
from tests.protowire import request, span
from tests.waiting import wait_until

WAIT_S = 0.5
BOUND_BYTES = 100_000  # the bound on bodies in flight, lowered from 64 MiB to fit a test
PROTOBUF = {"Content-Type": "application/x-protobuf"}


@contextlib.contextmanager
def serving(receiver: OtlpHttpReceiver) -> Iterator[str]:
    """`receiver` on a loopback port, in a thread of its own; its base URL."""
    with uvicorn_in_thread(uvicorn.Config(receiver, log_level="warning", lifespan="off")) as (port, _):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[OtlpHttpReceiver]:
    collector = Collector(CollectorSettings(db_path=str(tmp_path / "stalled.duckdb")))
    collector.start()
    try:
        assert collector.ingest is not None
        served = OtlpHttpReceiver(collector.ingest.intake, collector.metrics, OtlpReceiverSettings(body_wait_s=WAIT_S))
        served.inflight = InflightBytes(BOUND_BYTES)
        yield served
    finally:
        collector.stop()


def stall(base_url: str, declared: int, sent: int) -> socket.socket:
    """A connection that declares `declared` body bytes, sends `sent` of them and stops."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + b"\x0a" * sent)
    return sock


def test_a_stalled_body_is_408_and_its_bytes_go_back_to_the_bound(receiver: OtlpHttpReceiver) -> None:
    with serving(receiver) as base_url:
        stalled = [stall(base_url, declared=60_000, sent=40_000) for _ in range(2)]
        try:
            # What the stalled bodies hold leaves too little of the bound: a sender now is refused.
            wait_until(lambda: receiver.inflight.held >= 80_000, timeout_s=5, poll_s=0.01)
            refused = httpx.post(f"{base_url}/v1/traces", content=b"\x0a" * 30_000, headers=PROTOBUF, timeout=10)
            assert refused.status_code == 503
            answers = [sock.recv(4096) for sock in stalled]  # once WAIT_S has passed
            assert all(a.startswith(b"HTTP/1.1 408") and b"did not arrive within 0.5 s" in a for a in answers), answers
            assert receiver.inflight.held == 0
            body = request([span(start_ns=time.time_ns())])
            assert httpx.post(f"{base_url}/v1/traces", content=body, headers=PROTOBUF, timeout=10).status_code == 200
        finally:
            for sock in stalled:
                sock.close()
