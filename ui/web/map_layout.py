"""Where each node of the service map goes: a layered (Sugiyama-style) layout on a grid of slots.

Each connected component (an architecture, once the shared client is set aside) gets its own
band; within it, nodes go left to right by call depth (longest path from the entry points,
cycles broken where a depth-first walk meets them), an edge that skips columns bends through a
reserved slot in each column it crosses, and the order within each column comes from
barycentre sweeps, then swaps of neighbours, keeping the order with the fewest crossings.
Clients take column 0. Slots are whole cells, so nodes and their labels never overlap when a
cell holds a label (ui.web.map_figure sizes them).

Written here rather than taken from a library (igraph's and grandalf's Sugiyama layouts were
the candidates) because the map needs what they do not give: a layout that remembers where its
nodes were (:func:`place` keeps every known node in its slot and finds free slots for new ones
next to their neighbours), and bands per component on one grid. It is small: a few hundred
nodes at most (the map folds the rest), laid out in ~10 ms for the demo's 48.
"""

from __future__ import annotations

import bisect
import itertools
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

import networkx as nx

Slot = tuple[int, int]  # (column, row)
EdgeKey = tuple[str, str]
Graph: TypeAlias = "nx.DiGraph[str]"  # networkx is generic only in its stubs
SWEEPS: Final = 12
MAX_TRANSPOSE_ROUNDS: Final = 8
# Pairs the swaps may weigh in one layout: a map of a few hundred nodes (the node limit goes
# to 1,000) is then laid out in about a second, the demo's in a few milliseconds, all swaps made.
SWAP_BUDGET: Final = 40_000


@dataclass(frozen=True, slots=True)
class LayoutNode:
    id: str
    sort_key: str  # decides ties, so the same graph always gets the same layout
    is_client: bool = False


@dataclass(frozen=True, slots=True)
class Layout:
    """Each node's slot, and the slots an edge bends through on its way (in order from its source)."""

    slots: Mapping[str, Slot]
    bends: Mapping[EdgeKey, tuple[Slot, ...]]

    def occupied(self) -> set[Slot]:
        return set(self.slots.values()) | {slot for path in self.bends.values() for slot in path}


def layered(nodes: Sequence[LayoutNode], edges: Iterable[EdgeKey]) -> Layout:
    """A fresh layout: components in bands, columns by depth, crossings reduced."""
    by_id = {n.id: n for n in nodes}
    links = sorted({(s, t) for s, t in edges if s in by_id and t in by_id and s != t})
    inner: Graph = nx.DiGraph()
    inner.add_nodes_from([n.id for n in sorted(nodes, key=lambda n: n.sort_key) if not n.is_client])
    inner.add_edges_from((s, t) for s, t in links if not by_id[s].is_client and not by_id[t].is_client)
    slots: dict[str, Slot] = {}
    bends: dict[EdgeKey, tuple[Slot, ...]] = {}
    top = 0
    for members in _components(inner, by_id):
        band = _band(inner.subgraph(members).copy(), by_id)
        for key, (column, row) in band.slots.items():
            slots[key] = (column, row + top)
        for edge, path in band.bends.items():
            bends[edge] = tuple((column, row + top) for column, row in path)
        top += 1 + max((row for _, row in band.occupied()), default=-1)
    _place_clients([n for n in nodes if n.is_client], links, slots)
    return Layout(slots, bends)


def place(nodes: Sequence[LayoutNode], edges: Iterable[EdgeKey], known: Layout | None) -> Layout:
    """The layout for this map given the last one: known nodes stay in their slots (and so do
    ones absent now, kept free for their return); new ones take the free slot nearest their
    neighbours. A fresh layout when too little of the last one is left to anchor to."""
    ids = {n.id for n in nodes}
    links = {(s, t) for s, t in edges if s in ids and t in ids and s != t}
    if known is None or not _anchors(ids, known):
        return layered(nodes, links)
    slots = dict(known.slots)
    bends = {edge: path for edge, path in known.bends.items() if edge in links}
    taken = set(slots.values()) | {slot for path in bends.values() for slot in path}
    fresh = layered(nodes, links)
    new = sorted((n for n in nodes if n.id not in slots), key=lambda n: (fresh.slots[n.id], n.sort_key))
    for node in new:
        wanted = _wanted_slot(node, links, slots, fresh.slots[node.id], taken)
        slots[node.id] = _nearest_free(wanted, taken)
        taken.add(slots[node.id])
    return Layout(slots, bends)


