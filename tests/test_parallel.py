"""Parallel readers: disjoint shards, one process and handle per worker, validated reads."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from storebench import measure, parallel, validation
from storebench.errors import StorebenchError
from storebench.formats import make_format

from conftest import every_format

N = 60
FORMATS = every_format()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, N, dtype=np.uint8)
    folder = tmp_path_factory.mktemp("dataset")
    np.save(folder / "images.npy", images)
    np.save(folder / "labels.npy", labels)
    return folder / "images.npy", folder / "labels.npy", images, labels


def test_shards_are_disjoint_and_cover_the_order_in_order() -> None:
    order = np.random.default_rng(0).permutation(10)
    parts = parallel.shards(order, 3)
    assert [len(p) for p in parts] == [4, 3, 3]
    assert np.array_equal(np.concatenate(parts), order)


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("cache", ["warm", "cold"])
def test_workers_read_their_shards_exactly(name: str, cache: str, dataset, tmp_path: Path) -> None:
    images_path, labels_path, images, labels = dataset
    fmt = make_format(name, FORMATS[name])
    store = tmp_path / "store"
    store.mkdir()
    fmt.write(store, images, labels)
    order = measure.read_indices(N, "random", 7)
    result = parallel.measure_parallel(fmt, store, images_path, labels_path, order, 2, cache, 2)
    assert len(result["samples"]["read_s"]) == 2
    assert all(s > 0 for s in result["samples"]["read_s"])
    # The wall time covers every worker's own read.
    for wall, workers in zip(result["samples"]["read_s"], result["worker_read_s"], strict=True):
        assert len(workers) == 2
        assert wall >= max(workers) > 0
    expected = [
        validation.checksum(fmt.decoded(images[s]), labels[s]) for s in parallel.shards(order, 2)
    ]
    assert result["shard_checksums"] == expected
    assert len(result["worker_pids"]) == 2
    assert os.getpid() not in result["worker_pids"]
    assert len(result["residency_before"]) == 2
    if cache == "warm":  # the untimed warm-up cached every file of the store
        assert min(result["residency_before"]) == 1.0
    assert not multiprocessing.active_children()


def test_a_lossy_store_is_read_in_pairs_with_the_raw_floor(dataset, tmp_path: Path) -> None:
    """A JPEG store beside the floor's raw pixels: the two read the same shards, but the
    JPEG's pixels (checked against the images decoded once) differ from the floor's."""
    images_path, labels_path, images, labels = dataset
    stores = {}
    for name in ("lmdb_jpeg", "raw"):
        fmt = make_format(name, FORMATS.get(name, {"kind": "npy"}))
        stores[name] = (fmt, tmp_path / name)
        stores[name][1].mkdir()
        fmt.write(stores[name][1], images, labels)
    fmt, store = stores["lmdb_jpeg"]
    order = measure.read_indices(N, "random", 7)
    result = parallel.measure_parallel(
        fmt, store, images_path, labels_path, order, 2, "warm", 2, reference=stores["raw"]
    )
    expected = [
        validation.checksum(fmt.decoded(images[s]), labels[s]) for s in parallel.shards(order, 2)
    ]
    assert result["shard_checksums"] == expected
    assert not multiprocessing.active_children()


def test_a_wrong_store_fails_the_job_and_leaves_no_worker(dataset, tmp_path: Path) -> None:
    images_path, labels_path, images, labels = dataset
    fmt = make_format("hdf5", {"kind": "hdf5"})
    store = tmp_path / "store"
    store.mkdir()
    tampered = images.copy()
    tampered[N - 1] ^= 1  # the last image, in the second worker's shard
    fmt.write(store, tampered, labels)
    order = np.arange(N)
    with pytest.raises(StorebenchError, match=r"parallel read of .*1 of 30 images differ"):
        parallel.measure_parallel(fmt, store, images_path, labels_path, order, 2, "warm", 1)
    assert not multiprocessing.active_children()


def test_the_failing_worker_is_reported_not_the_neighbour_it_stopped() -> None:
    # The failing worker breaks the barrier; a neighbour that wakes late sees only that,
    # and may answer first. The parent hears everyone and reports the cause.
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    (first, first_child), (second, second_child) = pipes = [context.Pipe() for _ in range(2)]
    first_child.send(("aborted", None))
    second_child.send(("error", "parallel read of s: 1 of 30 images differ"))
    with pytest.raises(StorebenchError, match="1 of 30 images differ"):
        parallel._receive_all(pipes, "done", barrier)
    assert not barrier.broken
    first_child.close()  # the first worker dies; the second answers
    second_child.send(("done", 1))
    with pytest.raises(StorebenchError, match="died without a word"):
        parallel._receive_all(pipes, "done", barrier)
    assert barrier.broken  # its neighbour was told to stop waiting
    for pipe in (first, second, second_child):
        pipe.close()


def test_a_missing_store_is_reported_not_hung(dataset, tmp_path: Path) -> None:
    images_path, labels_path, _, _ = dataset
    fmt = make_format("lmdb_raw", FORMATS["lmdb_raw"])
    with pytest.raises(StorebenchError):
        parallel.measure_parallel(
            fmt, tmp_path / "none", images_path, labels_path, np.arange(N), 2, "warm", 1
        )
    assert not multiprocessing.active_children()
