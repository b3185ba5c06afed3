"""Measuring a drawn map: its edges' crossings, its labels' and rings' boxes, as a reader sees them."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # left, top, right, bottom

# Every node label's box (its <text> element's, on screen) and every ring's box (the node
# marker's centre and size, through plotly's axes), in page pixels.
MEASURE_NODES = """() => {
    const g = document.getElementById('map');
    const labels = [];
    g.querySelectorAll('.scatterlayer .trace').forEach((group) => {  // plotly binds each group to its trace
        if (!group.__data__[0].trace.name.startsWith('labels')) return;
        group.querySelectorAll('.textpoint text').forEach((text) => {
            const r = text.getBoundingClientRect();
            if (r.width > 0) labels.push({text: text.textContent, box: [r.left, r.top, r.right, r.bottom]});
        });
    });
    const nodes = g.data.find((t) => t.name === 'nodes');
    const L = g._fullLayout;
    const plot = g.getBoundingClientRect();
    const scale = Math.abs(L.xaxis._m);
    const rings = nodes.x.map((x, i) => {
        const cx = plot.left + L._size.l + L.xaxis.l2p(x);
        const cy = plot.top + L._size.t + L.yaxis.l2p(nodes.y[i]);
        const r = nodes.marker.size[i] / 2;
        const box = [cx - r, cy - r, cx + r, cy + r];
        return {id: nodes.customdata[i][1], name: nodes.text[i], centre: [cx, cy], box};
    });
    return {labels, rings, scale};
}"""


def polylines(data: Sequence[dict[str, Any]]) -> list[list[Point]]:
    """The edges' drawn paths: runs of points between nulls in the figure's line traces."""
    found = []
    for trace in data:
        if trace.get("mode") != "lines" or trace.get("fill") == "toself":
            continue
        run: list[Point] = []
        for x, y in zip(trace["x"], trace["y"], strict=True):
            if x is None or y is None:
                if run:
                    found.append(run)
                run = []
            else:
                run.append((float(x), float(y)))
        if run:
            found.append(run)
    return found


def _side(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _cross(p1: Point, p2: Point, p3: Point, p4: Point) -> bool:
    """Whether two segments cross at a point inside both (touching ends or lying along each other is no crossing)."""
    return _side(p3, p4, p1) * _side(p3, p4, p2) < 0 and _side(p1, p2, p3) * _side(p1, p2, p4) < 0


def crossings(paths: Sequence[Sequence[Point]]) -> int:
    """How many times two different edges cross."""
    segments = [(i, a, b) for i, path in enumerate(paths) for a, b in itertools.pairwise(path)]
    return sum(1 for (i, a, b), (j, c, d) in itertools.combinations(segments, 2) if i != j and _cross(a, b, c, d))


def overlap(one: Box, other: Box) -> bool:
    return one[0] < other[2] and other[0] < one[2] and one[1] < other[3] and other[1] < one[3]
