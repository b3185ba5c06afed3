"""The map's layout: bands per component, columns by depth, few crossings, stable places."""

from __future__ import annotations

import itertools
import random

import pytest

from tests.browser.map_geometry import crossings, overlap
from ui.web.layout_memory import MAX_REMEMBERED_SHARE, LayoutMemory
from ui.web.map_canvas import LABEL_GAP_PX, RING_MAX_PX, Label, canvas, label
from ui.web.map_layout import Layout, LayoutNode, _spread, layered, place


def nodes_of(*names: str, clients: tuple[str, ...] = ()) -> list[LayoutNode]:
    return [LayoutNode(n, n, n in clients) for n in (*clients, *names)]


def straight_paths(layout: Layout, edges: list[tuple[str, str]]) -> list[list[tuple[float, float]]]:
    """Each edge as the polyline through its slots (a column a unit wide, a row a unit tall)."""
    return [
        [(float(c), float(r)) for c, r in (layout.slots[s], *layout.bends.get((s, t), ()), layout.slots[t])]
        for s, t in edges
    ]


def test_each_component_has_its_own_band_and_the_client_column_zero() -> None:
    edges = [("client", "a1"), ("a1", "a2"), ("a1", "a3"), ("client", "b1"), ("b1", "b2")]
    layout = layered(nodes_of("a1", "a2", "a3", "b1", "b2", clients=("client",)), edges)
    assert layout.slots["client"][0] == 0
    assert {layout.slots[k][0] for k in ("a1", "b1")} == {1}
    assert {layout.slots[k][0] for k in ("a2", "a3", "b2")} == {2}
    band_a = {layout.slots[k][1] for k in ("a1", "a2", "a3")}
    band_b = {layout.slots[k][1] for k in ("b1", "b2")}
    assert max(band_a) < min(band_b) or max(band_b) < min(band_a)  # bands do not interleave
    assert len(set(layout.slots.values())) == len(layout.slots)


def test_a_long_edge_bends_through_a_free_slot_in_every_column_it_crosses() -> None:
    edges = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")]
    layout = layered(nodes_of("a", "b", "c", "d"), edges)
    assert [layout.slots[k][0] for k in "abcd"] == [1, 2, 3, 4]
    assert [column for column, _ in layout.bends[("a", "d")]] == [2, 3]
    assert not set(layout.bends[("a", "d")]) & set(layout.slots.values())


def test_barycentre_ordering_removes_the_crossings_of_a_twisted_fan() -> None:
    # given in the worst order: x1 calls the last of y, x3 the first
    edges = [("r", "x1"), ("r", "x2"), ("r", "x3"), ("x1", "y3"), ("x2", "y2"), ("x3", "y1")]
    layout = layered(nodes_of("r", "x1", "x2", "x3", "y1", "y2", "y3"), edges)
    assert crossings(straight_paths(layout, edges)) == 0


def test_cycles_and_self_calls_are_laid_out() -> None:
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("b", "b"), ("c", "d")]
    layout = layered(nodes_of("a", "b", "c", "d"), edges)
    assert set(layout.slots) == {"a", "b", "c", "d"}
    assert layout.slots["a"][0] < layout.slots["b"][0] < layout.slots["c"][0] < layout.slots["d"][0]


def test_the_same_graph_always_gets_the_same_layout() -> None:
    edges = [("client", "a"), ("a", "b"), ("a", "c"), ("c", "d"), ("b", "d")]
    names = nodes_of("a", "b", "c", "d", clients=("client",))
    assert layered(names, edges) == layered(list(reversed(names)), list(reversed(edges)))


def test_known_nodes_keep_their_slots_and_a_new_one_goes_beside_its_caller() -> None:
    edges = [("client", "a"), ("a", "b"), ("a", "c")]
    first = place(nodes_of("a", "b", "c", clients=("client",)), edges, None)
    grown = place(nodes_of("a", "b", "c", "d", clients=("client",)), [*edges, ("b", "d")], first)
    assert {k: grown.slots[k] for k in first.slots} == dict(first.slots)
    assert grown.slots["d"][0] == first.slots["b"][0] + 1
    assert grown.slots["d"] not in set(first.slots.values())
    assert abs(grown.slots["d"][1] - first.slots["b"][1]) <= 1


def test_a_node_that_leaves_keeps_its_slot_for_its_return() -> None:
    edges = [("client", "a"), ("a", "b"), ("a", "c"), ("a", "d")]
    everyone = nodes_of("a", "b", "c", "d", clients=("client",))
    first = place(everyone, edges, None)
    without_c = place([n for n in everyone if n.id != "c"], [e for e in edges if "c" not in e], first)
    assert "c" in without_c.slots and without_c.slots == first.slots
    again = place(everyone, edges, without_c)
    assert again.slots == first.slots


