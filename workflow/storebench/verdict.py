"""Which format should I pick? One line per common need, from a run's tables.

For each need the winner is the format with the lowest median (paired ratio to the
floor, or bytes on disk), the floor itself left out: it is the reference every
format is measured against, one memory-mapped .npy of raw pixels. The margin is
the runner-up's ratio over the winner's, with an interval from the two 95%
intervals (runner-up low / winner high to runner-up high / winner low); where the
two intervals overlap, the need is a tie and both are named.

The all-round pick (README, "Which format should I pick?"): for every format,
the geometric mean of its value over the best format's value in four needs
(store, warm shuffled read, cold shuffled read, bytes on disk); the lowest mean
wins, and a runner-up within 5% of it ties.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

Rows = Sequence[Mapping[str, Any]]

ALL_ROUND_TIE = 0.05


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
    ranked = _candidates(rows, floor, value)
    if not ranked:
        return None
    first = ranked[0]
    found: dict[str, Any] = {"winner": first["format"], "value": _number(first, value)}
    if len(ranked) == 1:
        return {**found, "runner_up": None, "tie": False}
    second = ranked[1]
    a, b = _number(first, value), _number(second, value)
    a_lo, a_hi = _number(first, lo), _number(first, hi)
    b_lo, b_hi = _number(second, lo), _number(second, hi)
    if not all(math.isfinite(x) for x in (a_lo, a_hi, b_lo, b_hi)):
        a_lo = a_hi = a
        b_lo = b_hi = b
    return {
        **found,
        "runner_up": second["format"],
        "margin": b / a if a > 0 else math.inf,
        "margin_lo": b_lo / a_hi if a_hi > 0 else math.inf,
        "margin_hi": b_hi / a_lo if a_lo > 0 else math.inf,
        "tie": b_lo <= a_hi,
    }


def all_round(needs: Mapping[str, Rows], floor: str | None, value: str = "ratio") -> dict[str, Any]:
    """The all-round pick: per format, the geometric mean of value / best value over the
    needs it was measured in (all of them); the lowest wins."""
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
    tied = [f for f in order[1:] if means[f] <= means[order[0]] * (1 + ALL_ROUND_TIE)]
    return {"winner": order[0], "score": means[order[0]], "tied": tied, "scores": means}


def _margin_text(found: Mapping[str, Any], better: str) -> str:
    if found.get("runner_up") is None:
        return "the only format measured"
    exact = found["margin_lo"] == found["margin_hi"]
    interval = "" if exact else f" [{found['margin_lo']:.2f}–{found['margin_hi']:.2f}]"
    if found["tie"]:
        return f"a tie: intervals overlap ({found['margin']:.2f}x{interval})"
    return f"{found['margin']:.2f}x {better} than {found['runner_up']}{interval}"


def rows(tables: Mapping[str, Rows], floor: str | None, n: int) -> list[tuple[str, str, str]]:
    """(need, pick, margin) for every need measured at ``n``; picks in Markdown bold."""

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
        winner = f"**{found['winner']}**"
        if found.get("tie"):
            winner += f" or **{found['runner_up']}**"
        out.append((need, winner, _margin_text(found, better)))
    core = {need: table for need, table, _ in needs if "lookup" not in need}
    best = all_round(core, floor)
    if best:
        tied = "".join(f" or **{f}**" for f in best["tied"])
        others = sorted(best["scores"].items(), key=lambda kv: kv[1])[1:3]
        text = ", ".join(f"{f} {s:.2f}" for f, s in others)
        out.append(
            (
                "a good all-round choice",
                f"**{best['winner']}**{tied}",
                f"{best['score']:.2f}x the best on average over writes, shuffled reads and "
                f"disk{f' (next: {text})' if text else ''}",
            )
        )
    return out


INTRO = (
    "Which format to pick for each need (the floor, {floor}, is the reference and is left "
    "out). Margins are ratios of paired medians with their 95% intervals; overlapping "
    "intervals are a tie. The all-round rule is in the README."
)


def markdown(tables: Mapping[str, Rows], floor: str | None, n: int) -> str:
    """The verdict as Markdown (the top of summary.md)."""
    lines = [f"## Verdict at n = {n:,} images", "", INTRO.format(floor=floor), ""]
    lines += ["| if you need | pick | by how much |", "|---|---|---|"]
    lines += [
        f"| {need} | {choice} | {margin} |" for need, choice, margin in rows(tables, floor, n)
    ]
    return "\n".join(lines) + "\n"


def rst(tables: Mapping[str, Rows], floor: str | None, n: int) -> str:
    """The verdict as reStructuredText (the first page of report.html)."""
    title = f"Verdict at n = {n:,} images"
    lines = [title, "=" * len(title), "", INTRO.format(floor=floor), ""]
    lines += [".. list-table::", "   :header-rows: 1", ""]
    for cells in [("if you need", "pick", "by how much"), *rows(tables, floor, n)]:
        lines += [f"   * - {cells[0]}", f"     - {cells[1]}", f"     - {cells[2]}"]
    return "\n".join(lines) + "\n"
