"""Replay finished runs under a shorter sampling policy: what would fewer pairs cost?

Sampling is sequential: a job takes pairs one after the other and stops by its
policy (:mod:`storebench.sampling`). A policy that stops sooner (fewer ``repeats``,
a shorter ``time_cap_s``, a looser ``precision``) would have taken a prefix of the
same pairs, so a run's result files already hold what it would have measured. This
module cuts every timed result to that prefix, rebuilds the run's timing tables
from the cut results, and says how much pair time the run would have saved; two
runs replayed alike are then compared (:mod:`storebench.present.compare`) as two runs
measured under that policy would be.

A pair's time is its CPU probe, its format sample and its reference runs; what
else the job spent between pairs (eviction, validation, file-system probes) is
spread evenly over its pairs. A replay can only shorten: where the shorter policy
would not stop before the job did, the job is kept as it was. Cells measured in
rounds (:mod:`storebench.rounds`) are replayed with fewer rounds (``max_rounds``):
their first rounds are kept, their pairs as they were. The training loop's jobs keep
their own fewest pairs (``training.repeats``), which their claim rests on.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from storebench import results, rounds, stats
from storebench.errors import StorebenchError
from storebench.present import compare, tables
from storebench.present.catalog import TABLES as TABLE_RECORDS
from storebench.present.catalog import TIMING_TABLES
from storebench.protocol import Policy

# Result lists with one entry per pair, and with one entry per reference run.
PER_PAIR = (
    "first",
    "reference_runs",
    "residency_before",
    "worker_read_s",
    "filesystem_probe",
    "source_s",
    "steal",
    "ticks",
    "cpu_s",
)
PER_REFERENCE_RUN = ("reference_residency_before",)


@dataclasses.dataclass(frozen=True)
class Shorter:
    """The policy replayed: the fewest pairs, the time cap (s) and the precision of a
    one-job cell, and the most rounds of a cell measured in rounds (None: all)."""

    repeats: int
    time_cap_s: float
    precision: float
    max_rounds: int | None = None

    def policy(self) -> Policy:
        """The live sampling policy this replays (its stopping rules, not its limits)."""
        return Policy(
            min_pairs=self.repeats,
            precision=self.precision,
            time_cap_s=self.time_cap_s,
        )


def pair_seconds(result: dict[str, Any]) -> list[float]:
    """Each pair's time: its samples and probes, plus an even share of the rest of the
    job's sampling time (not what it spent before its pairs, e.g. waiting for a quiet
    file system, which the time cap does not count either)."""
    key = next(iter(result["samples"]))
    runs = result["reference_runs"]
    cpu = list(result.get("cpu_s") or [])
    known = []
    for index, (sample, block) in enumerate(zip(result["samples"][key], runs, strict=True)):
        probe = cpu[index] if index < len(cpu) else 0.0  # one CPU probe before each pair
        known.append(probe + sample + sum(block[key]))
    sampling = result["sampling"]
    rest = sampling["elapsed_s"] - sampling.get("before_pair_s", 0.0) - sum(known)
    return [k + max(0.0, rest) / max(1, len(known)) for k in known]


def stop_after(result: dict[str, Any], policy: Shorter) -> int:
    """How many of the job's pairs ``policy`` would have taken (at most all of them), by
    the live rules: precision, or the time cap once the ratios are settled (a third
    pair where two disagree, :meth:`Policy.settled`)."""
    key = next(iter(result["samples"]))
    mine, ref = result["samples"][key], result["reference_samples"][key]
    live = policy.policy()
    elapsed = 0.0
    for pairs, seconds in enumerate(pair_seconds(result), 1):
        elapsed += seconds
        if pairs < policy.repeats:
            continue
        ratios = stats.ratios(mine[:pairs], ref[:pairs])
        if stats.precise(ratios, policy.precision):
            return pairs
        if elapsed >= policy.time_cap_s and live.settled(ratios):
            return pairs
    return len(mine)


def cut(result: dict[str, Any], policy: Shorter) -> tuple[dict[str, Any], float]:
    """``result`` as ``policy`` would have measured it, and the seconds of pairs saved."""
    pairs = len(result["first"])
    keep = stop_after(result, policy)
    if keep >= pairs:
        return result, 0.0
    seconds = pair_seconds(result)
    key = next(iter(result["samples"]))
    runs = sum(len(block[key]) for block in result["reference_runs"][:keep])
    short = copy.deepcopy(result)
    for side in ("samples", "reference_samples"):
        short[side] = {k: v[:keep] for k, v in result[side].items()}
    for name in PER_PAIR:
        if isinstance(result.get(name), list) and len(result[name]) == pairs:
            short[name] = result[name][:keep]
    for name in PER_REFERENCE_RUN:
        if isinstance(result.get(name), list):
            short[name] = result[name][:runs]
    short["sampling"] = {
        **result["sampling"],
        "pairs": keep,
        "stopped": "replayed",
        "elapsed_s": sum(seconds[:keep]) + result["sampling"].get("before_pair_s", 0.0),
    }
    return short, sum(seconds[keep:])


# Tables whose jobs take a fewest number of pairs of their own (training.repeats), which
# a replay keeps: their claim (workers needed) rests on the interval it buys.
OWN_MINIMUM = ("training",)


def _own_minimum(result: dict[str, Any], policy: Shorter, table: str) -> Shorter:
    """``policy``, with at least the job's own fewest pairs for a table that sets them."""
    if table not in OWN_MINIMUM:
        return policy
    own = int((result.get("sampling") or {}).get("min_pairs") or 0)
    return dataclasses.replace(policy, repeats=max(policy.repeats, own))


