"""What the training loop's table says: the workers each format needs to keep the
accelerator busy, and the verdict line.

"Workers needed" is the smallest number of workers whose median accelerator
utilisation (AU) reached the target. It is *resolved* when that count's AU interval
lies at or above the target too; when no measured count reached it, the answer is
"not 1, 2, 4" for the counts measured: nothing beyond the measured counts is
guessed (a 2-core machine says nothing of 16 workers).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from storebench.errors import StorebenchError

Rows = Sequence[Mapping[str, Any]]
LOADER_WORDS = {
    "threads": ("thread", "threads"),
    "processes": ("worker process", "worker processes"),
}


@dataclasses.dataclass(frozen=True)
class Needed:
    """The fewest workers that kept AU at the target: ``workers`` (None if no measured
    count did), whether that is ``resolved`` (its AU interval at or above the target)
    and the counts ``measured``."""

    workers: int | None
    resolved: bool
    measured: tuple[int, ...]
    au: float = math.nan
    au_lo: float = math.nan
    au_hi: float = math.nan

    def text(self, loader: str) -> str:
        one, many = LOADER_WORDS.get(loader, (loader, loader))
        if self.workers is None:
            counts = ", ".join(map(str, self.measured))
            words = one if self.measured == (1,) else many
            return f"not {counts} {words} (best AU {self.au:.1%})"
        count = f"{self.workers} {many if self.workers != 1 else one}"
        interval = f"AU {self.au:.1%} [{self.au_lo:.1%}-{self.au_hi:.1%}]"
        return f"{count} ({interval}{'' if self.resolved else ', not resolved'})"


def workers_needed(curve: Mapping[int, tuple[float, float, float]], target: float) -> Needed:
    """From ``curve``: workers -> (AU, its interval's low and high end), the smallest
    count whose AU is at least ``target``; resolved when its interval's low end is too.
    With none, the best AU measured."""
    if not curve:
        raise StorebenchError("workers needed: no measured worker count")
    for workers in sorted(curve):
        au, low, high = curve[workers]
        if au >= target:
            return Needed(workers, low >= target, tuple(sorted(curve)), au, low, high)
    best = max(curve.values(), key=lambda v: v[0])
    return Needed(None, False, tuple(sorted(curve)), *best)


def needed(rows: Rows, n: int | None = None) -> dict[tuple[str, str], Needed]:
    """(format, loader) -> workers needed at ``n`` (default: the largest n) from the
    training table's rows, at each row's target AU."""
    if not rows:
        return {}
    n = n if n is not None else max(int(r["n"]) for r in rows)
    curves: dict[tuple[str, str], dict[int, tuple[float, float, float]]] = {}
    targets: dict[tuple[str, str], float] = {}
    for r in rows:
        if int(r["n"]) != n:
            continue
        key = (r["format"], r["loader"])
        curves.setdefault(key, {})[int(r["workers"])] = (
            float(r["au"]),
            float(r["au_lo"]),
            float(r["au_hi"]),
        )
        targets[key] = float(r.get("target_au") or 0.9)
    return {key: workers_needed(curve, targets[key]) for key, curve in curves.items()}


def _au_span(needs: Sequence[Needed]) -> str:
    low, high = min(n.au for n in needs), max(n.au for n in needs)
    return f"AU {low:.1%}" if f"{low:.1%}" == f"{high:.1%}" else f"AU {low:.1%}-{high:.1%}"


def verdict_lines(rows: Rows) -> list[str]:
    """One line per loader: "to keep one accelerator 90% busy at a step of S ms per batch
    of B, with threads: 1 thread: **x**, **y** (AU ...); 2 threads: **z** (...); not 1,
    2, 4 threads: **w** (best AU ...)", the formats grouped by the workers they need."""
    if not rows:
        return []
    n = max(int(r["n"]) for r in rows)
    found = needed(rows, n)
    first = next(r for r in rows if int(r["n"]) == n)
    target = float(first.get("target_au") or 0.9)
    # the floor reads as fast as the machine allows: what it needs, every format needs
    floors = {r["format"] for r in rows if r.get("kind") == "npy"}
    lines = []
    for loader, (one, many) in LOADER_WORDS.items():
        cells = [(fmt, need) for (fmt, kind), need in found.items() if kind == loader]
        if not cells:
            continue
        groups: dict[int | None, list[tuple[str, Needed]]] = {}
        for fmt, need in sorted(cells, key=lambda c: -c[1].au):
            groups.setdefault(need.workers, []).append((fmt, need))
        parts = []
        for count in sorted(groups, key=lambda c: (c is None, c or 0)):
            members = groups[count]
            names = (
                "every format"
                if len(members) == len(cells)
                else ", ".join(
                    f"**{fmt}**{' (the floor)' if fmt in floors else ''}" for fmt, _ in members
                )
            )
            needs = [need for _, need in members]
            if count is None:
                counts = ", ".join(map(str, needs[0].measured))
                words = one if needs[0].measured == (1,) else many
                best = f"best AU {min(n.au for n in needs):.1%}-{max(n.au for n in needs):.1%}"
                if len(needs) == 1:
                    best = f"best AU {needs[0].au:.1%}"
                parts.append(f"not {counts} {words}: {names} ({best})")
                continue
            open_ = [fmt for fmt, need in members if not need.resolved]
            note = f"; not resolved for {', '.join(open_)}" if open_ else ""
            word = one if count == 1 else many
            parts.append(f"{count} {word}: {names} ({_au_span(needs)}{note})")
        lines.append(
            f"To keep one accelerator {target:.0%} busy at a step of "
            f"{float(first['step_ms']):.3g} ms per batch of {first['batch_size']} "
            f"(n = {n:,}), {many}: {'; '.join(parts)}."
        )
    return lines
