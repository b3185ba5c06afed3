"""Which senders the writer waits for before a small group is logged."""

from __future__ import annotations

from collector.ingest.active_senders import ActiveSenders

KIB = 1024
NOW = 100.0


def test_every_sender_queued_means_nothing_more_can_come() -> None:
    senders = ActiveSenders(active_s=60.0)
    senders.saw("a", 100 * KIB, NOW)
    senders.saw("b", 100 * KIB, NOW)
    assert not senders.all_waiting(["a"], NOW)
    assert senders.all_waiting(["a", "b"], NOW)
    assert senders.all_waiting([None, "a", "b"], NOW)


def test_a_sender_of_heavy_requests_is_not_waited_for() -> None:
    # its 1 MiB bodies take tens of ms to read and decode: it is never back within a linger
    senders = ActiveSenders(active_s=60.0, heavy_bytes=512 * KIB)
    senders.saw("normal", 20 * KIB, NOW)
    for _ in range(3):
        senders.saw("heavy", 1024 * KIB, NOW)
    assert senders.all_waiting(["normal"], NOW)
    senders.saw("heavy", 10 * KIB, NOW)  # one light request among heavy ones: still heavy on average
    assert senders.all_waiting(["normal"], NOW)
    for _ in range(4):
        senders.saw("heavy", 10 * KIB, NOW)  # light from now on: waited for again
    assert not senders.all_waiting(["normal"], NOW)


def test_senders_silent_past_the_active_window_are_forgotten() -> None:
    senders = ActiveSenders(active_s=1.0)
    senders.saw("gone", 10 * KIB, NOW)
    assert not senders.all_waiting([], NOW + 0.5)
    assert senders.all_waiting([], NOW + 1.5)


def test_a_refused_sender_is_not_waited_for_until_it_is_let_in_again() -> None:
    senders = ActiveSenders(active_s=60.0)
    senders.saw("a", 10 * KIB, NOW)
    senders.saw("b", 10 * KIB, NOW)
    senders.refused("b")  # told to retry after a delay: not back within a linger
    senders.refused("never seen")
    assert senders.all_waiting(["a"], NOW)
    senders.saw("b", 10 * KIB, NOW + 1)
    assert not senders.all_waiting(["a"], NOW + 1)
