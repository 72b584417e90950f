"""What the measuring protocol is, as far as tables and captions describe it: the read
orders, the CPU probe's size, the sampling policy and what a job's steal is.

A leaf module (numpy, the standard library, :mod:`storebench.stats` and the errors),
so the measuring code and the presentation (:mod:`storebench.present`) both take
these from here and neither imports the other.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from storebench import stats
from storebench.errors import StorebenchError

ORDERS = ("sequential", "random", "shards")
# The "shards" order, as streaming loaders (WebDataset) read: the images in shards of
# SHARD_IMAGES consecutive ones (the webdataset format's default shard), the shards in
# a shuffled order, each streamed in order through a shuffle buffer of SHUFFLE_BUFFER
# images (webdataset's ``.shuffle(1000)``).
SHARD_IMAGES = 10_000
SHUFFLE_BUFFER = 1000

# Compute per image of a model's training step on one accelerator, in ms, with its
# source: a step of a batch of b images takes b times this.
STEP_PRESETS: dict[str, tuple[float, str]] = {
    "resnet50-a100": (
        435 / 400,
        "ResNet-50 on one A100: 0.435 s per batch of 400 (DLIO's workload "
        "resnet50_a100.yaml, the MLPerf Storage image-classification workload)",
    ),
    "resnet50-v100": (
        195 / 64,
        "ResNet-50 on one V100: 0.195 s per batch of 64 (DLIO's workload resnet50_v100.yaml)",
    ),
}


def step_ms(settings: Mapping[str, Any]) -> float:
    """The step time per batch in ms of config ``training``."""
    if settings.get("step_ms") is not None:
        return float(settings["step_ms"])
    per_image, _ = STEP_PRESETS[settings["step"]]
    return per_image * int(settings["batch_size"])


def step_text(settings: Mapping[str, Any]) -> str:
    """The emulated step in words: its ms per batch and where that comes from."""
    ms = step_ms(settings)
    if settings.get("step_ms") is not None:
        return f"{ms:g} ms per batch (set)"
    _, source = STEP_PRESETS[settings["step"]]
    return f"{ms:.1f} ms per batch of {settings['batch_size']} ({settings['step']}: {source})"


# The CPU probe (storebench.sampling.CpuProbe) decodes this many fixed in-memory PNGs.
CPU_PROBE_IMAGES = 48

# The unit of /proc/stat's counters (USER_HZ).
TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def read_indices(n: int, order: str, seed: int) -> np.ndarray:
    """0..n-1 in order, or a permutation that is the same for every format."""
    if order == "sequential":
        return np.arange(n)
    if order == "random":
        return np.random.default_rng(seed).permutation(n)
    if order == "shards":
        return shard_order(n, seed)
    raise StorebenchError(f"unknown read order {order!r}; choose one of {ORDERS}")


def shard_order(
    n: int, seed: int, shard: int = SHARD_IMAGES, buffer: int = SHUFFLE_BUFFER
) -> np.ndarray:
    """The order a streaming loader reads 0..n-1 in: shards of ``shard`` consecutive
    images in a shuffled order, streamed through a shuffle buffer of ``buffer`` images
    (each image entering the full buffer sends out a random one of it; at the end the
    rest leaves in random order). Every image exactly once (checked)."""
    rng = np.random.default_rng(seed)
    starts = rng.permutation(np.arange(0, n, shard))
    stream = np.concatenate([np.arange(s, min(s + shard, n)) for s in starts] or [[]])
    slots = stream[:buffer].tolist()
    out = []
    picks = rng.integers(0, buffer, max(0, n - buffer)).tolist()
    for pick, index in zip(picks, stream[buffer:].tolist(), strict=True):
        out.append(slots[pick])
        slots[pick] = index
    out += rng.permutation(np.array(slots, dtype=np.int64)).tolist()
    order = np.array(out, dtype=np.int64)
    if len(order) != n or not np.array_equal(np.sort(order), np.arange(n)):
        raise StorebenchError(f"shard order of {n} images is not a permutation (a bug)")
    return order


def job_steal(result: dict) -> float | None:
    """A job's steal: its pairs' stolen ticks over all their ticks (a mean of each
    pair's share would weigh a pair of two ticks like one of two thousand); the mean
    of the shares for results that kept only those."""
    ticks = [t for t in result.get("ticks") or [] if t is not None]
    if ticks:
        total = sum(t[1] for t in ticks)
        return sum(t[0] for t in ticks) / total if total > 0 else None
    shares = [share for share in result.get("steal") or [] if share is not None]
    return float(sum(shares) / len(shares)) if shares else None


@dataclasses.dataclass(frozen=True)
class Policy:
    """When a job stops taking pairs (config.yaml ``sampling``, ``repeats``)."""

    min_pairs: int = 3
    max_pairs: int = 200
    precision: float = 0.05
    time_cap_s: float = 30.0
    reference_share: float = 0.25
    max_reference_runs: int = 5
    max_steal: float = 0.05

    # Steal is counted in ticks of 10 ms: one tick is no evidence of a disturbance.
    MIN_STOLEN_S = 0.02

    @classmethod
    def exactly(cls, pairs: int) -> Policy:
        """Exactly ``pairs`` pairs, whatever the interval (tests, benchmarks)."""
        return cls(min_pairs=pairs, max_pairs=pairs, precision=0.0, time_cap_s=0.0, max_steal=1)

    def disturbed(self, ticks: tuple[int, int] | None) -> bool:
        """Whether the host stole enough of the machine's CPU time during a pair
        (``ticks``: its stolen and total ticks over all vCPUs) that the pair measures
        the host rather than the format: more than ``max_steal`` of it, and at least
        :data:`MIN_STOLEN_S` (one tick is no evidence)."""
        if ticks is None or self.max_steal >= 1 or ticks[1] <= 0:
            return False
        stolen, total = ticks
        return stolen / TICKS_PER_S >= self.MIN_STOLEN_S and stolen > self.max_steal * total

    @classmethod
    def within_round(cls, cell_s: float, max_pairs: int, max_steal: float) -> Policy:
        """One round of a cell (:mod:`storebench.rounds`): at least one pair, more while
        the pairs have taken less than ``cell_s`` (a short measurement's round is the
        median of a few pairs), at most ``max_pairs``. No stop on precision: the
        interval comes from the spread between rounds."""
        return cls(
            min_pairs=1,
            max_pairs=max(1, max_pairs),
            precision=0.0,
            time_cap_s=cell_s,
            max_steal=max_steal,
        )

    def settled(self, ratios: list[float]) -> bool:
        """Whether the time cap may end a job with these ratios: from three pairs on,
        or at fewer whose ratios lie within +/- ``precision`` of their median."""
        if len(ratios) >= 3:
            return True
        interval = stats.median_interval(ratios)
        return stats.half_width(interval) <= self.precision
