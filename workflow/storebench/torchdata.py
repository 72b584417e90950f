"""PyTorch ``Dataset`` over any store, and a timed DataLoader epoch (``pip install -e '.[torch]'``).

Every format's store is read through the same :class:`StoreDataset`: the store
is opened lazily, in the process that reads it, and reopened when the dataset
finds itself in a new process (a forked DataLoader worker), so no handle is
ever used across a fork; under ``spawn`` the dataset is pickled without a
handle. ``__getitems__`` lets the DataLoader fetch a whole batch with one read.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from storebench import chunks, cifar, pagecache
from storebench.errors import StorebenchError
from storebench.formats import Format, Reader
from storebench.measure import NS
from storebench.sampling import Policy, run_pairs
from storebench.validation import ChunkedCheck

log = logging.getLogger(__name__)

Sample = tuple[torch.Tensor, int]


class StoreDataset(Dataset[Sample]):
    """Image ``i`` of a store as ``(uint8 tensor of ``shape``, label)``; ``shape`` is the
    dataset's image shape (CIFAR-10's (32, 32, 3) by default)."""

    def __init__(
        self, fmt: Format, store: Path, n: int, shape: tuple[int, ...] = cifar.IMAGE_SHAPE
    ):
        self.fmt, self.store, self.n, self.shape = fmt, Path(store), n, tuple(shape)
        self._reader: Reader | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return self.n

    def _open(self) -> Reader:
        if self._reader is not None and self._pid != os.getpid():
            # Forked with the parent's handle: never read through it. Release this
            # process's copy (no reader here holds a transaction or lock between
            # reads, and LMDB is opened with lock=False) so the store can be opened
            # again: py-lmdb refuses a second open of one environment per process.
            self._reader.close()
            self._reader = None
        if self._reader is None:
            self._reader = self.fmt.open(self.store)
            self._pid = os.getpid()
        return self._reader

    def _read(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        index = np.asarray(indices, dtype=np.int64)
        if len(index) and (index.min() < 0 or index.max() >= self.n):
            raise IndexError(f"index out of range 0..{self.n - 1} for {self.store}")
        images = np.empty((len(index), *self.shape), np.uint8)
        labels = np.empty(len(index), np.uint8)
        self._open().read_into(index, images, labels)
        return images, labels

    def __getitem__(self, i: int) -> Sample:
        images, labels = self._read([i])
        return torch.from_numpy(images[0]), int(labels[0])

    def __getitems__(self, indices: list[int]) -> list[Sample]:
        """One read for the whole batch; the DataLoader's collate stacks the samples."""
        images, labels = self._read(indices)
        tensor = torch.from_numpy(images)
        return [(tensor[k], int(labels[k])) for k in range(len(indices))]

    def close(self) -> None:
        if self._reader is not None and self._pid == os.getpid():
            self._reader.close()
        self._reader = None

    def __getstate__(self) -> dict[str, Any]:
        # Pickled for a spawned worker: without any handle.
        return {"fmt": self.fmt, "store": self.store, "n": self.n}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["fmt"], state["store"], state["n"])  # type: ignore[misc]


