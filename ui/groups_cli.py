"""``fluoro groups``: saved filter expressions on a running daemon (add, list, rm)."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from collector.api.group_routes import GroupsPage
from ui.terminal import ApiError, call_api, inert, print_tables, read_answer


def daemon_options(command: Any) -> Any:
    """--api and --token: where the daemon is and how to be let in."""
    command = click.option(
        "--token", default=None, envvar="FLUORO_TOKEN", show_envvar=True, help="Bearer token of the daemon."
    )(command)
    return click.option(
        "--api",
        "api_url",
        default="http://127.0.0.1:8680",
        envvar="FLUORO_API",
        show_envvar=True,
        help="Query API of a running `fluoro serve`.",
    )(command)


@click.group("groups")
def groups_command() -> None:
    """Groups: named filter expressions every page (and `--group`) can show alone.

    \b
    Examples:
      fluoro groups add checkout 'service("checkout-api/prod")'
      fluoro groups list
      fluoro map --group checkout
      fluoro groups rm checkout
    """


@groups_command.command("add")
@click.argument("name")
@click.argument("expression")
@daemon_options
def add_command(name: str, expression: str, api_url: str, token: str | None) -> None:
    """Save a group (or give a group a new expression)."""
    try:
        call_api("POST", api_url, "/api/groups", token, body={"name": name, "filter": expression})
    except ApiError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"group {name} saved")


@groups_command.command("list")
@daemon_options
def list_command(api_url: str, token: str | None) -> None:
    """Every group and its expression."""
    try:
        page = read_answer(call_api("GET", api_url, "/api/groups", token), GroupsPage)
    except ApiError as exc:
        raise click.ClickException(str(exc)) from None
    table = Table(title="groups")
    table.add_column("name")
    table.add_column("filter expression")
    for group in page.groups:
        table.add_row(inert(group.name), inert(group.filter))
    print_tables([table], [] if page.groups else ["no groups yet: fluoro groups add NAME EXPRESSION"])


@groups_command.command("rm")
@click.argument("name")
@daemon_options
def remove_command(name: str, api_url: str, token: str | None) -> None:
    """Delete a group."""
    try:
        call_api("DELETE", api_url, f"/api/groups/{name}", token)
    except ApiError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"group {name} deleted")
