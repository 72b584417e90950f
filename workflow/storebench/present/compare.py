"""Run-to-run check: does a rerun reproduce a run, and if not, did the machine move?

``python -m storebench compare RESULTS_A RESULTS_B`` reads both runs' store and read
tables and, per cell measured in rounds at n >= ``min_n``, takes the difference of
the two runs' log ratios to the floor (each the median over its rounds),
``d = ln(B) - ln(A)``, with the distribution-free interval of the shift between the
two runs' rounds (Mann-Whitney, :func:`storebench.stats.shift_interval`; exact
coverage for exchangeable rounds). Each cell is then

- **changed**: the 95% interval of the shift excludes 0 and ``|d| > ln 1.1``;
- **same**: the 90% interval lies inside ``+/- ln 1.1`` (two one-sided tests);
- **unknown**: neither; more rounds would tell.

The verdict is REPRODUCED only if at least 95% of the cells are within 10%
(``|d| <= ln 1.1``), at most 5% are changed, no claim that one format is faster
than another in a cell is reversed, the differences are calibrated (the 95%
interval of the shift holds 0 in at least 90% of cells, as it does in 95% or more
when only chance moved them) and the floor measured against itself holds 1 in its
cells of each run as often as its intervals' coverage says (it fails when chance
would give that many misses less than 5% of the time). ``compare RESULTS_A`` alone
checks one run the same way, its odd rounds against its even rounds (3 against 3
rounds reach 90%, not 95%: the self-check says so).

It also prints how far the machine's balance of CPU against memory speed moved
between the runs (the CPU probe against the floor, per cell) and, per format, how
its ratio followed that balance, so "the machine moved" is told apart from "the
format moved". A ratio to the floor cannot absorb such a move: a cell bound by the
CPU follows it, the memory-bound floor does not. When the balance moved beyond
``BALANCE_LIMIT`` (significant and beyond it, the rule that calls a cell changed)
and the verdict
failed, the same checks are made again on the cells bound by memory and I/O, known
before looking at any move: those whose ratio to the floor is at most
``MEMORY_BOUND_RATIO`` in run A. The floor moves the same bytes, so at least
half of such a cell's time is the floor's own work, and a move of the balance moves
its ratio by at most half as much.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from storebench import rounds
from storebench.errors import StorebenchError
from storebench.present import claims
from storebench.present.tables import read_table
from storebench.stats import format_rounds, parse_rounds, round_interval, shift_interval

TABLES = rounds.STAGES  # the tables whose cells are measured in rounds
KEY = ("format", "n", "measurement", "cache", "order")
TOLERANCE = 0.10
LIMIT = math.log1p(TOLERANCE)
# What the verdict asks of the cells.
WITHIN_SHARE = 0.95
CHANGED_SHARE = 0.05
CALIBRATED_SHARE = 0.90
# The floor measured against itself: each of its intervals misses 1 by chance as often
# as its coverage allows (1 time in 32 at 96.9%), so a miss among a dozen cells is
# expected; the check fails only when so many miss that chance would give that many
# less than 5% of the time.
FLOOR_ALARM = 0.05
# The move of the machine's CPU:memory balance between two runs that the verdict takes
# as the machine having moved (about a third of the 10% a cell may move).
BALANCE_LIMIT = math.log(1.03)
# A cell is bound by memory and I/O when the format takes at most this many times the
# floor's time (which moves the same images' bytes) in the run compared against.
MEMORY_BOUND_RATIO = 2.0

Row = dict[str, Any]


def _load(results: Path, table: str) -> dict[tuple, Row]:
    path = Path(results) / "tables" / f"{table}.csv"
    if not path.is_file():
        return {}
    return {(table, *(row.get(k, "") for k in KEY)): row for row in read_table(path)}


def _in_rounds(row: Row) -> bool:
    """Whether a row was measured in at least two rounds (it has a between-round spread)."""
    return len(claims.rounds_of(row)) >= 2


def label(d: float, at95: Mapping[str, float], at90: Mapping[str, float]) -> str:
    """``changed``, ``same`` or ``unknown`` for a difference ``d`` of log ratios with the
    95% and 90% intervals of the shift."""
    if (at95["lo"] > 0 or at95["hi"] < 0) and abs(d) > LIMIT:
        return "changed"
    if at90["lo"] >= -LIMIT and at90["hi"] <= LIMIT:
        return "same"
    return "unknown"


def judge(a: Row, b: Row) -> dict[str, Any]:
    """One cell of two runs (or halves of one): its difference, interval, label and
    whether the interval holds 0 (calibration)."""
    d = math.log(float(b["ratio"])) - math.log(float(a["ratio"]))
    rounds_a, rounds_b = list(claims.rounds_of(a).values()), list(claims.rounds_of(b).values())
    at95 = shift_interval(rounds_a, rounds_b, 0.95)
    at90 = shift_interval(rounds_a, rounds_b, 0.90)
    return {
        "d": d,
        "lo": at95["lo"],
        "hi": at95["hi"],
        "coverage": at95["coverage"],
        "label": label(d, at95, at90),
        "within": abs(d) <= LIMIT,
        "calibrated": at95["lo"] <= 0 <= at95["hi"],
    }


def cells(first: Path, second: Path, min_n: int) -> list[dict[str, Any]]:
    """Every store and read cell both runs measured in rounds at n >= ``min_n``."""
    return _judged(_pairs(first, second, min_n))


def _pairs(first: Path, second: Path, min_n: int) -> list[tuple[tuple, Row, Row]]:
    found = []
    for table in TABLES:
        a, b = _load(first, table), _load(second, table)
        for key in sorted(a.keys() & b.keys(), key=str):
            row_a, row_b = a[key], b[key]
            if int(row_a["n"]) >= min_n and _in_rounds(row_a) and _in_rounds(row_b):
                found.append((key, row_a, row_b))
    return found


def left_out(first: Path, second: Path, min_n: int) -> str:
    """The cells at n >= ``min_n`` that both runs measured but not both in rounds, which
    compare cannot judge (one job's spread leaves out the drift between jobs), as a
    line; "" when there are none."""
    sizes: dict[int, int] = {}
    for table in TABLES:
        a, b = _load(first, table), _load(second, table)
        for key in a.keys() & b.keys():
            n = int(a[key]["n"])
            if n >= min_n and not (_in_rounds(a[key]) and _in_rounds(b[key])):
                sizes[n] = sizes.get(n, 0) + 1
    if not sizes:
        return ""
    listed = ", ".join(f"{count} at n = {n:,}" for n, count in sorted(sizes.items()))
    return (
        f"not compared: {listed}, measured in one job per cell (no rounds; "
        "workflow/configs/full.yaml measures them in rounds)"
    )


def _judged(pairs: Iterable[tuple[tuple, Row, Row]]) -> list[dict[str, Any]]:
    return [{"key": key, "a": a, "b": b, **judge(a, b)} for key, a, b in pairs]


def reversals(found: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """Claims of order reversed: in one cell, A shows format f faster than g and B shows
    g faster than f. Returns how many claims A made, and the reversed ones."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for cell in found:
        table, _, n, measurement, cache, order = cell["key"]
        groups.setdefault((table, n, measurement, cache, order), []).append(cell)
    claimed, notes = 0, []
    for (table, n, measurement, cache, order), members in groups.items():
        for f in members:
            for g in members:
                if f is g or not claims.before(f["a"], g["a"]):
                    continue
                claimed += 1
                if claims.before(g["b"], f["b"]):
                    where = " ".join(
                        str(x) for x in (table, f"n={n}", measurement, cache, order) if x
                    )
                    notes.append(f"{where}: {f['key'][1]} before {g['key'][1]} in A, after it in B")
    return claimed, notes


def floor_holds(rows: Iterable[Row], floor: str | None) -> tuple[int, int, float]:
    """Of the floor's own cells (measured against itself), how many intervals hold 1,
    and the lowest coverage those intervals claim."""
    own = [r for r in rows if r["format"] == floor]
    held = sum(float(r["ratio_lo"]) <= 1 <= float(r["ratio_hi"]) for r in own)
    claimed = [float(r["coverage"]) for r in own if r.get("coverage", "") not in ("", None)]
    return held, len(own), min(claimed, default=0.95)


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(max(0, k), n + 1)))


