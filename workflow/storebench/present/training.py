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
            return f"not {counts} {words} (best AU {self.au:.0%})"
        count = f"{self.workers} {many if self.workers != 1 else one}"
        interval = f"AU {self.au:.0%} [{self.au_lo:.0%}-{self.au_hi:.0%}]"
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


def verdict_lines(rows: Rows) -> list[str]:
    """One line per loader: "to keep one accelerator busy (AU >= 90%) at a step of S ms
    per batch of B, format X needs ...", formats from fewest workers to most."""
    if not rows:
        return []
    n = max(int(r["n"]) for r in rows)
    found = needed(rows, n)
    first = next(r for r in rows if int(r["n"]) == n)
    target = float(first.get("target_au") or 0.9)
    # the floor reads as fast as the machine allows: a count it needs, every format needs
    floors = {r["format"] for r in rows if r.get("kind") == "npy"}
    lines = []
    for loader in LOADER_WORDS:
        cells = [(fmt, need) for (fmt, kind), need in found.items() if kind == loader]
        if not cells:
            continue
        cells.sort(key=lambda c: (c[1].workers is None, c[1].workers or 0, -c[1].au))
        parts = "; ".join(
            f"**{fmt}**{' (the floor)' if fmt in floors else ''} {need.text(loader)}"
            for fmt, need in cells
        )
        lines.append(
            f"To keep one accelerator {target:.0%} busy at a step of "
            f"{float(first['step_ms']):.3g} ms per batch of {first['batch_size']} "
            f"(n = {n:,}, {loader}): {parts}."
        )
    return lines
