"""Terminal tables: span-borne strings stay inert (no rich markup, no terminal escapes)."""

from __future__ import annotations

import io

from rich.console import Console

from ui.terminal import inert, map_tables, print_tables, traces_table, window_params

HOSTILE = "[bold red]boom[/] \x1b[2J<img src=x onerror=alert(1)>"


def rendered(tables: list, width: int = 400) -> str:  # type: ignore[type-arg]
    out = io.StringIO()
    print_tables(tables, [], Console(file=out, width=width, color_system=None))
    return out.getvalue()


def test_inert_escapes_control_characters_and_keeps_markup_literal() -> None:
    assert inert(HOSTILE).plain == "[bold red]boom[/] \\x1b[2J<img src=x onerror=alert(1)>"
    assert inert(None).plain == ""


def test_tables_show_hostile_names_as_characters() -> None:
    node = {
        "id": "n1",
        "name": HOSTILE,
        "type": "service",
        "health": "fault",
        "figures": {
            "requests": 3,
            "requests_per_s": 0.1,
            "error_rate": 0.0,
            "fault_rate": 1 / 3,
            "throttle_rate": 0.0,
            "p50_ms": 12.5,
            "p90_ms": 20.0,
            "p99_ms": 30.0,
            "cold_starts": 1,
        },
    }
    body = {
        "nodes": [node, {**node, "id": "n2", "name": "queue", "figures": None}],
        "edges": [{"source": "n1", "target": "n2", "async": True, "figures": None, "event_age": {"p50_ms": 5.0}}],
        "throttle_sources": [{"name": HOSTILE, "type": "service", "traces": 2}],
    }
    text = rendered(map_tables(body))
    assert "[bold red]boom[/]" in text and "\x1b" not in text and "\\x1b[2J" in text
    assert "async" in text and "33.3%" in text
    traces = {
        "traces": [
            {
                "start_ns": 0,
                "root_service": HOSTILE,
                "root_name": "GET /",
                "trace_duration_ms": 1.5,
                "http_status": 502,
                "error": False,
                "fault": True,
                "throttle": False,
                "cold_start": True,
                "span_count": 4,
                "trace_id": "ab" * 16,
            }
        ]
    }
    text = rendered([traces_table(traces)])
    assert "ab" * 16 in text and "fault" in text and "\x1b" not in text


def test_window_params_are_epoch_seconds() -> None:
    assert window_params(900, now_s=1000.0) == {"start": "100.000", "end": "1000.000"}
