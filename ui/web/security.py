"""What keeps the pages safe: a strict Content-Security-Policy on every response, and the
token asked for once and kept in an HttpOnly cookie.

The policy allows scripts and styles from this origin only (besides the map page's inline
first-paint script, allowed by its hash; plotly sets inline styles, so ``style-src`` also allows
those), no plugins, no framing, no other origin to talk to. The cookie holds its issue time and
an HMAC of it under the token (never the token), is ``HttpOnly`` and ``SameSite=Strict``, expires
after 12 h by default and is replaced by a fresh one every 15 minutes while in use. Failed logins
are slowed per client, and the login form is read through the capped body reader.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, quote

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collector.auth import bearer_token_matches
from collector.capped_body import read_capped


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


@dataclass(frozen=True)
class SessionPolicy:
    """How long a login lasts, and how often its cookie is replaced by a fresh one."""

    ttl_s: float = 12 * 3600
    renew_after_s: float = 15 * 60


def session_value(token: str, issued_s: int) -> str:
    """What the cookie holds: when it was issued and an HMAC of that under the token (so the
    cookie is never the token, cannot be moved to another time, and dies with a new token)."""
    mac = hmac.new(token.encode(), f"fluoro-ui-session:{issued_s}".encode(), hashlib.sha256).hexdigest()
    return f"{issued_s}.{mac}"


def session_issued_s(cookie: str, token: str, policy: SessionPolicy, now_s: float) -> int | None:
    """When a valid, unexpired session cookie was issued; None for any other cookie."""
    issued, dot, _ = cookie.partition(".")
    if not dot or not (issued.isascii() and issued.isdigit()) or len(issued) > 12:  # "²".isdigit()
        return None
    if not hmac.compare_digest(cookie, session_value(token, int(issued))):
        return None
    age_s = now_s - int(issued)
    return int(issued) if -60 <= age_s < policy.ttl_s else None


def has_session(request: Request, token: str | None, policy: SessionPolicy = SessionPolicy()) -> bool:
    """No token configured, a valid session cookie, or a bearer token in the header."""
    if token is None:
        return True
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if cookie and session_issued_s(cookie, token, policy, time.time()) is not None:
        return True
    return bearer_token_matches(request.headers.get("authorization", ""), token)


def session_cookie_header(token: str, policy: SessionPolicy, now_s: float) -> str:
    """A Set-Cookie header value for a fresh session (HttpOnly, SameSite=Strict, Max-Age)."""
    value = session_value(token, int(now_s))
    return f"{SESSION_COOKIE}={value}; Max-Age={int(policy.ttl_s)}; Path=/; HttpOnly; SameSite=strict"


class SessionRenewal:
    """Pure ASGI middleware: a request whose session cookie is older than `renew_after_s` gets a
    fresh one on its response, so a session in use is rotated while an idle one expires."""

    def __init__(self, app: ASGIApp, token: str | None, policy: SessionPolicy) -> None:
        self.app = app
        self.token = token
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None:
            await self.app(scope, receive, send)
            return
        token, now_s = self.token, time.time()
        cookie = Request(scope).cookies.get(SESSION_COOKIE, "")
        issued = session_issued_s(cookie, token, self.policy, now_s) if cookie else None
        if issued is None or now_s - issued < self.policy.renew_after_s:
            await self.app(scope, receive, send)
            return

        async def send_renewed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if SESSION_COOKIE not in headers.get("set-cookie", ""):
                    headers.append("Set-Cookie", session_cookie_header(token, self.policy, now_s))
            await send(message)

        await self.app(scope, receive, send_renewed)


class LoginThrottle:
    """Failed logins slowed per client: after `free_failures`, each further failure doubles the
    wait (up to `max_wait_s`) before that client may try again. Bounded: the least recently seen
    clients are forgotten past `max_clients`."""

    def __init__(
        self,
        free_failures: int = 3,
        max_wait_s: float = 300.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._free = free_failures
        self._max_wait_s = max_wait_s
        self._max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def wait_s(self, client: str) -> float:
        """How long `client` must wait before its next try (0: it may try now)."""
        failures, next_try = self._failures.get(client, (0, 0.0))
        return max(0.0, next_try - self._clock()) if failures > self._free else 0.0

    def failed(self, client: str) -> None:
        failures = self._failures.pop(client, (0, 0.0))[0] + 1
        wait_s = min(self._max_wait_s, 2.0 ** (failures - self._free - 1)) if failures > self._free else 0.0
        self._failures[client] = (failures, self._clock() + wait_s)
        while len(self._failures) > self._max_clients:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


def safe_next(path: str | None) -> str:
    """Where to go after logging in: a path on this site only (never //host or a scheme)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def login_redirect(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(target, safe='')}"


async def submitted_token(request: Request) -> tuple[str, str]:
    """(token, next) from the login form, read through the capped reader (BodyTooLarge past 4 KiB)."""
    body = await read_capped(request, MAX_FORM_BYTES)
    fields = parse_qs(body.decode("utf-8", "replace"))
    return fields.get("token", [""])[0], safe_next(fields.get("next", ["/"])[0])
