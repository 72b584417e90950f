"""Figures (PNG + SVG) from the tables: one colour per format in every figure."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.patches
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from storebench.errors import StorebenchError
from storebench.present.catalog import FIGURES
from storebench.present.tables import NOT_VERIFIED, PERCENTILES

Rows = list[dict[str, Any]]
Tables = Mapping[str, Rows]

# Okabe-Ito, then Paul Tol's colours: distinguishable with the common colour-vision
# deficiencies. Every format also gets its own marker; 16 colours and 15 markers give
# distinct pairs for up to 240 formats (the default config has 11, the full one more).
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#000000",
    "#882255",
    "#44AA99",
    "#F0E442",
    "#332288",
    "#999933",
    "#AA4499",
    "#117733",
    "#888888",
    "#661100",
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p", "d", "H", "8")
WIDTH_IN = 3.5  # one paper column
DPI = 200


@dataclasses.dataclass(frozen=True)
class Palette:
    """The run's formats in config order (``order``): a format's colour and marker come
    from its place there, so it keeps them in every figure, even one whose table lacks
    others."""

    order: tuple[str, ...] = ()

    def formats(self, rows: Rows) -> list[str]:
        """The formats of ``rows``, in the run's order (unknown ones last)."""
        seen = dict.fromkeys(row["format"] for row in rows)
        order = self.order
        return sorted(seen, key=lambda f: order.index(f) if f in order else len(order))

    def styles(self, formats: Sequence[str]) -> dict[str, dict[str, str]]:
        """Colour and marker of each of ``formats``."""
        order = [*self.order, *(f for f in formats if f not in self.order)]
        return {
            name: {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)]}
            for name in formats
            for i in [order.index(name)]
        }


def _where(rows: Rows, **conditions: Any) -> Rows:
    """The rows matching every condition, sorted by n."""
    return sorted(
        (r for r in rows if all(r.get(k) == v for k, v in conditions.items())),
        key=lambda r: r["n"],
    )


def _time_lines(
    ax: Axes,
    rows: Rows,
    styles: Mapping[str, Mapping[str, str]],
    linestyle: str = "-",
    label_suffix: str = "",
) -> None:
    """Estimate per n as a line, its interval as a band, one line per format."""
    for fmt, style in styles.items():
        series = _where(rows, format=fmt)
        if not series:
            continue
        n = [r["n"] for r in series]
        ax.plot(
            n,
            [r["median"] for r in series],
            linestyle=linestyle,
            markersize=3.5,
            linewidth=1.2,
            label=fmt + label_suffix,
            **style,
        )
        ax.fill_between(
            n,
            [r["median_lo"] for r in series],
            [r["median_hi"] for r in series],
            color=style["color"],
            alpha=0.18,
            linewidth=0,
        )


def _new(height: float = 2.6, rows: int = 1) -> tuple[Figure, Any]:
    fig, axes = plt.subplots(
        rows, 1, figsize=(WIDTH_IN, height), layout="constrained", sharex=True, squeeze=False
    )
    for ax in axes.flat:
        ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
    return fig, axes[0, 0] if rows == 1 else axes[:, 0]


def _format_legend(
    fig: Figure, styles: Mapping[str, Mapping[str, str]], extra: Sequence[Line2D] = ()
) -> None:
    """One legend entry per format (colour and marker), below the axes, off the data."""
    handles = [
        Line2D([], [], linewidth=1.2, markersize=3.5, label=name, **style)
        for name, style in styles.items()
    ]
    _legend_below(fig, [*handles, *extra])


def _legend_below(fig: Figure, handles: Sequence[Any]) -> None:
    """A legend of ``handles`` below the axes, off the data, four to a row (three when
    four columns of these labels would run off the figure's sides)."""
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=_legend_columns([str(h.get_label()) for h in handles]),
        fontsize=6,
        frameon=False,
        handlelength=1.8,
        columnspacing=1.0,
    )


# Characters of legend labels a row holds across the figure's width, with each
# column's marker and spacing counted as LEGEND_COLUMN_CHARS.
LEGEND_ROW_CHARS = 66
LEGEND_COLUMN_CHARS = 6


