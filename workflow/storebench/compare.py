"""Run-to-run check: do two runs' results agree, and if not, did the machine move?

``python -m storebench compare RESULTS_A RESULTS_B`` reads both runs' timing
tables and prints, per cell (format, n, measurement, cache, order, workers), both
runs' paired ratios to the floor and absolute times and whether they agree
(within ``tolerance``, or overlapping 95% intervals); the worst cells; how the
reference speeds (the CPU probe, the floor's own times) moved between the runs;
whether the rankings at the largest n contradict each other beyond declared ties;
and a one-line verdict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from storebench.errors import StorebenchError
from storebench.stats import clearly_before, overlap
from storebench.tables import read_table

TABLES = ("store", "read", "parallel", "dataloader")
KEY = ("format", "n", "measurement", "cache", "order", "workers", "num_workers")
TOLERANCE = 0.10
# The store and read cells' measurements: how far two runs' headline numbers agree.
STORE_AND_READ = ("store", "store_durable", "read")

Row = dict[str, Any]


def _load(results: Path, table: str) -> dict[tuple, Row]:
    path = Path(results) / "tables" / f"{table}.csv"
    if not path.is_file():
        return {}
    return {(table, *(row.get(k, "") for k in KEY)): row for row in read_table(path)}


def agree(a: Row, b: Row, value: str, lo: str, hi: str, tolerance: float = TOLERANCE) -> bool:
    """Within ``tolerance`` of each other, or overlapping intervals."""
    x, y = float(a[value]), float(b[value])
    close = y > 0 and abs(x / y - 1) <= tolerance
    return close or overlap(a, b, lo, hi)


def cells(first: Path, second: Path, min_n: int) -> list[dict[str, Any]]:
    """Every timing cell both runs measured at n >= ``min_n``, with both runs' values."""
    found = []
    for table in TABLES:
        a, b = _load(first, table), _load(second, table)
        for key in a.keys() & b.keys():
            row_a, row_b = a[key], b[key]
            if (
                int(row_a["n"]) < min_n
                or row_a.get("ratio", "") == ""
                or row_b.get("ratio", "") == ""
            ):
                continue
            found.append(
                {
                    "key": key,
                    "a": row_a,
                    "b": row_b,
                    "ratio_agree": agree(row_a, row_b, "ratio", "ratio_lo", "ratio_hi"),
                    "abs_agree": agree(row_a, row_b, "median", "median_lo", "median_hi"),
                    "ratio_move": float(row_b["ratio"]) / float(row_a["ratio"]),
                    "abs_move": float(row_b["median"]) / float(row_a["median"]),
                    "cpu_move": _move(row_a, row_b, "cpu_ms"),
                }
            )
    return sorted(found, key=lambda c: c["key"][:3])


def _recorded(row: Row, column: str) -> bool:
    """Whether ``row`` has a value in ``column`` (older results lack newer columns)."""
    return row.get(column, "") not in ("", None)


def _move(a: Row, b: Row, column: str) -> float:
    """B/A of one column of a cell (NaN where either run lacks it)."""
    if not (_recorded(a, column) and _recorded(b, column)):
        return math.nan
    return float(b[column]) / float(a[column])


def _steal_pair(a: Row, b: Row) -> str:
    """ ", host steal A% / B%" where both runs recorded it."""
    if not (_recorded(a, "steal") and _recorded(b, "steal")):
        return ""
    return f", host steal {float(a['steal']):.0%} / {float(b['steal']):.0%}"


def _summary_of(rows: Iterable[Row], column: str, summary: Any = np.median) -> float:
    """``summary`` (median by default) of ``column`` over the rows that recorded it."""
    values = [float(r[column]) for r in rows if _recorded(r, column)]
    return float(summary(values)) if values else math.nan


def _per_run(rows_a: list[Row], rows_b: list[Row], column: str, summary: Any, form: str) -> str:
    """ "A x, B y": ``summary`` of ``column`` in each run, ``form``-formatted."""
    values = (
        ("A", _summary_of(rows_a, column, summary)),
        ("B", _summary_of(rows_b, column, summary)),
    )
    return ", ".join(
        f"{name} {'not recorded' if math.isnan(x) else form.format(x)}" for name, x in values
    )


