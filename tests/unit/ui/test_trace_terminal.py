"""`fluoro trace`'s tree: children under parents by start time, orphans and hostile cycles of
parent ids at the root, every span shown once."""

from __future__ import annotations

from rich.console import Console

from collector.query.trace_view import SpanView, TraceView
from tests.factories import T0, stored_span
from ui.trace_terminal import trace_tree


def view(*spans: tuple[str, str | None, int]) -> TraceView:
    made = tuple(
        SpanView.of(stored_span(span_id=span_id, parent_span_id=parent, start_ns=T0 + start, name=f"op-{span_id}"))
        for span_id, parent, start in spans
    )
    return TraceView("ab" * 16, made, ())


def shown(trace: TraceView) -> list[str]:
    console = Console(width=200, record=True)
    console.print(trace_tree(trace, None))
    return console.export_text().splitlines()


def test_children_sit_under_their_parents_in_start_order() -> None:
    lines = shown(view(("a", None, 0), ("c", "a", 20), ("b", "a", 10), ("d", "b", 15), ("o", "gone", 5)))
    names = [line.split("op-")[1].split()[0] for line in lines[1:]]
    assert names == ["a", "b", "d", "c", "o"]  # the orphan at the root, after the tree it starts later than
    depth = {name: line.index("op-") for name, line in zip(names, lines[1:], strict=True)}
    assert depth["a"] < depth["b"] < depth["d"] and depth["b"] == depth["c"] and depth["o"] == depth["a"]


def test_a_cycle_of_parent_ids_is_shown_once_and_ends() -> None:
    lines = shown(view(("x", "y", 0), ("y", "x", 1)))
    assert sum("op-x" in line for line in lines) == 1 and sum("op-y" in line for line in lines) == 1
