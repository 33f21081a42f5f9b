"""The lineage graph, laid out in columns and drawn as inline SVG with a link on every node.

Columns from left to right: sources (a source derived from others stands right of them),
feature views, feature services, training datasets, models. Within a column, nodes are ordered by the mean
position of their neighbours (a few barycentre sweeps), which keeps edges from crossing much.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from markupsafe import Markup, escape

Node = tuple[str, str]
"""(kind, name): kind is ``source``, ``feature_view``, ``feature_service``, ``training_dataset`` or ``model``."""

KIND_ORDER = ("source", "feature_view", "feature_service", "training_dataset", "model")
KIND_LABELS = {
    "source": "Sources",
    "feature_view": "Feature views",
    "feature_service": "Feature services",
    "training_dataset": "Training datasets",
    "model": "Models",
}
KIND_STYLE = {  # fill, stroke: light fills under dark text keep a contrast ratio well above 7:1
    "source": ("#ecfdf5", "#047857"),
    "feature_view": ("#eff6ff", "#1d4ed8"),
    "feature_service": ("#fef3c7", "#b45309"),
    "training_dataset": ("#fdf2f8", "#be185d"),
    "model": ("#f5f3ff", "#6d28d9"),
}

CHAR_W = 7.4  # average width of a 13 px sans-serif character
NODE_H = 28
ROW_H = 44
GAP_X = 72
PAD = 16
HEADER_H = 28


@dataclass(frozen=True)
class PlacedNode:
    kind: str
    name: str
    column: int
    x: float
    y: float
    width: float
    focus: bool


@dataclass(frozen=True)
class LineageGraph:
    nodes: list[PlacedNode]
    edges: list[tuple[Node, Node]]
    width: float
    height: float
    svg: Markup


def related(edges: Iterable[tuple[Node, Node]], focus: Node) -> set[Node]:
    """``focus`` with everything upstream and downstream of it."""
    edges = list(edges)
    keep = {focus}
    for direction in (0, 1):
        frontier = [focus]
        while frontier:
            node = frontier.pop()
            for edge in edges:
                if edge[direction] == node and edge[1 - direction] not in keep:
                    keep.add(edge[1 - direction])
                    frontier.append(edge[1 - direction])
    return keep


def _columns(nodes: set[Node], edges: list[tuple[Node, Node]]) -> dict[Node, int]:
    parents: dict[Node, list[Node]] = {}
    for src, dst in edges:
        if src[0] == dst[0] == "source":
            parents.setdefault(dst, []).append(src)
    depth: dict[Node, int] = {}

    def source_depth(node: Node, seen: frozenset[Node] = frozenset()) -> int:
        if node not in depth:
            ups = [p for p in parents.get(node, []) if p not in seen]
            depth[node] = 1 + max((source_depth(p, seen | {node}) for p in ups), default=-1)
        return depth[node]

    source_columns = 1 + max((source_depth(n) for n in nodes if n[0] == "source"), default=0)
    column = {}
    for node in nodes:
        if node[0] == "source":
            column[node] = source_depth(node)
        else:
            column[node] = source_columns - 1 + KIND_ORDER.index(node[0])
    return column


def _barycentre(
    node: Node,
    column: int,
    position: Mapping[Node, int],
    neighbours: Mapping[Node, list[Node]],
    columns: Mapping[Node, int],
) -> float:
    near = [position[m] for m in neighbours.get(node, []) if m in position and columns[m] != column]
    return sum(near) / len(near) if near else position[node]


def _order(columns: dict[Node, int], edges: list[tuple[Node, Node]]) -> dict[int, list[Node]]:
    by_column: dict[int, list[Node]] = {}
    for node in sorted(columns, key=lambda n: n[1]):
        by_column.setdefault(columns[node], []).append(node)
    neighbours: dict[Node, list[Node]] = {}
    for src, dst in edges:
        neighbours.setdefault(src, []).append(dst)
        neighbours.setdefault(dst, []).append(src)
    ids = sorted(by_column)
    for sweep in range(4):
        for c in ids if sweep % 2 == 0 else reversed(ids):
            position = {n: i for col in by_column.values() for i, n in enumerate(col)}
            by_column[c].sort(key=lambda n: (_barycentre(n, c, position, neighbours, columns), n[1]))
    return by_column


def layout(
    edges: Iterable[tuple[Node, Node]],
    *,
    href: Callable[[str, str], str | None],
    focus: Node | None = None,
    extra_nodes: Iterable[Node] = (),
) -> LineageGraph:
    """Lay out the graph of ``edges`` (plus ``extra_nodes`` with no edges) and draw it.
    With ``focus``, only that node and what is upstream and downstream of it are drawn."""
    all_edges = sorted({(s, d) for s, d in edges if s[0] in KIND_ORDER and d[0] in KIND_ORDER})
    nodes = {n for e in all_edges for n in e} | {n for n in extra_nodes if n[0] in KIND_ORDER}
    if focus is not None:
        keep = related(all_edges, focus) if focus in nodes else set()
        nodes = nodes & keep
        all_edges = [(s, d) for s, d in all_edges if s in keep and d in keep]
    columns = _columns(nodes, all_edges)
    ordered = _order(columns, all_edges)
    widths = {
        c: max(120.0, max(len(n[1]) for n in col) * CHAR_W + 24, len(KIND_LABELS[col[0][0]]) * CHAR_W + 8)
        for c, col in ordered.items()
    }
    placed: dict[Node, PlacedNode] = {}
    x = float(PAD)
    tallest = max((len(col) for col in ordered.values()), default=0)
    for c in sorted(ordered):
        col = ordered[c]
        offset = (tallest - len(col)) * ROW_H / 2  # centre short columns against the tallest
        for i, node in enumerate(col):
            placed[node] = PlacedNode(
                node[0], node[1], c, x, PAD + HEADER_H + offset + i * ROW_H, widths[c], node == focus
            )
        x += widths[c] + GAP_X
    width = max(x - GAP_X + PAD, 200.0)
    height = PAD * 2 + HEADER_H + max(tallest, 1) * ROW_H
    svg = _draw(ordered, placed, all_edges, width, height, href)
    return LineageGraph(list(placed.values()), all_edges, width, height, svg)


def _draw(
    ordered: Mapping[int, list[Node]],
    placed: Mapping[Node, PlacedNode],
    edges: list[tuple[Node, Node]],
    width: float,
    height: float,
    href: Callable[[str, str], str | None],
) -> Markup:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" role="img" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" aria-labelledby="lineage-title lineage-desc">',
        '<title id="lineage-title">Lineage: sources, feature views, feature services, training datasets and models</title>',
        f'<desc id="lineage-desc">{len(placed)} nodes and {len(edges)} edges; the table below lists every edge.</desc>',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#6b7280"/></marker></defs>',
    ]
    seen_kinds: set[str] = set()
    for c in sorted(ordered):
        kind = ordered[c][0][0]
        first = placed[ordered[c][0]]
        label = KIND_LABELS[kind] if kind not in seen_kinds else ""
        seen_kinds.add(kind)
        parts.append(
            f'<text x="{first.x:.1f}" y="{PAD + 12}" font-size="12" font-weight="600" fill="#374151">{escape(label)}</text>'
        )
    for src, dst in edges:
        a, b = placed[src], placed[dst]
        x1, y1 = a.x + a.width, a.y + NODE_H / 2
        x2, y2 = b.x, b.y + NODE_H / 2
        mid = (x1 + x2) / 2
        parts.append(
            f'<path class="edge" d="M {x1:.1f} {y1:.1f} C {mid:.1f} {y1:.1f}, {mid:.1f} {y2:.1f}, {x2:.1f} {y2:.1f}" '
            f'fill="none" stroke="#6b7280" stroke-width="1.4" marker-end="url(#arrow)">'
            f"<title>{escape(src[1])} → {escape(dst[1])}</title></path>"
        )
    for node in placed.values():
        fill, stroke = KIND_STYLE[node.kind]
        link = href(node.kind, node.name)
        weight = ' font-weight="700"' if node.focus else ""
        shape = (
            f'<rect x="{node.x:.1f}" y="{node.y:.1f}" width="{node.width:.1f}" height="{NODE_H}" rx="6" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{3 if node.focus else 1.4}"/>'
            f'<text x="{node.x + 12:.1f}" y="{node.y + NODE_H / 2 + 4.5:.1f}" font-size="13" fill="#111827"'
            f"{weight}>{escape(node.name)}</text>"
        )
        title = f"<title>{escape(KIND_LABELS[node.kind][:-1].lower())} {escape(node.name)}</title>"
        attrs = f'class="node node-{node.kind}" data-kind="{node.kind}" data-name="{escape(node.name)}"'
        if link:
            parts.append(f'<a href="{escape(link)}" {attrs}>{title}{shape}</a>')
        else:
            parts.append(f"<g {attrs}>{title}{shape}</g>")
    parts.append("</svg>")
    return Markup("".join(parts))
