"""The bearer-token check shared by ingest and the query API."""

from __future__ import annotations

import hmac


def bearer_token_matches(authorization_header: str, token: str | None) -> bool:
    """True when no token is required, or the header is ``Bearer <token>`` (compared in constant time)."""
    if token is None:
        return True
    return hmac.compare_digest(authorization_header.encode(), f"Bearer {token}".encode())