def _anchors(ids: set[str], known: Layout) -> bool:
    """Whether most of the current nodes were placed before, and most placed nodes are still here."""
    present = len(ids & known.slots.keys())
    return present * 2 >= len(ids) and present * 2 >= len(known.slots)


def _wanted_slot(
    node: LayoutNode, links: set[EdgeKey], slots: Mapping[str, Slot], fallback: Slot, taken: set[Slot]
) -> Slot:
    callers = [slots[s] for s, t in links if t == node.id and s in slots]
    callees = [slots[t] for s, t in links if s == node.id and t in slots]
    if node.is_client:
        column = 0
    elif callers:
        column = max(c for c, _ in callers) + 1
    elif callees:
        column = max(1, min(c for c, _ in callees) - 1)
    else:
        column = max(1, fallback[0])
    neighbours = [row for _, row in callers + callees]
    if neighbours:
        return column, round(statistics.median(neighbours))
    return column, 1 + max((row for _, row in taken), default=-1)


def _nearest_free(wanted: Slot, taken: set[Slot]) -> Slot:
    column, row = wanted
    for step in itertools.count():
        for candidate in (row + step, row - step):
            if candidate >= 0 and (column, candidate) not in taken:
                return column, candidate
    raise AssertionError("unreachable")  # pragma: no cover - itertools.count() never ends


def _components(graph: Graph, by_id: Mapping[str, LayoutNode]) -> list[list[str]]:
    """Weakly connected components, biggest first, then by their first member's key."""
    found = [sorted(c, key=lambda i: by_id[i].sort_key) for c in nx.weakly_connected_components(graph)]
    return sorted(found, key=lambda c: (-len(c), by_id[c[0]].sort_key))


def _band(graph: Graph, by_id: Mapping[str, LayoutNode]) -> Layout:
    """One component's layout, its rows from 0, its first column 1 (0 is the clients')."""
    column = _columns(graph, by_id)
    layers: dict[int, list[str]] = defaultdict(list)
    chains: dict[EdgeKey, list[str]] = {}
    adjacent: list[tuple[str, str]] = []
    for key in graph.nodes:
        layers[column[key]].append(key)
    for source, target in graph.edges:
        low, high = sorted((source, target), key=lambda k: column[k])
        chain = [low]
        for between in range(column[low] + 1, column[high]):
            dummy = f"\x00{source}\x00{target}\x00{between}"
            layers[between].append(dummy)
            chain.append(dummy)
        chain.append(high)
        chains[(source, target)] = chain if chain[0] == source else chain[::-1]
        adjacent += [(a, b) for a, b in itertools.pairwise(chain)]
    order = _ordered(layers, adjacent)
    rows = _rows(order, adjacent)
    slots = {key: (column[key], rows[key]) for key in graph.nodes}
    bends = {edge: tuple((_column_of(k, column), rows[k]) for k in chain[1:-1]) for edge, chain in chains.items()}
    return Layout(slots, bends)


def _column_of(key: str, column: Mapping[str, int]) -> int:
    """A node's column, or a bend's (kept in its dummy's key)."""
    return column[key] if key in column else int(key.rsplit("\x00", 1)[1])


