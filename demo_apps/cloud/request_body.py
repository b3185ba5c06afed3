"""A request's body read no further than a limit: what every HTTP face of the local cloud takes in.

The limits are AWS's (API Gateway's 10 MB payload, Lambda's 6 MB synchronous and 1 MB
asynchronous Invoke, the JSON APIs' 1 MiB here): a client sending more gets the service's
refusal (413), and the cloud never holds more than the limit of one request.
"""

from __future__ import annotations

from starlette.requests import Request


async def read_capped(request: Request, max_bytes: int) -> bytes | None:
    """The body, or None as soon as it (or its declared Content-Length) passes `max_bytes`."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
