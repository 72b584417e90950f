"""Paired, adaptive sampling: a format and its reference, side by side in time.

This host's speed drifts over tens of seconds by more than the differences we
report, so two medians taken minutes apart cannot be compared. Every timed job
therefore alternates its format (A) with a reference (B: the raw floor doing the
same work) in one process, and keeps the ratio A/B of every pair: slow drift hits
both halves of a pair. The order alternates, A B then B A then A B ..., from a
first order the caller sets (rounds balance it across rounds, see
:mod:`storebench.rounds`) or draws: the side run second is often a few percent
faster, and only a balanced order cancels that.

Before each pair, outside it, a fixed CPU workload (decoding the same in-memory
PNGs every time) is timed, so a result says how fast the machine's CPU was while
it was measured; the reference says the same for memory and I/O. The probe runs
before neither half, so it favours neither. Each pair also records the share of
the machine's CPU time the hypervisor stole while it ran (``steal``): on a shared
host, the one cause of a slow pair that no format has.

Sampling is adaptive: pairs are taken until the 95% interval of the median
ratio is within +/- ``precision`` of it (at least ``min_pairs``), or until
``time_cap_s`` or ``max_pairs`` ends it first, which the result records. The
time cap counts the pairs' time only: what ``before_pair`` spends (a store's wait
for a quiet file system) is not sampling and would otherwise end a job early.

Two guards keep one disturbed pair from setting a short job's median:

- A pair during which the hypervisor stole more than ``max_steal`` of the machine's
  CPU time (all vCPUs' ticks, from /proc/stat) is *retaken*: kept raw in
  ``retaken`` and replaced by a new pair. Stolen time lands on one half of a pair
  and not the other, so no pairing cancels it. A job retakes at most
  ``min_pairs`` pairs plus any number while it is within its time cap; a
  disturbed pair past that is kept and counted (``disturbed``).
- The time cap does not end a job at two pairs whose ratios disagree by more
  than ``precision``: it takes a third, so the median is the middle one and not
  the mean of a good pair and a bad one.

A ratio is only as steady as its reference. Where the format takes many times
longer than the floor (a PNG read of 100,000 files against one memory-mapped
file), one floor sample per pair would leave the ratio at the mercy of one short
timing; so the reference half of a pair runs as many times as fit in
``reference_share`` of the format's time (at most ``max_reference_runs``), and the
pair's reference value is the median of those runs, each run with its own
preparation (a cold one evicts its files again).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from storebench import host, stats
from storebench.protocol import CPU_PROBE_IMAGES
from storebench.protocol import Policy as Policy

log = logging.getLogger(__name__)

NS = 1e-9

# One timed operation: returns {measurement: seconds}, e.g. {"read_s": 0.05}.
Trial = Callable[[], dict[str, float]]


class CpuProbe:
    """A fixed CPU workload: decode the same in-memory PNGs (Pillow, one core).

    The images are drawn from a fixed seed and encoded once; every call decodes
    all of them, so its time says how fast this CPU runs right now.
    """

    IMAGES = CPU_PROBE_IMAGES

    def __init__(self) -> None:
        from PIL import Image

        self._image = Image
        rng = np.random.default_rng(12345)
        pixels = rng.integers(0, 256, (self.IMAGES, 32, 32, 3), dtype=np.uint8)
        pixels[:, :16] //= 8  # some structure, as photos have, not pure noise
        self.payloads = []
        for image in pixels:
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            self.payloads.append(buffer.getvalue())
        self()  # untimed first call: code paths and caches warm

    def __call__(self) -> float:
        start = time.perf_counter_ns()
        for payload in self.payloads:
            self._image.open(io.BytesIO(payload)).load()
        return (time.perf_counter_ns() - start) * NS


def slowed(trial: Trial, factor: float) -> Trial:
    """``trial`` made ``factor`` times slower on purpose (config ``test_slowdown``, for
    checking that ``compare`` finds a planted change): after each call it sleeps the
    extra time and reports every time multiplied by ``factor``."""
    if factor == 1:
        return trial

    def slow() -> dict[str, float]:
        values = trial()
        time.sleep((factor - 1) * next(iter(values.values()), 0.0))
        return {key: value * factor for key, value in values.items()}

    return slow


SIDES = ("format", "reference")


def run_pairs(
    trial: Trial,
    reference: Trial,
    policy: Policy,
    seed: int = 0,
    cpu: CpuProbe | None = None,
    before_pair: Callable[[tuple[str, str]], dict[str, Any]] | None = None,
    first_side: str | None = None,
    format_hint_s: float | None = None,
) -> dict[str, Any]:
    """Alternate ``trial`` and ``reference`` in pairs until ``policy`` says stop.

    The stopping test uses the first measurement ``trial`` returns. ``before_pair``
    (e.g. a file-system probe) runs before each pair, off the clock, with the pair's
    order (``("format", "reference")`` or the reverse); what it returns is kept per
    pair. The first pair runs ``first_side`` first (``"format"`` or
    ``"reference"``; drawn from ``seed`` if None), and the order alternates from
    there. The CPU probe runs once before each pair, outside it. ``format_hint_s``:
    the format's typical time, known from earlier rounds, which sizes the reference's
    runs in a pair where the reference goes first and no pair has run yet. Returns the samples
    of both sides, the order of every pair, the CPU probe's times and why sampling
    stopped.
    """
    cpu = cpu or CpuProbe()
    rng = np.random.default_rng(seed)
    if first_side is None:
        first_side = SIDES[int(rng.integers(2))]
    if first_side not in SIDES:
        raise ValueError(f"first_side must be one of {SIDES}, not {first_side!r}")
    samples: dict[str, list[float]] = {}
    references: dict[str, list[float]] = {}
    runs: list[dict[str, list[float]]] = []
    first: list[str] = []
    cpu_s: list[float] = []
    before: list[dict[str, Any]] = []
    steal: list[float | None] = []  # per pair: the share of CPU time the host stole
    ticks: list[tuple[int, int] | None] = []  # per pair: (stolen, total) CPU ticks
    retaken: list[dict[str, Any]] = []  # pairs the host disturbed, kept raw
    disturbed = 0  # disturbed pairs kept (no retake left)
    waited = 0.0  # in before_pair (a file-system wait): not sampling, so not on the time cap
    began = time.perf_counter()
    stopped = "max_pairs"

    calls = {"format": 0, "reference": 0}  # how often each side has run

    def format_trial() -> dict[str, float]:
        calls["format"] += 1
        return trial()

    def reference_block(format_s: float | None) -> dict[str, list[float]]:
        """Reference runs, as many as fit in ``reference_share`` of the format's time
        ``format_s`` (its time in this pair if it ran first, else its typical time;
        one run when unknown), judged by the median of these runs and the earlier
        pairs' reference values, at most ``max_reference_runs``."""
        block: dict[str, list[float]] = {}
        while True:
            calls["reference"] += 1
            for key, value in reference().items():
                block.setdefault(key, []).append(value)
            runs = next(iter(block.values()))
            if format_s is None or len(runs) >= policy.max_reference_runs:
                return block
            # judged with the earlier pairs' values too: one slow run does not end it
            typical = float(np.median([*runs, *next(iter(references.values()), [])]))
            if typical <= 0 or (len(runs) + 1) * typical > policy.reference_share * format_s:
                return block

    def sampled() -> float:
        return time.perf_counter() - began - waited

    while len(first) < policy.max_pairs:
        start_side = SIDES.index(first_side)
        turn = (start_side + len(first)) % 2  # a retaken pair is retaken in its order
        order = (SIDES[turn], SIDES[1 - turn])
        prepared = None
        if before_pair is not None:
            ready = time.perf_counter()
            prepared = before_pair(order)
            waited += time.perf_counter() - ready
        primary = next(iter(samples), None)
        earlier = samples.get(primary, [])
        typical = float(np.median(earlier)) if earlier else format_hint_s
        probes, called = len(cpu_s), dict(calls)
        cpu_s.append(cpu())  # before the pair, outside it: it favours neither side
        values: dict[str, Any] = {}
        at = host.cpu_ticks()
        start = time.perf_counter()
        for side in order:
            if side == "format":
                values[side] = format_trial()
            else:  # sized by the format's time in this pair when it ran first
                ran = values.get("format")
                values[side] = reference_block(next(iter(ran.values())) if ran else typical)
        pair_s = time.perf_counter() - start
        after = host.cpu_ticks()
        spent = host.ticks_between(at, after)
        stolen = host.stolen_seconds(spent) or 0.0
        block = values["reference"]
        if policy.disturbed(spent):
            if len(retaken) < policy.min_pairs or sampled() < policy.time_cap_s:
                retaken.append(
                    {
                        "first": order[0],
                        "samples": values["format"],
                        "reference_runs": block,
                        "cpu_s": cpu_s[probes:],
                        "ticks": spent,
                        "pair_s": pair_s,
                        "calls": {side: list(range(called[side], calls[side])) for side in calls},
                        **({"before_pair": prepared} if before_pair is not None else {}),
                    }
                )
                del cpu_s[probes:]
                log.warning(
                    "pair retaken: the host stole %.0f ms of its %.0f ms",
                    1e3 * stolen,
                    1e3 * pair_s,
                )
                continue
            disturbed += 1
        if before_pair is not None:
            before.append(prepared)
        runs.append(block)
        ticks.append(spent)
        steal.append(host.steal_share(at, after))
        for key, value in values["format"].items():
            samples.setdefault(key, []).append(value)
        for key, value in block.items():
            references.setdefault(key, []).append(float(np.median(value)))
        first.append(order[0])
        primary = next(iter(samples))
        pairs = len(first)
        log.info(
            "pair %d (%s first, reference x%d): %s",
            pairs,
            order[0],
            len(next(iter(block.values()))),
            ", ".join(f"{k} {samples[k][-1]:.4g} s / {references[k][-1]:.4g} s" for k in samples),
        )
        if pairs < policy.min_pairs:
            continue
        pair_ratios = stats.ratios(samples[primary], references[primary])
        if stats.precise(pair_ratios, policy.precision):
            stopped = "precision"
            break
        if sampled() >= policy.time_cap_s and policy.settled(pair_ratios):
            stopped = "time_cap"
            break
    return {
        "samples": samples,
        "reference_samples": references,
        "reference_runs": runs,
        "first": first,
        "cpu_s": cpu_s,
        "steal": steal,
        "ticks": ticks,
        "retaken": retaken,
        "sampling": {
            **dataclasses.asdict(policy),
            "pairs": len(first),
            "stopped": stopped,
            "elapsed_s": time.perf_counter() - began,
            "before_pair_s": waited,
            "retaken": len(retaken),
            "disturbed": disturbed,
        },
        **({"before_pair": before} if before_pair is not None else {}),
    }


def kept_calls(values: list[Any], retaken: list[dict[str, Any]], side: str) -> list[Any]:
    """``values`` a caller recorded once per call of one side (``"format"`` or
    ``"reference"``), less those made in pairs :func:`run_pairs` retook, so that they
    line up with the pairs it kept."""
    dropped = {call for pair in retaken for call in pair["calls"][side]}
    return [value for call, value in enumerate(values) if call not in dropped]