def _legend_columns(labels: Sequence[str]) -> int:
    """Four columns, or three when four would be wider than the figure (matplotlib
    fills a legend's columns in turn, so a column is as wide as its longest label)."""
    if not labels:
        return 1
    rows = -(-len(labels) // 4)
    columns = [labels[i : i + rows] for i in range(0, len(labels), rows)]
    width = sum(max(map(len, column)) + LEGEND_COLUMN_CHARS for column in columns)
    return min(4 if width <= LEGEND_ROW_CHARS else 3, len(labels))


def _legend_height(entries: int) -> float:
    """Inches the legend below the axes needs (three to a row, at most)."""
    return 0.2 * -(-entries // 3)


def _panels(count: int, panel_height: float, legend_entries: int) -> tuple[Figure, list[Axes]]:
    """A figure of ``count`` stacked panels with room for the legend below them."""
    fig, axes = _new(panel_height * count + 0.25 + _legend_height(legend_entries), rows=count)
    return fig, [axes] if count == 1 else list(axes)


def _log_time_axes(ax: Axes, log_y: bool = True, xlabel: bool = True) -> None:
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    if xlabel:
        ax.set_xlabel("images (n)")
    ax.set_ylabel("time (s)")


def _values(rows: Rows, column: str, preferred: str) -> list[str]:
    """Distinct values of ``column``, ``preferred`` first if present."""
    seen = list(dict.fromkeys(r[column] for r in rows if r[column] != ""))
    return sorted(seen, key=lambda v: (v != preferred, seen.index(v)))


def _classic(rows: Rows) -> tuple[str, str]:
    """The classic read condition (warm, sequential), or the nearest one measured."""
    return _values(rows, "cache", "warm")[0], _values(rows, "order", "sequential")[0]


def store_time(tables: Tables, palette: Palette, log_y: bool) -> Figure:
    rows = tables["store"]
    styles = palette.styles(palette.formats(rows))
    fig, ax = _new(2.4 + _legend_height(len(styles)))
    _time_lines(ax, _where(rows, measurement="store"), styles)
    _time_lines(ax, _where(rows, measurement="store_durable"), styles, ":", " durable")
    _log_time_axes(ax, log_y)
    ax.set_title(
        "Store: writer returns (solid), durable (dotted)\nband = interval (see caption)", fontsize=8
    )
    _format_legend(fig, styles)
    return fig


def read_time(tables: Tables, palette: Palette, log_y: bool) -> Figure:
    rows = tables["read"]
    cache, order = _classic(rows)
    styles = palette.styles(palette.formats(rows))
    fig, ax = _new(2.4 + _legend_height(len(styles)))
    _time_lines(ax, _where(rows, cache=cache, order=order), styles)
    _log_time_axes(ax, log_y)
    ax.set_title(
        f"Read n images back ({cache} cache, {order} order)\nband = interval (see caption)",
        fontsize=8,
    )
    _format_legend(fig, styles)
    return fig


def read_write(tables: Tables, palette: Palette) -> Figure:
    reads = tables["read"]
    cache, order = _classic(reads)
    styles = palette.styles(palette.formats(tables["store"] + reads))
    fig, ax = _new(2.6 + _legend_height(len(styles)))
    _time_lines(ax, _where(tables["store"], measurement="store"), styles, "-")
    _time_lines(ax, _where(reads, cache=cache, order=order), styles, "--", " read")
    _log_time_axes(ax)
    ax.set_title(f"Store (solid) and read (dashed)\nread: {cache}, {order}", fontsize=8)
    _format_legend(fig, styles)
    return fig


def read_cache(tables: Tables, palette: Palette) -> Figure:
    """Warm vs cold page cache, per format, in the classic order."""
    rows = tables["read"]
    order = _classic(rows)[1]
    styles = palette.styles(palette.formats(rows))
    fig, ax = _new(2.6 + _legend_height(len(styles)))
    for cache, linestyle in zip(_values(rows, "cache", "warm"), ("-", "--", ":"), strict=False):
        _time_lines(ax, _where(rows, cache=cache, order=order), styles, linestyle)
    _log_time_axes(ax)
    ax.set_title(
        f"Warm (solid) vs cold (dashed) page cache\n{order} order; band = interval (see caption)",
        fontsize=8,
    )
    _format_legend(fig, styles)
    return fig


def read_order(tables: Tables, palette: Palette) -> Figure:
    """Every read order (sequential, random, shards), one panel per cache state."""
    rows = tables["read"]
    caches = _values(rows, "cache", "warm")
    orders = _values(rows, "order", "sequential")
    lines = dict(zip(orders, ("-", "--", ":"), strict=False))
    names = {"-": "solid", "--": "dashed", ":": "dotted"}
    styles = palette.styles(palette.formats(rows))
    fig, axes = _panels(len(caches), 2.2, len(styles))
    for ax, cache in zip(axes, caches, strict=True):
        for order, linestyle in lines.items():
            _time_lines(ax, _where(rows, cache=cache, order=order), styles, linestyle)
        _log_time_axes(ax, xlabel=ax is axes[-1])
        key = ", ".join(f"{order} ({names[line]})" for order, line in lines.items())
        ax.set_title(f"{cache} cache: {key}", fontsize=8)
    _format_legend(fig, styles)
    return fig


def latency(tables: Tables, palette: Palette) -> Figure:
    """Distribution (ECDF) of single-image read latency, one panel per mode."""
    rows = tables["latency"]
    modes = _values(rows, "mode", "open_read_close")
    styles = palette.styles(palette.formats(rows))
    fig, axes = _panels(len(modes), 2.0, len(styles))
    titles = {
        "open_read_close": "open the store, read one image, close",
        "lookup": "one image from an already open store",
    }
    for ax, mode in zip(axes, modes, strict=True):
        for fmt, style in styles.items():
            row = next((r for r in rows if r["format"] == fmt and r["mode"] == mode), None)
            if row is None:
                continue
            levels = [0, *PERCENTILES, 100]
            points = [row["min"], *(row[f"p{p}"] for p in PERCENTILES), row["max"]]
            ax.plot(points, levels, markersize=3, linewidth=1.2, label=fmt, **style)
        ax.set_xscale("log")
        ax.set_ylim(0, 101)
        ax.set_yticks([0, 25, 50, 75, 100])
        ax.set_ylabel("percentile")
        ax.set_title(f"{titles.get(mode, mode)} (warm)", fontsize=8)
    axes[-1].set_xlabel("latency per image (s)")
    _format_legend(fig, styles)
    return fig


def disk_stacked(tables: Tables, palette: Palette) -> Figure:
    """One horizontal bar per format, stacked over the cutoffs (the article's chart)."""
    rows = tables["usage"]
    formats = palette.formats(rows)
    cutoffs = sorted({r["n"] for r in rows})
    fig, ax = _new(0.9 + 0.2 * len(formats))
    left = [0.0] * len(formats)
    shades = plt.get_cmap("Greys")
    for i, n in enumerate(cutoffs):
        allocated = {r["format"]: r["allocated_bytes"] / 2**20 for r in rows if r["n"] == n}
        values = [allocated.get(f, 0.0) for f in formats]
        ax.barh(
            formats,
            values,
            left=left,
            edgecolor="black",
            linewidth=0.4,
            color=shades(0.2 + 0.7 * i / max(1, len(cutoffs) - 1)),
            label=f"n = {n:,}",
        )
        left = [a + v for a, v in zip(left, values, strict=True)]
    ax.invert_yaxis()  # first format on top
    ax.set_xlabel("allocated on disk (MiB)")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("Disk usage, stacked over the cutoffs", fontsize=8)
    fig.legend(
        loc="outside lower center",
        ncol=min(5, len(cutoffs)),
        fontsize=6,
        frameon=False,
        handlelength=1.2,
        columnspacing=0.8,
    )
    return fig


def bytes_per_image(tables: Tables, palette: Palette) -> Figure:
    rows = tables["usage"]
    styles = palette.styles(palette.formats(rows))
    fig, ax = _new(2.4 + _legend_height(len(styles) + 1))
    for fmt, style in styles.items():
        series = sorted((r for r in rows if r["format"] == fmt), key=lambda r: r["n"])
        ax.plot(
            [r["n"] for r in series],
            [r["bytes_per_image"] for r in series],
            markersize=3.5,
            linewidth=1.2,
            label=fmt,
            **style,
        )
    pixels = int(rows[0].get("image_bytes") or 3072) if rows else 3072
    raw = ax.axhline(
        pixels, color="grey", linestyle=":", linewidth=1, label=f"{pixels:,} B of pixels"
    )
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)  # less than a decade: linear, from zero
    ax.set_xlabel("images stored (n)")
    ax.set_ylabel("allocated bytes per image (B)")
    ax.set_title("Disk usage per image", fontsize=8)
    _format_legend(fig, styles, extra=[raw])
    return fig


def image_size(tables: Tables, palette: Palette) -> Figure:
    """Time per image against image size (store; warm and cold shuffled reads) and the
    warm shuffled read's MB/s, one line per format."""
    rows = tables["image_size"]
    styles = palette.styles(palette.formats(rows))
    panels = [
        ("store", {"measurement": "store"}, "s_per_image", "store: s per image"),
        (
            "warm random read",
            {"cache": "warm", "order": "random"},
            "s_per_image",
            "read, warm, shuffled: s per image",
        ),
        (
            "cold random read",
            {"cache": "cold", "order": "random"},
            "s_per_image",
            "read, cold, shuffled: s per image",
        ),
        (
            "warm random MB/s",
            {"cache": "warm", "order": "random"},
            "mb_per_s",
            "read, warm, shuffled: MB/s",
        ),
    ]
    fig, axes = _panels(len(panels), 1.7, len(styles))
    for ax, (_, where, column, title) in zip(axes, panels, strict=True):
        for fmt, style in styles.items():
            series = sorted(
                (
                    r
                    for r in rows
                    if r["format"] == fmt and all(r[k] == v for k, v in where.items())
                ),
                key=lambda r: r["size"],
            )
            if not series:
                continue
            sizes = [r["size"] for r in series]
            ax.plot(
                sizes,
                [r[column] for r in series],
                markersize=3.5,
                linewidth=1.2,
                label=fmt,
                **style,
            )
            if column == "s_per_image":
                ax.fill_between(
                    sizes,
                    [r["s_per_image_lo"] for r in series],
                    [r["s_per_image_hi"] for r in series],
                    color=style["color"],
                    alpha=0.18,
                    linewidth=0,
                )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sorted({r["size"] for r in rows}))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
        ax.set_title(title, fontsize=7)
        ax.tick_params(labelsize=6)
    axes[-1].set_xlabel("image size (px, square)", fontsize=8)
    _format_legend(fig, styles)
    return fig