def test_a_layout_with_little_left_of_it_starts_afresh() -> None:
    first = place(nodes_of("a", "b", "c", "d"), [("a", "b"), ("c", "d")], None)
    other = place(nodes_of("a", "x", "y", "z"), [("x", "y"), ("y", "z"), ("z", "a")], first)
    assert other == layered(nodes_of("a", "x", "y", "z"), [("x", "y"), ("y", "z"), ("z", "a")])


def test_rows_keep_the_order_one_apart_and_as_near_as_they_can() -> None:
    assert _spread([2.0, 2.0, 2.0]) == [1, 2, 3]
    assert _spread([0.0, 0.0]) == [0, 1]
    assert _spread([5.0, 1.0]) == [2, 3]
    assert _spread([0.0, 7.0, 7.0]) == [0, 7, 8]


@pytest.mark.parametrize("seed", range(3))
def test_a_dense_map_at_the_node_limit_is_laid_out_without_two_nodes_in_one_slot(seed: int) -> None:
    rng = random.Random(seed)
    names = [f"n{i:03d}" for i in range(300)]
    edges = sorted({tuple(sorted(rng.sample(names, 2))) for _ in range(900)})
    layout = layered(nodes_of(*names), [(a, b) for a, b in edges])
    taken = list(layout.slots.values()) + [slot for path in layout.bends.values() for slot in path]
    assert len(taken) == len(set(taken))
    for a, b in edges:
        assert layout.slots[a][0] < layout.slots[b][0]  # an acyclic map runs left to right


def labels_of(*names: str) -> dict[str, Label]:
    return {n: label(n, "Lambda") for n in names}


def test_the_memory_keeps_a_layout_per_view_and_forgets_the_oldest() -> None:
    memory = LayoutMemory(max_views=2)
    nodes, edges, labels = nodes_of("a", "b"), [("a", "b")], labels_of("a", "b", "c")
    first, _ = memory.place(("compact", ""), nodes, edges, labels)
    memory.place(("xray", ""), nodes, edges, labels)
    memory.place(("compact", "f"), nodes, edges, labels)
    assert len(memory) == 2
    grown, _ = memory.place(("compact", "f"), nodes_of("a", "b", "c"), [*edges, ("b", "c")], labels)
    assert grown.slots["a"] == first.slots["a"]


def test_the_memory_keeps_every_column_as_wide_as_it_was() -> None:
    memory = LayoutMemory()
    edges = [("a", "b"), ("a", "c"), ("c", "d")]
    wide = {**labels_of("a", "c", "d"), "b": label("a-name-wide-enough-to-widen-its-column", "Lambda")}
    _, first = memory.place(("v",), nodes_of("a", "b", "c", "d"), edges, wide)
    # b is gone and c's label is short: d stays where it was all the same
    _, later = memory.place(("v",), nodes_of("a", "c", "d"), [("a", "c"), ("c", "d")], labels_of("a", "c", "d"))
    assert later.column_x == first.column_x and later.row_y == first.row_y


def test_the_memory_starts_afresh_once_it_remembers_far_more_than_is_shown() -> None:
    memory = LayoutMemory()
    many = [f"n{i}" for i in range(4 * (MAX_REMEMBERED_SHARE + 1))]
    memory.place(("v",), nodes_of(*many), list(itertools.pairwise(many)), labels_of(*many))
    few, _ = memory.place(("v",), nodes_of(*many[:3]), list(itertools.pairwise(many[:3])), labels_of(*many))
    assert set(few.slots) == set(many[:3])


@pytest.mark.parametrize("seed", range(3))
def test_labels_at_the_node_limit_have_room_of_their_own(seed: int) -> None:
    """60 nodes with long names: no two nodes' label boxes (as sized for the canvas) or rings meet."""
    rng = random.Random(seed)
    names = [
        f"{rng.choice(['orders', 'start-overdraft-workflow', 'x'])}-{i}-" + "n" * rng.randrange(40) for i in range(60)
    ]
    edges = sorted({tuple(sorted(rng.sample(names, 2))) for _ in range(90)})
    layout = layered(nodes_of(*names), [(a, b) for a, b in edges])
    labels = {n: label(n, "λ function") for n in names}
    drawn = canvas(layout, labels)
    boxes = []
    for name in names:
        x, y = drawn.at(layout.slots[name])
        width, height = labels[name].width_px, labels[name].height_px
        ring = (x - RING_MAX_PX, y - RING_MAX_PX, x + RING_MAX_PX, y + RING_MAX_PX)
        text = (x - width / 2, y + RING_MAX_PX + LABEL_GAP_PX, x + width / 2, y + RING_MAX_PX + LABEL_GAP_PX + height)
        boxes += [ring, text]
    for one, other in itertools.combinations(boxes, 2):
        assert not overlap(one, other)
