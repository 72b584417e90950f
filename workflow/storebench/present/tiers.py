"""The tiers table: every storage tier's store and read cells side by side (the run
itself is the ``local`` tier), the verdict per tier, and where the pick or the order of
two formats changes between tiers.

Each tier measured its formats against the floor on the same tier, so a ratio says how
a format fares there against the fastest read that tier allows, and images/s says how
fast it is there; both come with the interval of the tier's own run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from storebench import sweep
from storebench.present import publish, verdict
from storebench.present.verdict import Pick

Rows = Sequence[Mapping[str, Any]]

COLUMNS = (
    "tier",
    "filesystem",
    "format",
    "n",
    "measurement",
    "cache",
    "order",
    "images_per_s",
    "images_per_s_lo",
    "images_per_s_hi",
    "ratio",
    "ratio_lo",
    "ratio_hi",
    "interval",
    "bytes_per_image",
    "remote_way",
    "requests",
    "bytes_down",
)
TEXT = ("tier", "filesystem", "remote_way")


def _number(row: Mapping[str, Any], key: str) -> float:
    value = row.get(key, "")
    return float(value) if value not in ("", None) else math.nan


def rows(
    tiers: Mapping[str, Mapping[str, Rows]], filesystems: Mapping[str, str]
) -> list[dict[str, Any]]:
    """One row per tier, format and cell (store; read per cache and order): images/s
    with its interval, the ratio to the tier's own floor with its interval, and bytes on
    disk per image. ``tiers``: tier -> table name (store, read, usage) -> rows."""
    out = []
    for tier, tables in tiers.items():
        disk = {
            (r["format"], int(r["n"])): _number(r, "bytes_per_image")
            for r in tables.get("usage", [])
        }
        timed = [r for r in tables.get("store", []) if r["measurement"] == "store"]
        timed += list(tables.get("read", []))
        for row in timed:
            n = int(row["n"])
            median, lo, hi = (_number(row, k) for k in ("median", "median_lo", "median_hi"))
            out.append(
                {
                    "tier": tier,
                    "filesystem": filesystems.get(tier, ""),
                    "format": row["format"],
                    "n": n,
                    "measurement": row["measurement"],
                    "cache": row.get("cache", ""),
                    "order": row.get("order", ""),
                    "images_per_s": n / median,
                    "images_per_s_lo": n / hi,
                    "images_per_s_hi": n / lo,
                    "ratio": _number(row, "ratio"),
                    "ratio_lo": _number(row, "ratio_lo"),
                    "ratio_hi": _number(row, "ratio_hi"),
                    "interval": row.get("interval", ""),
                    "bytes_per_image": disk.get((row["format"], n), math.nan),
                    # an object-store tier's read: its way, requests and bytes per read
                    "remote_way": row.get("remote_way", ""),
                    "requests": row.get("requests", ""),
                    "bytes_down": row.get("bytes_down", ""),
                }
            )
    return out


COVERAGE_NOTE = (
    "Brackets: the ratio's interval and its coverage, for one job's own median (its "
    "pairs; drift between jobs not included) or, marked rounds, over the cell's rounds "
    "(results/tables give each cell's interval in full)."
)


def _coverage(row: Mapping[str, Any]) -> str:
    """A cell's interval coverage, short: " 50%" for one job's 2 pairs, " 96% rounds"
    for a cell measured in rounds; "" when the row does not say."""
    found = re.search(r"([0-9.]+)%", str(row.get("interval", "")))
    if not found:
        return ""
    rounds = " rounds" if "round" in str(row["interval"]) else ""
    return f" {float(found.group(1)):.0f}%{rounds}"


def _label(row: Mapping[str, Any]) -> str:
    if row["measurement"] == "store":
        return "store"
    return f"read, {row['cache']} cache, {row['order']} order"


def common_n(tiers: Mapping[str, Mapping[str, Rows]]) -> int | None:
    """The n every tier's verdict speaks of: the smallest tier's headline n (the
    largest n it measured at full rigour) that every tier measured; if every tier lacks
    some other's, the largest n they all measured (an object-store tier may measure
    100,000 in one job per cell and skip the local tier's rounds at 10,000)."""
    measured, headlines = [], []
    for tables in tiers.values():
        timed = [*tables.get("store", []), *tables.get("read", [])]
        if timed:
            measured.append({int(r["n"]) for r in timed})
            headlines.append(publish.headline_n(timed))
    if not measured:
        return None
    shared = set.intersection(*measured)
    held = sorted(h for h in headlines if h in shared)
    if held:
        return held[0]
    return max(shared) if shared else min(headlines)


