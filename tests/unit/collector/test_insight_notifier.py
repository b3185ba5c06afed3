"""The insight notifier against a real loopback server: retries with backoff, gives up, never blocks."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from collector.insights.insight import Insight, InsightNode, InsightState
from collector.insights.notifier import MAX_ATTEMPTS, MAX_QUEUED, Notifier
from tests.waiting import wait_until
from tests.webhook import Receiver

FAST = (0.01, 0.05)


def insight(number: int = 1, state: InsightState = "open") -> Insight:
    root = InsightNode("abc", "ledger", "remote")
    end_ns = None if state == "open" else 2
    return Insight(f"i{number}", None, "fault", state, 1, end_ns, root, (root,), 10, 5, 0.5, 0.01, 1e-9, "f", 1)


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    statuses, delay_s = getattr(request, "param", ([200], 0.0))
    running = Receiver(tuple(statuses), delay_s)
    yield running
    running.close()


@pytest.mark.parametrize("receiver", [([503, 429, 200], 0.0)], indirect=True)
def test_a_refused_post_is_retried_until_taken(receiver: Receiver) -> None:
    notifier = Notifier(receiver.url, backoff_s=FAST)
    try:
        notifier.notify(insight(state="closed"))
        wait_until(lambda: notifier.sent == 1, timeout_s=10)
        assert len(receiver.bodies) == 3 and notifier.failed == 0
        assert receiver.bodies[-1]["event"] == "closed" and receiver.bodies[-1]["insight"]["id"] == "i1"
    finally:
        notifier.close()


@pytest.mark.parametrize("receiver", [([500], 0.0)], indirect=True)
def test_a_receiver_that_keeps_failing_is_given_up_on(receiver: Receiver) -> None:
    notifier = Notifier(receiver.url, backoff_s=FAST)
    try:
        notifier.notify(insight())
        wait_until(lambda: notifier.failed == 1, timeout_s=10)
        assert len(receiver.bodies) == MAX_ATTEMPTS and notifier.sent == 0
    finally:
        notifier.close()


def test_an_unreachable_receiver_is_given_up_on() -> None:
    notifier = Notifier("http://127.0.0.1:9/nobody", backoff_s=FAST)
    try:
        notifier.notify(insight())
        wait_until(lambda: notifier.failed == 1, timeout_s=10)
    finally:
        notifier.close()


@pytest.mark.parametrize("receiver", [([200], 1.0)], indirect=True)
def test_notifying_never_blocks_and_the_queue_is_bounded(receiver: Receiver) -> None:
    notifier = Notifier(receiver.url, backoff_s=FAST)
    try:
        started = time.monotonic()
        for number in range(MAX_QUEUED + 50):
            notifier.notify(insight(number))
        assert time.monotonic() - started < 1.0  # the receiver takes 1 s a post
        assert notifier.dropped >= 49
    finally:
        began = time.monotonic()
        notifier.close(timeout_s=5)
        assert time.monotonic() - began < 5