def _floor_name(rows: Iterable[Row]) -> str | None:
    return next((r["format"] for r in rows if r.get("kind") == "npy"), None)


def _balance(row: Row) -> float:
    """ln(CPU probe / floor's time) of a cell: how fast the CPU ran against memory."""
    if row.get("cpu_ms", "") in ("", None) or row.get("reference_median", "") in ("", None):
        return math.nan
    return math.log(float(row["cpu_ms"]) / float(row["reference_median"]))


def _moves(found: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float]]:
    moves = [(c, _balance(c["b"]) - _balance(c["a"])) for c in found]
    return [(c, x) for c, x in moves if math.isfinite(x)]


def round_balance(found: list[dict[str, Any]]) -> tuple[list[float], list[float]] | None:
    """Each round's CPU:memory balance in run A and in run B: per cell, its rounds' log
    (CPU probe / floor) less the cell's median over both runs' rounds (cells differ in
    scale); per round, the median over the cells it measured. A round is one stretch of
    the machine's time, so the rounds, not the cells, are the independent draws of the
    balance. None when fewer than two rounds of a run recorded it."""
    per_round: tuple[dict[int, list[float]], dict[int, list[float]]] = ({}, {})
    for cell in found:
        values = [parse_rounds(cell[side].get("balance_values", "")) for side in ("a", "b")]
        pooled = [x for v in values for x in v.values()]
        if not pooled:
            continue
        middle = float(np.median(pooled))
        for side, by_round in zip(per_round, values, strict=True):
            for r, x in by_round.items():
                side.setdefault(r, []).append(x - middle)
    a, b = ([float(np.median(v)) for _, v in sorted(side.items())] for side in per_round)
    return (a, b) if len(a) >= 2 and len(b) >= 2 else None


