"""The PyTorch Dataset of every format under DataLoader workers (fork and spawn)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from storebench import measure, validation
from storebench.errors import StorebenchError
from storebench.formats import make_format

from conftest import every_format

if os.environ.get("STOREBENCH_REQUIRE_TORCH"):  # CI: fail, don't skip, without torch
    import torch
else:
    torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader

from storebench import torchdata

N = 48
FORMATS = every_format()


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    return (
        rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, 10, N, dtype=np.uint8),
    )


def _store(name: str, data, folder: Path):
    fmt = make_format(name, FORMATS[name])
    fmt.write(folder, *data)
    return fmt


def _epoch(loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*((i.numpy(), lab.numpy()) for i, lab in loader), strict=True)
    return np.concatenate(images), np.concatenate(labels)


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_two_workers_return_exactly_the_shuffled_images(
    name, start_method, data, tmp_path: Path
) -> None:
    images, labels = data
    fmt = _store(name, data, tmp_path)
    order = np.random.default_rng(2).permutation(N)
    dataset = torchdata.StoreDataset(fmt, tmp_path, N)
    if not fmt.fork_safe and start_method == "fork":  # a fork can hang in its library
        start_method = fmt.start_method()
        assert start_method == "forkserver"
    loader = DataLoader(
        dataset,
        batch_size=5,
        sampler=order.tolist(),
        num_workers=2,
        multiprocessing_context=start_method,
    )
    got_images, got_labels = _epoch(loader)
    assert got_images.dtype == np.uint8
    assert np.array_equal(got_images, fmt.decoded(images)[order])
    assert np.array_equal(got_labels, labels[order])
    assert dataset._reader is None  # the parent never opened the store


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_a_handle_opened_before_a_fork_is_replaced_in_the_worker(
    name, data, tmp_path: Path
) -> None:
    labels = data[1]
    fmt = _store(name, data, tmp_path)
    if not fmt.fork_safe:
        pytest.skip(f"{name} is read by forkserver workers: nothing of the parent's is forked")
    images = fmt.decoded(data[0])  # what the store holds (a lossy payload: decoded)
    dataset = torchdata.StoreDataset(fmt, tmp_path, N)
    image, label = dataset[7]  # opens a handle in this (the parent) process
    assert np.array_equal(image.numpy(), images[7]) and label == labels[7]
    parent_reader = dataset._reader
    loader = DataLoader(
        dataset, batch_size=None, sampler=[3, 9], num_workers=1, multiprocessing_context="fork"
    )
    got = [(int(label), image.numpy()) for image, label in loader]
    assert [g[0] for g in got] == [labels[3], labels[9]]
    assert np.array_equal(got[1][1], images[9])
    assert dataset._reader is parent_reader  # the parent's handle is untouched
    image, label = dataset[9]  # and still reads correctly in the parent
    assert np.array_equal(image.numpy(), images[9]) and label == labels[9]


def test_out_of_range_index_is_an_index_error(data, tmp_path: Path) -> None:
    fmt = _store("hdf5", data, tmp_path)
    with pytest.raises(IndexError):
        torchdata.StoreDataset(fmt, tmp_path, N)[N]


def test_measured_epochs_are_validated(data, tmp_path: Path) -> None:
    images, labels = data
    fmt = _store("png", data, tmp_path)
    order = measure.read_indices(N, "random", 0)
    result = torchdata.measure_epochs(fmt, tmp_path, images, labels, order, 8, 2, 2)
    assert len(result["samples"]["epoch_s"]) == 2
    assert result["checksum"] == validation.checksum(images[order], labels[order])
    tampered = images.copy()
    tampered[0] ^= 1
    with pytest.raises(StorebenchError, match="DataLoader epoch over"):
        torchdata.measure_epochs(fmt, tmp_path, tampered, labels, order, 8, 0, 1)
