"""Request bodies read whole and capped, and client errors logged without flooding the log."""

from __future__ import annotations

import asyncio
import gzip
import logging

import pytest
from starlette.requests import Request

from collector.capped_body import BodyTimeout, BodyTooLarge, Busy, InflightBytes, read_capped
from collector.client_errors import RateLimitedLog
from collector.receivers.otlp_http import MAX_GZIP_MEMBERS, inflate_capped


def test_every_gzip_member_is_inflated_in_order() -> None:
    body = gzip.compress(b"first ") + gzip.compress(b"second") + b"\x00\x00"
    assert inflate_capped(body, 100) == b"first second"


def test_the_cap_covers_all_members_together() -> None:
    member = gzip.compress(b"x" * 60)
    assert inflate_capped(member, 100) == b"x" * 60
    with pytest.raises(BodyTooLarge):
        inflate_capped(member + member, 100)


def test_a_flood_of_tiny_members_is_refused() -> None:
    with pytest.raises(ValueError, match="members"):
        inflate_capped(gzip.compress(b"") * (MAX_GZIP_MEMBERS + 1), 1000)


def test_a_truncated_or_corrupt_member_is_refused() -> None:
    with pytest.raises(ValueError, match="truncated"):
        inflate_capped(gzip.compress(b"ok") + gzip.compress(b"abcdef" * 100)[:20], 10_000)
    with pytest.raises(ValueError, match="gzip"):
        inflate_capped(gzip.compress(b"ok") + b"garbage", 10_000)


def test_client_errors_log_one_line_per_interval_and_count_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = RateLimitedLog(logging.getLogger("test.clients"), interval_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "test.clients"):
        assert log.warn("bad request", "one")
        assert not log.warn("bad request", "two")
        assert not log.warn("bad request", "three")
        assert log.warn("other kind", "x")
        now[0] = 61
        assert log.warn("bad request", "four")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["bad request: one", "other kind: x", "bad request: four (2 more like it since the last line)"]
    assert all(r.exc_info is None for r in caplog.records)


def streamed_request(chunks: list[bytes], declared: int | None = None) -> Request:
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    headers = [(b"content-length", str(declared).encode())] if declared is not None else []

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    return Request({"type": "http", "method": "POST", "headers": headers}, receive)


def test_bodies_in_flight_share_one_bound_and_give_it_back() -> None:
    budget = InflightBytes(100)
    first, second = budget.reservation(), budget.reservation()
    assert asyncio.run(read_capped(streamed_request([b"x" * 30, b"y" * 30]), 1000, first)) == b"x" * 30 + b"y" * 30
    with pytest.raises(Busy):
        asyncio.run(read_capped(streamed_request([b"z" * 30, b"z" * 30]), 1000, second))
    assert budget.held == 60 + 30  # the refused one holds what it read until it is released
    second.release()
    first.release()
    assert budget.held == 0


def test_a_declared_or_streamed_body_past_its_cap_is_refused_before_it_is_read_whole() -> None:
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_capped(streamed_request([b"x"], declared=10_000), 4096))
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_capped(streamed_request([b"x" * 3000, b"x" * 3000, b"never read"]), 4096))


def test_a_body_that_stops_arriving_is_refused_at_its_deadline_whole_or_trickled() -> None:
    async def trickle(pause_s: float) -> Request:
        async def receive() -> dict[str, object]:
            await asyncio.sleep(pause_s)  # each chunk in time, the body as a whole not
            return {"type": "http.request", "body": b"x", "more_body": True}

        return Request({"type": "http", "method": "POST", "headers": []}, receive)

    async def read(pause_s: float) -> bytes:
        return await read_capped(await trickle(pause_s), 1000, wait_s=0.2)

    with pytest.raises(BodyTimeout, match=r"within 0\.2 s \(\d+ bytes came\)"):
        asyncio.run(read(0.05))
    with pytest.raises(BodyTimeout, match=r"\(0 bytes came\)"):
        asyncio.run(read(60))
