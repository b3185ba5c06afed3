"""Every request body is read through here: streamed, and refused once it passes its cap.

A body is never read whole before its size is known to be allowed: a client that streams
300 MiB at a route expecting 4 KiB costs the daemon at most the cap, not the stream. And the
bodies of all requests in flight share one bound (InflightBytes).
"""

from __future__ import annotations

from starlette.requests import Request


class BodyTooLarge(ValueError):
    """The body is over the limit, compressed or inflated."""


async def read_capped(request: Request, limit: int, reservation: Reservation | None = None) -> bytes:
    """The body of `request`, at most `limit` bytes; BodyTooLarge past it (declared or streamed).
    With a `reservation`, its bytes are reserved as they arrive (Busy when the bound is reached)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:  # "²".isdigit()
        raise BodyTooLarge(f"body of {declared} bytes exceeds {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body exceeds {limit} bytes")
        if reservation is not None:
            reservation.add(len(chunk))
        chunks.append(chunk)
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
