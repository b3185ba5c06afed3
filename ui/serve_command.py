"""``fluoro serve``: its flags (each also a FLUORO_* variable), checked before anything starts.

Every failure a person can cause (a wrong flag, a busy port, a database another process holds)
is one clear line and a non-zero exit, never a traceback; ui/serve.py then runs the daemon.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re

import click

from collector.allowed_hosts import HostPolicy
from collector.cost.prices import PricesError, PriceSheet
from collector.engine import Collector, CollectorSettings
from collector.insights.watch import InsightSettings
from collector.storage.duckdb_memory import DEFAULT_MEMORY_LIMIT_MIB, MAX_MEMORY_LIMIT_MIB, MIN_MEMORY_LIMIT_MIB
from collector.storage.lake_location import BadLakeLocation, LakeLocation
from collector.storage.protocols import StoreUnavailable
from ui.durations import Duration
from ui.serve import Listeners, PortBusy, bind_all, serve
from ui.web.app import create_app
from ui.web.security import SessionPolicy


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.option(
    "--db",
    "db_path",
    default="fluoro.duckdb",
    envvar="FLUORO_DB",
    show_envvar=True,
    help="DuckDB file holding the spans (created if missing); its ingest log is PATH.ingest[.N] beside it.",
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
    "--otlp-grpc-port",
    default=4317,
    type=click.IntRange(0, 65535),
    envvar="FLUORO_OTLP_GRPC_PORT",
    show_envvar=True,
    help="OTLP/gRPC port (0: off).",
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
    "--memory-limit-mib",
    default=DEFAULT_MEMORY_LIMIT_MIB,
    type=click.IntRange(MIN_MEMORY_LIMIT_MIB, MAX_MEMORY_LIMIT_MIB),
    envvar="FLUORO_MEMORY_LIMIT_MIB",
    show_envvar=True,
    help="Bound on DuckDB's memory (its cache of the database, and what a statement holds): past it, "
    "blocks are read again from the file and a statement spills to disk.",
)
@click.option(
    "--allowed-hosts",
    default="",
    envvar="FLUORO_ALLOWED_HOSTS",
    show_envvar=True,
    help="Host names HTTP requests may use besides loopback and the bound address, comma-separated ('*': any).",
)
@click.option(
    "--session-ttl",
    default="12h",
    type=Duration(),
    envvar="FLUORO_SESSION_TTL",
    show_envvar=True,
    help="How long a UI login lasts (with --token).",
)
@click.option(
    "--lake",
    default=None,
    envvar="FLUORO_LAKE",
    show_envvar=True,
    metavar="postgresql://USER@HOST:PORT/DB",
    help="Store in a DuckLake with this PostgreSQL catalog (any number of collectors at once) instead of --db.",
)
@click.option(
    "--lake-data",
    default=None,
    envvar="FLUORO_LAKE_DATA",
    show_envvar=True,
    metavar="PATH_OR_S3_URL",
    help="Where the lake's Parquet files live (a folder every collector sees, or s3://bucket/prefix).",
)
@click.option(
    "--read-only",
    is_flag=True,
    default=False,
    help="With --lake: serve the query API and the UI over the lake, without receivers.",
)
@click.option(
    "--ingest-log",
    default=None,
    envvar="FLUORO_INGEST_LOG",
    show_envvar=True,
    help="The ingest log (acknowledged spans not yet stored) [default: DB.ingest, or fluoro-lake.ingest with --lake].",
)
@click.option(
    "--notify-url",
    default=None,
    envvar="FLUORO_NOTIFY_URL",
    show_envvar=True,
    metavar="URL",
    help="POST each opened and closed insight here as JSON (retried with backoff).",
)
@click.option(
    "--prices",
    "prices_path",
    default=None,
    envvar="FLUORO_PRICES",
    show_envvar=True,
    metavar="FILE",
    help="A price sheet (JSON, as collector/cost/aws-us-east-1.json) for another region or a negotiated rate.",
)
@click.option(
    "--insights-every",
    "insights_every_s",
    default="30s",
    type=Duration(),
    envvar="FLUORO_INSIGHTS_EVERY",
    show_envvar=True,
    help="How often the insight detector compares the recent window with its baseline.",
)
@click.option(
    "--insights-window",
    "insights_window_s",
    default="1m",
    type=Duration(),
    envvar="FLUORO_INSIGHTS_WINDOW",
    show_envvar=True,
    help="The recent window the insight detector judges.",
)
@click.option(
    "--insights-baseline",
    "insights_baseline_s",
    default="15m",
    type=Duration(),
    envvar="FLUORO_INSIGHTS_BASELINE",
    show_envvar=True,
    help="The baseline before it (shorter: quicker to learn, quicker to forget).",
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
    otlp_grpc_port: int,
    xray_port: int,
    ui_port: int,
    token: str | None,
    retention: float,
    max_body_mb: float,
    memory_limit_mib: int,
    allowed_hosts: str,
    session_ttl: float,
    lake: str | None,
    lake_data: str | None,
    read_only: bool,
    ingest_log: str | None,
    notify_url: str | None,
    prices_path: str | None,
    insights_every_s: float,
    insights_window_s: float,
    insights_baseline_s: float,
    log_level: str,
) -> None:
    """Run the collector daemon in the foreground: OTLP/HTTP and gRPC, X-Ray UDP, query API."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("fluoro")
    _warn_if_exposed(host, token, log)
    if read_only and not lake:
        raise click.UsageError("--read-only needs --lake: a DuckDB file is written by one process, the collector")
    _check_notify_url(notify_url)
    sheet = _price_sheet(prices_path)
    location = _lake_location(lake, lake_data)
    try:
        listeners = Listeners(host, otlp_port, xray_port, ui_port, receivers=not read_only, grpc_port=otlp_grpc_port)
        sockets = bind_all(listeners)
    except PortBusy as exc:
        raise click.ClickException(str(exc)) from None
    hosts = frozenset(name.strip().lower() for name in allowed_hosts.split(",") if name.strip())
    settings = CollectorSettings(
        db_path=db_path,
        retention_s=retention,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        token=token or None,
        host_policy=HostPolicy(bound_address=host, extra=hosts),
        lake=location,
        read_only=read_only,
        ingest_log=ingest_log,
        insights=InsightSettings(insights_every_s, insights_window_s, insights_baseline_s, notify_url=notify_url),
        prices=sheet,
        memory_limit_mib=memory_limit_mib,
    )
    try:
        collector = Collector(settings)
    except StoreUnavailable as exc:
        sockets.close()
        raise click.ClickException(str(exc)) from None
    log.info("database %s (schema version %d)", collector.store.path, collector.store.schema_version)
    api_app = create_app(collector, token=token or None, session=SessionPolicy(ttl_s=session_ttl))
    asyncio.run(serve(collector, api_app, sockets, log_level="warning" if log_level != "debug" else "debug"))


def _warn_if_exposed(host: str, token: str | None, log: logging.Logger) -> None:
    if not is_loopback(host) and not token:
        log.warning(
            "!!! listening on %s without --token: anyone who can reach this host can read and write traces", host
        )


def _lake_location(lake: str | None, lake_data: str | None) -> LakeLocation | None:
    try:
        return LakeLocation.parse(lake, lake_data or "") if lake else None
    except BadLakeLocation as exc:
        raise click.UsageError(str(exc)) from None


def _price_sheet(path: str | None) -> PriceSheet:
    try:
        return PriceSheet.load(path) if path else PriceSheet.load()
    except PricesError as exc:
        raise click.UsageError(str(exc)) from None


def _check_notify_url(url: str | None) -> None:
    if url and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise click.UsageError(f"--notify-url must be an http:// or https:// URL, not {url!r}")
