"""What a run's tables may claim: which format is ahead of which, and by how much.

Rows of one cell (one n, measurement, cache and order) measured in rounds carry each
round's log ratio (``round_values``). Two formats are put in order only when the
interval of the median of their round-paired differences (the same round: the same
host state; distribution-free, 96.9% from 6 rounds) excludes zero; a margin's
interval is that paired interval. Rows of a
cell measured in one job have no rounds: they are ordered only when their intervals
do not overlap, and those intervals leave out the drift between jobs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from storebench.stats import CONFIDENCE, clearly_before, paired_difference, parse_rounds

Row = Mapping[str, Any]


def rounds_of(row: Row) -> dict[int, float]:
    """A row's per-round log ratios ({} for a row measured in one job)."""
    return parse_rounds(row.get("round_values", ""))


def difference(a: Row, b: Row) -> dict[str, float] | None:
    """The round-paired difference ln(ratio a) - ln(ratio b) with its interval, or
    None where the two rows share fewer than two rounds."""
    return paired_difference(rounds_of(a), rounds_of(b))


def shown(found: Mapping[str, float] | None) -> bool:
    """Whether a round-paired difference shows its first side lower: its interval lies
    below 0 and covers at least 95% (6 common rounds; fewer cannot order two formats)."""
    return found is not None and found["coverage"] >= CONFIDENCE and found["hi"] < 0


def before(a: Row, b: Row) -> bool:
    """Whether the run shows ``a`` faster (lower) than ``b``: round by round where both
    have rounds, else by intervals that do not overlap."""
    if rounds_of(a) and rounds_of(b):
        return shown(difference(a, b))
    return clearly_before(a, b, "ratio_lo", "ratio_hi")


def ranked(rows: Sequence[Row]) -> list[tuple[Row, int, int]]:
    """``rows`` best first, each with the ranks the run allows it: from 1 + the number of
    formats shown faster to the count of rows less the number shown slower. Two formats
    the run cannot order have ranges that share a rank; one number where the run pins
    the rank down. Listed by those ranks, then by ratio, so order and ranks agree."""
    faster = [sum(before(other, row) for other in rows if other is not row) for row in rows]
    slower = [sum(before(row, other) for other in rows if other is not row) for row in rows]
    spans = [(1 + f, len(rows) - s) for f, s in zip(faster, slower, strict=True)]
    order = sorted(range(len(rows)), key=lambda i: (*spans[i], float(rows[i]["ratio"])))
    return [(rows[i], *spans[i]) for i in order]


def margin(winner: Row, runner_up: Row) -> dict[str, Any]:
    """How much slower ``runner_up`` is than ``winner`` (a ratio > 1 when it is), with its
    interval and whether the run can tell them apart (``tie``: it cannot)."""
    a, b = float(winner["ratio"]), float(runner_up["ratio"])
    found = difference(runner_up, winner)
    if found is not None:
        return {
            "margin": math.exp(found["center"]),
            "margin_lo": math.exp(found["lo"]),
            "margin_hi": math.exp(found["hi"]),
            "tie": not shown({**found, "lo": -found["hi"], "hi": -found["lo"]}),
            "paired": True,
        }
    lo = float(runner_up["ratio_lo"]) / float(winner["ratio_hi"])
    hi = float(runner_up["ratio_hi"]) / float(winner["ratio_lo"])
    return {
        "margin": b / a if a > 0 else math.inf,
        "margin_lo": lo,
        "margin_hi": hi,
        "tie": not before(winner, runner_up),
        "paired": False,
    }


# A margin whose interval spans more than this factor (high / low) is not quoted as a number.
MAX_MARGIN_SPAN = 2.0


def can_tell(found: Mapping[str, Any]) -> bool:
    """Whether a margin's interval is narrow enough to quote (high / low <= 2)."""
    lo, hi = float(found["margin_lo"]), float(found["margin_hi"])
    return lo > 0 and hi / lo <= MAX_MARGIN_SPAN
