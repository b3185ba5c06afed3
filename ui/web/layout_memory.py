"""Where each view of the map last put its nodes, so a live refresh moves none of them.

One layout per view (the nodes' view, filter or group, node limit), shared by everyone who
looks at it, kept for the most recently drawn views only. A refresh hands the last layout to
ui.web.map_layout.place, which keeps every known node where it was and finds free slots for new
ones (a node that leaves keeps its slot for its return), and the last canvas to
ui.web.map_canvas.canvas, which keeps every column and row at least as big as it was. Bounded:
MAX_VIEWS layouts, and a layout that has remembered more than MAX_REMEMBERED_SHARE times the
nodes on screen starts afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from ui.web.map_canvas import Canvas, Label, canvas
from ui.web.map_layout import EdgeKey, Layout, LayoutNode, place

MAX_VIEWS: Final = 64
MAX_REMEMBERED_SHARE: Final = 3
ViewKey = tuple[str, ...]


class LayoutMemory:
    """The last layout of each recent view."""

    def __init__(self, max_views: int = MAX_VIEWS) -> None:
        self._max_views = max_views
        self._layouts: OrderedDict[ViewKey, tuple[Layout, Canvas]] = OrderedDict()
        self._lock = threading.Lock()

    def place(
        self, view: ViewKey, nodes: Sequence[LayoutNode], edges: Iterable[EdgeKey], labels: Mapping[str, Label]
    ) -> tuple[Layout, Canvas]:
        """This view's layout and canvas for these nodes and edges, remembered for its next refresh."""
        with self._lock:
            known = self._layouts.get(view)
        if known is not None and len(known[0].slots) > MAX_REMEMBERED_SHARE * max(len(nodes), 1):
            known = None
        layout = place(nodes, edges, known[0] if known else None)
        kept = known is not None and all(
            known[0].slots[k] == slot for k, slot in layout.slots.items() if k in known[0].slots
        )
        drawn = canvas(layout, labels, known[1] if known and kept else None)
        with self._lock:
            self._layouts[view] = (layout, drawn)
            self._layouts.move_to_end(view)
            while len(self._layouts) > self._max_views:
                self._layouts.popitem(last=False)
        return layout, drawn

    def __len__(self) -> int:
        return len(self._layouts)
