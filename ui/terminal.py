"""The terminal face of queries: `fluoro traces` and `fluoro map` as tables (rich) or JSON.

They ask the running daemon's query API over HTTP (httpx) — the daemon owns the DuckDB file,
and ui/ never touches storage. Every string that came in a span is shown inert: rich markup
is never interpreted and control characters (a terminal escape in a service name) are shown
escaped, not sent to the terminal.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from rich.text import Text


class ApiError(RuntimeError):
    """The query API refused or could not be reached; the message is one line for the user."""


def inert(value: object) -> Text:
    """Span-borne text as characters only: no markup, control characters escaped."""
    text = "" if value is None else str(value)
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return Text(shown)


def fetch(api_url: str, path: str, params: Mapping[str, str], token: str | None, timeout_s: float = 30.0) -> Any:
    """GET a query-API path as JSON; ApiError says why not."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(f"{api_url.rstrip('/')}{path}", params=dict(params), headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ApiError(f"cannot reach the Fluoro API at {api_url}: {exc}") from exc
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ApiError(f"the API answered {response.status_code}: {detail}")
    return response.json()


def window_params(since_s: float, now_s: float | None = None) -> dict[str, str]:
    end_s = time.time() if now_s is None else now_s
    return {"start": f"{end_s - since_s:.3f}", "end": f"{end_s:.3f}"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def traces_table(body: Mapping[str, Any]) -> Table:
    table = Table(title=f"{len(body['traces'])} traces", show_lines=False)
    for column in ("time (UTC)", "root", "duration ms", "status", "flags", "cold", "spans"):
        table.add_column(column, justify="right" if column in ("duration ms", "spans") else "left")
    table.add_column("trace id", no_wrap=True, min_width=32)  # whole, so it can be copied
    for trace in body["traces"]:
        flags = [name for name in ("error", "fault", "throttle") if trace[name]]
        started = time.strftime("%H:%M:%S", time.gmtime(trace["start_ns"] / 1e9))
        table.add_row(
            started,
            inert(f"{trace['root_service']} {trace['root_name']}"),
            _ms(trace["trace_duration_ms"]),
            str(trace["http_status"] or "-"),
            ",".join(flags) or "ok",
            "cold" if trace["cold_start"] else "",
            str(trace["span_count"]),
            trace["trace_id"],
        )
    return table


def map_tables(body: Mapping[str, Any]) -> list[Table]:
    nodes = Table(title=f"{len(body['nodes'])} nodes")
    for column in ("node", "type", "health", "req", "req/s", "err", "fault", "throttle", "p50", "p90", "p99", "cold"):
        nodes.add_column(column)
    for node in body["nodes"]:
        f = node["figures"] or {}
        nodes.add_row(
            inert(node["name"]),
            inert(node["type"]),
            node["health"],
            str(f.get("requests", "-")),
            f"{f['requests_per_s']:.2f}" if f else "-",
            _pct(f.get("error_rate")),
            _pct(f.get("fault_rate")),
            _pct(f.get("throttle_rate")),
            _ms(f.get("p50_ms")),
            _ms(f.get("p90_ms")),
            _ms(f.get("p99_ms")),
            str(f.get("cold_starts", "")) if f else "",
        )
    names = {n["id"]: n["name"] for n in body["nodes"]}
    edges = Table(title=f"{len(body['edges'])} edges")
    for column in ("from", "to", "kind", "req", "fault", "p99 ms", "event age p50 ms"):
        edges.add_column(column)
    for edge in body["edges"]:
        f = edge["figures"] or {}
        age = edge["event_age"] or {}
        edges.add_row(
            inert(names.get(edge["source"], "?")),
            inert(names.get(edge["target"], "?")),
            "async" if edge["async"] else "sync",
            str(f.get("requests", "-")),
            _pct(f.get("fault_rate")),
            _ms(f.get("p99_ms")),
            _ms(age.get("p50_ms")),
        )
    tables = [nodes, edges]
    if body["throttle_sources"]:
        sources = Table(title="throttle sources")
        sources.add_column("node")
        sources.add_column("type")
        sources.add_column("throttled traces")
        for source in body["throttle_sources"]:
            sources.add_row(inert(source["name"]), inert(source["type"]), str(source["traces"]))
        tables.append(sources)
    return tables


def print_tables(tables: list[Table], notes: list[str], console: Console | None = None) -> None:
    out = console or Console()
    for table in tables:
        out.print(table)
    for note in notes:
        out.print(Text(note))
