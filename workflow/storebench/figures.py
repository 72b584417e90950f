"""Figures (PNG + SVG) from the tables: one colour per format in every figure."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from storebench.errors import StorebenchError

Rows = list[dict[str, Any]]
Tables = Mapping[str, Rows]

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")  # fmt: skip
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
WIDTH_IN = 3.5  # one paper column
DPI = 200


def _formats(rows: Rows) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.setdefault(row["format"], None)
    return list(seen)


def _style(formats: Sequence[str]) -> dict[str, dict[str, str]]:
    return {
        name: {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)]}
        for i, name in enumerate(formats)
    }


def _series(rows: Rows, fmt: str, measurement: str) -> Rows:
    return sorted(
        (r for r in rows if r["format"] == fmt and r["measurement"] == measurement),
        key=lambda r: r["n"],
    )


def _time_lines(
    ax: Axes,
    rows: Rows,
    measurement: str,
    styles: Mapping[str, Mapping[str, str]],
    linestyle: str = "-",
    label_suffix: str = "",
) -> None:
    """Median per n as a line, min-max as a band."""
    for fmt, style in styles.items():
        series = _series(rows, fmt, measurement)
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
            [r["min"] for r in series],
            [r["max"] for r in series],
            color=style["color"],
            alpha=0.18,
            linewidth=0,
        )


def _new(height: float = 2.6) -> tuple[Figure, Axes]:
    fig, ax = plt.subplots(figsize=(WIDTH_IN, height), layout="constrained")
    ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
    return fig, ax


def _time_figure(rows: Rows, measurement: str, title: str, log_y: bool) -> Figure:
    fig, ax = _new()
    styles = _style(_formats(rows))
    _time_lines(ax, rows, measurement, styles)
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("images stored (n)")
    ax.set_ylabel("time (s)")
    ax.set_title(title + "\nmedian, band = min–max", fontsize=8)
    ax.legend(fontsize=7, frameon=False)
    return fig


def store_time(tables: Tables, log_y: bool) -> Figure:
    return _time_figure(
        tables["store"], "store", "Store n images (until the writer returns)", log_y
    )


def read_time(tables: Tables, log_y: bool) -> Figure:
    return _time_figure(tables["read"], "read", "Read n images back (warm cache, in order)", log_y)


def read_write(tables: Tables) -> Figure:
    fig, ax = _new(2.9)
    rows = tables["store"] + tables["read"]
    styles = _style(_formats(rows))
    _time_lines(ax, tables["store"], "store", styles, "-", " store")
    _time_lines(ax, tables["read"], "read", styles, "--", " read")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("images (n)")
    ax.set_ylabel("time (s)")
    ax.set_title("Store (solid) and read (dashed), median", fontsize=8)
    ax.legend(fontsize=6, frameon=False, ncol=2)
    return fig


def disk_stacked(tables: Tables) -> Figure:
    rows = tables["usage"]
    formats = _formats(rows)
    cutoffs = sorted({r["n"] for r in rows})
    fig, ax = _new(2.8)
    bottom = [0.0] * len(formats)
    shades = plt.get_cmap("Greys")
    for i, n in enumerate(cutoffs):
        values = [
            next(
                (r["allocated_bytes"] / 2**20 for r in rows if r["format"] == f and r["n"] == n),
                0.0,
            )
            for f in formats
        ]
        ax.bar(
            formats,
            values,
            bottom=bottom,
            color=shades(0.25 + 0.6 * i / max(1, len(cutoffs) - 1)),
            edgecolor="black",
            linewidth=0.4,
            label=f"n = {n:,}",
        )
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("allocated on disk (MiB)")
    ax.set_title("Disk usage, stacked over the cutoffs", fontsize=8)
    ax.legend(fontsize=6, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.tick_params(axis="x", labelsize=7, rotation=20)
    return fig


def bytes_per_image(tables: Tables) -> Figure:
    rows = tables["usage"]
    fig, ax = _new()
    for fmt, style in _style(_formats(rows)).items():
        series = sorted((r for r in rows if r["format"] == fmt), key=lambda r: r["n"])
        ax.plot(
            [r["n"] for r in series],
            [r["bytes_per_image"] for r in series],
            markersize=3.5,
            linewidth=1.2,
            label=fmt,
            **style,
        )
    ax.axhline(32 * 32 * 3, color="grey", linestyle=":", linewidth=1, label="raw pixels (3,072 B)")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)  # less than a decade: linear, from zero
    ax.set_xlabel("images stored (n)")
    ax.set_ylabel("allocated bytes per image (B)")
    ax.set_title("Disk usage per image", fontsize=8)
    ax.legend(fontsize=7, frameon=False, loc="lower left")
    return fig


def single_image(tables: Tables) -> Figure:
    rows = tables["single"]
    formats = _formats(rows)
    styles = _style(formats)
    fig, ax = _new()
    width = 0.38
    for j, (measurement, hatch) in enumerate((("single_store", ""), ("single_read", "//"))):
        for i, fmt in enumerate(formats):
            row = next(r for r in rows if r["format"] == fmt and r["measurement"] == measurement)
            x = i + (j - 0.5) * width
            ax.bar(
                x,
                row["median"],
                width,
                color=styles[fmt]["color"],
                hatch=hatch,
                edgecolor="black",
                linewidth=0.4,
            )
            ax.errorbar(
                x,
                row["median"],
                yerr=[[row["median"] - row["min"]], [row["max"] - row["median"]]],
                color="black",
                linewidth=0.8,
                capsize=2,
            )
    ax.set_xticks(range(len(formats)), formats, fontsize=7, rotation=20)
    ax.set_yscale("log")
    ax.set_ylabel("time (s)")
    ax.set_title("One image: store (plain) and read (hatched)\nmedian, bar = min–max", fontsize=8)
    return fig


# figure name -> (tables it needs, how to draw it)
FIGURES: dict[str, tuple[tuple[str, ...], Callable[[Tables], Figure]]] = {
    "store_time_linear": (("store",), lambda t: store_time(t, log_y=False)),
    "store_time_log": (("store",), lambda t: store_time(t, log_y=True)),
    "read_time_linear": (("read",), lambda t: read_time(t, log_y=False)),
    "read_time_log": (("read",), lambda t: read_time(t, log_y=True)),
    "read_write_log": (("store", "read"), read_write),
    "disk_usage_stacked": (("usage",), disk_stacked),
    "disk_bytes_per_image": (("usage",), bytes_per_image),
    "single_image": (("single",), single_image),
}


def render(name: str, tables: Tables, outputs: Sequence[Path]) -> None:
    """Draw figure ``name`` from ``tables`` and save it to every path in ``outputs``."""
    if name not in FIGURES:
        raise StorebenchError(f"unknown figure {name!r}; known: {sorted(FIGURES)}")
    needed, draw = FIGURES[name]
    for table in needed:
        if not tables.get(table):
            raise StorebenchError(f"figure {name}: table {table!r} is empty")
    fig = draw(tables)
    for path in outputs:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
    plt.close(fig)
