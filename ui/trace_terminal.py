"""``fluoro trace ID``: one trace in the terminal, as a tree of spans with their figures.

Each span shows its node, name, what it called, its duration and start offset, its flags and
whether it is on the critical path (what set the trace's duration), and its log records under
it; the trace's linked consumers follow it. Every string came from a span or a record, so each
is printed inert (ui/terminal.inert): no markup, control characters escaped.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from collections.abc import Sequence

import click
import pydantic
from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from collector.cost.report import CostReport
from collector.query.critical_path import CriticalPath
from collector.query.trace_logs import LogLine, TraceLogs
from collector.query.trace_view import SpanView, TraceView
from ui.groups_cli import daemon_options
from ui.terminal import ApiError, fetch, inert

MAX_SPANS_SHOWN = 2000
PIPED_WIDTH = 4000


def _flags(span: SpanView) -> list[str]:
    found = [name for name in ("fault", "error", "throttle") if getattr(span, name)]
    if span.cold_start:
        found.append("cold start")
    if span.in_progress:
        found.append("in progress")
    return found


def span_label(span: SpanView, trace_start_ns: int, on_path: bool) -> Text:
    """One span's line: node, name, target, duration, offset, flags, critical-path mark."""
    label = Text()
    label.append_text(inert(span.service))
    if span.origin:
        label.append(" (").append_text(inert(span.origin)).append(")")
    label.append("  ").append_text(inert(span.name))
    if span.target is not None:
        label.append(" -> ").append_text(inert(span.target.name or ""))
        label.append(" (").append_text(inert(span.target.type)).append(")")
    label.append(f"  {span.duration_ms:,.1f} ms  +{(span.start_ns - trace_start_ns) / 1e6:,.1f} ms")
    flags = _flags(span)
    if flags:
        label.append(f"  [{', '.join(flags)}]", style="bold red" if "fault" in flags else "yellow")
    if on_path:
        label.append("  ◆ critical path", style="bold")
    return label


def log_label(record: LogLine, trace_start_ns: int) -> Text:
    """One log record's line: its offset in the trace, its severity, what it said (inert)."""
    label = Text(f"log +{(record.time_ns - trace_start_ns) / 1e6:,.1f} ms ", style="dim")
    if record.severity:
        label.append_text(inert(record.severity)).append(" ")
    return label.append_text(inert(record.body or ""))


def trace_tree(view: TraceView, path: CriticalPath | None, logs: Sequence[LogLine] = ()) -> Tree:
    """The trace's spans as a tree (children by start time), each span's log records under it;
    a span whose parent is not among them, or that only a cycle of hostile parent ids reaches,
    hangs off the root line, as do records written in no span of the trace."""
    spans: Sequence[SpanView] = sorted(view.spans, key=lambda s: (s.start_ns, s.span_id))[:MAX_SPANS_SHOWN]
    start_ns = min((s.start_ns for s in spans), default=0)
    on_path = set(path.span_ids) if path is not None else set()
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[SpanView]] = {}
    for span in spans:
        children.setdefault(span.parent_span_id if span.parent_span_id in ids else None, []).append(span)
    root = Tree(Text(f"trace {view.trace_id}  ({len(view.spans)} spans)"))
    placed: set[str] = set()
    logs_of: dict[str | None, list[LogLine]] = {}
    for record in logs:
        logs_of.setdefault(record.span_id if record.span_id in ids else None, []).append(record)

    def place(tops: Sequence[SpanView]) -> None:
        stack = [(root, span) for span in reversed(tops)]
        while stack:
            branch, span = stack.pop()
            if span.span_id in placed:
                continue
            placed.add(span.span_id)
            node = branch.add(span_label(span, start_ns, span.span_id in on_path))
            for record in logs_of.get(span.span_id, []):
                node.add(log_label(record, start_ns))
            stack.extend((node, child) for child in reversed(children.get(span.span_id, [])))

    place(children.get(None, []))
    place([span for span in spans if span.span_id not in placed])  # in a cycle: never reached
    for record in logs_of.get(None, []):
        root.add(log_label(record, start_ns))
    return root


@click.command("trace")
@click.argument("trace_id")
@daemon_options
@click.option("--format", "output", default="text", type=click.Choice(["text", "json"]), help="Tree or JSON.")
def trace_command(trace_id: str, api_url: str, token: str | None, output: str) -> None:
    """Show one trace as a tree: durations, flags, cold starts, the critical path and its cost.

    \b
    Examples:
      fluoro trace 1-5759e988-bd862e3fe1be46a994272793
      fluoro trace 5759e988bd862e3fe1be46a994272793 --format json
    """
    base = f"/api/traces/{urllib.parse.quote(trace_id, safe='')}"  # an id is never part of the path's shape
    try:
        view = fetch(api_url, base, {}, token, TraceView)
        path = fetch(api_url, f"{base}/critical-path", {}, token, CriticalPath)
        cost = fetch(api_url, f"{base}/cost", {}, token, CostReport)
        logs = fetch(api_url, f"{base}/logs", {}, token, TraceLogs)
    except ApiError as exc:
        raise click.ClickException(str(exc)) from None
    if output == "json":
        parts = {"trace": view, "critical_path": path, "cost": cost, "logs": logs}
        as_json = {
            key: pydantic.TypeAdapter(type(value)).dump_python(value, mode="json") for key, value in parts.items()
        }
        click.echo(json.dumps(as_json, indent=2))
        return
    # In a terminal, rich fits the tree to its width; piped, a span is one line, however long.
    console = Console() if sys.stdout.isatty() else Console(width=PIPED_WIDTH)
    console.print(trace_tree(view, path, logs.logs))
    steps = " -> ".join(f"{s.service}: {s.name} ({s.duration_ms:,.1f} ms)" for s in path.segments)
    console.print(Text("critical path: ").append_text(inert(steps)).append(f"  = {path.duration_ms:,.1f} ms"))
    if cost.entries:
        console.print(Text(f"cost: {cost.total:,.6f} {cost.currency} ({cost.region} prices of {cost.prices_taken})"))