def balance_move(found: list[dict[str, Any]]) -> dict[str, float] | None:
    """How far the machine's CPU:memory balance moved from run A to run B (log): the
    shift between the runs' rounds (:func:`round_balance`), with its distribution-free
    interval and coverage; None when the runs did not record it."""
    rounds_ = round_balance(found)
    return None if rounds_ is None else shift_interval(*rounds_)


def moved(balance: Mapping[str, float] | None) -> bool:
    """Whether the balance moved, by the rule a cell is called changed by: its interval
    excludes no move and its median is beyond :data:`BALANCE_LIMIT`."""
    if balance is None:
        return False
    significant = balance["lo"] > 0 or balance["hi"] < 0
    return significant and abs(balance["center"]) > BALANCE_LIMIT


def memory_bound(cell: Mapping[str, Any]) -> bool:
    """Whether a cell is bound by memory and I/O: the format took at most
    :data:`MEMORY_BOUND_RATIO` times the floor's time in run A, the one B is to
    reproduce (so a format that slowed in B is still judged with its class)."""
    return float(cell["a"]["ratio"]) <= MEMORY_BOUND_RATIO


def machine_lines(found: list[dict[str, Any]]) -> list[str]:
    """How far the machine's CPU:memory balance moved between the runs, and per format
    the median move of its ratio and its slope on that balance."""
    moves = _moves(found)
    balance = balance_move(found)
    if balance is None:
        return ["machine balance: not recorded"]
    lines = [
        "machine balance (CPU probe against the floor, shift between the runs' rounds) "
        f"B/A: {math.exp(balance['center']):.3f}x [{math.exp(balance['lo']):.3f}-"
        f"{math.exp(balance['hi']):.3f}, {balance['coverage']:.1%}]"
        + (
            " -> the machine's CPU moved against its memory between the runs, beyond "
            f"the {math.expm1(BALANCE_LIMIT):.0%} a ratio to the floor absorbs"
            if moved(balance)
            else ""
        ),
        "per format: median ratio move B/A, its slope on the balance's move (1: the "
        "ratio follows the CPU, 0: it does not), and its cells within 10% and changed:",
    ]
    by_format: dict[str, list[tuple[float, float, bool, str]]] = {}
    for cell, x in moves:
        point = (x, cell["d"], cell["within"], cell["label"])
        by_format.setdefault(cell["key"][1], []).append(point)
    for fmt, points in by_format.items():
        xs = np.array([p[0] for p in points])
        ys = np.array([p[1] for p in points])
        spread = float(np.var(xs))
        slope = float(np.cov(xs, ys, bias=True)[0, 1] / spread) if spread > 1e-6 else math.nan
        within = sum(p[2] for p in points)
        changed = sum(p[3] == "changed" for p in points)
        lines.append(
            f"  {fmt:<20} ratio {math.exp(float(np.median(ys))):.3f}x, "
            f"slope {'n/a' if math.isnan(slope) else f'{slope:+.2f}'}; "
            f"within 10% in {within}/{len(points)} cells, changed in {changed}"
        )
    return lines


def _cell_name(key: tuple) -> str:
    table, fmt, n, measurement, cache, order = key
    return " ".join(str(x) for x in (table, fmt, f"n={n}", measurement, cache, order) if x != "")