def _columns(graph: Graph, by_id: Mapping[str, LayoutNode]) -> dict[str, int]:
    """Longest path from the component's entry points, after turning round the edges that close a cycle."""
    order = sorted(graph.nodes, key=lambda k: (graph.in_degree(k) > 0, by_id[k].sort_key))
    acyclic: Graph = nx.DiGraph()
    acyclic.add_nodes_from(graph.nodes)
    state: dict[str, int] = {}
    for root in order:
        _walk(graph, root, state, acyclic, by_id)
    column: dict[str, int] = {}
    for key in nx.topological_sort(acyclic):
        column[key] = 1 + max((column[p] for p in acyclic.predecessors(key)), default=0)
    return column


def _walk(graph: Graph, root: str, state: dict[str, int], acyclic: Graph, by_id: Mapping[str, LayoutNode]) -> None:
    """Depth-first from `root`: edges to a node on the current path are turned round, others kept."""
    if root in state:
        return
    state[root] = 1
    stack = [(root, iter(sorted(graph.successors(root), key=lambda k: by_id[k].sort_key)))]
    while stack:
        key, successors = stack[-1]
        target = next(successors, None)
        if target is None:
            state[key] = 2
            stack.pop()
            continue
        if state.get(target) == 1:
            acyclic.add_edge(target, key)  # closes a cycle: drawn as is, laid out turned round
        else:
            acyclic.add_edge(key, target)
        if target not in state:
            state[target] = 1
            stack.append((target, iter(sorted(graph.successors(target), key=lambda k: by_id[k].sort_key))))


def _ordered(layers: Mapping[int, list[str]], adjacent: list[tuple[str, str]]) -> dict[int, list[str]]:
    """Each column's order with the fewest crossings the sweeps and swaps found."""
    columns = sorted(layers)
    order = {c: list(layers[c]) for c in columns}
    above: dict[str, list[str]] = defaultdict(list)
    below: dict[str, list[str]] = defaultdict(list)
    for a, b in adjacent:
        above[b].append(a)
        below[a].append(b)
    best, best_crossings = _copy(order), _crossings(order, adjacent)
    budget = SWAP_BUDGET
    for sweep in range(SWEEPS):
        if best_crossings == 0:
            break
        downward = sweep % 2 == 0
        for column in columns[1:] if downward else columns[-2::-1]:
            neighbours = above if downward else below
            reference = order.get(column - 1 if downward else column + 1, [])
            _sort_by_barycentre(order[column], neighbours, {k: i for i, k in enumerate(reference)})
        budget = _transpose(order, adjacent, budget)
        crossings = _crossings(order, adjacent)
        if crossings < best_crossings:
            best, best_crossings = _copy(order), crossings
    return best


def _copy(order: Mapping[int, list[str]]) -> dict[int, list[str]]:
    return {c: list(keys) for c, keys in order.items()}


def _sort_by_barycentre(keys: list[str], neighbours: Mapping[str, list[str]], position: Mapping[str, int]) -> None:
    """Sort in place by the mean position of each key's neighbours; keys without any keep theirs."""
    current = {k: float(i) for i, k in enumerate(keys)}
    weight = {}
    for key in keys:
        placed = [position[n] for n in neighbours.get(key, ()) if n in position]
        weight[key] = sum(placed) / len(placed) if placed else current[key]
    keys.sort(key=lambda k: (weight[k], current[k]))


def _transpose(order: dict[int, list[str]], adjacent: list[tuple[str, str]], budget: int) -> int:
    """Swap neighbours in a column while a swap removes crossings (counted for the pair alone),
    weighing at most `budget` pairs; returns the budget left."""
    links: dict[str, list[str]] = defaultdict(list)
    for a, b in adjacent:
        links[a].append(b)
        links[b].append(a)
    column = {k: c for c, keys in order.items() for k in keys}
    for _ in range(MAX_TRANSPOSE_ROUNDS):
        position = {k: i for keys in order.values() for i, k in enumerate(keys)}
        improved = False
        pairs = sum(len(keys) - 1 for keys in order.values())
        if pairs > budget:
            return budget
        budget -= pairs
        for keys in order.values():
            for i in range(len(keys) - 1):
                upper, lower = keys[i], keys[i + 1]
                if _pair_crossings(lower, upper, links, column, position) < _pair_crossings(
                    upper, lower, links, column, position
                ):
                    keys[i], keys[i + 1] = lower, upper
                    position[upper], position[lower] = i + 1, i
                    improved = True
        if not improved:
            return budget
    return budget


