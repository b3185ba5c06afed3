"""From grid slots to pixels: each column as wide as its widest label, each row as tall as its
tallest, a row or column that only carries bending edges thin.

The map is drawn one data unit to one pixel (the page keeps that scale and scrolls a map bigger
than its box), so a label's size in pixels is known here: names wrap at a separator to at most
two lines and are cut with an ellipsis past that (the whole name is in the hover and the panel).
Widths are estimated from the character count with a generous width per character.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ui.web.map_layout import Layout

FONT_PX: Final = 11
TYPE_FONT_PX: Final = 9
CHAR_PX: Final = 6.8  # wider than the average character of an 11 px sans-serif
TYPE_CHAR_PX: Final = 5.6
LINE_PX: Final = 13
TYPE_LINE_PX: Final = 11
MAX_LINE_CHARS: Final = 22
MAX_NAME_LINES: Final = 2
RING_MIN_PX: Final = 10.0
RING_MAX_PX: Final = 14.0
LABEL_GAP_PX: Final = 4
ROW_GAP_PX: Final = 10
COLUMN_GAP_PX: Final = 40
BEND_PX: Final = 20  # a row or column with no node, only edges passing through
MARGIN_PX: Final = 24
TOP_PX: Final = 40  # the legend's strip
_BREAK = re.compile(r"(?<=[-/._: ])")


@dataclass(frozen=True, slots=True)
class Label:
    lines: tuple[str, ...]
    type_tag: str

    @property
    def width_px(self) -> float:
        return max([len(line) * CHAR_PX for line in self.lines] + [len(self.type_tag) * TYPE_CHAR_PX])

    @property
    def height_px(self) -> float:
        return len(self.lines) * LINE_PX + TYPE_LINE_PX


def label(name: str, type_tag: str) -> Label:
    return Label(name_lines(name), type_tag)


def name_lines(name: str) -> tuple[str, ...]:
    """A name in lines of at most MAX_LINE_CHARS, broken after a separator where one is near."""
    lines: list[str] = []
    rest = name
    while rest and len(lines) < MAX_NAME_LINES:
        if len(rest) <= MAX_LINE_CHARS:
            lines.append(rest)
            rest = ""
            break
        cut = max((m.start() for m in _BREAK.finditer(rest, 1, MAX_LINE_CHARS + 1)), default=0)
        cut = cut if cut >= MAX_LINE_CHARS // 2 else MAX_LINE_CHARS
        lines.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        lines[-1] = lines[-1][: MAX_LINE_CHARS - 1] + "…"
    return tuple(lines) or ("",)


@dataclass(frozen=True, slots=True)
class Canvas:
    """Each column's and row's size, the pixel centres of each column and of each row's rings,
    and the whole drawing's size."""

    column_px: Mapping[int, float]  # what each column's labels need (edges run outside it)
    row_px: Mapping[int, float]
    column_x: Mapping[int, float]
    row_y: Mapping[int, float]
    width_px: float
    height_px: float

    def at(self, slot: tuple[int, int]) -> tuple[float, float]:
        return self.column_x[slot[0]], self.row_y[slot[1]]

    def half_column_px(self, column: int) -> float:
        return self.column_px[column] / 2


def canvas(layout: Layout, labels: Mapping[str, Label], before: Canvas | None = None) -> Canvas:
    """Columns and rows sized to what they hold, and never smaller than they were `before` (the
    same view's last drawing): a node does not move because another's label changed, and the
    slot of a node away for now keeps its room."""
    width: dict[int, float] = dict(before.column_px) if before else {}
    height: dict[int, float] = dict(before.row_px) if before else {}
    for key, (column, row) in layout.slots.items():
        drawn = labels.get(key)
        if drawn is None:
            continue
        width[column] = max(width.get(column, 0.0), 2 * RING_MAX_PX, drawn.width_px)
        height[row] = max(height.get(row, 0.0), 2 * RING_MAX_PX + LABEL_GAP_PX + drawn.height_px)
    for column, row in itertools.chain.from_iterable(layout.bends.values()):
        width.setdefault(column, max(0, BEND_PX - COLUMN_GAP_PX))
        height.setdefault(row, max(0, BEND_PX - ROW_GAP_PX))
    column_x, right = _centres(width, COLUMN_GAP_PX, MARGIN_PX)
    row_y, bottom = _centres(height, ROW_GAP_PX, TOP_PX, centre_at=RING_MAX_PX)
    return Canvas(width, height, column_x, row_y, right + MARGIN_PX, bottom + MARGIN_PX)


def _centres(
    sizes: Mapping[int, float], gap: float, start: float, centre_at: float | None = None
) -> tuple[dict[int, float], float]:
    """Each index's centre (or the point `centre_at` into it) along one axis from `start`;
    indices with nothing take no room. Returns the centres and where the last one ends."""
    centres = {}
    edge = float(start)
    for index in sorted(sizes):
        size = sizes[index] + gap
        centres[index] = edge + (centre_at + gap / 2 if centre_at is not None and sizes[index] > BEND_PX else size / 2)
        edge += size
    return centres, edge
