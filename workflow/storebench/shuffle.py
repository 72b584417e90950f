"""Shuffle quality: how much a read order looks like a uniform shuffle, as a number.

A loader that reads shards through a buffer is fast on remote storage because it reads
neighbouring images together; the price is that neighbouring batches hold neighbouring
images. :func:`quality` puts a number on that price, beside the order's speed.

The measure looks at the distance ``|i[k+1] - i[k]|`` between the dataset indices of
consecutive images of the order (MosaicML Streaming's simulator uses the entropy of the
same differences). In a uniform random permutation of ``n`` images the distance is ``d``
with probability ``2 (n - d) / (n (n - 1))``: mostly far apart. Distances are put in
bins by powers of two (1, 2-3, 4-7, ...), and the quality is one minus the total
variation distance between the order's bins and the uniform shuffle's: the share of
consecutive pairs that are as far apart as a uniform shuffle puts them.

Known answers: the sequential order scores ``2 / n`` (about 0); a uniform shuffle about
1 (short by sampling noise, about 0.01 at ``n`` = 100,000); blocks of ``s`` consecutive
images in a shuffled order about ``1 / s`` (all but one pair in a block is 1 apart).
storebench's shards order (shards of 10,000 in a shuffled order, each through a
buffer of 1,000) scores about 0.18 at 100,000 images. It measures how far apart
neighbours are, not every structure an order can have: an order that alternates
between two sequential halves scores about 1/3 (its neighbours are n/2 apart, where a
uniform shuffle puts a third of them); no single number catches every pattern.
"""

from __future__ import annotations

import math

import numpy as np

from storebench.errors import StorebenchError


def _bins(distances: np.ndarray) -> np.ndarray:
    """The power-of-two bin of each distance >= 1: 1 -> 0, 2-3 -> 1, 4-7 -> 2, ..."""
    return np.floor(np.log2(distances)).astype(np.int64)


def uniform_bins(n: int) -> np.ndarray:
    """The probability of each bin of ``|i[k+1] - i[k]|`` in a uniform random
    permutation of ``n`` images (n >= 2)."""
    d = np.arange(1, n, dtype=np.float64)
    p = 2.0 * (n - d) / (n * (n - 1.0))
    return np.bincount(_bins(d), weights=p)


def order_bins(order: np.ndarray) -> np.ndarray:
    """The share of consecutive pairs of ``order`` in each distance bin."""
    distances = np.abs(np.diff(np.asarray(order, dtype=np.int64)))
    counts = np.bincount(_bins(distances), minlength=len(uniform_bins(len(order))))
    return counts / max(1, len(distances))


def quality(order: np.ndarray) -> float:
    """1 minus the total variation distance between the neighbour distances of
    ``order`` (a permutation of 0..n-1) and those of a uniform shuffle, in
    power-of-two bins: about 0 for sequential reads, about 1 for a uniform shuffle.
    NaN for fewer than two images (no neighbours)."""
    order = np.asarray(order, dtype=np.int64)
    n = len(order)
    if not np.array_equal(np.sort(order), np.arange(n)):
        raise StorebenchError(
            f"shuffle quality needs an order of every image 0..{n - 1} once; this one is not"
        )
    if n < 2:
        return math.nan
    expected = uniform_bins(n)
    observed = order_bins(order)
    return float(1.0 - 0.5 * np.abs(observed - expected).sum())