def verdict(
    found: list[dict[str, Any]],
    floors: Mapping[str, tuple[int, int]],
    claimed: int,
    reversed_: list[str],
    word: str = "REPRODUCED",
    calibrate: bool = True,
) -> list[str]:
    """The summary lines and the one-line verdict. ``calibrate=False`` leaves the
    calibration out of the verdict (when the machine moved, even cells bound by memory
    move a little, for real, and their intervals are right to say so)."""
    total = len(found)
    within = sum(c["within"] for c in found)
    changed = sum(c["label"] == "changed" for c in found)
    same = sum(c["label"] == "same" for c in found)
    calibrated = sum(c["calibrated"] for c in found)
    lowest = min((c["coverage"] for c in found), default=0.95)
    checks = [
        (within >= WITHIN_SHARE * total, f"{within / total:.1%} of cells within 10% (need 95%)"),
        (changed <= CHANGED_SHARE * total, f"{changed / total:.1%} changed (at most 5%)"),
        (not reversed_, f"{len(reversed_)} of {claimed} order claims reversed (need 0)"),
    ]
    if calibrate:
        checks.append(
            (
                calibrated >= CALIBRATED_SHARE * total,
                f"shift interval holds 0 in {calibrated / total:.1%} (need 90%)",
            )
        )
    for name, (held, count, coverage) in floors.items():
        chance = binomial_tail(count - held, count, 1 - coverage)
        checks.append(
            (
                count > 0 and chance >= FLOOR_ALARM,
                f"floor against itself holds 1 in {held}/{count} cells of {name} "
                f"(misses this many or more by chance: {chance:.0%}; need 5%)",
            )
        )
    lines = [
        f"cells: {total}; within 10%: {within} ({within / total:.1%}); changed: {changed}; "
        f"same (shown within 10%): {same}; unknown: {total - changed - same}",
        f"calibration: the interval of the shift between the runs' rounds holds 0 in "
        f"{calibrated}/{total} cells ({calibrated / total:.1%}; its coverage, at least "
        f"{lowest:.1%}, when only chance moved them)",
        f"order claims: {claimed} made in A, {len(reversed_)} reversed",
        *(f"  {note}" for note in reversed_),
        *(
            f"floor against itself ({name}): interval holds 1 in {h}/{c} cells "
            f"(coverage at least {cov:.1%})"
            for name, (h, c, cov) in floors.items()
        ),
    ]
    ok = all(passed for passed, _ in checks)
    failed = [text for passed, text in checks if not passed]
    lines.append(
        f"verdict: {word if ok else 'NOT ' + word}: "
        + "; ".join(text for _, text in checks)
        + ("" if ok else f" -- failed: {'; '.join(failed)}")
    )
    return lines


def _table_lines(found: list[dict[str, Any]], worst: int) -> list[str]:
    lines = [
        f"{'cell':<52} {'ratio A':>9} {'ratio B':>9} {'B/A':>6} {'interval':>13}  label",
    ]
    for c in found:
        interval = f"{math.exp(c['lo']):.3f}-{math.exp(c['hi']):.3f}"
        lines.append(
            f"{_cell_name(c['key']):<52} {float(c['a']['ratio']):>9.4g} "
            f"{float(c['b']['ratio']):>9.4g} {math.exp(c['d']):>6.3f} {interval:>13}  {c['label']}"
        )
    lines += ["", f"worst {worst} cells by ratio:"]
    for c in sorted(found, key=lambda c: -abs(c["d"]))[:worst]:
        lines.append(
            f"  {_cell_name(c['key'])}: B/A {math.exp(c['d']):.3f}x "
            f"[{math.exp(c['lo']):.3f}-{math.exp(c['hi']):.3f}, {c['coverage']:.1%}], "
            f"rounds {c['a']['rounds']} / {c['b']['rounds']}, {c['label']}"
        )
    return lines


DATASET_FIELDS = ("kind", "source", "sha256", "source_images", "shape", "dtype", "n_images")


def same_data(first: Path, second: Path) -> None:
    """Refuse to compare runs that measured different data (another dataset, image size
    or number of images), as their results folders' ``dataset/dataset.json`` say."""
    found = []
    for results in (first, second):
        path = Path(results) / "dataset" / "dataset.json"
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            return  # a folder of tables alone: nothing to check against
    differ = [f for f in DATASET_FIELDS if found[0].get(f) != found[1].get(f)]
    if differ:
        field = differ[0]
        raise StorebenchError(
            f"{first} and {second} measured different data ({field}: "
            f"{found[0].get(field)} against {found[1].get(field)}); compare two runs of "
            "the same dataset and image size"
        )


