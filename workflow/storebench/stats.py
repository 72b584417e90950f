"""Statistics of timing samples: medians, their confidence intervals, ties.

A leaf module (numpy and the standard library only), so tables, figures and the
measuring code can all use it without importing each other.

The interval of a median is the distribution-free one from order statistics:
for ``m`` sorted samples, ``[x(k), x(m-k+1)]`` holds the true median with
probability ``1 - 2 * P(Binomial(m, 1/2) < k)``. With fewer than 6 samples no
``k`` reaches 95%; the interval is then ``[min, max]`` and its real coverage is
reported (75% for 3 samples), never a pretended 95%. The same interval serves
the pairs of one job and the rounds of a cell (:func:`round_interval`); two runs'
rounds are compared by the Mann-Whitney interval of their shift
(:func:`shift_interval`). No normal or t distribution is assumed anywhere: this
host's rounds have outliers (a store slowed 8x by fresh memory) that a mean follows.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

CONFIDENCE = 0.95


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, range and coefficient of variation of a list of samples."""
    array = np.asarray(samples, dtype=float)
    q1, median, q3 = np.percentile(array, [25, 50, 75])
    return {
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
        "min": float(array.min()),
        "max": float(array.max()),
        "cv": float(array.std() / array.mean()) if array.mean() else 0.0,
    }


@functools.lru_cache(maxsize=256)
def _binomial_cdfs(m: int) -> tuple[int, ...]:
    """``2**m * P(Binomial(m, 1/2) <= i)`` for i = 0..m, exact integers, in one pass."""
    term, total, cdfs = 1, 0, []
    for i in range(m + 1):
        total += term
        cdfs.append(total)
        term = term * (m - i) // (i + 1)
    return tuple(cdfs)


def _binomial_cdf(k: int, m: int) -> float:
    """P(Binomial(m, 1/2) <= k)."""
    return _binomial_cdfs(m)[k] / 2**m


@functools.lru_cache(maxsize=256)
def median_rank(m: int, confidence: float = CONFIDENCE) -> tuple[int, float]:
    """The 1-based rank ``k`` of the interval's lower end for ``m`` samples, and its coverage.

    ``k`` is the largest rank whose interval ``[x(k), x(m-k+1)]`` still covers the
    median with at least ``confidence``; 1 (min to max) when none does.
    """
    if m < 1:
        raise ValueError("no samples")
    k = 1
    while k + 1 <= (m + 1) // 2 and 1 - 2 * _binomial_cdf(k, m) >= confidence:
        k += 1
    return k, 1 - 2 * _binomial_cdf(k - 1, m)


