"""A lineage graph drawn as SVG: dataset versions, runs and pipeline steps, model versions and
deployments as boxes in rows from top (sources) to bottom (what they fed), each linked to its
page. A node reached by several paths appears once; step outputs (artifacts) are folded into
the edges between the steps that made and read them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from html import escape

from loopml.services.lineage import LineageNode

BOX_W, BOX_H = 210, 34
GAP_X, GAP_Y = 16, 26
PAD = 10
KIND_FILL = {
    "dataset": "#e8f1fb",
    "run": "#f3f4f6",
    "step": "#f3f4f6",
    "pipeline": "#eef6ee",
    "model": "#fdf0e6",
    "deployment": "#f4ecfb",
}

Key = tuple[str, str]


def _collect(
    node: LineageNode, nodes: dict[Key, LineageNode], edges: set[tuple[Key, Key]]
) -> list[Key]:
    """Record `node` and what fed it; returns the keys `node` stands for as a target (an
    artifact stands for the steps that made it)."""
    feeders = [k for child in node.children for k in _collect(child, nodes, edges)]
    if node.kind == "artifact":
        return feeders
    key = (node.kind, node.ref)
    nodes.setdefault(key, node)
    edges.update((feeder, key) for feeder in feeders)
    return [key]


def _layers(keys: Iterable[Key], edges: set[tuple[Key, Key]]) -> dict[Key, int]:
    """Each node's column: the longest path to it from a node nothing feeds."""
    inputs: dict[Key, list[Key]] = {k: [] for k in keys}
    for source, target in edges:
        inputs[target].append(source)
    layer: dict[Key, int] = {}

    def depth(key: Key, seen: frozenset[Key]) -> int:
        if key not in layer:
            fed_by = [s for s in inputs[key] if s not in seen]
            layer[key] = 1 + max((depth(s, seen | {key}) for s in fed_by), default=-1)
        return layer[key]

    for key in inputs:
        depth(key, frozenset())
    return layer


def lineage_graph(
    root: LineageNode,
    deployments: Iterable[tuple[str, str]],
    href: Callable[[str, str], str | None],
) -> str:
    """The SVG of everything upstream of `root`, plus the deployments `(name, url)` it feeds."""
    nodes: dict[Key, LineageNode] = {}
    edges: set[tuple[Key, Key]] = set()
    _collect(root, nodes, edges)
    links: dict[Key, str | None] = {k: href(k[0], k[1]) for k in nodes}
    top = (root.kind, root.ref)
    for name, url in deployments:
        key = ("deployment", name)
        nodes[key] = LineageNode("deployment", name, f"deployment {name}")
        links[key] = url
        edges.add((top, key))
    layer = _layers(nodes, edges)
    columns: dict[int, list[Key]] = {}
    for key in sorted(nodes, key=lambda k: (layer[k], k[0], nodes[k].label)):
        columns.setdefault(layer[key], []).append(key)
    widest = max(len(keys) for keys in columns.values())
    width = PAD * 2 + widest * (BOX_W + GAP_X) - GAP_X
    place = {  # each row centred
        key: (
            (width - len(keys) * (BOX_W + GAP_X) + GAP_X) / 2 + i * (BOX_W + GAP_X),
            PAD + row * (BOX_H + GAP_Y),
        )
        for row, keys in columns.items()
        for i, key in enumerate(keys)
    }
    height = PAD * 2 + len(columns) * (BOX_H + GAP_Y) - GAP_Y
    parts = [
        f'<svg class="lineage" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="Lineage graph" '
        f'xmlns="http://www.w3.org/2000/svg"><title>Lineage graph</title>'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker>'
        "</defs>"
    ]
    for source, target in sorted(edges):
        x1, y1 = place[source][0] + BOX_W / 2, place[source][1] + BOX_H
        x2, y2 = place[target][0] + BOX_W / 2, place[target][1]
        middle = (y1 + y2) / 2
        parts.append(
            f'<path d="M{x1},{y1} C{x1},{middle} {x2},{middle} {x2},{y2}" fill="none" '
            f'stroke="#6b7280" stroke-width="1.2" marker-end="url(#arrow)"/>'
        )
    for key, (x, y) in place.items():
        parts.append(_box(nodes[key], x, y, links.get(key)))
    parts.append("</svg>")
    return "".join(parts)


def _box(node: LineageNode, x: float, y: float, link: str | None) -> str:
    label = node.label if len(node.label) <= 30 else node.label[:29] + "…"
    box = (
        f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="5" '
        f'fill="{KIND_FILL.get(node.kind, "#fff")}" stroke="#6b7280"/>'
        f'<text x="{x + 8}" y="{y + 13}" font-size="9" fill="#5a6472">{escape(node.kind.upper())}'
        f'</text><text x="{x + 8}" y="{y + 27}" font-size="12" fill="#1c2430">{escape(label)}'
        f"</text><title>{escape(node.label)}</title>"
    )
    if link is None:
        return f"<g>{box}</g>"
    return f'<a href="{escape(link)}" aria-label="{escape(node.label)}">{box}</a>'
