"""The ``fluoro`` command line (click): the top of the house, composing engine, API and pages.

Every failure a person can cause (a wrong flag, a busy port, a database another process holds)
is one clear line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Callable
from typing import Any

import click
import pydantic
from rich.table import Table

from collector.allowed_hosts import HostPolicy
from collector.cost.prices import PricesError, PriceSheet
from collector.cost.report import CostReport
from collector.engine import Collector, CollectorSettings
from collector.insights.watch import InsightSettings
from collector.query.map_view import ServiceMap
from collector.query.trace_view import TracesPage
from collector.storage.lake_location import BadLakeLocation, LakeLocation
from collector.storage.protocols import StoreUnavailable
from ui.groups_cli import daemon_options, groups_command
from ui.serve import Listeners, PortBusy, bind_all, serve
from ui.terminal import Answer, ApiError, cost_table, fetch, map_tables, print_tables, traces_table, window_params
from ui.trace_terminal import trace_command
from ui.web.app import create_app
from ui.web.security import SessionPolicy

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration_s(text: str) -> float:
    """'90', '45s', '30m', '12h', '7d', '2w' as seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 30m, 12h or 7d")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


class Duration(click.ParamType[float, object]):
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
    if not is_loopback(host) and not token:
        log.warning(
            "!!! listening on %s without --token: anyone who can reach this host can read and write traces", host
        )
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
    )
    try:
        collector = Collector(settings)
    except StoreUnavailable as exc:
        sockets.close()
        raise click.ClickException(str(exc)) from None
    log.info("database %s (schema version %d)", collector.store.path, collector.store.schema_version)
    api_app = create_app(collector, token=token or None, session=SessionPolicy(ttl_s=session_ttl))
    asyncio.run(serve(collector, api_app, sockets, log_level="warning" if log_level != "debug" else "debug"))


main.add_command(groups_command)
main.add_command(trace_command)


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


def _api_options(command: Any) -> Any:
    """--api, --token, --since and --group, shared by the commands that ask a running daemon."""
    command = click.option("--group", default="", help="Only the traces of this saved group (fluoro groups list).")(
        command
    )
    command = click.option("--since", default="15m", type=Duration(), help="How far back to look (e.g. 5m, 1h, 7d).")(
        command
    )
    return daemon_options(command)


@main.command("traces")
@click.argument("expression", required=False, default="")
@_api_options
@click.option("--limit", default=50, type=click.IntRange(1, 1000), help="Most traces to list.")
@click.option("--format", "output", default="text", type=click.Choice(["text", "json"]), help="Table or JSON.")
def traces_command(
    expression: str, api_url: str, token: str | None, since: float, group: str, limit: int, output: str
) -> None:
    """List traces matching an X-Ray filter expression, newest first.

    \b
    Examples:
      fluoro traces 'service("withdraw") { fault }'
      fluoro traces 'responsetime > 2 AND annotation.customer = "c1"' --since 1h
    """
    params = {**window_params(since), "limit": str(limit), **({"group": group} if group else {})}
    if expression.strip():
        params["filter"] = expression
    page = _ask(api_url, "/api/traces", params, token, TracesPage)
    _show(page, output, lambda: ([traces_table(page)], []))


@main.command("cost")
@_api_options
@click.option("--by", "group_by", default="node", type=click.Choice(["node", "function", "trace"]), help="Add up by.")
@click.option("--filter", "expression", default="", help="Only traces matching this X-Ray filter expression.")
@click.option("--limit", default=20, type=click.IntRange(1, 1000), help="Most entries to list, costliest first.")
@click.option("--format", "output", default="text", type=click.Choice(["text", "json"]), help="Table or JSON.")
def cost_command(
    api_url: str, token: str | None, since: float, group: str, group_by: str, expression: str, limit: int, output: str
) -> None:
    """What the traced requests cost: the costliest nodes (or functions, or traces) first.

    \b
    Examples:
      fluoro cost --since 1h
      fluoro cost --by function --group banking
    """
    params = {**window_params(since), "group_by": group_by, "limit": str(limit), **({"group": group} if group else {})}
    if expression.strip():
        params["filter"] = expression
    report = _ask(api_url, "/api/cost", params, token, CostReport)
    notes = [f"total {report.total:,.6f} {report.currency} over {since:g} s"]
    _show(report, output, lambda: ([cost_table(report)], notes))


@main.command("map")
@_api_options
@click.option("--filter", "expression", default="", help="Only traces matching this X-Ray filter expression.")
@click.option("--format", "output", default="text", type=click.Choice(["text", "json"]), help="Tables or JSON.")
def map_command(api_url: str, token: str | None, since: float, group: str, expression: str, output: str) -> None:
    """Show the service map: nodes with health and latency, edges, throttle sources."""
    params = {**window_params(since), **({"group": group} if group else {})}
    if expression.strip():
        params["filter"] = expression
    found = _ask(api_url, "/api/service-map", params, token, ServiceMap)
    notes = [f"{found.folded_nodes} quieter nodes folded into one"] if found.folded_nodes else []
    _show(found, output, lambda: (map_tables(found), notes))


def _show(answer: object, output: str, tables: Callable[[], tuple[list[Table], list[str]]]) -> None:
    if output == "json":
        click.echo(pydantic.TypeAdapter(type(answer)).dump_json(answer, indent=2).decode())
    else:
        print_tables(*tables())


def _ask(api_url: str, path: str, params: dict[str, str], token: str | None, answer: type[Answer]) -> Answer:
    try:
        return fetch(api_url, path, params, token, answer)
    except ApiError as exc:
        raise click.ClickException(str(exc)) from None
