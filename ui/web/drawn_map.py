"""A map ready to draw (its nodes and edges, layout, canvas and focus) and the plotly trace
helpers the node and edge drawings share."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ui.web.compact_map import DrawnEdge, DrawnNode
from ui.web.map_canvas import Canvas
from ui.web.map_layout import Layout

FAINT_ALPHA: Final = 0.18


@dataclass(frozen=True, slots=True)
class DrawnMap:
    """What the figure draws: nodes and edges, where they go, and which are in focus (None: all)."""

    nodes: Sequence[DrawnNode]
    edges: Sequence[DrawnEdge]
    layout: Layout
    canvas: Canvas
    in_focus: Collection[str] | None = None
    edges_in_focus: Collection[str] | None = None

    def faint_node(self, key: str) -> bool:
        return self.in_focus is not None and key not in self.in_focus

    def faint_edge(self, key: str) -> bool:
        return self.edges_in_focus is not None and key not in self.edges_in_focus


def colour(hex_colour: str, faint: bool) -> str:
    """`#rrggbb`, or the same colour faint (out of focus)."""
    if not faint:
        return hex_colour
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{FAINT_ALPHA})"


def scatter(**fields: Any) -> dict[str, Any]:
    """A scatter trace, as plain JSON (plotly's graph objects validate every property: slow)."""
    return {"type": "scatter", "showlegend": False, **fields}
