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


# Student's t: the 97.5% and 95% points for 1..30 degrees of freedom (two-sided 95% and
# 90% intervals); beyond 30, the Cornish-Fisher expansion around the normal's point.
_T975 = (
    12.7062,
    4.3027,
    3.1824,
    2.7764,
    2.5706,
    2.4469,
    2.3646,
    2.306,
    2.2622,
    2.2281,
    2.201,
    2.1788,
    2.1604,
    2.1448,
    2.1314,
    2.1199,
    2.1098,
    2.1009,
    2.093,
    2.086,
    2.0796,
    2.0739,
    2.0687,
    2.0639,
    2.0595,
    2.0555,
    2.0518,
    2.0484,
    2.0452,
    2.0423,
)
_T95 = (
    6.3138,
    2.92,
    2.3534,
    2.1318,
    2.015,
    1.9432,
    1.8946,
    1.8595,
    1.8331,
    1.8125,
    1.7959,
    1.7823,
    1.7709,
    1.7613,
    1.7531,
    1.7459,
    1.7396,
    1.7341,
    1.7291,
    1.7247,
    1.7207,
    1.7171,
    1.7139,
    1.7109,
    1.7081,
    1.7056,
    1.7033,
    1.7011,
    1.6991,
    1.6973,
)
_Z = {0.95: Z95, 0.90: 1.6448536269514722}


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    """The two-sided ``confidence`` (0.95 or 0.90) point of Student's t with ``df`` degrees
    of freedom; a fractional ``df`` (Welch) is rounded down, which widens the interval."""
    if confidence not in _Z:
        raise ValueError(f"no t table for confidence {confidence}")
    if df < 1:
        return math.inf
    whole = int(df)
    if whole <= 30:
        return (_T975 if confidence == 0.95 else _T95)[whole - 1]
    z = _Z[confidence]
    return z + (z**3 + z) / (4 * whole) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * whole**2)


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """Mean of ``values`` (e.g. one log ratio per round), its standard error, degrees of
    freedom and its Student-t ``confidence`` interval (``lo``, ``hi``). With one value
    the interval is unbounded: one round says nothing about the spread between rounds."""
    array = np.asarray(values, dtype=float)
    m = len(array)
    if m < 1:
        raise ValueError("no values")
    mean = float(array.mean())
    if m < 2:
        return {"mean": mean, "se": math.inf, "df": 0, "lo": -math.inf, "hi": math.inf}
    se = float(array.std(ddof=1) / math.sqrt(m))
    half = t_quantile(m - 1, confidence) * se
    return {"mean": mean, "se": se, "df": m - 1, "lo": mean - half, "hi": mean + half}


def welch_df(se_a: float, df_a: float, se_b: float, df_b: float) -> float:
    """Welch-Satterthwaite degrees of freedom of a difference of two means."""
    num = (se_a**2 + se_b**2) ** 2
    den = (se_a**4 / df_a if df_a else 0.0) + (se_b**4 / df_b if df_b else 0.0)
    return num / den if den > 0 else math.inf


def paired_difference(
    a: Mapping[int, float], b: Mapping[int, float], confidence: float = CONFIDENCE
) -> dict[str, float] | None:
    """The t-interval of ``a[r] - b[r]`` over the rounds ``r`` both measured (same round,
    same host state): None with fewer than 2 such rounds."""
    common = sorted(a.keys() & b.keys())
    if len(common) < 2:
        return None
    return {**t_interval([a[r] - b[r] for r in common], confidence), "rounds": len(common)}


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