def report(first: Path, second: Path, min_n: int = 10_000, worst: int = 8) -> str:
    """The comparison of two runs as text (what ``compare A B`` prints)."""
    same_data(first, second)
    found = cells(first, second, min_n)
    if not found:
        raise StorebenchError(
            f"no store or read cells measured in rounds at n >= {min_n} in both {first} "
            f"and {second}; compare two finished runs with rounds (config rounds.from_n)"
        )
    rows_a, rows_b = [c["a"] for c in found], [c["b"] for c in found]
    floor = _floor_name(rows_a)
    claimed, reversed_ = reversals(found)
    lines = [f"A: {first}", f"B: {second}", f"store and read cells at n >= {min_n:,}"]
    lines += [note for note in [left_out(first, second, min_n)] if note] + [""]
    lines += _table_lines(found, worst)
    lines += ["", *machine_lines(found), ""]
    floors = {"A": floor_holds(rows_a, floor), "B": floor_holds(rows_b, floor)}
    whole = verdict(found, floors, claimed, reversed_)
    lines += whole
    if whole[-1].startswith("verdict: NOT") and moved(balance_move(found)):
        lines += ["", *memory_bound_lines(found, floors, floor)]
    return "\n".join(lines) + "\n"


def memory_bound_lines(
    found: list[dict[str, Any]], floors: Mapping[str, tuple[int, int, float]], floor: str | None
) -> list[str]:
    """The verdict's checks again on the cells bound by memory and I/O, which a move of
    the machine's CPU:memory balance leaves (nearly) alone."""
    subset = [c for c in found if memory_bound(c)]
    rule = (
        f"ratio to the floor at most {MEMORY_BOUND_RATIO:g} in A: at least half "
        "their time is the floor's own work on the same bytes"
    )
    if not subset:
        return [f"the machine moved; no cell is bound by memory and I/O ({rule})"]
    own = sum(c["key"][1] == floor for c in subset)
    claimed, reversed_ = reversals(subset)
    checked = verdict(
        subset, floors, claimed, reversed_, "REPRODUCED WHERE BOUND BY MEMORY AND I/O", False
    )
    return [
        f"the machine moved, so the cells bound by memory and I/O ({rule}) are checked "
        f"alone: {len(subset)} of {len(found)} cells, {own} of them the floor's own (their "
        "calibration is not asked: the machine's move shifts them a little, for real)",
        *(f"  {line}" for line in checked[:-1] if not line.startswith("floor against")),
        checked[-1],
    ]


def _half(row: Row, keep: Callable[[int], bool]) -> Row | None:
    """A row standing for the rounds ``keep`` selects (e.g. the odd ones), or None with
    fewer than two of them."""
    values = {r: v for r, v in claims.rounds_of(row).items() if keep(r)}
    if len(values) < 2:
        return None
    found = round_interval(list(values.values()))
    return {
        **row,
        "ratio": math.exp(found["center"]),
        "rounds": len(values),
        "round_values": format_rounds(values),
    }


def self_check(results: Path, min_n: int = 10_000, worst: int = 8) -> str:
    """One run checked against itself: its odd rounds as run A, its even rounds as run B
    (what ``compare A`` prints)."""
    pairs = []
    every = []
    for table in TABLES:
        for key, row in _load(results, table).items():
            if int(row["n"]) < min_n or not _in_rounds(row):
                continue
            every.append(row)
            odd, even = _half(row, lambda r: r % 2 == 1), _half(row, lambda r: r % 2 == 0)
            if odd is not None and even is not None:
                pairs.append((key, odd, even))
    found = _judged(sorted(pairs, key=lambda p: str(p[0])))
    if not found:
        raise StorebenchError(
            f"{results}: no store or read cells with 4 or more rounds at n >= {min_n}; "
            "a self-check needs two rounds in each half"
        )
    claimed, reversed_ = reversals(found)
    lines = [
        f"run: {results}",
        f"odd rounds (A) against even rounds (B), store and read cells at n >= {min_n:,}",
        "",
    ]
    lines += [*_table_lines(found, worst), "", "per format: cells within 10% and changed:"]
    counts: dict[str, list[dict[str, Any]]] = {}
    for cell in found:
        counts.setdefault(cell["key"][1], []).append(cell)
    lines += [
        f"  {fmt:<20} within 10% in {sum(c['within'] for c in cells)}/{len(cells)} cells, "
        f"changed in {sum(c['label'] == 'changed' for c in cells)}"
        for fmt, cells in counts.items()
    ]
    lines.append("")
    floors = {"the run": floor_holds(every, _floor_name(every))}
    lines += verdict(found, floors, claimed, reversed_, word="CONSISTENT")
    return "\n".join(lines) + "\n"