TIER_HATCHES = ("", "////", "....", "xxxx", "\\\\\\\\", "++++")


def tiers(tables: Tables, palette: Palette) -> Figure:
    """Images/s per format on each storage tier (bars side by side, one hatch per tier,
    the format's colour), for the store and the shuffled reads, at the largest n every
    tier measured; error bars: each tier's own interval."""
    rows = tables["tiers"]
    names = list(dict.fromkeys(r["tier"] for r in rows))
    by_tier = [{r["n"] for r in rows if r["tier"] == t} for t in names]
    common = set.intersection(*by_tier)
    n = max(common) if common else max(r["n"] for r in rows)
    formats = palette.formats(rows)
    styles = palette.styles(formats)
    panels = [
        ("store", {"measurement": "store"}),
        ("read, cold cache, shuffled", {"cache": "cold", "order": "random"}),
        ("read, warm cache, shuffled", {"cache": "warm", "order": "random"}),
    ]
    # a cold read whose cache was not shown cold stays in its panel, starred
    rows = [
        {**r, "cache": "cold", "starred": True} if r.get("cache") == NOT_VERIFIED else r
        for r in rows
    ]
    panels = [(t, w) for t, w in panels if _where(rows, n=n, **w)]
    fig, axes = _panels(len(panels), 1.5, len(names))
    width = 0.8 / len(names)
    for ax, (title, where) in zip(axes, panels, strict=True):
        cells = {(r["format"], r["tier"]): r for r in _where(rows, n=n, **where)}
        for i, fmt in enumerate(formats):
            for j, tier in enumerate(names):
                row = cells.get((fmt, tier))
                if row is None:
                    continue
                low_mid_high = (row["images_per_s_lo"], row["images_per_s"], row["images_per_s_hi"])
                x = i - 0.4 + width * (j + 0.5)
                _bar(ax, x, width, low_mid_high, styles[fmt]["color"], TIER_HATCHES[j % 6])
                if row.get("starred"):
                    ax.annotate(
                        "*",
                        (x, low_mid_high[2]),
                        xytext=(0, 1),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
        ax.set_yscale("log")
        ax.set_xticks(range(len(formats)))
        ax.set_xticklabels(formats, rotation=45, ha="right", fontsize=5.5)
        ax.set_ylabel("images/s", fontsize=7)
        ax.set_title(f"{title}, n = {n:,}", fontsize=7)
        ax.tick_params(labelsize=6)
    handles = [
        matplotlib.patches.Patch(
            facecolor="white", edgecolor="black", hatch=TIER_HATCHES[j % 6], label=tier
        )
        for j, tier in enumerate(names)
    ]
    _legend_below(fig, handles)
    return fig


def _at_largest(rows: Rows, **where: Any) -> Rows:
    """The rows matching ``where`` at the largest n among them."""
    matching = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    if not matching:
        return []
    n = max(r["n"] for r in matching)
    return [r for r in matching if r["n"] == n]


# Labels beside scattered points, in points on the page at fontsize 5: a glyph's mean
# width and a line's height (DejaVu Sans), the gap between a marker and its label, and
# the directions tried, nearest first (right, left, above, below, then the diagonals).
LABEL_CHAR_PT, LABEL_LINE_PT, LABEL_GAP_PT = 2.9, 6.0, 1.5
LABEL_DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1))
LABEL_RINGS_PT = (0.0, 8.0, 16.0, 26.0)  # further out, a leader line joins label and point

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def _overlap(a: Box, b: Box) -> float:
    """The area two boxes share."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, width) * max(0.0, height)


def _area(box: Box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _label_box(x: float, y: float, dx: float, dy: float, width: float) -> Box:
    """The box of a label of ``width`` whose anchor is offset (dx, dy) from (x, y):
    left-aligned right of the point, right-aligned left of it, centred above or below."""
    left = x + dx if dx > 0 else x + dx - width if dx < 0 else x - width / 2
    return left, y + dy - LABEL_LINE_PT / 2, left + width, y + dy + LABEL_LINE_PT / 2


def _label_places(
    points: dict[str, tuple[float, float]],
    radius: dict[str, float] | None = None,
    bounds: Box | None = None,
) -> dict[str, tuple[float, float, bool]]:
    """Where each point's label goes: its offset (dx, dy) from the point, in points on
    the page, and whether it is far enough to need a leader line.

    ``points`` are on the page (points), ``radius`` each marker's radius there, and
    ``bounds`` the axes' box. From the highest point down, each label takes the nearest
    place that covers no marker and no label already placed and stays inside the
    axes; where every place collides, the one that covers least.
    """
    radius = radius or {}
    size = {name: radius.get(name, 2.0) for name in points}
    markers = {
        name: (x - size[name], y - size[name], x + size[name], y + size[name])
        for name, (x, y) in points.items()
    }
    placed: list[Box] = []
    places = {}
    for name in sorted(points, key=lambda n: (-points[n][1], n)):
        x, y = points[name]
        width = LABEL_CHAR_PT * len(name)
        others = [box for other, box in markers.items() if other != name]
        scored = []
        for ring, extra in enumerate(LABEL_RINGS_PT):
            reach = size[name] + LABEL_GAP_PT + extra
            for ux, uy in LABEL_DIRECTIONS:
                dx, dy = ux * reach, uy * (reach + (LABEL_LINE_PT / 2 if ux == 0 else 0))
                box = _label_box(x, y, dx, dy, width)
                cost = sum(_overlap(box, other) for other in [*placed, *others])
                if bounds is not None:
                    cost += _area(box) - _overlap(box, bounds)
                scored.append((cost, len(scored), dx, dy, ring > 0, box))
        free = [candidate for candidate in scored if candidate[0] == 0]
        _, _, dx, dy, far, box = free[0] if free else min(scored)
        places[name] = (dx, dy, far)
        placed.append(box)
    return places


def tradeoff(tables: Tables, palette: Palette) -> Figure:
    """Bytes on disk per image against shuffled-read images/s (cold and warm), one marker
    per format sized by its store time; the Pareto front (nothing both smaller and
    faster) joined by a line."""
    usage = _at_largest(tables["usage"])
    size = {r["format"]: float(r["bytes_per_image"]) for r in usage}
    store = {
        r["format"]: float(r["median"]) for r in _at_largest(tables["store"], measurement="store")
    }
    styles = palette.styles(palette.formats(usage))
    fig, axes = _panels(2, 1.9, len(styles))
    slowest = max(store.values(), default=1.0) or 1.0
    for ax, cache in zip(axes, ("cold", "warm"), strict=True):
        reads = _at_largest(tables["read"], measurement="read", cache=cache, order="random")
        points, radius = {}, {}
        for row in reads:
            fmt = row["format"]
            if fmt not in size or fmt not in styles:
                continue
            points[fmt] = (size[fmt], row["n"] / float(row["median"]))
            area = 12 + 120 * (store.get(fmt, 0.0) / slowest) ** 0.5
            radius[fmt] = area**0.5 / 2  # scatter sizes are areas in points squared
            ax.scatter(
                *points[fmt],
                s=area,
                color=styles[fmt]["color"],
                marker=styles[fmt]["marker"],
                edgecolors="black",
                linewidths=0.4,
                zorder=3,
            )
        front, best = [], 0.0
        for x, y in sorted(points.values(), key=lambda p: (p[0], -p[1])):
            if y > best:
                front.append((x, y))
                best = y
        if len(front) > 1:
            ax.plot(
                *zip(*front, strict=True), color="grey", linewidth=0.8, linestyle="--", zorder=2
            )
        ax.set_yscale("log")
        ax.margins(x=0.06, y=0.12)  # the largest markers stay inside the axes
        ax.autoscale_view()  # the limits are final: labels are placed on the page
        to_points = 72 / fig.dpi
        on_page = {fmt: tuple(ax.transData.transform(xy) * to_points) for fmt, xy in points.items()}
        frame = ax.get_window_extent()
        bounds = (
            frame.x0 * to_points,
            frame.y0 * to_points,
            frame.x1 * to_points,
            frame.y1 * to_points,
        )
        for fmt, (dx, dy, far) in _label_places(on_page, radius, bounds).items():
            ax.annotate(
                fmt,
                points[fmt],
                textcoords="offset points",
                xytext=(dx, dy),
                ha="left" if dx > 0 else "right" if dx < 0 else "center",
                va="center",
                fontsize=5,
                arrowprops={"arrowstyle": "-", "linewidth": 0.3, "color": "0.4"} if far else None,
            )
        ax.set_title(f"{cache} cache, shuffled read", fontsize=7)
        ax.set_ylabel("images/s", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[-1].set_xlabel("bytes on disk per image")
    _format_legend(fig, styles)
    return fig


HEATMAP_COLUMNS = (
    ("store", "store", {"measurement": "store"}),
    ("warm\nseq", "read", {"measurement": "read", "cache": "warm", "order": "sequential"}),
    ("warm\nrandom", "read", {"measurement": "read", "cache": "warm", "order": "random"}),
    ("cold\nseq", "read", {"measurement": "read", "cache": "cold", "order": "sequential"}),
    ("cold\nrandom", "read", {"measurement": "read", "cache": "cold", "order": "random"}),
    ("warm\nshards", "read", {"measurement": "read", "cache": "warm", "order": "shards"}),
    ("cold\nshards", "read", {"measurement": "read", "cache": "cold", "order": "shards"}),
    ("lookup", "latency", {"mode": "lookup"}),
    ("disk", "usage", {}),
)


def heatmap(tables: Tables, palette: Palette) -> Figure:
    """Formats x scenarios, each cell the ratio to the floor (colour on a log scale); a
    cell whose interval reaches 1 is marked as tied with the floor."""
    from matplotlib.colors import LogNorm

    usage = _at_largest(tables["usage"])
    floor = next((r["format"] for r in usage if r.get("kind") == "npy"), None)
    floor_size = next((float(r["bytes_per_image"]) for r in usage if r["format"] == floor), 0.0)
    formats = [f for f in palette.formats(usage) if f != floor]
    columns = [  # a column of a read order this run did not measure is left out
        c for c in HEATMAP_COLUMNS if c[1] != "read" or _at_largest(tables["read"], **c[2])
    ]
    values = np.full((len(formats), len(columns)), np.nan)
    tied = np.zeros_like(values, dtype=bool)
    for j, (_, table, where) in enumerate(columns):
        for row in _at_largest(tables.get(table, []), **where):
            if row["format"] not in formats:
                continue
            i = formats.index(row["format"])
            if table == "usage":
                values[i, j] = float(row["bytes_per_image"]) / floor_size if floor_size else np.nan
            elif row.get("ratio", "") != "":
                values[i, j] = float(row["ratio"])
                tied[i, j] = float(row["ratio_lo"]) <= 1.0 <= float(row["ratio_hi"])
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.9 + 0.22 * len(formats)), layout="constrained")
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.5, 2.0)
    norm = LogNorm(vmin=min(low, 0.9), vmax=max(high, 1.1))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="YlOrRd", norm=norm, aspect="auto")
    for i in range(len(formats)):
        for j in range(len(columns)):
            value = values[i, j]
            if not np.isfinite(value):
                ax.text(j, i, "–", ha="center", va="center", fontsize=5)
                continue
            label = "≈1" if tied[i, j] else (f"{value:.2g}" if value < 100 else f"{value:.0f}")
            dark = norm(value) > 0.6
            ax.text(
                j,
                i,
                label,
                ha="center",
                va="center",
                fontsize=5,
                color="white" if dark else "black",
            )
    ax.set_xticks(range(len(columns)), [c[0] for c in columns], fontsize=6)
    ax.set_yticks(range(len(formats)), formats, fontsize=6)
    ax.tick_params(length=0)
    ax.set_title(f"× the floor ({floor}); ≈1: its interval reaches the floor", fontsize=7)
    bar = fig.colorbar(image, ax=ax, shrink=0.9)
    bar.ax.tick_params(labelsize=5)
    return fig


def _bar(
    ax: Axes,
    x: float,
    width: float,
    low_mid_high: tuple[float, float, float],
    color: str,
    hatch: str,
) -> None:
    """One bar at the estimate, with its interval as an error bar."""
    low, mid, high = low_mid_high
    ax.bar(
        x, mid, width, color=color, hatch=hatch, edgecolor="black", hatchcolor="0.6", linewidth=0.4
    )
    ax.errorbar(x, mid, yerr=[[mid - low], [high - mid]], color="black", linewidth=0.8, capsize=2)


def single_image(tables: Tables, palette: Palette) -> Figure:
    rows = tables["single"]
    formats = palette.formats(rows)
    styles = palette.styles(formats)
    fig, ax = _new()
    width = 0.38
    for j, (measurement, hatch) in enumerate((("single_store", ""), ("single_read", "//"))):
        for i, fmt in enumerate(formats):
            row = next(r for r in rows if r["format"] == fmt and r["measurement"] == measurement)
            x = i + (j - 0.5) * width
            _bar(
                ax,
                x,
                width,
                (row["median_lo"], row["median"], row["median_hi"]),
                styles[fmt]["color"],
                hatch,
            )
    ax.set_xticks(
        range(len(formats)), formats, fontsize=6, rotation=40, ha="right", rotation_mode="anchor"
    )
    ax.set_yscale("log")
    # After set_yscale, which resets them: ticks at 1, 2, 5 per decade, plain labels.
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("time (s)")
    ax.set_title(
        "One image: store (plain) and read (hatched)\nmedian, bar = one job's interval", fontsize=8
    )
    return fig


def parallel_scaling(tables: Tables, palette: Palette) -> Figure:
    """Aggregate images/s against worker processes, one panel per cache state."""
    rows = tables["parallel"]
    caches = _values(rows, "cache", "warm")
    styles = palette.styles(palette.formats(rows))
    n = max(r["n"] for r in rows)
    ideal = Line2D([], [], color="grey", linestyle=":", linewidth=1, label="ideal: P × (P = 1)")
    fig, axes = _panels(len(caches), 2.2, len(styles) + 1)
    for ax, cache in zip(axes, caches, strict=True):
        for fmt, style in styles.items():
            series = sorted(
                (r for r in rows if r["format"] == fmt and r["cache"] == cache and r["n"] == n),
                key=lambda r: r["workers"],
            )
            if not series:
                continue
            workers = [r["workers"] for r in series]
            ax.plot(
                workers,
                [r["images_per_s"] for r in series],
                markersize=3.5,
                linewidth=1.2,
                label=fmt,
                **style,
            )
            # Spread: the rate at the slowest and fastest sample.
            ax.fill_between(
                workers,
                [n / r["median_hi"] for r in series],
                [n / r["median_lo"] for r in series],
                color=style["color"],
                alpha=0.18,
                linewidth=0,
            )
            one = next((r for r in series if r["workers"] == 1), None)
            if one is not None:
                ax.plot(
                    workers,
                    [one["images_per_s"] * w for w in workers],
                    color=style["color"],
                    linestyle=":",
                    linewidth=0.8,
                )
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["workers"] for r in rows}))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yscale("log")
        ax.set_ylabel("images/s (all workers)")
        ax.set_title(f"{cache} cache, n = {n:,}, shuffled shards", fontsize=8)
    axes[-1].set_xlabel("worker processes (P)")
    _format_legend(fig, styles, extra=[ideal])
    return fig


def dataloader_throughput(tables: Tables, palette: Palette) -> Figure:
    """Images/s of one shuffled DataLoader epoch, per format and num_workers."""
    rows = tables["dataloader"]
    formats = palette.formats(rows)
    styles = palette.styles(formats)
    counts = sorted({r["num_workers"] for r in rows})
    n = max(r["n"] for r in rows)
    fig, ax = _new(2.8)
    width = 0.8 / len(counts)
    hatches = ("", "//", "..", "xx")
    for j, count in enumerate(counts):
        for i, fmt in enumerate(formats):
            row = next(
                (
                    r
                    for r in rows
                    if r["format"] == fmt and r["num_workers"] == count and r["n"] == n
                ),
                None,
            )
            if row is None:
                continue
            x = i + (j - (len(counts) - 1) / 2) * width
            rate = row["images_per_s"]
            _bar(
                ax,
                x,
                width,
                (n / row["median_hi"], rate, n / row["median_lo"]),
                styles[fmt]["color"],
                hatches[j % len(hatches)],
            )
    ax.set_xticks(
        range(len(formats)), formats, fontsize=6, rotation=40, ha="right", rotation_mode="anchor"
    )
    ax.set_yscale("log")
    ax.set_ylabel("images/s")
    batch = rows[0]["batch_size"]
    legend = ", ".join(
        f"{c} {('plain', 'hatched', 'dotted', 'crossed')[j % 4]}" for j, c in enumerate(counts)
    )
    ax.set_title(
        f"DataLoader epoch of {n:,} shuffled images\n"
        f"batch {batch}; workers: {legend}\nbar = one job's interval",
        fontsize=8,
    )
    return fig


LOADER_NAMES = {"threads": "loader threads", "processes": "DataLoader worker processes"}


def _loaders(rows: Rows) -> list[str]:
    return [name for name in LOADER_NAMES if any(r["loader"] == name for r in rows)]


def training_au(tables: Tables, palette: Palette) -> Figure:
    """Accelerator utilisation against workers, one panel per loader, a line per format,
    the target as a dashed line."""
    rows = tables["training"]
    n = max(r["n"] for r in rows)
    rows = [r for r in rows if r["n"] == n]
    loaders = _loaders(rows)
    styles = palette.styles(palette.formats(rows))
    target = float(rows[0].get("target_au") or 0.9)
    goal = Line2D([], [], color="grey", linestyle="--", linewidth=1, label=f"target {target:.0%}")
    height = 2.0 * len(loaders) + 0.25 + _legend_height(len(styles) + 1)
    fig, grid = plt.subplots(
        len(loaders), 1, figsize=(WIDTH_IN, height), layout="constrained", squeeze=False
    )
    axes = list(grid[:, 0])  # each panel its own worker counts: no shared x axis
    for ax, loader in zip(axes, loaders, strict=True):
        ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
        for fmt, style in styles.items():
            series = sorted(
                (r for r in rows if r["format"] == fmt and r["loader"] == loader),
                key=lambda r: r["workers"],
            )
            if not series:
                continue
            workers = [r["workers"] for r in series]
            ax.plot(
                workers,
                [100 * r["au"] for r in series],
                markersize=3.5,
                linewidth=1.2,
                label=fmt,
                **style,
            )
            ax.fill_between(
                workers,
                [100 * r["au_lo"] for r in series],
                [100 * r["au_hi"] for r in series],
                color=style["color"],
                alpha=0.15,
                linewidth=0,
            )
        ax.axhline(100 * target, color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["workers"] for r in rows if r["loader"] == loader}))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(0, 105)
        ax.set_ylabel("accelerator busy (%)")
        ax.set_xlabel(LOADER_NAMES[loader])
        step, batch = rows[0]["step_ms"], rows[0]["batch_size"]
        ax.set_title(
            f"{LOADER_NAMES[loader]}: n = {n:,}, batch {batch}, step {step:.3g} ms", fontsize=8
        )
    _format_legend(fig, styles, extra=[goal])
    return fig


def training_workers(tables: Tables, palette: Palette) -> Figure:
    """Workers needed to keep the accelerator at the target AU: a bar per format and
    loader; a format no measured worker count got there has an empty bar marked "none"."""
    from storebench.present import training as training_view

    rows = tables["training"]
    n = max(r["n"] for r in rows)
    rows = [r for r in rows if r["n"] == n]
    loaders = _loaders(rows)
    formats = palette.formats(rows)
    styles = palette.styles(formats)
    needed = training_view.needed(rows)
    fig, ax = _new(2.6)
    width = 0.8 / len(loaders)
    hatches = ("", "//")
    top = int(max(r["workers"] for r in rows))
    for j, loader in enumerate(loaders):
        for i, fmt in enumerate(formats):
            found = needed.get((fmt, loader))
            if found is None:
                continue
            x = i + (j - (len(loaders) - 1) / 2) * width
            if found.workers is None:
                ax.text(x, 0.1, "none", rotation=90, fontsize=5, ha="center", va="bottom")
                continue
            ax.bar(
                x,
                found.workers,
                width,
                color=styles[fmt]["color"],
                hatch=hatches[j % 2],
                edgecolor="black",
                hatchcolor="0.6",
                linewidth=0.4,
                alpha=1.0 if found.resolved else 0.45,
            )
    ax.set_xticks(
        range(len(formats)), formats, fontsize=6, rotation=40, ha="right", rotation_mode="anchor"
    )
    ax.set_ylim(0, top + 0.5)
    ax.set_yticks(range(0, top + 1))
    ax.set_ylabel("workers needed")
    target = float(rows[0].get("target_au") or 0.9)
    ax.set_title(f"Workers for {target:.0%} accelerator use, n = {n:,}", fontsize=8)
    kinds = [
        matplotlib.patches.Patch(
            facecolor="white", edgecolor="black", hatch=hatches[j % 2], label=name
        )
        for j, name in enumerate(loaders)
    ]
    kinds.append(
        matplotlib.patches.Patch(facecolor="0.5", alpha=0.45, label="pale: interval below")
    )
    _legend_below(fig, kinds)
    return fig


def workflow_cost(tables: Tables, palette: Palette) -> Figure:
    """The workflow's own wall time and peak memory per stage against n."""
    rows = [r for r in tables["cost"] if r["n"] != ""]
    stages = list(dict.fromkeys(r["stage"] for r in rows))
    styles = {
        stage: {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)]}
        for i, stage in enumerate(stages)
    }
    fig, axes = _panels(2, 2.0, len(stages))
    for stage, style in styles.items():
        series = sorted((r for r in rows if r["stage"] == stage), key=lambda r: r["n"])
        n = [r["n"] for r in series]
        axes[0].plot(
            n, [r["wall_s"] for r in series], markersize=3.5, linewidth=1.2, label=stage, **style
        )
        axes[1].plot(
            n,
            [r["max_rss_mb"] for r in series],
            markersize=3.5,
            linewidth=1.2,
            label=stage,
            **style,
        )
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    axes[0].set_ylabel("wall time (s)")
    axes[0].set_title("Workflow cost per stage: all jobs' wall time", fontsize=8)
    axes[1].set_ylabel("peak RSS (MB)")
    axes[1].set_title("largest peak memory of one job", fontsize=8)
    axes[1].set_xlabel("images (n)")
    _format_legend(fig, styles)
    return fig


