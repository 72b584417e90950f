"""Rounds: a cell measured in several jobs spread over the run, in a fresh random order.

Pairing cancels the host's drift inside a job, but not between jobs: this host's
CPU and memory speeds drift apart over minutes (about 8% between jobs, a standard
deviation), and a format bound by the CPU, measured against the memory-bound
floor, moves with them. No number of pairs inside one job can show that. So at
``from_n <= n <= to_n`` every cell (a store, or a read in one cache state and order) is
measured once per *round*:

- round 1 is the cell's own ``store`` or ``read`` job (which also builds the store);
- rounds 2, 3, ... are ``round`` jobs, one per round, each measuring every cell that
  still needs a round, in a random order drawn for that round (Google Benchmark's
  random interleaving, asv's ``--interleave-processes``), so a cell's rounds sample
  the run's slow drift instead of freezing one moment of it into the result.

Within a round a cell takes one pair with the floor, or a few when they are short
(``cell_s``), and the round's value is the median of its pairs' log ratios,
balanced over the pairs' order (:func:`balanced_median`). The order of a round's
first pair (format first or floor first) alternates between rounds, so a round of one
pair is balanced across rounds; beside a long format the floor runs several times a pair
(:func:`storebench.sampling.run_pairs`), sized by the format's time.

A cell's estimate is the median of its rounds' log ratios, and its interval the
distribution-free one of that median (:func:`storebench.stats.round_interval`): a
round the host slowed moves it by one rank. A cell takes rounds until that interval
covers at least 95% (6 rounds) and is within +/- ``precision`` (at least
``min_rounds``, at most ``max_rounds``), or until the rounds past the first have
spent ``budget_min`` minutes; the tables say which ended it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from storebench import stats
from storebench.errors import StorebenchError

log = logging.getLogger(__name__)

STAGES = ("store", "read")
# The measurement whose interval decides whether a cell needs another round, per stage.
PRIMARY = {"store": "store_durable_s", "read": "read_s"}


@dataclasses.dataclass(frozen=True)
class Settings:
    """config.yaml ``rounds`` (``from_n: null``: no rounds, one job per cell; ``to_n:
    null``: no upper bound)."""

    from_n: int | None = None
    to_n: int | None = None
    min_rounds: int = 6
    max_rounds: int = 10
    precision: float = 0.04
    budget_min: float = 25.0
    cell_s: float = 0.25
    max_pairs: int = 9

    @classmethod
    def of(cls, config: Mapping[str, Any] | None) -> Settings:
        return cls(**(config or {}))

    def applies(self, n: int) -> bool:
        """Whether a cell of ``n`` images is measured in rounds: ``from_n <= n <= to_n``."""
        if self.from_n is None or n < self.from_n:
            return False
        return self.to_n is None or n <= self.to_n


@dataclasses.dataclass(frozen=True, order=True)
class Cell:
    """What one round measures of a format: a store, or a read in a cache state and order."""

    stage: str
    format: str
    n: int
    cache: str = ""
    order: str = ""

    @property
    def name(self) -> str:
        return " ".join(
            str(x) for x in (self.stage, self.format, self.n, self.cache, self.order) if x
        )

    @classmethod
    def of(cls, result: Mapping[str, Any]) -> Cell:
        """The cell a store or read result (or round record) measured."""
        stage = "store" if "store_s" in (result.get("samples") or {}) else "read"
        if stage == "store":
            return cls("store", result["format"], int(result["n"]))
        return cls("read", result["format"], int(result["n"]), result["cache"], result["order"])


def cells(
    formats: Iterable[str],
    cutoffs: Iterable[int],
    caches: Iterable[str],
    orders: Iterable[str],
    settings: Settings,
) -> list[Cell]:
    """Every cell measured in rounds, in a fixed order."""
    found = []
    for fmt in formats:
        for n in cutoffs:
            if not settings.applies(n):
                continue
            found.append(Cell("store", fmt, n))
            found += [Cell("read", fmt, n, c, o) for c in caches for o in orders]
    return found


def first_side(cell: Cell, round_: int) -> str:
    """Which side of the pair runs first for ``cell`` in round ``round_``: the format
    in odd rounds, the floor in even ones, so every cell's order is balanced across
    its rounds. Round 1 (the cell's own job, which knows nothing of the cell yet)
    starts with the format, whose time then sizes the floor's runs
    (:func:`storebench.sampling.run_pairs`); later rounds know it from earlier ones
    (:func:`format_hint_s`)."""
    return ("format", "reference")[(round_ + 1) % 2]


def format_hint_s(rounds: Mapping[int, Mapping[str, Any]]) -> float | None:
    """The format's typical time in a cell's earlier rounds (its first measurement's
    median), or None without any."""
    times: list[float] = []
    for result in rounds.values():
        samples = result.get("samples") or {}
        if samples:
            times += list(next(iter(samples.values())))
    return float(np.median(times)) if times else None


def round_value(result: Mapping[str, Any], measurement: str) -> dict[str, float]:
    """One round's values of ``measurement`` (e.g. ``read_s``): the median over its pairs
    of the log ratio, the format's log time and the floor's log time, and the CPU
    probe's median (ms)."""
    values = np.asarray(result["samples"][measurement], dtype=float)
    refs = np.asarray(result["reference_samples"][measurement], dtype=float)
    first = list(result.get("first") or [])
    cpu = result.get("cpu_s") or []
    return {
        "log_ratio": balanced_median(np.log(values / refs), first),
        "log_time": balanced_median(np.log(values), first),
        "log_reference": balanced_median(np.log(refs), first),
        "cpu_ms": 1e3 * float(np.median(cpu)) if cpu else math.nan,
    }


def balanced_median(values: np.ndarray, first: Sequence[str]) -> float:
    """The median of one round's pairs, balanced over the order of the pair: with pairs
    of both orders, the mean of the median of the pairs that ran the format first and
    the median of those that ran the floor first; else the plain median.

    The side run second is often faster or slower by more than the differences we
    report (a store: about 10% slower second, its memory just churned by the first),
    so the pairs of one round form two clusters. A plain median over an odd number of
    pairs, five of one order and four of the other, takes its value from the larger
    cluster and leaves half the order effect in the round's value; the balanced
    median cancels it inside the round."""
    values = np.asarray(values, dtype=float)
    if len(first) != len(values):
        return float(np.median(values))
    groups = [values[[side == s for s in first]] for side in ("format", "reference")]
    if any(len(group) == 0 for group in groups):
        return float(np.median(values))
    return float(np.mean([np.median(group) for group in groups]))


def history(records: Iterable[Mapping[str, Any]]) -> dict[Cell, dict[int, Mapping[str, Any]]]:
    """Round records (results with a ``round``) by cell, then round; a cell measured
    twice in one round is refused (two round files of one run disagree)."""
    found: dict[Cell, dict[int, Mapping[str, Any]]] = {}
    for record in records:
        if record.get("round") is None:
            continue
        cell = Cell.of(record)
        rounds = found.setdefault(cell, {})
        if record["round"] in rounds:
            raise StorebenchError(
                f"{cell.name} was measured twice in round {record['round']}; "
                "remake the rounds with `snakemake --cores 4 --forcerun round`"
            )
        rounds[record["round"]] = record
    return found


def interval(rounds: Mapping[int, Mapping[str, Any]], measurement: str, key: str = "log_ratio"):
    """The interval over rounds of one value (:func:`round_value`) of ``measurement``."""
    return stats.round_interval(
        [round_value(r, measurement)[key] for _, r in sorted(rounds.items())]
    )


def ended(rounds: Mapping[int, Mapping[str, Any]], stage: str, settings: Settings) -> str | None:
    """Why a cell with these rounds needs no more: ``"precision"`` (its interval covers
    at least 95% and is within +/- precision, at least ``min_rounds`` rounds) or
    ``"max_rounds"``; None if it needs another."""
    if len(rounds) < settings.min_rounds:
        return None
    if len(rounds) >= settings.max_rounds:
        return "max_rounds"
    found = interval(rounds, PRIMARY[stage])
    spread = max(found["hi"] - found["center"], found["center"] - found["lo"])
    if found["coverage"] >= stats.CONFIDENCE and spread <= math.log1p(settings.precision):
        return "precision"
    return None


def cost_s(rounds: Mapping[int, Mapping[str, Any]]) -> float:
    """What one more round of a cell is expected to take: the median of its rounds so
    far (a round's whole time, warm-up and eviction included, where recorded)."""
    spent = [
        float(r.get("wall_s") or (r.get("sampling") or {}).get("elapsed_s", 0.0))
        for r in rounds.values()
    ]
    return float(np.median(spent)) if spent else 0.0


def plan(
    all_cells: Sequence[Cell],
    past: Mapping[Cell, Mapping[int, Mapping[str, Any]]],
    round_: int,
    settings: Settings,
    seed: int,
) -> list[Cell]:
    """The cells round ``round_`` measures, in its random order: those with fewer than
    ``min_rounds`` rounds, and those neither precise nor at ``max_rounds``. (The
    budget is applied while the round runs, :func:`within_budget`.) A cell missing its
    round 1 is refused: its store or read job has not run."""
    missing = [c for c in all_cells if 1 not in past.get(c, {})]
    if missing:
        raise StorebenchError(
            f"round {round_}: {missing[0].name} has no round 1 (its store or read job's result); "
            "run the workflow, not a round job alone"
        )
    wanted = [c for c in all_cells if ended(past[c], c.stage, settings) is None]
    rng = np.random.default_rng([seed, round_])
    return [wanted[i] for i in rng.permutation(len(wanted))]


def within_budget(
    cell_rounds: Mapping[int, Mapping[str, Any]], settings: Settings, spent_s: float
) -> bool:
    """Whether a cell takes its next round: always below ``min_rounds``; past that, only
    if its expected time fits in what is left of the budget."""
    if len(cell_rounds) < settings.min_rounds:
        return True
    return spent_s + cost_s(cell_rounds) <= 60 * settings.budget_min


def spent(round_files: Iterable[Mapping[str, Any]]) -> float:
    """Seconds the earlier round jobs (rounds past the first) took."""
    return sum(float(data.get("elapsed_s", 0.0)) for data in round_files)


def stop_reason(rounds: Mapping[int, Mapping[str, Any]], stage: str, settings: Settings) -> str:
    """Why a cell's rounds ended, as the tables print it: ``precision``,
    ``max_rounds`` or ``budget`` (it was still short of both)."""
    return ended(rounds, stage, settings) or "budget"


def expand(path: Path, data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The cell records of a round file (``{"round": r, "records": [...]}``)."""
    records = data.get("records")
    if not isinstance(records, list):
        raise StorebenchError(f"{path}: not a round file (no records); rerun its round job")
    return [dict(r) for r in records]
