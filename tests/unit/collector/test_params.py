"""Time windows and trace ids in API parameters."""

from __future__ import annotations

import pytest

from collector.api.params import BadParameter, parse_time_ns, parse_trace_id, parse_window


def test_times() -> None:
    assert parse_time_ns("1700000000", "t") == 1_700_000_000 * 10**9
    assert parse_time_ns("1700000000.5", "t") == 1_700_000_000_500_000_000
    assert parse_time_ns("2023-11-14T22:13:20Z", "t") == 1_700_000_000 * 10**9
    assert parse_time_ns("2023-11-14T23:13:20+01:00", "t") == 1_700_000_000 * 10**9
    for bad in ("yesterday", "2023-11-14T22:13:20", ""):
        with pytest.raises(BadParameter):
            parse_time_ns(bad, "t")


def test_windows() -> None:
    now = 1_700_000_000 * 10**9
    default = parse_window(None, None, now_ns=now)
    assert (default.end_ns - default.start_ns) == 15 * 60 * 10**9 and default.end_ns == now
    with pytest.raises(BadParameter, match="before"):
        parse_window("1700000100", "1700000000")
    with pytest.raises(BadParameter, match="at most"):
        parse_window("1000000000", "1700000000")


def test_trace_ids() -> None:
    expected = bytes.fromhex("5759e988bd862e3fe1be46a994272793")
    assert parse_trace_id("5759E988BD862E3FE1BE46A994272793") == expected
    assert parse_trace_id("1-5759e988-bd862e3fe1be46a994272793") == expected
    for bad in ("xyz", "5759e988bd862e3fe1be46a99427279", "1-5759e988-bd86"):
        with pytest.raises(BadParameter):
            parse_trace_id(bad)