def contradictions(first: Path, second: Path) -> tuple[int, int, list[str]]:
    """Ranking questions at the largest n (store; read per cache and order) where one run
    puts a format clearly before another (its ratio's interval wholly below the other's)
    and the other run clearly after it. Formats whose intervals overlap in either run are
    a tie there: their order is not a claim either run makes."""
    questions = contradicted = 0
    notes = []
    for table, measurement in (("store", "store"), ("read", "read")):
        a, b = _load(first, table), _load(second, table)
        if not a or not b:
            continue
        n = max(int(r["n"]) for r in a.values())
        groups: dict[tuple, list[tuple[Row, Row]]] = {}
        for key, row in a.items():
            if int(row["n"]) == n and row["measurement"] == measurement and key in b:
                groups.setdefault((row["cache"], row["order"]), []).append((row, b[key]))
        for (cache, order), pairs in groups.items():
            questions += 1
            flipped = [
                (f[0]["format"], g[0]["format"])
                for f in pairs
                for g in pairs
                if _before(f[0], g[0]) and _before(g[1], f[1])
            ]
            if flipped:
                contradicted += 1
                where = " ".join(x for x in (table, cache, order) if x)
                notes.append(
                    f"{where}: " + ", ".join(f"{f} before {g} in A, after in B" for f, g in flipped)
                )
    return questions, contradicted, notes


def _before(a: Row, b: Row) -> bool:
    return clearly_before(a, b, "ratio_lo", "ratio_hi")


def _cell_name(key: tuple) -> str:
    table, fmt, n, measurement, cache, order, workers, num_workers = key
    parts = [table, fmt, f"n={n}", str(measurement)]
    parts += [str(x) for x in (cache, order) if x != ""]
    parts += [f"P={workers}"] if workers != "" else []
    parts += [f"w={num_workers}"] if num_workers != "" else []
    return " ".join(parts)


def _subset_line(
    found: list[dict[str, Any]], what: str, measurements: tuple[str, ...]
) -> list[str]:
    """How far the ratios of the cells of ``measurements`` agree (no line if none)."""
    chosen = [c for c in found if c["key"][3] in measurements]
    if not chosen:
        return []
    ok = sum(c["ratio_agree"] for c in chosen)
    close = sum(abs(c["ratio_move"] - 1) <= TOLERANCE for c in chosen)
    return [
        f"{what}: {ok}/{len(chosen)} agree ({ok / len(chosen):.0%}; within 10%: "
        f"{close}, {close / len(chosen):.0%})"
    ]


def _cpu_line(found: list[dict[str, Any]]) -> str:
    """Of the cells whose ratio moved beyond the tolerance, how many were measured while
    the CPU probe ran beyond the tolerance faster or slower than in the other run: a
    format bound by CPU moves against the floor (memory, I/O) when the CPU's speed does."""
    moved = [c for c in found if abs(c["ratio_move"] - 1) > TOLERANCE]
    with_cpu = sum(abs(c["cpu_move"] - 1) > TOLERANCE for c in moved)
    held = [c for c in found if abs(c["ratio_move"] - 1) <= TOLERANCE]
    held_cpu = sum(abs(c["cpu_move"] - 1) > TOLERANCE for c in held)
    return (
        f"  of the {len(moved)} ratios that moved beyond 10%, {with_cpu} were measured while "
        f"the CPU probe moved beyond 10% too (of the {len(held)} that held, {held_cpu})"
    )


