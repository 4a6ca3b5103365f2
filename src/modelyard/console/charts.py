"""Server-drawn SVG: line charts over time and a pipeline's DAG (no script needed)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .html import Safe, el, esc, number, when

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"]


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], *,
               width: int = 640, height: int = 220, unit: str = "") -> Safe:
    """One chart of several named series of (epoch seconds, value), ascending."""
    points = [p for values in series.values() for p in values]
    if not points:
        return el("figure", el("figcaption", title), el("p", "No data points yet.",
                                                         class_="empty"), class_="chart")
    left, right, top, bottom = 56, 12, 12, 28
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - (abs(y0) or 1) * 0.1, y1 + (abs(y1) or 1) * 0.1
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return round(left + (x - x0) / (x1 - x0) * plot_w, 1)

    def sy(y: float) -> float:
        return round(top + (1 - (y - y0) / (y1 - y0)) * plot_h, 1)

    parts: list[Any] = [
        el("line", x1=left, y1=top + plot_h, x2=left + plot_w, y2=top + plot_h, class_="axis"),
        el("line", x1=left, y1=top, x2=left, y2=top + plot_h, class_="axis"),
    ]
    for fraction in (0, 0.5, 1):
        value = y0 + (y1 - y0) * fraction
        parts.append(el("text", _short(value), x=left - 4, y=sy(value) + 4,
                        text_anchor="end", class_="tick"))
    parts.append(el("text", when(x0)[11:], x=left, y=height - 8, class_="tick"))
    parts.append(el("text", when(x1)[11:], x=left + plot_w, y=height - 8, text_anchor="end",
                    class_="tick"))
    legend = []
    for index, (name, values) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        if not values:
            continue
        path = " ".join(f"{sx(x)},{sy(y)}" for x, y in values)
        parts.append(el("polyline", points=path, fill="none", stroke=colour, stroke_width=2))
        for x, y in values[-200:]:
            parts.append(el("circle", el("title", f"{name} {number(y)}{unit} at {when(x)}"),
                            cx=sx(x), cy=sy(y), r=2.5, fill=colour))
        legend.append(el("li", el("span", "■", fill=None, class_=f"swatch c{index % 6}"),
                         f" {name} (last {number(values[-1][1])}{unit})"))
    svg = el("svg", el("title", title), *parts, viewBox=f"0 0 {width} {height}",
             role="img", class_="chart-svg", preserveAspectRatio="xMidYMid meet")
    return el("figure", el("figcaption", title), svg, el("ul", *legend, class_="legend"),
              class_="chart", data_metric=title)


NODE_W, NODE_H, GAP_X, GAP_Y = 168, 46, 56, 18


def dag(steps: list[dict[str, Any]], edges: Iterable[tuple[str, str]], *,
        statuses: dict[str, str] | None = None, links: dict[str, str] | None = None) -> Safe:
    """Steps (``name``, ``type``, ``layer``) left to right by layer, edges as curves; each
    node coloured by its status (``data-status`` for tests and scripts) and linked."""
    drawn_status = statuses is not None  # a definition alone has no run to show
    statuses = statuses or {}
    links = links or {}
    columns: dict[int, list[dict[str, Any]]] = {}
    for step in steps:
        columns.setdefault(step["layer"], []).append(step)
    positions: dict[str, tuple[int, int]] = {}
    rows = max((len(column) for column in columns.values()), default=1)
    for layer, column in sorted(columns.items()):
        offset = (rows - len(column)) * (NODE_H + GAP_Y) // 2
        for row, step in enumerate(column):
            positions[step["name"]] = (10 + layer * (NODE_W + GAP_X),
                                       10 + offset + row * (NODE_H + GAP_Y))
    width = 20 + (max(columns, default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    height = 20 + rows * (NODE_H + GAP_Y) - GAP_Y
    parts: list[Any] = [el("defs", el("marker", el("path", d="M0,0 L8,4 L0,8 z",
                                                   class_="arrowhead"),
                                      id="arrow", markerWidth=8, markerHeight=8, refX=8,
                                      refY=4, orient="auto"))]
    for source, target in edges:
        if source not in positions or target not in positions:
            continue
        (sx, sy), (tx, ty) = positions[source], positions[target]
        x1, y1, x2, y2 = sx + NODE_W, sy + NODE_H // 2, tx, ty + NODE_H // 2
        middle = (x1 + x2) / 2
        parts.append(el("path", d=f"M{x1},{y1} C{middle},{y1} {middle},{y2} {x2},{y2}",
                        class_="edge", marker_end="url(#arrow)"))
    for step in steps:
        x, y = positions[step["name"]]
        state = statuses.get(step["name"], "NotStarted")
        node = [el("title", f"{step['name']} ({step['type']}): {state}"),
                el("rect", x=x, y=y, width=NODE_W, height=NODE_H, rx=8,
                   class_=f"node st-{state}"),
                el("text", _clip(step["name"], 20), x=x + 10, y=y + 19, class_="node-name"),
                el("text", f"{step['type']} · {state}" if drawn_status else step["type"],
                   x=x + 10, y=y + 36, class_="node-kind")]
        group = el("g", *node, class_="dag-node", data_step=step["name"], data_status=state)
        if step["name"] in links:
            group = el("a", group, href=links[step["name"]])
        parts.append(group)
    return el("div", el("svg", el("title", "Pipeline steps"), *parts,
                        viewBox=f"0 0 {width} {height}", width=width, height=height,
                        role="img", class_="dag"), class_="dag-wrap scroll")


def _short(value: float) -> str:
    """An axis label that fits: 0.8512, 12.5, 3.4k, 2.1M."""
    size = abs(value)
    if size >= 1e9:
        return f"{value / 1e9:.3g}G"
    if size >= 1e6:
        return f"{value / 1e6:.3g}M"
    if size >= 1e4:
        return f"{value / 1e3:.3g}k"
    return number(round(value, 4))


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[:size - 1] + "…"


__all__ = ["line_chart", "dag", "esc"]
