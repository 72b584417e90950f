"""Shuffle quality on orders whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from storebench import protocol, shuffle
from storebench.errors import StorebenchError

N = 100_000


def _blocks(n: int, size: int, seed: int = 2) -> np.ndarray:
    """Blocks of ``size`` consecutive images, the blocks in a shuffled order."""
    starts = np.random.default_rng(seed).permutation(n // size) * size
    return (starts[:, None] + np.arange(size)).ravel()


def test_the_uniform_shuffle_distribution_sums_to_one() -> None:
    for n in (2, 3, 10, 1000, N):
        assert shuffle.uniform_bins(n).sum() == pytest.approx(1.0)
    assert shuffle.uniform_bins(2).tolist() == [1.0]  # the only distance is 1


def test_sequential_and_reversed_orders_score_two_over_n() -> None:
    for n in (10, 1000, N):
        assert shuffle.quality(np.arange(n)) == pytest.approx(2 / n)
        assert shuffle.quality(np.arange(n)[::-1]) == pytest.approx(2 / n)


def test_a_uniform_shuffle_scores_about_one() -> None:
    scores = [shuffle.quality(np.random.default_rng(s).permutation(N)) for s in range(5)]
    assert min(scores) > 0.99 and max(scores) <= 1.0


def test_blocks_of_s_consecutive_images_score_about_one_over_s() -> None:
    for size in (10, 100):
        assert shuffle.quality(_blocks(N, size)) == pytest.approx(1 / size, abs=0.002)


def test_the_shards_order_scores_between_sequential_and_uniform() -> None:
    score = shuffle.quality(protocol.shard_order(N, 0))
    assert 0.1 < score < 0.3  # 10 shards of 10,000, a buffer of 1,000: about 0.18
    # a buffer as large as the data set is a uniform shuffle
    assert shuffle.quality(protocol.shard_order(1000, 0)) > 0.9


def test_alternating_two_sequential_halves_scores_about_a_third() -> None:
    order = np.empty(N, np.int64)
    order[0::2], order[1::2] = np.arange(N // 2), np.arange(N // 2) + N // 2
    assert shuffle.quality(order) == pytest.approx(1 / 3, abs=0.01)


def test_an_order_that_is_not_a_permutation_is_refused() -> None:
    with pytest.raises(StorebenchError, match=r"every image 0\.\.3 once"):
        shuffle.quality(np.array([0, 1, 1, 3]))
    assert math.isnan(shuffle.quality(np.array([0])))
