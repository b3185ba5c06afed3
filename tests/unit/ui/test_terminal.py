"""Terminal tables: span-borne strings stay inert (no rich markup, no terminal escapes)."""

from __future__ import annotations

import dataclasses
import io

from rich.console import Console
from rich.table import Table

from collector.query.figure_view import NodeFigures
from collector.query.figures import FigureAccumulator
from collector.query.map_view import EventAge, MapEdge, MapNode, ServiceMap, ThrottleSourceNode
from collector.query.trace_view import TracesPage
from collector.storage.protocols import TraceSummary
from ui.terminal import inert, map_tables, print_tables, traces_table, window_params

HOSTILE = "[bold red]boom[/] \x1b[2J<img src=x onerror=alert(1)>"


def rendered(tables: list[Table], width: int = 400) -> str:
    out = io.StringIO()
    print_tables(tables, [], Console(file=out, width=width, color_system=None))
    return out.getvalue()


def test_inert_escapes_control_characters_and_keeps_markup_literal() -> None:
    assert inert(HOSTILE).plain == "[bold red]boom[/] \\x1b[2J<img src=x onerror=alert(1)>"
    assert inert(None).plain == ""


def three_requests_one_fault() -> NodeFigures:
    figures = FigureAccumulator()
    figures.add_counts(3, 2, 0, 1, 0, 1)
    figures.add_bucket(40, 3, 0, 0, 12_500_000, 30_000_000)
    return NodeFigures.of(figures.figures(), window_s=30.0)


def test_tables_show_hostile_names_as_characters() -> None:
    node = MapNode("n1", HOSTILE, "service", 0, three_requests_one_fault(), None, "fault", False, None)
    found = ServiceMap(
        start_ns=0,
        end_ns=30 * 10**9,
        nodes=(node, dataclasses.replace(node, id="n2", name="queue", figures=None)),
        edges=(MapEdge("n1-n2", "n1", "n2", True, None, EventAge(5.0, 6.0, 7.0)),),
        throttle_sources=(ThrottleSourceNode("n1", HOSTILE, "service", 2),),
        folded_nodes=0,
        truncated=False,
    )
    text = rendered(map_tables(found))
    assert "[bold red]boom[/]" in text and "\x1b" not in text and "\\x1b[2J" in text
    assert "async" in text and "33.3%" in text
    trace = TraceSummary(
        trace_id="ab" * 16,
        root_service=HOSTILE,
        root_name="GET /",
        start_ns=0,
        duration_ms=1.5,
        http_status=502,
        error=False,
        fault=True,
        throttle=False,
        cold_start=True,
        span_count=4,
        services=(HOSTILE,),
        trace_duration_ms=1.5,
    )
    text = rendered([traces_table(TracesPage((trace,), 0, 10**9))])
    assert "ab" * 16 in text and "fault" in text and "\x1b" not in text


def test_window_params_are_epoch_seconds() -> None:
    assert window_params(900, now_s=1000.0) == {"start": "100.000", "end": "1000.000"}
