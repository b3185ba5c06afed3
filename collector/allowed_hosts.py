"""Which Host a request may name: the guard against DNS rebinding.

A daemon on loopback without a token trusts whoever can reach it; a web page cannot, because
the browser keeps it to its own origin. DNS rebinding breaks that: the page's name is pointed at
127.0.0.1 after it loads, so its requests reach the daemon with ``Host: evil.example``. Answering
only Host names the daemon is known by closes that door: loopback names and addresses, the
address it is bound to, any IP address when it is bound to all of them (an IP literal is its own
origin, which no other site can take), and what ``--allowed-hosts`` adds (``*`` allows any).
Anything else gets 421 Misdirected Request with the reason. A request without Host (HTTP/1.0
from a script) is no browser's and is let through.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", ""})


def host_name(header: str) -> str:
    """The name of a Host header without its port, lowercased: ``[::1]:8680`` -> ``::1``."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    name, colon, port = text.rpartition(":")
    return name.rstrip(".") if colon and port.isdigit() and ":" not in name else text.rstrip(".")


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


@dataclass(frozen=True)
class HostPolicy:
    """The names a daemon bound to `bound_address` answers to."""

    bound_address: str = "127.0.0.1"
    extra: frozenset[str] = frozenset()

    def allows(self, name: str) -> bool:
        if "*" in self.extra or name in LOOPBACK_NAMES or name in self.extra:
            return True
        address = _ip(name)
        if address is None:
            return False
        if address.is_loopback or name == self.bound_address.lower():
            return True
        return self.bound_address in WILDCARD_ADDRESSES


class AllowedHosts:
    """Pure ASGI middleware: 421 for a request naming a Host outside `policy`."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            header = next((v for k, v in scope.get("headers", ()) if k == b"host"), None)
            name = host_name(header.decode("latin-1")) if header is not None else None
            if name is not None and not self.policy.allows(name):
                message = f"this daemon does not answer to host {name[:100]!r}: add it with --allowed-hosts"
                await PlainTextResponse(message, status_code=421)(scope, receive, send)
                return
        await self.app(scope, receive, send)
