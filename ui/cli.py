"""The ``fluoro`` command line (click): the top of the house, composing engine, API and pages.

Every failure a person can cause (a wrong flag, a busy port, a database another process holds)
is one clear line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import pydantic
from rich.table import Table

from collector.cost.report import CostReport
from collector.query.map_view import ServiceMap
from collector.query.trace_view import TracesPage
from ui.durations import Duration, parse_duration_s
from ui.groups_cli import daemon_options, groups_command
from ui.serve_command import is_loopback, serve_command
from ui.terminal import Answer, ApiError, cost_table, fetch, map_tables, print_tables, traces_table, window_params
from ui.trace_terminal import trace_command

__all__ = ["is_loopback", "main", "parse_duration_s"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
def main() -> None:
    """Fluoro: a live X-ray of serverless applications, on one machine."""


main.add_command(serve_command)
main.add_command(groups_command)
main.add_command(trace_command)


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