def replay_run(run: Path, policy: Shorter, out: Path) -> dict[str, tuple[float, float]]:
    """Write ``run``'s timing tables as ``policy`` would have measured them under
    ``out``/tables; per table, (seconds of pairs saved, seconds of pairs taken)."""
    spent = {}
    for table in TIMING_TABLES:
        paths = sorted((Path(run) / "measurements" / table).rglob("*.json"))
        if not paths:
            continue
        in_rounds = table in rounds.STAGES
        if in_rounds:
            paths += sorted((Path(run) / "measurements" / "round").glob("r*.json"))
        loaded = results.check_one_run(paths, table if in_rounds else None)
        replayed, saved, total = [], 0.0, 0.0
        for result in loaded:
            total += result["sampling"]["elapsed_s"]
            if result.get("round") is not None:
                if policy.max_rounds is None or result["round"] <= policy.max_rounds:
                    replayed.append(result)
                else:
                    saved += result["sampling"]["elapsed_s"]
                continue
            short, seconds = cut(result, _own_minimum(result, policy, table))
            replayed.append(short)
            saved += seconds
        rows_of, columns = tables.LAYOUTS[TABLE_RECORDS[table].layout]
        target = Path(out) / "tables"
        tables.write_table(
            rows_of(replayed), columns, target / f"{table}.csv", target / f"{table}.md"
        )
        spent[table] = (saved, total)
    if not spent:
        raise StorebenchError(
            f"no timing results under {run}/measurements; replay a finished run's results"
        )
    return spent


def report(first: Path, second: Path, policy: Shorter, min_n: int = 10_000) -> str:
    """Both runs replayed under ``policy``: the pair time each would have saved, then
    how the two runs compare as measured and as replayed."""
    lines = [
        f"replayed policy: repeats {policy.repeats}, time cap {policy.time_cap_s:g} s, "
        f"precision {policy.precision:g} (each job cut to the first pairs it would have taken)"
        + (f"; at most {policy.max_rounds} rounds" if policy.max_rounds else "")
    ]
    with tempfile.TemporaryDirectory(prefix="storebench-replay.") as work:
        outs = []
        for name, run in (("A", first), ("B", second)):
            out = Path(work) / name
            spent = replay_run(run, policy, out)
            saved = sum(s for s, _ in spent.values())
            total = sum(t for _, t in spent.values())
            parts = ", ".join(f"{table} {s:,.0f}" for table, (s, _) in spent.items())
            lines.append(
                f"{name} ({run}): pairs took {total:,.0f} s; replayed {total - saved:,.0f} s "
                f"(saved {saved:,.0f} s: {parts})"
            )
            outs.append(out)
        keep = ("cells:", "calibration:", "order claims:", "verdict:")
        for name, pair in (("as measured", (first, second)), ("as replayed", outs)):
            lines.append(f"{name}:")
            try:
                found = compare.report(pair[0], pair[1], min_n).splitlines()
            except StorebenchError as error:  # no cells in rounds: nothing to compare
                found = [f"verdict: none: {error}"]
            lines += [f"  {line}" for line in found if line.startswith(keep)]
    return "\n".join(lines)