def _pair_crossings(
    upper: str, lower: str, links: Mapping[str, list[str]], column: Mapping[str, int], position: Mapping[str, int]
) -> int:
    """Crossings between the edges of two keys of one column, `upper` above `lower`."""
    total = 0
    for side in (-1, 1):
        mine = [position[n] for n in links[upper] if column[n] - column[upper] == side]
        theirs = [position[n] for n in links[lower] if column[n] - column[lower] == side]
        total += sum(1 for a in mine for b in theirs if a > b)
    return total


def _crossings(order: Mapping[int, list[str]], adjacent: list[tuple[str, str]]) -> int:
    """Crossings of the edges between neighbouring columns, from the columns' orders: per gap,
    the inversions of the right ends once sorted by the left ones (ties never cross)."""
    position = {k: i for keys in order.values() for i, k in enumerate(keys)}
    column = {k: c for c, keys in order.items() for k in keys}
    gaps: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for a, b in adjacent:
        left, right = (a, b) if column[a] < column[b] else (b, a)
        gaps[column[left]].append((position[left], position[right]))
    total = 0
    for pairs in gaps.values():
        seen: list[int] = []
        for _, right_end in sorted(pairs):
            total += len(seen) - bisect.bisect_right(seen, right_end)
            bisect.insort(seen, right_end)
    return total


def _rows(order: Mapping[int, list[str]], adjacent: list[tuple[str, str]]) -> dict[str, int]:
    """Rows keeping each column's order, each column's nodes as near the mean row of their
    neighbours as the order allows (a fan-out centred on its source); sweeps left to right on
    the left neighbours, then back and forth on all of them."""
    neighbours: dict[str, list[str]] = defaultdict(list)
    for a, b in adjacent:
        neighbours[a].append(b)
        neighbours[b].append(a)
    column_of_key = {k: c for c, keys in order.items() for k in keys}
    rows: dict[str, int] = {}
    columns = sorted(order)
    for sweep, sequence in enumerate((columns, columns[::-1], columns)):
        for column in sequence:
            keys = order[column]
            wanted = []
            for index, key in enumerate(keys):
                placed = [rows[n] for n in neighbours[key] if n in rows and (sweep > 0 or column_of_key[n] < column)]
                wanted.append(sum(placed) / len(placed) if placed else float(rows.get(key, index)))
            rows.update(zip(keys, _spread(wanted), strict=True))
    lowest = min(rows.values(), default=0)
    return {key: row - lowest for key, row in rows.items()}


def _spread(wanted: list[float]) -> list[int]:
    """Whole rows one apart at least, in the given order, as near the wanted ones as can be:
    least squares under that order (pool-adjacent-violators on wanted[i] - i), then rounded."""
    blocks: list[list[float]] = []  # [sum, count] of pooled values
    for index, value in enumerate(wanted):
        blocks.append([value - index, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    shifted = [total / count for total, count in blocks for _ in range(int(count))]
    return [round(value) + index for index, value in enumerate(shifted)]


def _place_clients(clients: Sequence[LayoutNode], links: Sequence[EdgeKey], slots: dict[str, Slot]) -> None:
    """Clients in column 0, each level with the middle of what it calls."""
    floor = 0
    wanted = []
    for client in clients:
        rows = sorted(slots[t][1] for s, t in links if s == client.id and t in slots)
        wanted.append((rows[len(rows) // 2] if rows else 0, client.sort_key, client.id))
    for row, _, key in sorted(wanted):
        slots[key] = (0, max(floor, row))
        floor = slots[key][1] + 1
