"""Command-line helpers: durations, loopback detection, --help."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from collector.engine import CollectorSettings
from collector.storage.protocols import StoreUnavailable
from ui import serve_command
from ui.cli import is_loopback, main, parse_duration_s


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("45s", 45), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("1.5h", 5400)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["forever", "-1d", "0", "7 days", ""])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration_s(text)


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.8.9.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.2") and not is_loopback("example.com")


def test_help_lists_every_setting() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for flag in (
        "--db",
        "--host",
        "--otlp-port",
        "--xray-port",
        "--ui-port",
        "--token",
        "--retention",
        "--max-body-mb",
        "FLUORO_DB",
        "FLUORO_TOKEN",
        "--notify-url",
        "--insights-every",
        "--insights-window",
        "--insights-baseline",
        "--prices",
        "FLUORO_PRICES",
        "--memory-limit-mib",
        "FLUORO_MEMORY_LIMIT_MIB",
    ):
        assert flag in result.output
    assert "serve" in CliRunner().invoke(main, ["--help"]).output
    assert "groups" in CliRunner().invoke(main, ["--help"]).output
    assert "cost" in CliRunner().invoke(main, ["--help"]).output
    assert "trace " in CliRunner().invoke(main, ["--help"]).output


@pytest.mark.parametrize("url", ["ftp://hook", "hook.example.com", "http:// spaced", "javascript:alert(1)"])
def test_a_notify_url_that_is_no_http_url_is_refused(url: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--notify-url", url, "--db", "/nonexistent/x.duckdb"])
    assert result.exit_code == 2 and "--notify-url must be an http:// or https:// URL" in result.output


def test_a_price_sheet_that_cannot_be_used_is_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "prices.json"
    bad.write_text('{"format": 1}')
    result = CliRunner().invoke(main, ["serve", "--prices", str(bad), "--db", "/nonexistent/x.duckdb"])
    assert result.exit_code == 2 and f"prices {bad}: region: Field required" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("given", ["100", "0", "-5", "lots", str(2**40)])
def test_a_memory_limit_out_of_range_is_refused_in_one_line(given: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--memory-limit-mib", given, "--db", "/nonexistent/x.duckdb"])
    assert result.exit_code == 2 and "--memory-limit-mib" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "environ", "bound_mib"),
    [([], {}, 1024), (["--memory-limit-mib", "2048"], {}, 2048), ([], {"FLUORO_MEMORY_LIMIT_MIB": "512"}, 512)],
)
def test_the_memory_limit_reaches_the_collector(
    monkeypatch: pytest.MonkeyPatch, args: list[str], environ: dict[str, str], bound_mib: int
) -> None:
    given: list[CollectorSettings] = []

    def collector(settings: CollectorSettings) -> None:
        given.append(settings)
        raise StoreUnavailable("stopped here")

    monkeypatch.setattr(serve_command, "Collector", collector)
    ports = ["--otlp-port", "0", "--otlp-grpc-port", "0", "--xray-port", "0", "--ui-port", "0"]
    result = CliRunner().invoke(main, ["serve", *ports, *args], env=environ)
    assert result.exit_code == 1 and "stopped here" in result.output
    assert [s.memory_limit_mib for s in given] == [bound_mib]