def _fit_titles(fig: Figure) -> None:
    """Shrink an axes title that would run past the figure's edge (wide tick labels
    move an axes, and its centred title, sideways) until it fits, at 5 pt at least."""
    for _ in range(20):
        fig.canvas.draw()  # lays the figure out (constrained layout runs at draw time)
        renderer, width = fig.canvas.get_renderer(), fig.bbox.width
        margin = 0.02 * width  # text is a little wider at the saved resolution
        wide = []
        for ax in fig.axes:
            title = ax.title
            if not title.get_text() or title.get_fontsize() <= 5:
                continue
            box = title.get_window_extent(renderer)
            if box.x0 < margin or box.x1 > width - margin:
                wide.append(title)
        if not wide:
            return
        for title in wide:
            title.set_fontsize(title.get_fontsize() - 0.5)


def render(name: str, tables: Tables, outputs: Sequence[Path], order: Sequence[str] = ()) -> None:
    """Draw figure ``name`` from ``tables`` and save it to every path in ``outputs``
    (PNG at 200 dpi, SVG, PDF: by suffix). ``order``: every format of the run, in
    config order, which fixes each format's colour and marker."""
    fig = draw(name, tables, order)
    _fit_titles(fig)
    for path in outputs:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        path = Path(path)
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # the suffix picks the format
        fig.savefig(tmp, dpi=DPI)
        os.replace(tmp, path)  # a killed job leaves no half figure
    plt.close(fig)


def drawer(name: str) -> Callable[..., Figure]:
    """The function that draws figure ``name`` (its record's ``drawer``)."""
    if name not in FIGURES:
        raise StorebenchError(f"unknown figure {name!r}; known: {sorted(FIGURES)}")
    return globals()[FIGURES[name].drawer]


def draw(name: str, tables: Tables, order: Sequence[str] = ()) -> Figure:
    """Figure ``name`` drawn from ``tables`` (not saved)."""
    draw_figure = drawer(name)
    for table in FIGURES[name].tables:
        if not tables.get(table):
            raise StorebenchError(f"figure {name}: table {table!r} is empty")
    return draw_figure(tables, Palette(tuple(order)), **FIGURES[name].options)