def verdicts(tiers: Mapping[str, Mapping[str, Rows]], n: int) -> dict[str, dict[str, Pick]]:
    """need -> tier -> its pick at ``n``, from each tier's own tables."""
    out: dict[str, dict[str, Pick]] = {}
    for tier, tables in tiers.items():
        every = [*tables.get("store", []), *tables.get("read", []), *tables.get("usage", [])]
        floor = next((r["format"] for r in every if r.get("kind") == "npy"), None)
        for found in verdict.picks(tables, floor, n):
            out.setdefault(found.need, {})[tier] = found
    return out


def pick_changes(
    picks: Mapping[str, Mapping[str, Pick]],
    names: Sequence[str],
    reasons: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """One line per need whose picks on two tiers share no format (a tie on a tier picks
    both of its formats: a tier that picks one of them is no change). ``reasons``: tier ->
    format -> how it was read there (:func:`read_ways`), said beside each pick."""
    lines = []
    for need, by_tier in picks.items():
        winners = {t: set(by_tier[t].formats) for t in names if t in by_tier}
        tiers = list(winners)
        changed = any(
            not winners[a] & winners[b] for i, a in enumerate(tiers) for b in tiers[i + 1 :]
        )
        if changed:
            parts = []
            for t, w in winners.items():
                why = [
                    f"{f}: {(reasons or {}).get(t, {})[f]}"
                    for f in sorted(w)
                    if f in (reasons or {}).get(t, {})
                ]
                parts.append(
                    f"{' or '.join(sorted(w))} on {t}" + (f" ({'; '.join(why)})" if why else "")
                )
            lines.append(f"The pick for {need} changes between tiers: {'; '.join(parts)}.")
    return lines


def read_ways(tier_rows: Rows, n: int) -> dict[str, dict[str, str]]:
    """tier -> format -> how a cold shuffled read of ``n`` images read it on an
    object-store tier: its way and requests (why a pick changes there)."""
    found: dict[str, dict[str, str]] = {}
    for r in tier_rows:
        if (
            int(r["n"]) == n
            and r["measurement"] == "read"
            and r["order"] == "random"
            and str(r["cache"]).startswith("cold")
            and r.get("remote_way")
            and not math.isnan(_number(r, "requests"))
        ):
            found.setdefault(r["tier"], {})[r["format"]] = (
                f"read by {r['remote_way']}, {_number(r, 'requests'):,.0f} requests"
            )
    return found


def _order(x: Mapping[str, Any], y: Mapping[str, Any]) -> str:
    """ "<" if x's ratio interval lies wholly below y's, ">" if above, "" if they meet."""
    return sweep.order(x, y, "ratio_lo", "ratio_hi")


def ranking_changes(tier_rows: Rows, n: int) -> list[str]:
    """One line for every pair of formats that the local tier and another tier put in
    opposite orders at ``n``, each order shown by intervals that do not meet."""
    groups: dict[str, dict[str, dict[str, Mapping[str, Any]]]] = {}
    for row in tier_rows:
        if int(row["n"]) == n:
            groups.setdefault(_label(row), {}).setdefault(row["tier"], {})[row["format"]] = row
    lines = []
    for label, by_tier in groups.items():
        tiers = list(by_tier)
        if len(tiers) < 2:
            continue
        home = tiers[0]
        for other in tiers[1:]:
            a, b = by_tier[home], by_tier[other]
            common = [f for f in a if f in b]
            for i, first in enumerate(common):
                for second in common[i + 1 :]:
                    before, after = _order(a[first], a[second]), _order(b[first], b[second])
                    if before and after and before != after:
                        winner = first if before == "<" else second
                        loser = second if winner == first else first
                        lines.append(
                            f"{label}: {winner} is ahead of {loser} on {home}, behind it on {other}"
                        )
    return lines


def requests_table(tier_rows: Rows, n: int, prices: Mapping[str, float]) -> list[str]:
    """Markdown lines: per object-store tier and format, how a cold shuffled read of
    ``n`` images read the store (its way), its requests and MB, and what reading a
    million images that way costs in requests at the tier's price per 1,000 (``prices``;
    the count per image as measured at ``n``, times a million)."""
    cells = [
        r
        for r in tier_rows
        if int(r["n"]) == n
        and r["measurement"] == "read"
        and r["order"] == "random"
        and str(r["cache"]).startswith("cold")
        and not math.isnan(_number(r, "requests"))
    ]
    if not cells:
        return []
    lines = [
        f"### Requests per read on the object-store tiers: read, cold cache, random order, "
        f"n = {n:,}",
        "",
        "| tier | format | read by | requests | MB received | requests per 1,000 images "
        "| request cost per million images |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in cells:
        per_image = _number(row, "requests") / n
        price = prices.get(row["tier"], math.nan)
        cost = f"${per_image * 1e6 / 1000 * price:,.2f}" if not math.isnan(price) else ""
        lines.append(
            f"| {row['tier']} | {row['format']} | {row['remote_way']} | "
            f"{_number(row, 'requests'):,.0f} | {_number(row, 'bytes_down') / 1e6:,.2f} | "
            f"{per_image * 1000:,.1f} | {cost} |"
        )
    priced = sorted({f"{t}: ${p:g}" for t, p in prices.items() if t in {r["tier"] for r in cells}})
    lines += [
        "",
        "Requests and bytes are counted at the link proxy in front of the store (each "
        "read's median). The cost is the requests alone, at the price per 1,000 GET "
        f"requests each tier sets ({', '.join(priced) or 'none set'}), for the count per "
        "image measured here; transfer and storage are billed apart.",
        "",
    ]
    return lines


def markdown(
    tier_rows: Rows,
    tiers: Mapping[str, Mapping[str, Rows]],
    filesystems: Mapping[str, str],
    prices: Mapping[str, float] | None = None,
) -> str:
    """The tiers as Markdown: where each ran, the verdict per tier, images/s and the
    ratio to the tier's floor per format, cell and tier, the requests each read made on
    an object-store tier (and their cost at ``prices``), and where the order changes."""
    names = list(tiers)
    n = common_n(tiers)
    lines = ["## Storage tiers", ""]
    lines += [f"- **{t}**: {filesystems.get(t, '') or 'unknown file system'}" for t in names]
    lines.append("")
    if n is None:
        return "\n".join([*lines, "No tier measured anything.", ""])
    lines += [f"### Verdict per tier at n = {n:,} images", ""]
    lines += ["| if you need | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    picks = verdicts(tiers, n)
    for need, by_tier in picks.items():
        cells = [
            f"{by_tier[t].markdown} ({by_tier[t].margin})" if t in by_tier else "" for t in names
        ]
        lines.append(f"| {need} | " + " | ".join(cells) + " |")
    lines.append("")
    changed = pick_changes(picks, names, read_ways(tier_rows, n))
    lines += [f"- {line}" for line in changed] or [
        "- No tier picks a format another tier rules out (a tie picks both of its formats)."
    ]
    lines.append("")
    formats = list(dict.fromkeys(r["format"] for r in tier_rows))
    for label in dict.fromkeys(_label(r) for r in tier_rows):
        cells = {
            (r["format"], r["tier"]): r
            for r in tier_rows
            if _label(r) == label and int(r["n"]) == n
        }
        if not cells:
            continue
        lines += [
            f"### {label}, n = {n:,}: images/s (ratio to the tier's floor)",
            "",
            "| format | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for fmt in formats:
            values = []
            for tier in names:
                row = cells.get((fmt, tier))
                values.append(
                    f"{row['images_per_s']:,.0f} ({row['ratio']:.3g}x "
                    f"[{row['ratio_lo']:.3g}–{row['ratio_hi']:.3g}]{_coverage(row)})"
                    if row
                    else ""
                )
            lines.append(f"| {fmt} | " + " | ".join(values) + " |")
        lines.append("")
    lines += [COVERAGE_NOTE, ""]
    lines += requests_table(tier_rows, n, prices or {})
    lines += ["### Where the order of two formats changes between tiers", ""]
    lines += [f"- {line}" for line in ranking_changes(tier_rows, n)] or [
        "- nowhere beyond the intervals"
    ]
    return "\n".join(lines) + "\n"
