"""The web UI's security headers, read over HTTP from a real daemon: no browser needed."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.daemon import Daemon


@pytest.mark.parametrize("path", ["/", "/traces", "/analytics", "/ui/data/map", "/api/services"])
def test_pages_carry_a_strict_content_security_policy(daemon: Daemon, path: str) -> None:
    policy = httpx.get(f"{daemon.api_url}{path}", timeout=10).headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe-eval" not in policy