def median_interval(samples: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """The median, its confidence interval (``lo``, ``hi``) and the interval's coverage."""
    values = np.sort(np.asarray(samples, dtype=float))
    m = len(values)
    k, coverage = median_rank(m, confidence)
    return {
        "median": float(np.median(values)),
        "lo": float(values[k - 1]),
        "hi": float(values[m - k]),
        "coverage": float(coverage),
    }


def half_width(interval: dict[str, float]) -> float:
    """The interval's larger distance from the median, relative to the median."""
    median = interval["median"]
    if median <= 0:
        return math.inf
    return max(interval["hi"] / median - 1, 1 - interval["lo"] / median)


def precise(samples: Sequence[float], precision: float, confidence: float = CONFIDENCE) -> bool:
    """Whether the median's interval is within +/- ``precision`` of it, at full coverage."""
    if not len(samples):
        return False
    interval = median_interval(samples, confidence)
    return interval["coverage"] >= confidence and half_width(interval) <= precision


def overlap(a: dict[str, Any], b: dict[str, Any], lo: str = "lo", hi: str = "hi") -> bool:
    """Whether two intervals share a point."""
    return float(a[lo]) <= float(b[hi]) and float(b[lo]) <= float(a[hi])


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Pairwise ratios ``numerators[i] / denominators[i]``."""
    if len(numerators) != len(denominators):
        raise ValueError(f"{len(numerators)} samples but {len(denominators)} references")
    return [a / b if b > 0 else math.inf for a, b in zip(numerators, denominators, strict=True)]


def clearly_before(a: dict[str, Any], b: dict[str, Any], lo: str = "lo", hi: str = "hi") -> bool:
    """Whether ``a``'s interval lies wholly below ``b``'s: ``a`` is clearly better."""
    return float(a[hi]) < float(b[lo])


Z95 = 1.959963984540054  # the standard normal's 97.5% point


def robust_sd(values: Sequence[float]) -> float:
    """The spread of ``values`` as a standard deviation that one outlier cannot inflate:
    1.4826 times the median absolute deviation from the median (0 for fewer than 3)."""
    array = np.asarray(values, dtype=float)
    if len(array) < 3:
        return 0.0
    return float(1.4826 * np.median(np.abs(array - np.median(array))))


def round_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """The median of ``values`` (one per round, e.g. a log ratio) and its distribution-free
    interval from order statistics (:func:`median_interval`), which assumes only that the
    rounds are exchangeable (each in a fresh random order, minutes apart). A round slowed
    by the host moves the median by one rank, not the whole estimate, as a mean would.
    Coverage is exact: 93.75% from 5 rounds (min to max), 96.9% from 6; one round: 0."""
    if not len(values):
        raise ValueError("no values")
    found = median_interval(values, confidence)
    return {
        "center": found["median"],
        "lo": found["lo"],
        "hi": found["hi"],
        "coverage": found["coverage"],
        "count": len(values),
    }


@functools.lru_cache(maxsize=256)
def _rank_sum_counts(m: int, n: int) -> tuple[int, ...]:
    """How many of the C(m+n, m) orderings of two samples of sizes m and n give each
    Mann-Whitney count U = 0..m*n (the number of pairs with the second sample's value
    below the first's), exact integers."""
    if m == 0 or n == 0:
        return (1,)
    with_last_of_first = _rank_sum_counts(m - 1, n)  # the largest value is from the first
    with_last_of_second = _rank_sum_counts(m, n - 1)
    counts = [0] * (m * n + 1)
    for u, c in enumerate(with_last_of_first):
        counts[u + n] += c
    for u, c in enumerate(with_last_of_second):
        counts[u] += c
    return tuple(counts)


def shift_interval(
    a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE
) -> dict[str, float]:
    """How far ``b`` lies above ``a`` (one value per round in each): the difference of the
    medians, and the distribution-free interval of the shift from the sorted pairwise
    differences ``b[j] - a[i]`` (the Mann-Whitney interval, Lehmann's): ``[D(c),
    D(mn+1-c)]`` with the largest ``c`` whose exact coverage is at least ``confidence``,
    else ``c = 1`` with the coverage it has (90% for 3 rounds against 3)."""
    m, n = len(a), len(b)
    if not m or not n:
        raise ValueError("no values")
    diffs = np.sort(np.subtract.outer(np.asarray(b, float), np.asarray(a, float)).ravel())
    counts = _rank_sum_counts(m, n)
    total = math.comb(m + n, m)
    below, c = counts[0], 1  # below: orderings with U <= c - 1
    while 2 * c <= m * n and 1 - 2 * (below + counts[c]) / total >= confidence:
        below += counts[c]
        c += 1
    return {
        "center": float(np.median(b) - np.median(a)),
        "lo": float(diffs[c - 1]),
        "hi": float(diffs[m * n - c]),
        "coverage": 1 - 2 * below / total,
    }


def paired_difference(
    a: Mapping[int, float], b: Mapping[int, float], confidence: float = CONFIDENCE
) -> dict[str, float] | None:
    """The median of ``a[r] - b[r]`` over the rounds ``r`` both measured (same round, same
    host state) and its interval (:func:`round_interval`): None with fewer than 2 such
    rounds."""
    common = sorted(a.keys() & b.keys())
    if len(common) < 2:
        return None
    return {**round_interval([a[r] - b[r] for r in common], confidence), "rounds": len(common)}


def parse_rounds(text: Any) -> dict[int, float]:
    """A table cell ``"1:0.1234 2:0.1301"`` (round: log value) as a dict; {} if empty."""
    if text in ("", None):
        return {}
    found = {}
    for item in str(text).split():
        round_, _, value = item.partition(":")
        found[int(round_)] = float(value)
    return found


def format_rounds(values: Mapping[int, float]) -> str:
    """The inverse of :func:`parse_rounds`."""
    return " ".join(f"{r}:{v:.6g}" for r, v in sorted(values.items()))