def measure_epochs(
    fmt: Format,
    store: Path,
    images: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    batch_size: int,
    num_workers: int,
    repeats: int | None = None,
    start_method: str | None = None,
    *,
    reference: tuple[Format, Path] | None = None,
    policy: Policy | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time full epochs over ``indices`` (a shuffled order) through a ``DataLoader``, in
    pairs with the same epoch over a ``reference`` store (the floor; default: itself).

    Warm cache: every file of both stores is read once first, and one untimed
    warm-up epoch of the reference runs the DataLoader's own code paths. Each epoch
    has a new dataset and loader (workers start inside the timed region, as they do
    in training without persistent workers). The loop copies every batch into a
    preallocated buffer, which is validated against the dataset after the clock stops.

    The buffer holds whole batches, up to one chunk of images
    (:func:`~storebench.chunks.chunk_of`); a longer epoch fills it several times and
    the clock stops while each full buffer is validated. Workers may prefetch during
    such a pause (at most ``2 * num_workers`` batches per buffer of
    ``chunk / batch_size`` batches).
    """
    policy = policy or Policy.exactly(repeats or 1)
    chunk = max(batch_size, chunks.chunk_of(images) // batch_size * batch_size)
    shared = ChunkedCheck(images, labels, indices, f"DataLoader epoch over {store}", chunk)
    context = start_method if num_workers else None
    sums: dict[str, str] = {}  # side (format, reference) -> checksum of its epochs

    def epoch_of(side: str, side_fmt: Format, side_store: Path) -> Callable[[], dict[str, float]]:
        check = shared  # one buffer for both stores, unless a lossy format returns others
        if side_fmt.lossy:
            what = f"DataLoader epoch over {side_store}"
            check = ChunkedCheck(images, labels, indices, what, chunk, side_fmt.decoded)

        def epoch() -> dict[str, float]:
            check.clear()
            check.restart()
            dataset = StoreDataset(side_fmt, side_store, len(images), images.shape[1:])
            loader = DataLoader(
                dataset,
                batch_size=batch_size,
                sampler=indices.tolist(),
                num_workers=num_workers,
                multiprocessing_context=side_fmt.start_method(context) if num_workers else None,
            )
            paused = 0
            start = time.perf_counter_ns()
            done = filled = 0
            for batch_images, batch_labels in loader:
                count = len(batch_labels)
                check.out_images[filled : filled + count] = batch_images.numpy()
                check.out_labels[filled : filled + count] = batch_labels.numpy()
                filled += count
                if filled == check.size and done + filled < len(indices):
                    pause = time.perf_counter_ns()  # buffer full: validate it off the clock
                    check.check(done, done + filled)
                    done, filled = done + filled, 0
                    paused += time.perf_counter_ns() - pause
            elapsed = (time.perf_counter_ns() - start - paused) * NS
            dataset.close()
            check.check(done, done + filled)
            if done + filled != len(indices):
                raise StorebenchError(
                    f"the DataLoader gave {done + filled} of {len(indices)} "
                    f"images from {side_store}"
                )
            sums[side] = check.checksum()
            log.info(
                "epoch over %s: %.4f s (%.0f images/s)", side_store, elapsed, len(indices) / elapsed
            )
            return {"epoch_s": elapsed}

        return epoch

    ref_fmt, ref_store = reference or (fmt, store)
    trial = epoch_of("format", fmt, Path(store))
    floor = epoch_of("reference", ref_fmt, Path(ref_store))
    pagecache.load([*fmt.cache_files(store), *ref_fmt.cache_files(ref_store)])
    fmt.load_reader()  # imported here, as a script's dataset does: workers inherit it
    ref_fmt.load_reader()
    floor()  # untimed: the DataLoader's code paths warm
    result = run_pairs(trial, floor, policy, seed)
    if not (fmt.lossy or ref_fmt.lossy) and len(set(sums.values())) != 1:
        raise StorebenchError(f"DataLoader epochs over {store} and its reference differ")
    return {
        "cache": "warm",
        "batch_size": batch_size,
        "num_workers": num_workers,
        "chunk_images": shared.size,
        "start_method": (fmt.start_method(context) or torch.multiprocessing.get_start_method())
        if num_workers
        else "main process",
        **result,
        "checksum": sums["format"],
        "torch": torch.__version__,
    }


class AugmentedBatches(StoreDataset):
    """Whole training batches of a store: ``__getitems__`` reads a batch's images in one
    read, augments and collates them (:func:`storebench.training.make_batch`) in the
    worker process, and hands the batch to the training process as tensors (through
    shared memory, as the DataLoader moves any tensor)."""

    def __init__(
        self,
        fmt: Format,
        store: Path,
        n: int,
        shapes: np.ndarray | None,
        image_shape: tuple[int, ...],
        boxes: np.ndarray,
        crop: int,
    ):
        super().__init__(fmt, store, n, image_shape)
        self.shapes, self.boxes, self.crop = shapes, boxes, crop

    def __getitems__(self, indices: list[int]) -> Any:  # type: ignore[override]
        from storebench import training

        batch = training.make_batch(
            self._open(),
            np.asarray(indices, dtype=np.int64),
            self.shapes,
            self.shape,
            self.boxes,
            self.crop,
        )
        return (
            torch.from_numpy(batch.images),
            torch.from_numpy(batch.labels),
            torch.from_numpy(batch.indices),
            batch.read_cpu_s,
            batch.augment_cpu_s,
        )

    def __getstate__(self) -> dict[str, Any]:
        return {
            **super().__getstate__(),
            "shape": self.shape,
            "shapes": self.shapes,
            "boxes": self.boxes,
            "crop": self.crop,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["fmt"],
            state["store"],
            state["n"],
            state["shapes"],
            state["shape"],
            state["boxes"],
            state["crop"],
        )


def _as_is(batch: Any) -> Any:
    return batch


def process_batches(
    fmt: Format,
    store: Path,
    plan: list[np.ndarray],
    shapes: np.ndarray | None,
    image_shape: tuple[int, ...],
    boxes: np.ndarray,
    crop: int,
    workers: int,
) -> Any:
    """The batches of ``plan``, in order, made by a DataLoader's ``workers`` worker
    processes (each opens the store itself; the workers start when the epoch does, as
    without persistent workers)."""
    from storebench import training

    dataset = AugmentedBatches(fmt, store, len(boxes), shapes, image_shape, boxes, crop)
    loader = DataLoader(
        dataset,
        batch_sampler=[b.tolist() for b in plan],
        num_workers=workers,
        multiprocessing_context=fmt.start_method(),
        collate_fn=_as_is,
        prefetch_factor=training.PREFETCH,
    )
    try:
        for images, labels, indices, read_s, augment_s in loader:
            yield training.Batch(images.numpy(), labels.numpy(), indices.numpy(), read_s, augment_s)
    finally:
        dataset.close()
