"""Every request body is read through here: streamed, and refused once it passes its cap.

A body is never read whole before its size is known to be allowed: a client that streams
300 MiB at a route expecting 4 KiB costs the daemon at most the cap, not the stream. And the
bodies of all requests in flight share one bound (InflightBytes). A body must arrive whole
within BODY_WAIT_S: bytes a stalled client sent count against that bound, so without a deadline
a few clients that send most of a large body and stop would hold it, and every other sender
would be refused, for as long as they kept their connections open.
"""

from __future__ import annotations

import asyncio
from typing import Final

from starlette.requests import Request

# 20 MiB (the OTLP cap) at ~5.6 Mbit/s; the SDKs' exporters give up after 10 s anyway.
BODY_WAIT_S: Final = 30.0


class BodyTooLarge(ValueError):
    """The body is over the limit, compressed or inflated."""


class BodyTimeout(Exception):
    """The body did not arrive whole in time (HTTP 408)."""


async def read_capped(
    request: Request, limit: int, reservation: Reservation | None = None, wait_s: float = BODY_WAIT_S
) -> bytes:
    """The body of `request`, at most `limit` bytes; BodyTooLarge past it (declared or streamed),
    BodyTimeout if it is not whole within `wait_s`. With a `reservation`, its bytes are reserved
    as they arrive (Busy when the bound is reached)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:  # "²".isdigit()
        raise BodyTooLarge(f"body of {declared} bytes exceeds {limit} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(wait_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(f"body exceeds {limit} bytes")
                if reservation is not None:
                    reservation.add(len(chunk))
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(f"the body did not arrive within {wait_s:g} s ({size} bytes came)") from None
    return b"".join(chunks)


class Busy(RuntimeError):
    """The bytes of requests in flight are at their bound: this one must wait and retry."""


class InflightBytes:
    """A bound on the bytes of request bodies held at once (read, inflated, being decoded).

    Each body is capped on its own, but many at once are not: a hundred clients streaming
    20 MiB each would hold 2 GiB. Requests reserve their bytes as they read them and give them
    back when answered; one that would pass the bound is answered 503 with Retry-After at
    once. Used from the event loop only, so it needs no lock.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.held = 0

    def reservation(self) -> Reservation:
        return Reservation(self)


class Reservation:
    """One request's share of an InflightBytes; release it when the request is answered."""

    def __init__(self, budget: InflightBytes) -> None:
        self._budget = budget
        self.held = 0

    def add(self, size: int) -> None:
        budget = self._budget
        if budget.held + size > budget.max_bytes:
            raise Busy(f"the collector holds {budget.held} bytes of other requests; retry shortly")
        budget.held += size
        self.held += size

    def release(self) -> None:
        self._budget.held -= self.held
        self.held = 0
