"""Which format should I pick? One line per common need, from a run's tables.

For each need the winner is the format with the lowest ratio to the floor (or bytes
on disk), the floor itself left out: it is the reference every format is measured
against, one memory-mapped .npy of raw pixels. The runner-up is the next in rank
order (:func:`storebench.present.claims.ranked`). The margin is the runner-up's ratio over
the winner's with the interval of the median of their round-paired differences
(:func:`storebench.present.claims.margin`); where the run cannot order the two, the need is a
tie and both are named; where the margin's interval spans more than 2x, the verdict
says the run cannot tell by how much.

The all-round pick (docs/methods.md, "Ranks and margins the data supports"): for every format, the
geometric mean of its value over the best format's value in four needs (store, warm
shuffled read, cold shuffled read, bytes on disk); the lowest mean wins. The
runner-up ties unless the run shows the winner's mean lower: round by round (the
difference of the two means, over the rounds both measured every need), or, for
cells measured in one job, beyond the rows' intervals combined.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from storebench import stats
from storebench.present import claims, training

Rows = Sequence[Mapping[str, Any]]


def _number(row: Mapping[str, Any], key: str) -> float:
    value = row.get(key, "")
    return float(value) if value not in ("", None) else math.nan


def _candidates(rows: Rows, floor: str | None, value: str) -> list[Mapping[str, Any]]:
    found = [r for r in rows if r["format"] != floor and math.isfinite(_number(r, value))]
    return sorted(found, key=lambda r: _number(r, value))


def pick(
    rows: Rows, floor: str | None, value: str = "ratio", lo: str = "ratio_lo", hi: str = "ratio_hi"
) -> dict[str, Any] | None:
    """The winner of ``rows`` (one per format) by ``value``, the runner-up, the margin
    and its interval, and whether they tie; None without two formats."""
    found_rows = _candidates(rows, floor, value)
    if not found_rows:
        return None
    if value == "ratio":
        found_rows = [row for row, _, _ in claims.ranked(found_rows)]
    first = found_rows[0]
    found: dict[str, Any] = {"winner": first["format"], "value": _number(first, value)}
    if len(found_rows) == 1:
        return {**found, "runner_up": None, "tie": False}
    second = found_rows[1]
    if value == "ratio":
        return {**found, "runner_up": second["format"], **claims.margin(first, second)}
    a, b = _number(first, value), _number(second, value)
    return {
        **found,
        "runner_up": second["format"],
        "margin": b / a if a > 0 else math.inf,
        "margin_lo": _number(second, lo) / _number(first, hi),
        "margin_hi": _number(second, hi) / _number(first, lo),
        "tie": _number(second, lo) <= _number(first, hi),
    }


def _score_difference(
    needs: Mapping[str, Rows], a: str, b: str, disk_need: str
) -> dict[str, float] | None:
    """ln(score a) - ln(score b) of the all-round rule with its interval: round by round
    (the median over rounds, :func:`storebench.stats.round_interval`) where every
    timing need of both formats has rounds, else from the rows' own intervals combined
    (each read as +/- 1.96 standard errors on a log scale)."""
    timing = {
        need: {r["format"]: r for r in rows} for need, rows in needs.items() if need != disk_need
    }
    disk = {r["format"]: _number(r, "ratio") for r in needs.get(disk_need, [])}
    count = len(timing) + (1 if disk else 0)
    disk_term = math.log(disk[a] / disk[b]) / count if disk else 0.0
    per_round: list[dict[int, float]] = []
    for by_format in timing.values():
        ra, rb = claims.rounds_of(by_format[a]), claims.rounds_of(by_format[b])
        per_round.append({r: ra[r] - rb[r] for r in ra.keys() & rb.keys()})
    common = set.intersection(*(set(d) for d in per_round)) if per_round else set()
    if len(common) >= 2 and all(per_round):
        diffs = {r: sum(d[r] for d in per_round) / count + disk_term for r in common}
        return stats.round_interval(list(diffs.values()))
    mean, variance = disk_term, 0.0
    for by_format in timing.values():
        for name, sign in ((a, 1), (b, -1)):
            row = by_format[name]
            mean += sign * math.log(_number(row, "ratio")) / count
            spread = math.log(_number(row, "ratio_hi") / _number(row, "ratio_lo"))
            variance += (spread / (2 * stats.Z95) / count) ** 2
    half = stats.Z95 * math.sqrt(variance)
    return {"center": mean, "lo": mean - half, "hi": mean + half}


def all_round(
    needs: Mapping[str, Rows], floor: str | None, value: str = "ratio", disk_need: str = ""
) -> dict[str, Any]:
    """The all-round pick: per format, the geometric mean of value / best value over the
    needs it was measured in (all of them); the lowest wins, and a runner-up the run
    cannot show behind it ties. ``disk_need`` names the need of exact values (bytes)."""
    scores: dict[str, list[float]] = {}
    for rows in needs.values():
        ranked = _candidates(rows, floor, value)
        if not ranked:
            continue
        best = _number(ranked[0], value)
        for row in ranked:
            scores.setdefault(row["format"], []).append(_number(row, value) / best)
    complete = {f: s for f, s in scores.items() if len(s) == len(needs)}
    means = {f: math.exp(sum(map(math.log, s)) / len(s)) for f, s in complete.items()}
    order = sorted(means, key=means.get)
    if not order:
        return {}
    tied = []
    for other in order[1:]:
        found = _score_difference(needs, order[0], other, disk_need)
        if found is None or found["hi"] >= 0 or found.get("coverage", 1.0) < stats.CONFIDENCE:
            tied.append(other)
    return {"winner": order[0], "score": means[order[0]], "tied": tied, "scores": means}


def _margin_text(found: Mapping[str, Any], better: str) -> str:
    if found.get("runner_up") is None:
        return "the only format measured"
    exact = found["margin_lo"] == found["margin_hi"]
    interval = "" if exact else f" [{found['margin_lo']:.2f}–{found['margin_hi']:.2f}]"
    if found["tie"]:
        return f"a tie: the run cannot order them ({found['margin']:.2f}x{interval})"
    if not exact and not claims.can_tell(found):
        return (
            f"{better} than {found['runner_up']}, by how much the run cannot tell "
            f"({found['margin']:.2f}x{interval})"
        )
    return f"{found['margin']:.2f}x {better} than {found['runner_up']}{interval}"


@dataclasses.dataclass(frozen=True)
class Pick:
    """The verdict for one need: the format picked (two or more when the run cannot
    order them) and the margin's words."""

    need: str
    formats: tuple[str, ...]
    margin: str

    @property
    def markdown(self) -> str:
        return " or ".join(f"**{f}**" for f in self.formats)


