"""Every request body is read through here: streamed, and refused once it passes its cap.

A body is never read whole before its size is known to be allowed: a client that streams
300 MiB at a route expecting 4 KiB costs the daemon at most the cap, not the stream.
"""

from __future__ import annotations

from starlette.requests import Request


class BodyTooLarge(ValueError):
    """The body is over the limit, compressed or inflated."""


async def read_capped(request: Request, limit: int) -> bytes:
    """The body of `request`, at most `limit` bytes; BodyTooLarge past it (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes exceeds {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
