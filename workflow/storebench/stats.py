"""Statistics of timing samples: medians, their confidence intervals, ties.

A leaf module (numpy and the standard library only), so tables, figures and the
measuring code can all use it without importing each other.

The interval of a median is the distribution-free one from order statistics:
for ``m`` sorted samples, ``[x(k), x(m-k+1)]`` holds the true median with
probability ``1 - 2 * P(Binomial(m, 1/2) < k)``. With fewer than 6 samples no
``k`` reaches 95%; the interval is then ``[min, max]`` and its real coverage is
reported (75% for 3 samples), never a pretended 95%.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
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


def tied_ranks(
    rows: Sequence[dict[str, Any]], value: str = "median", lo: str = "lo", hi: str = "hi"
) -> list[tuple[int, bool]]:
    """Ranks of ``rows`` (already sorted best first): a row's rank is 1 plus the number of
    rows whose interval lies wholly below its own, i.e. the formats clearly better than
    it. So a rank is never lower than that of a format clearly better, and two formats
    whose intervals overlap are never put in order by one of them being clearly better.

    Returns ``(rank, tied)`` per row; ``tied`` is True for every row that shares its
    rank with another.
    """
    ranks = [1 + sum(float(other[hi]) < float(row[lo]) for other in rows) for row in rows]
    return [(rank, ranks.count(rank) > 1) for rank in ranks]


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


def widen(median: float, lo: float, hi: float, sd: float) -> tuple[float, float]:
    """``[lo, hi]`` around ``median`` widened by a further, independent source of error:
    each side's distance from the median in logarithms and ``Z95 * sd`` (``sd`` a
    standard deviation of the logarithm) added in quadrature."""
    if median <= 0 or lo <= 0 or not sd:
        return lo, hi
    extra = Z95 * sd
    below = math.hypot(math.log(median / lo), extra)
    above = math.hypot(math.log(hi / median), extra)
    return median * math.exp(-below), median * math.exp(above)