def rows(tables: Mapping[str, Rows], floor: str | None, n: int) -> list[tuple[str, str, str]]:
    """(need, pick, margin) for every need measured at ``n``; picks in Markdown bold."""
    return [(p.need, p.markdown, p.margin) for p in picks(tables, floor, n)]


def picks(tables: Mapping[str, Rows], floor: str | None, n: int) -> list[Pick]:
    """The pick for every need measured at ``n``."""

    def at_n(table: Rows, **where: Any) -> list[Mapping[str, Any]]:
        return [r for r in table if r["n"] == n and all(r.get(k) == v for k, v in where.items())]

    read = tables.get("read", [])
    needs: list[tuple[str, Rows, str]] = [
        (
            "the fastest shuffled training reads, cold cache (data on disk)",
            at_n(read, measurement="read", cache="cold", order="random"),
            "faster",
        ),
        (
            "the fastest shuffled training reads, warm cache (data in RAM)",
            at_n(read, measurement="read", cache="warm", order="random"),
            "faster",
        ),
        ("the fastest writes", at_n(tables.get("store", []), measurement="store"), "faster"),
    ]
    lookups = [r for r in tables.get("latency", []) if r.get("mode") == "lookup"]
    if lookups:
        needs.append(("the fastest single-image lookup (store open)", lookups, "faster"))
    disk = []
    for row in at_n(tables.get("usage", [])):
        size = _number(row, "bytes_per_image")
        disk.append({**row, "ratio": size, "ratio_lo": size, "ratio_hi": size})
    needs.append(("the smallest store on disk", disk, "smaller"))
    out = []
    for need, table, better in needs:
        found = pick(table, floor)
        if found is None:
            continue
        chosen = (found["winner"], *([found["runner_up"]] if found.get("tie") else []))
        out.append(Pick(need, chosen, _margin_text(found, better)))
    core = {need: table for need, table, _ in needs if "lookup" not in need}
    best = all_round(core, floor, disk_need="the smallest store on disk")
    if best:
        others = sorted(best["scores"].items(), key=lambda kv: kv[1])[1:3]
        text = ", ".join(f"{f} {s:.2f}" for f, s in others)
        out.append(
            Pick(
                "a good all-round choice",
                (best["winner"], *best["tied"]),
                f"{best['score']:.2f}x the best on average over writes, shuffled reads and "
                f"disk{f' (next: {text})' if text else ''}",
            )
        )
    return out


INTRO = (
    "Which format to pick for each need (the floor, {floor}, is the reference and is left "
    "out). A margin is the runner-up's ratio to the floor over the winner's, with {how}; "
    "a need whose two formats the run cannot order is a tie, and a margin whose interval "
    "spans more than 2x is not quoted as a number. The all-round rule is in "
    "docs/methods.md."
)
PAIRED = (
    "the interval of the median of their round-paired differences (at least 95%: 6 rounds or more)"
)
UNPAIRED = (
    "an interval made of the two formats' own intervals (one job each: they leave out the "
    "host's drift between jobs)"
)


def _intro(tables: Mapping[str, Rows], floor: str | None, n: int) -> str:
    """The verdict's first paragraph, saying which intervals its margins have."""
    in_rounds = any(
        r.get("round_values") not in ("", None) and r.get("n") == n
        for rows in tables.values()
        for r in rows
    )
    return INTRO.format(floor=floor, how=PAIRED if in_rounds else UNPAIRED)


def markdown(tables: Mapping[str, Rows], floor: str | None, n: int) -> str:
    """The verdict as Markdown (the top of summary.md)."""
    lines = [f"## Verdict at n = {n:,} images", "", _intro(tables, floor, n), ""]
    lines += ["| if you need | pick | by how much |", "|---|---|---|"]
    lines += [
        f"| {need} | {choice} | {margin} |" for need, choice, margin in rows(tables, floor, n)
    ]
    fed = training.verdict_lines(tables.get("training") or [])
    if fed:
        lines += ["", *fed]
    return "\n".join(lines) + "\n"


def rst(tables: Mapping[str, Rows], floor: str | None, n: int) -> str:
    """The verdict as reStructuredText (the first page of report.html)."""
    title = f"Verdict at n = {n:,} images"
    lines = [title, "=" * len(title), "", _intro(tables, floor, n), ""]
    lines += [".. list-table::", "   :header-rows: 1", ""]
    for cells in [("if you need", "pick", "by how much"), *rows(tables, floor, n)]:
        lines += [f"   * - {cells[0]}", f"     - {cells[1]}", f"     - {cells[2]}"]
    for line in training.verdict_lines(tables.get("training") or []):
        lines += ["", line]
    return "\n".join(lines) + "\n"
