"""What keeps the pages safe: a strict Content-Security-Policy on every response, and the
token asked for once and kept in an HttpOnly cookie.

The policy allows scripts and styles from this origin only (besides the map page's inline
first-paint script, allowed by its hash; plotly sets inline styles, so ``style-src`` also allows
those), no plugins, no framing, no other origin to talk to. The cookie holds an HMAC of the
token, not the token, and is ``SameSite=Strict``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final
from urllib.parse import parse_qs, quote

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collector.auth import bearer_token_matches


def content_security_policy(inline_scripts: tuple[str, ...] = ()) -> str:
    """The policy; `inline_scripts` are our own scripts inlined in pages, allowed by their hash only."""
    hashes = "".join(f" 'sha256-{script_hash(text)}'" for text in inline_scripts)
    return (
        f"default-src 'none'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


def script_hash(text: str) -> str:
    """CSP's hash source of an inline script: base64 of the SHA-256 of its UTF-8 text."""
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


CONTENT_SECURITY_POLICY: Final = content_security_policy()
SESSION_COOKIE: Final = "fluoro_session"
MAX_FORM_BYTES: Final = 4096


class SecurityHeaders:
    """Pure ASGI middleware adding the policy and its companions to every HTTP response."""

    def __init__(self, app: ASGIApp, policy: str = CONTENT_SECURITY_POLICY) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = self.policy
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def session_value(token: str) -> str:
    """What the cookie holds for `token`: an HMAC, so the cookie never is the token itself."""
    return hmac.new(token.encode(), b"fluoro-ui-session", hashlib.sha256).hexdigest()


def has_session(request: Request, token: str | None) -> bool:
    """No token configured, the session cookie, or a bearer token in the header."""
    if token is None:
        return True
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if cookie and hmac.compare_digest(cookie, session_value(token)):
        return True
    return bearer_token_matches(request.headers.get("authorization", ""), token)


def safe_next(path: str | None) -> str:
    """Where to go after logging in: a path on this site only (never //host or a scheme)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def login_redirect(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(target, safe='')}"


async def submitted_token(request: Request) -> tuple[str, str]:
    """(token, next) from the login form; the body is small or refused as empty."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return "", "/"
    fields = parse_qs(body.decode("utf-8", "replace"))
    return fields.get("token", [""])[0], safe_next(fields.get("next", ["/"])[0])
