"""The terminal face of queries: `fluoro traces` and `fluoro map` as tables (rich) or JSON.

They ask the running daemon's query API over HTTP (httpx) — the daemon owns the DuckDB file,
and ui/ never touches storage — and read its answers into the query layer's read models
(pydantic validates the JSON against the same dataclasses the API documents). Every string
that came in a span is shown inert: rich markup
is never interpreted and control characters (a terminal escape in a service name) are shown
escaped, not sent to the terminal.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TypeVar

import httpx
import pydantic
from rich.console import Console
from rich.table import Table
from rich.text import Text

from collector.cost.report import CostReport
from collector.query.map_view import ServiceMap
from collector.query.trace_view import TracesPage

Answer = TypeVar("Answer")


class ApiError(RuntimeError):
    """The query API refused or could not be reached; the message is one line for the user."""


def inert(value: object) -> Text:
    """Span-borne text as characters only: no markup, control characters escaped."""
    text = "" if value is None else str(value)
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return Text(shown)


def fetch(
    api_url: str, path: str, params: Mapping[str, str], token: str | None, answer: type[Answer], timeout_s: float = 30.0
) -> Answer:
    """GET a query-API path, read as `answer`; ApiError says why not."""
    response = call_api("GET", api_url, path, token, params=params, timeout_s=timeout_s)
    return read_answer(response, answer)


def call_api(
    method: str,
    api_url: str,
    path: str,
    token: str | None,
    *,
    params: Mapping[str, str] | None = None,
    body: object = None,
    timeout_s: float = 30.0,
) -> httpx.Response:
    """A request to the query API that it answered with 2xx; ApiError says why not."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(
            method,
            f"{api_url.rstrip('/')}{path}",
            params=dict(params or {}),
            json=body,
            headers=headers,
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        raise ApiError(f"cannot reach the Fluoro API at {api_url}: {exc}") from exc
    if not 200 <= response.status_code < 300:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ApiError(f"the API answered {response.status_code}: {detail}")
    return response


def read_answer(response: httpx.Response, answer: type[Answer]) -> Answer:
    try:
        return pydantic.TypeAdapter(answer).validate_json(response.content)
    except pydantic.ValidationError as exc:
        raise ApiError(f"the API's answer is not a {answer.__name__} (another Fluoro version?): {exc}") from exc


def window_params(since_s: float, now_s: float | None = None) -> dict[str, str]:
    end_s = time.time() if now_s is None else now_s
    return {"start": f"{end_s - since_s:.3f}", "end": f"{end_s:.3f}"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def traces_table(page: TracesPage) -> Table:
    table = Table(title=f"{len(page.traces)} traces", show_lines=False)
    for column in ("time (UTC)", "root", "duration ms", "status", "flags", "cold", "spans"):
        table.add_column(column, justify="right" if column in ("duration ms", "spans") else "left")
    table.add_column("trace id", no_wrap=True, min_width=32)  # whole, so it can be copied
    for trace in page.traces:
        flags = [name for name in ("error", "fault", "throttle") if getattr(trace, name)]
        started = time.strftime("%H:%M:%S", time.gmtime(trace.start_ns / 1e9))
        table.add_row(
            started,
            inert(f"{trace.root_service} {trace.root_name}"),
            _ms(trace.trace_duration_ms),
            str(trace.http_status or "-"),
            ",".join(flags) or "ok",
            "cold" if trace.cold_start else "",
            str(trace.span_count),
            trace.trace_id,
        )
    return table


def map_tables(found: ServiceMap) -> list[Table]:
    tables = [_node_table(found), _edge_table(found)]
    if found.throttle_sources:
        sources = Table(title="throttle sources")
        for column in ("node", "type", "throttled traces"):
            sources.add_column(column)
        for source in found.throttle_sources:
            sources.add_row(inert(source.name), inert(source.type), str(source.traces))
        tables.append(sources)
    return tables


def _node_table(found: ServiceMap) -> Table:
    nodes = Table(title=f"{len(found.nodes)} nodes")
    for column in ("node", "type", "health", "req", "req/s", "err", "fault", "throttle", "p50", "p90", "p99", "cold"):
        nodes.add_column(column)
    for node in found.nodes:
        f = node.figures
        figures = ["-"] * 8 + [""]
        if f is not None:
            rates = [_pct(f.error_rate), _pct(f.fault_rate), _pct(f.throttle_rate)]
            figures = [str(f.requests), f"{f.requests_per_s:.2f}", *rates, _ms(f.p50_ms), _ms(f.p90_ms), _ms(f.p99_ms)]
            figures.append(str(f.cold_starts))
        nodes.add_row(inert(node.name), inert(node.type), node.health, *figures)
    return nodes


def _edge_table(found: ServiceMap) -> Table:
    names = {n.id: n.name for n in found.nodes}
    edges = Table(title=f"{len(found.edges)} edges")
    for column in ("from", "to", "kind", "req", "fault", "p99 ms", "event age p50 ms"):
        edges.add_column(column)
    for edge in found.edges:
        f = edge.figures
        edges.add_row(
            inert(names.get(edge.source, "?")),
            inert(names.get(edge.target, "?")),
            "async" if edge.is_async else "sync",
            str(f.requests) if f is not None else "-",
            _pct(f.fault_rate if f is not None else None),
            _ms(f.p99_ms if f is not None else None),
            _ms(edge.event_age.p50_ms if edge.event_age is not None else None),
        )
    return edges


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.6f}" if value < 1 else f"{value:,.2f}"


def cost_table(report: CostReport) -> Table:
    """Top entries of a cost report: total, per million requests, and per hour at the window's rate."""
    prices = f"{report.currency}, {report.region} prices of {report.prices_taken}"
    table = Table(title=f"Cost by {report.group_by} ({prices})")
    for header in ("name", "type", "cost", "per 1M req", "per hour"):
        table.add_column(header, justify="left" if header in ("name", "type") else "right")
    for entry in report.entries:
        table.add_row(
            inert(entry.name or "-"),
            inert(entry.type or ""),
            _money(entry.total),
            _money(entry.per_million_requests),
            _money(entry.per_hour),
        )
    return table


def print_tables(tables: list[Table], notes: list[str], console: Console | None = None) -> None:
    out = console or Console()
    for table in tables:
        out.print(table)
    for note in notes:
        out.print(Text(note))
