"""The ``fluoro`` command line (click): the top of the house, composing engine, API and pages.

Every failure a person can cause (a wrong flag, a busy port, a database another process holds)
is one clear line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re

import click

from collector.api.app import create_query_app
from collector.engine import Collector, CollectorSettings
from collector.storage.protocols import StoreUnavailable
from ui.serve import Listeners, PortBusy, bind_all, serve

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration_s(text: str) -> float:
    """'90', '45s', '30m', '12h', '7d', '2w' as seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 30m, 12h or 7d")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


class Duration(click.ParamType):
    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_duration_s(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
def main() -> None:
    """Fluoro: a live X-ray of serverless applications, on one machine."""


@main.command("serve")
@click.option(
    "--db",
    "db_path",
    default="fluoro.duckdb",
    envvar="FLUORO_DB",
    show_envvar=True,
    help="DuckDB file holding the spans (created if missing).",
)
@click.option("--host", default="127.0.0.1", envvar="FLUORO_HOST", show_envvar=True, help="Address to listen on.")
@click.option(
    "--otlp-port",
    default=4318,
    type=click.IntRange(0, 65535),
    envvar="FLUORO_OTLP_PORT",
    show_envvar=True,
    help="OTLP/HTTP port.",
)
@click.option(
    "--xray-port",
    default=2000,
    type=click.IntRange(0, 65535),
    envvar="FLUORO_XRAY_PORT",
    show_envvar=True,
    help="X-Ray daemon UDP port.",
)
@click.option(
    "--ui-port",
    default=8680,
    type=click.IntRange(0, 65535),
    envvar="FLUORO_UI_PORT",
    show_envvar=True,
    help="Port of the UI and the query API.",
)
@click.option(
    "--token",
    default=None,
    envvar="FLUORO_TOKEN",
    show_envvar=True,
    help="Require 'Authorization: Bearer TOKEN' for ingest and queries.",
)
@click.option(
    "--retention",
    default="7d",
    type=Duration(),
    envvar="FLUORO_RETENTION",
    show_envvar=True,
    help="Delete spans older than this (e.g. 12h, 7d).",
)
@click.option(
    "--max-body-mb",
    default=20.0,
    type=click.FloatRange(min=0.001),
    envvar="FLUORO_MAX_BODY_MB",
    show_envvar=True,
    help="Largest OTLP request body, before or after decompression.",
)
@click.option(
    "--log-level",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"]),
    envvar="FLUORO_LOG_LEVEL",
    show_envvar=True,
)
def serve_command(
    db_path: str,
    host: str,
    otlp_port: int,
    xray_port: int,
    ui_port: int,
    token: str | None,
    retention: float,
    max_body_mb: float,
    log_level: str,
) -> None:
    """Run the collector daemon in the foreground: OTLP/HTTP, X-Ray UDP, query API."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("fluoro")
    if not is_loopback(host) and not token:
        log.warning(
            "!!! listening on %s without --token: anyone who can reach this host can read and write traces", host
        )
    try:
        sockets = bind_all(Listeners(host, otlp_port, xray_port, ui_port))
    except PortBusy as exc:
        raise click.ClickException(str(exc)) from None
    settings = CollectorSettings(
        db_path=db_path, retention_s=retention, max_body_bytes=int(max_body_mb * 1024 * 1024), token=token or None
    )
    try:
        collector = Collector(settings)
    except StoreUnavailable as exc:
        sockets.close()
        raise click.ClickException(str(exc)) from None
    log.info("database %s (schema version %d)", db_path, collector.store.schema_version)
    api_app = create_query_app(collector, token=token or None)
    asyncio.run(serve(collector, api_app, sockets, log_level="warning" if log_level != "debug" else "debug"))
