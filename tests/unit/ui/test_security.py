"""Sessions that expire and rotate, logins slowed per client, Host names checked."""

from __future__ import annotations

import time

from starlette.requests import Request

from collector.allowed_hosts import HostPolicy, host_name
from ui.web.security import (
    SESSION_COOKIE,
    LoginThrottle,
    SessionPolicy,
    has_session,
    session_issued_s,
    session_value,
)

TOKEN = "s3cret"
POLICY = SessionPolicy(ttl_s=12 * 3600, renew_after_s=900)


def request_with_cookie(value: str) -> Request:
    return Request({"type": "http", "headers": [(b"cookie", f"{SESSION_COOKIE}={value}".encode())]})


def test_a_session_cookie_is_valid_until_it_expires() -> None:
    now = 1_800_000_000.0
    cookie = session_value(TOKEN, int(now) - 3600)
    assert session_issued_s(cookie, TOKEN, POLICY, now) == int(now) - 3600
    assert session_issued_s(cookie, TOKEN, POLICY, now + 11 * 3600 - 1) is not None
    assert session_issued_s(cookie, TOKEN, POLICY, now + 11 * 3600 + 1) is None  # 12 h after issue


def test_a_cookie_cannot_be_moved_in_time_or_kept_past_a_new_token() -> None:
    now = 1_800_000_000.0
    cookie = session_value(TOKEN, int(now))
    issued, _, mac = cookie.partition(".")
    assert session_issued_s(f"{int(issued) + 3600}.{mac}", TOKEN, POLICY, now + 3600) is None
    assert session_issued_s(cookie, "another-token", POLICY, now) is None
    assert session_issued_s(session_value(TOKEN, int(now) + 3600), TOKEN, POLICY, now) is None  # from the future
    for junk in ("", ".", "abc.def", "1" * 40 + ".x", TOKEN, "\u00b2.x", "\u0663\u0663.x"):  # "²".isdigit()
        assert session_issued_s(junk, TOKEN, POLICY, now) is None


def test_has_session_reads_the_cookie_with_the_clock() -> None:
    assert has_session(request_with_cookie(session_value(TOKEN, int(time.time()))), TOKEN, POLICY)
    assert not has_session(request_with_cookie(session_value(TOKEN, int(time.time()) - 13 * 3600)), TOKEN, POLICY)


def test_failed_logins_are_slowed_per_client_and_forgiven_on_success() -> None:
    now = [0.0]
    throttle = LoginThrottle(free_failures=3, max_wait_s=300, clock=lambda: now[0])
    for _ in range(3):
        throttle.failed("10.0.0.1")
    assert throttle.wait_s("10.0.0.1") == 0  # three tries for free
    throttle.failed("10.0.0.1")
    assert throttle.wait_s("10.0.0.1") == 1
    throttle.failed("10.0.0.1")
    assert throttle.wait_s("10.0.0.1") == 2
    for _ in range(20):
        throttle.failed("10.0.0.1")
    assert throttle.wait_s("10.0.0.1") == 300
    assert throttle.wait_s("10.0.0.2") == 0  # someone else is not slowed
    now[0] = 301
    assert throttle.wait_s("10.0.0.1") == 0
    throttle.succeeded("10.0.0.1")
    throttle.failed("10.0.0.1")
    assert throttle.wait_s("10.0.0.1") == 0


def test_the_throttle_forgets_the_oldest_clients_past_its_bound() -> None:
    throttle = LoginThrottle(free_failures=0, max_clients=100, clock=lambda: 0.0)
    for n in range(1000):
        throttle.failed(f"client-{n}")
    assert throttle.wait_s("client-999") > 0 and throttle.wait_s("client-0") == 0


def test_host_names_are_read_without_their_port() -> None:
    assert host_name("LocalHost:8680") == "localhost"
    assert host_name("[::1]:8680") == "::1"
    assert host_name("127.0.0.1") == "127.0.0.1"
    assert host_name("example.com.") == "example.com"


def test_loopback_the_bound_address_and_added_names_are_allowed() -> None:
    loopback = HostPolicy("127.0.0.1")
    assert all(loopback.allows(n) for n in ("localhost", "127.0.0.1", "127.5.6.7", "::1"))
    assert not loopback.allows("evil.example") and not loopback.allows("10.0.0.5")
    lan = HostPolicy("10.0.0.5", frozenset({"fluoro.internal"}))
    assert lan.allows("10.0.0.5") and lan.allows("fluoro.internal") and not lan.allows("10.0.0.6")
    everywhere = HostPolicy("0.0.0.0")
    assert everywhere.allows("192.168.1.9") and not everywhere.allows("rebound.evil.example")
    assert HostPolicy("127.0.0.1", frozenset({"*"})).allows("anything.example")
