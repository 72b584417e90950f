"""The workflow's own cost, from Snakemake's ``benchmark:`` files: wall time, CPU
time and peak memory per stage and n (cost.csv, the workflow_cost figure, the
``stages`` command and the start-of-run estimate)."""

from __future__ import annotations

import csv
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

COST_COLUMNS = ("stage", "n", "jobs", "wall_s", "wall_s_median", "cpu_s", "max_rss_mb")


def _stage_and_n(path: Path) -> tuple[str, int | None]:
    """``.../benchmarks/{stage}/.../{n}/...tsv`` -> (stage, n); n is None if no part is a number."""
    parts = Path(path).parts
    last = len(parts) - 1 - parts[::-1].index("benchmarks")  # the last "benchmarks" folder
    relative = parts[last + 1 :]
    if len(relative) == 1:
        return Path(relative[0]).stem, None
    numbers = [int(p) for p in (*relative[1:-1], Path(relative[-1]).stem) if p.isdigit()]
    return relative[0], numbers[0] if numbers else None


def cost_rows(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """The workflow's own cost per stage and n, from Snakemake's ``benchmark:`` files:
    wall and CPU time summed over the jobs, the median job, and the largest peak RSS."""
    groups: dict[tuple[str, int | None], list[dict[str, str]]] = {}
    for path in paths:
        groups.setdefault(_stage_and_n(path), []).extend(read_table_tsv(path))
    rows = []
    for (stage, n), records in groups.items():
        walls = [float(r["s"]) for r in records]
        rss = [float(r["max_rss"]) for r in records if r.get("max_rss") not in ("-", "NA", "")]
        cpu = [float(r["cpu_time"]) for r in records if r.get("cpu_time") not in ("-", "NA", "")]
        rows.append(
            {
                "stage": stage,
                "n": "" if n is None else n,
                "jobs": len(records),
                "wall_s": sum(walls),
                "wall_s_median": statistics.median(walls),
                "cpu_s": sum(cpu),
                "max_rss_mb": max(rss) if rss else "",
            }
        )
    return sorted(rows, key=lambda r: (r["stage"], r["n"] == "", r["n"] or 0))


def stage_rows(benchmarks: Path) -> list[dict[str, Any]]:
    """Wall time and peak memory per stage, from Snakemake's ``benchmark:`` files.

    A stage is the first folder under ``benchmarks`` (or the file's name for
    one-job stages).
    """
    stages: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(benchmarks).rglob("*.tsv")):
        relative = path.relative_to(benchmarks)
        stage = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        row = stages.setdefault(
            stage, {"stage": stage, "jobs": 0, "wall_s": 0.0, "max_rss_mb": 0.0}
        )
        for record in read_table_tsv(path):
            row["jobs"] += 1
            row["wall_s"] += float(record["s"])
            rss = record.get("max_rss", "-")
            if rss not in ("-", "NA", ""):
                row["max_rss_mb"] = max(row["max_rss_mb"], float(rss))
    return list(stages.values())


def read_table_tsv(path: Path) -> list[dict[str, str]]:
    """The rows of one benchmark file (tab-separated), as text."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))
