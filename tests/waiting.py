"""Waiting in tests for something another thread or process does: one helper for all of them."""

from __future__ import annotations

import time
from collections.abc import Callable, Sized
from typing import TypeVar

T = TypeVar("T")


def has_length(items: Sized, length: int) -> Callable[[], bool]:
    """A check for wait_until: `items` holds `length` items (bound now, not when a loop moves on)."""
    return lambda: len(items) == length


def wait_until(
    check: Callable[[], T],
    timeout_s: float = 10.0,
    poll_s: float = 0.01,
    describe: Callable[[], str] | None = None,
) -> T:
    """The first truthy value `check` returns, polling every `poll_s`; AssertionError after
    `timeout_s`, saying what `describe` tells of the state it gave up in (else the check's name)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = describe() if describe is not None else getattr(check, "__qualname__", str(check))
            raise AssertionError(f"not true within {timeout_s} s: {what}")
        time.sleep(poll_s)
