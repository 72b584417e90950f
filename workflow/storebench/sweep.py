"""The image-size sweep: the experiment again at each image size, with the same bytes of
pixels at every size, and how each format's cost per image moves with size.

At 3 KB an image, per-image overhead (a file, a key, a record header) dominates;
at 150 KB, bandwidth and decoding do. Each size runs as its own workflow run in
``results/sizes/{size}/`` (the same Snakefile, a derived config: the dataset
resized to size x size, ``n = megabytes / (size * size * 3)`` images, one
cutoff, no parallel or DataLoader jobs), started by one job of the outer run
that holds every core, so no timed job overlaps another. Holding the bytes
fixed keeps each size's disk and run time about the same; per-image times and
MB/s are compared across sizes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from storebench import stats, subrun

TABLES = ("store", "read", "usage")
MiB = 2**20
COLUMNS = (
    "size",
    "format",
    "n",
    "image_bytes",
    "measurement",
    "cache",
    "order",
    "s_per_image",
    "s_per_image_lo",
    "s_per_image_hi",
    "mb_per_s",
    "ratio",
    "ratio_lo",
    "ratio_hi",
    "bytes_per_image",
)


def images_at(size: int, megabytes: float) -> int:
    """Images of size x size x 3 bytes that make ``megabytes`` MiB of pixels."""
    return max(1, round(megabytes * MiB / (size * size * 3)))


def sub_config(config: Mapping[str, Any], size: int, archive: str | None) -> dict[str, Any]:
    """The config of one size's run: the outer config with the dataset resized to
    ``size``, its number of images, one cutoff, no parallel, DataLoader or training jobs, the
    sweep's formats, and CIFAR-10 read from the outer run's ``archive``."""
    sweep = config["size_sweep"]
    sub = subrun.derived(config, archive, sweep.get("formats"))
    n = images_at(size, sweep["megabytes"])
    sub["dataset"] = {**sub["dataset"], "size": [size, size]}
    sub.update(n_images=n, cutoffs=[n])
    sub["parallel"] = {**sub["parallel"], "cutoffs": []}
    sub["dataloader"] = {**sub["dataloader"], "cutoffs": []}
    sub["training"] = {**sub["training"], "cutoffs": [], "crop": None}  # crop: the new size
    return sub


def run(
    size: int, config: Mapping[str, Any], work: Path, cores: int, snakefile: Path, log: Path
) -> None:
    """Run the workflow for one size in ``work`` (its tables: ``work/results/tables``)."""
    targets = [f"results/tables/{table}.csv" for table in TABLES]
    subrun.run(f"at {size} px", config, work, targets, cores, snakefile, log)


def _number(row: Mapping[str, Any], key: str) -> float:
    value = row.get(key, "")
    return float(value) if value not in ("", None) else math.nan


def rows(tables: Mapping[int, Mapping[str, Sequence[Mapping[str, Any]]]]) -> list[dict[str, Any]]:
    """One row per size, format and measurement (store; read per cache and order): time
    per image with its interval, MB/s, the ratio to the floor, and bytes on disk per image."""
    out = []
    for size in sorted(tables):
        by_table = tables[size]
        disk = {r["format"]: _number(r, "bytes_per_image") for r in by_table.get("usage", [])}
        image_bytes = size * size * 3
        timed = [r for r in by_table.get("store", []) if r["measurement"] == "store"]
        timed += list(by_table.get("read", []))
        for row in timed:
            n = int(row["n"])
            median = _number(row, "median")
            out.append(
                {
                    "size": size,
                    "format": row["format"],
                    "n": n,
                    "image_bytes": image_bytes,
                    "measurement": row["measurement"],
                    "cache": row.get("cache", ""),
                    "order": row.get("order", ""),
                    "s_per_image": median / n,
                    "s_per_image_lo": _number(row, "median_lo") / n,
                    "s_per_image_hi": _number(row, "median_hi") / n,
                    "mb_per_s": n * image_bytes / median / 1e6 if median > 0 else math.nan,
                    "ratio": _number(row, "ratio"),
                    "ratio_lo": _number(row, "ratio_lo"),
                    "ratio_hi": _number(row, "ratio_hi"),
                    "bytes_per_image": disk.get(row["format"], math.nan),
                }
            )
    return out


def _label(row: Mapping[str, Any]) -> str:
    if row["measurement"] == "store":
        return "store"
    return f"read, {row['cache']} cache, {row['order']} order"


def ranking_changes(sweep_rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line for every place where two formats swap places between neighbouring sizes
    (by median time per image; formats whose intervals overlap at either size are not
    counted as swapped)."""
    lines = []
    groups: dict[str, dict[int, dict[str, Mapping[str, Any]]]] = {}
    for row in sweep_rows:
        groups.setdefault(_label(row), {}).setdefault(int(row["size"]), {})[row["format"]] = row
    for label, by_size in groups.items():
        sizes = sorted(by_size)
        for small, large in itertools.pairwise(sizes):
            a, b = by_size[small], by_size[large]
            common = sorted(set(a) & set(b))
            for i, first in enumerate(common):
                for second in common[i + 1 :]:
                    before = order(a[first], a[second])
                    after = order(b[first], b[second])
                    if before and after and before != after:
                        winner = first if before == "<" else second
                        loser = second if winner == first else first
                        lines.append(
                            f"{label}: {winner} is faster than {loser} per image at {small} px, "
                            f"slower at {large} px"
                        )
    return lines


def order(
    x: Mapping[str, Any],
    y: Mapping[str, Any],
    lo: str = "s_per_image_lo",
    hi: str = "s_per_image_hi",
) -> str:
    """ "<" if x's interval (``lo``, ``hi``) lies wholly below y's, ">" if wholly above,
    "" if they overlap."""
    if stats.clearly_before(x, y, lo, hi):
        return "<"
    if stats.clearly_before(y, x, lo, hi):
        return ">"
    return ""


def markdown(sweep_rows: Sequence[Mapping[str, Any]], megabytes: float) -> str:
    """The sweep as Markdown: per measurement, time per image (us) and MB/s per format
    and size, then the ranking changes."""
    sizes = sorted({int(r["size"]) for r in sweep_rows})
    formats = list(dict.fromkeys(r["format"] for r in sweep_rows))
    lines = [
        f"## Image size sweep ({megabytes:g} MiB of pixels at every size)",
        "",
        "Median time per image (us) and MB/s of pixels; n = images at each size.",
        "",
    ]
    labels = list(dict.fromkeys(_label(r) for r in sweep_rows))
    for label in labels:
        cells = {(r["format"], int(r["size"])): r for r in sweep_rows if _label(r) == label}
        lines += [f"### {label}", ""]
        counts = {int(r["size"]): int(r["n"]) for r in sweep_rows}
        header = " | ".join(f"{s} px (n={counts[s]:,})" for s in sizes)
        lines += [f"| format | {header} |", "|---|" + "---:|" * len(sizes)]
        for fmt in formats:
            values = []
            for size in sizes:
                row = cells.get((fmt, size))
                values.append(
                    f"{row['s_per_image'] * 1e6:,.1f} us, {row['mb_per_s']:,.0f} MB/s"
                    if row
                    else ""
                )
            lines.append(f"| {fmt} | " + " | ".join(values) + " |")
        lines.append("")
    changes = ranking_changes(sweep_rows)
    lines += ["### Where the ranking changes with size", ""]
    lines += [f"- {line}" for line in changes] or ["- nowhere beyond the intervals"]
    return "\n".join(lines) + "\n"