def report(first: Path, second: Path, min_n: int = 10_000, worst: int = 8) -> str:
    """The comparison as text (what the ``compare`` command prints)."""
    found = cells(first, second, min_n)
    if not found:
        raise StorebenchError(
            f"no timing cells at n >= {min_n} with ratios in both {first} "
            f"and {second}; compare two finished runs"
        )
    total = len(found)
    ratio_ok = sum(c["ratio_agree"] for c in found)
    abs_ok = sum(c["abs_agree"] for c in found)
    ratio_close = sum(abs(c["ratio_move"] - 1) <= TOLERANCE for c in found)
    abs_close = sum(abs(c["abs_move"] - 1) <= TOLERANCE for c in found)
    rows_a = [c["a"] for c in found]
    rows_b = [c["b"] for c in found]
    cpu = _summary_of(rows_b, "cpu_ms") / _summary_of(rows_a, "cpu_ms")
    floor = float(
        np.median(
            [float(c["b"]["reference_median"]) / float(c["a"]["reference_median"]) for c in found]
        )
    )
    lines = [f"A: {first}", f"B: {second}", f"cells at n >= {min_n:,}: {total}", ""]
    lines.append(
        f"{'cell':<48} {'ratio A':>9} {'ratio B':>9} {'B/A':>6} {'ok':>3}  "
        f"{'s A':>9} {'s B':>9} {'B/A':>6} {'ok':>3}"
    )
    for c in found:
        a, b = c["a"], c["b"]
        lines.append(
            f"{_cell_name(c['key']):<48} {float(a['ratio']):>9.3g} {float(b['ratio']):>9.3g} "
            f"{c['ratio_move']:>6.2f} {'yes' if c['ratio_agree'] else 'NO':>3}  "
            f"{float(a['median']):>9.3g} {float(b['median']):>9.3g} {c['abs_move']:>6.2f} "
            f"{'yes' if c['abs_agree'] else 'NO':>3}"
        )
    lines += ["", f"worst {worst} cells by ratio:"]
    for c in sorted(found, key=lambda c: -abs(math.log(c["ratio_move"])))[:worst]:
        lines.append(
            f"  {_cell_name(c['key'])}: ratio {c['ratio_move']:.2f}x, "
            f"absolute {c['abs_move']:.2f}x, CPU probe {c['cpu_move']:.2f}x"
            + _steal_pair(c["a"], c["b"])
        )
    lines += ["", f"worst {worst} cells by absolute time:"]
    for c in sorted(found, key=lambda c: -abs(math.log(c["abs_move"])))[:worst]:
        lines.append(
            f"  {_cell_name(c['key'])}: absolute {c['abs_move']:.2f}x, ratio {c['ratio_move']:.2f}x"
        )
    questions, contradicted, notes = contradictions(first, second)
    lines += [
        "",
        f"rankings at the largest n: {questions - contradicted} of {questions} "
        "questions the same up to declared ties",
    ]
    lines += [f"  {note}" for note in notes]
    moved = abs(cpu - 1) > TOLERANCE or abs(floor - 1) > TOLERANCE
    drift_a, drift_b = _summary_of(rows_a, "drift"), _summary_of(rows_b, "drift")
    lines += [
        "",
        f"reference speeds B/A: CPU probe {cpu:.2f}x, floor (median over cells) {floor:.2f}x"
        + (" -> the machine's speed moved between the runs" if moved else ""),
        "host steal (the share of CPU time the hypervisor gave other guests, mean over "
        "cells): " + _per_run(rows_a, rows_b, "steal", np.mean, "{:.1%}"),
        "pairs retaken because the host stole from them: "
        + _per_run(rows_a, rows_b, "retaken", np.sum, "{:,.0f}"),
        "drift of the CPU against the floor between jobs (in the intervals): "
        + ", ".join(
            f"{name} {'unknown' if math.isnan(d) else f'{d:.1%}'}"
            for name, d in (("A", drift_a), ("B", drift_b))
        ),
        f"ratios: {ratio_ok}/{total} cells agree ({ratio_ok / total:.0%}; within 10%: "
        f"{ratio_close}, {ratio_close / total:.0%})",
        _cpu_line(found),
        f"absolute times: {abs_ok}/{total} cells agree ({abs_ok / total:.0%}; within 10%: "
        f"{abs_close}, {abs_close / total:.0%})",
        *_subset_line(found, "ratios of the store and read cells", STORE_AND_READ),
        f"verdict: {'AGREE' if ratio_ok >= 0.95 * total and not contradicted else 'DIFFER'}: "
        f"paired ratios agree in {ratio_ok / total:.1%} of cells (target 95%), absolute times "
        f"in {abs_ok / total:.1%}; {contradicted} ranking contradiction(s); CPU {cpu:.2f}x, "
        f"floor {floor:.2f}x.",
    ]
    return "\n".join(lines) + "\n"
