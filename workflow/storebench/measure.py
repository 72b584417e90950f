"""Timed store, read and single-image jobs, following the measurement protocol.

Clock: ``time.perf_counter_ns`` around the operation only. Every sample is
kept. Every read is validated against the dataset outside the timed region.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from storebench import chunks, diskspace, pagecache
from storebench.chunks import Images, gather, sample_memory, spans
from storebench.errors import StorebenchError
from storebench.formats import Format

log = logging.getLogger(__name__)

NS = 1e-9


def _libc_syncfs() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    func = getattr(ctypes.CDLL(name, use_errno=True), "syncfs", None)
    return func


_SYNCFS = _libc_syncfs()


def sync_filesystem(path: Path) -> None:
    """Make every written file on ``path``'s filesystem durable (syncfs, else sync)."""
    if _SYNCFS is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if _SYNCFS(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def create_latency_us(folder: Path, files: int = 500) -> float:
    """Median time to create one empty file in ``folder``, in microseconds.

    ext4 creates files much more slowly for minutes after many files were
    deleted; this probe tells whether a store timing would measure that.
    """
    probe = Path(tempfile.mkdtemp(prefix=".probe.", dir=folder))
    times = []
    try:
        for i in range(files):
            start = time.perf_counter_ns()
            fd = os.open(probe / str(i), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.close(fd)
            times.append(time.perf_counter_ns() - start)
    finally:
        for i in range(files):
            (probe / str(i)).unlink(missing_ok=True)
        probe.rmdir()
    return statistics.median(times) / 1e3


class QuietFilesystem:
    """Waits (a bounded total time) until file creation is at its normal speed."""

    def __init__(self, folder: Path, max_create_us: float, max_wait_s: float):
        self.folder = Path(folder)
        self.max_create_us = max_create_us
        self.budget_s = max_wait_s

    def wait(self) -> tuple[float, float]:
        """Return (create latency in us, seconds waited) just before a timed store."""
        waited = 0.0
        latency = create_latency_us(self.folder)
        while latency > self.max_create_us and self.budget_s > 0:
            pause = min(5.0, self.budget_s)
            time.sleep(pause)
            self.budget_s -= pause
            waited += pause
            latency = create_latency_us(self.folder)
        if latency > self.max_create_us:
            log.warning(
                "file creation is slow (%.0f us > %.0f us) and did not recover in time; "
                "the store timing includes it (recorded as create_latency_us)",
                latency,
                self.max_create_us,
            )
        return latency, waited


def summarize(samples: list[float]) -> dict[str, float]:
    """Median, quartiles and range of a list of samples."""
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


def checksum(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 over images then labels, in the order given."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images).data)
    digest.update(np.ascontiguousarray(labels).data)
    return digest.hexdigest()


def validate(
    images: np.ndarray,
    labels: np.ndarray,
    expected_images: np.ndarray,
    expected_labels: np.ndarray,
    what: str,
    first: int = 0,
) -> None:
    """Fail unless the read images and labels are exactly the expected ones.

    ``first``: the position of these images in the whole read (a chunk of it).
    """
    if images.shape != expected_images.shape or images.dtype != np.uint8:
        raise StorebenchError(
            f"{what}: read {images.shape} {images.dtype}, expected {expected_images.shape} uint8"
        )
    if not np.array_equal(images, expected_images):
        bad = np.flatnonzero((images != expected_images).reshape(len(images), -1).any(axis=1))
        raise StorebenchError(
            f"{what}: {len(bad)} of {len(images)} images differ from the dataset "
            f"(first at position {first + bad[0]}); the store or its reader is wrong"
        )
    if not np.array_equal(labels, expected_labels):
        bad = np.flatnonzero(labels != expected_labels)
        raise StorebenchError(
            f"{what}: {len(bad)} of {len(labels)} labels differ from the dataset "
            f"(first at position {first + bad[0]}); the store or its reader is wrong"
        )


def _fresh_dir(parent: Path, prefix: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def _discard(path: Path, trash: Path) -> None:
    """Move ``path`` into ``trash`` instead of deleting it now.

    Deleting many files slows later file creation for minutes; the trash is
    emptied when the whole workflow is done.
    """
    trash.mkdir(parents=True, exist_ok=True)
    os.replace(path, tempfile.mkdtemp(prefix="old.", dir=trash) + "/store")


def warm_free_memory(size: int) -> None:
    """Touch ``size`` bytes of fresh memory and free them again.

    On this VM memory that has not been used for a while is slow to touch the
    first time (about 0.5 GB/s, REFERENCE.md), and a new store's page cache is
    such memory: a 300 MB store took 0.08 or 0.35 s depending on whether the
    kernel had recently freed pages at hand. Freeing just-touched pages right
    before the clock starts gives every store the same, warm, start. Callers
    warm up to one chunk's store, so a job's memory stays bounded.
    """
    scratch = np.empty(size, np.uint8)
    scratch.fill(1)
    del scratch


def measure_store(
    fmt: Format,
    images: np.ndarray,
    labels: np.ndarray,
    out: Path,
    trash: Path,
    repeats: int,
    quiet: QuietFilesystem,
) -> tuple[dict[str, Any], Path]:
    """Write the store ``repeats`` times, each into a new empty folder; keep the last.

    The format pulls the images a chunk at a time (:class:`Images`); the time it
    takes to load them from the dataset is recorded as ``source_s`` and left out
    of ``store_s`` and ``store_durable_s``.

    Returns the result and the hidden folder holding the kept copy: the caller
    saves the result and then renames that folder to ``out``, so the store
    appears last and a job killed at any point leaves no ``out`` to trust.
    An existing ``out`` and folders left by a killed job go to the trash first.
    """
    out, trash = Path(out), Path(trash)
    for old in [out, *out.parent.glob(f".{out.name}.store.*")]:
        if old.exists():
            log.info("discarding %s (an earlier or interrupted store)", old)
            _discard(old, trash)
    write_s: list[float] = []
    durable_s: list[float] = []
    source_s: list[float] = []
    probes: list[dict[str, float]] = []
    previous: Path | None = None
    source = Images(images)  # its chunk buffer is allocated and touched once, here
    for repeat in range(repeats):
        target = _fresh_dir(out.parent, f".{out.name}.store.")
        sync_filesystem(target)  # start with no dirty pages of earlier work
        latency, waited = quiet.wait()
        warm_free_memory(diskspace.store_bytes(fmt, min(len(images), chunks.CHUNK)))
        source.load_ns = 0
        start = time.perf_counter_ns()
        fmt.write(target, source, labels)
        written = time.perf_counter_ns()
        sync_filesystem(target)
        durable = time.perf_counter_ns()
        sample_memory()  # what the job still maps after a write (a writemap LMDB: its pages)
        write_s.append((written - start - source.load_ns) * NS)
        durable_s.append((durable - start - source.load_ns) * NS)
        source_s.append(source.load_ns * NS)
        probes.append({"create_latency_us": latency, "waited_s": waited})
        log.info("repeat %d: write %.4f s, durable %.4f s", repeat, write_s[-1], durable_s[-1])
        if previous is not None:
            _discard(previous, trash)
        previous = target
    assert previous is not None
    result = {
        "samples": {"store_s": write_s, "store_durable_s": durable_s},
        "source_s": source_s,
        "filesystem_probe": probes,
    }
    return result, previous


CACHES = ("warm", "cold")
ORDERS = ("sequential", "random")
COLD_RESIDENCY_MAX = 0.05  # a cold read with more of the store cached is not cold


def cache_verified(cache: str, resident: list[float]) -> bool:
    """Whether reads in ``cache`` state really were: cold ones must start (almost) uncached."""
    verified = cache == "warm" or max(resident) <= COLD_RESIDENCY_MAX
    if not verified:
        log.warning("eviction did not take (%.0f%% cached): cold not verified", 100 * max(resident))
    return verified


def read_indices(n: int, order: str, seed: int) -> np.ndarray:
    """0..n-1 in order, or a permutation that is the same for every format."""
    if order == "sequential":
        return np.arange(n)
    if order == "random":
        return np.random.default_rng(seed).permutation(n)
    raise StorebenchError(f"unknown read order {order!r}; choose one of {ORDERS}")


class ChunkedCheck:
    """Validates a read of ``indices`` chunk by chunk against the dataset.

    Holds one chunk of output (``out_images``, ``out_labels``) and, while
    checking, the expected chunk gathered from the (memory-mapped) dataset; the
    checksum covers the whole read, as if it had been one buffer.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray,
                 what: str, size: int | None = None) -> None:  # fmt: skip
        self.images, self.labels, self.indices, self.what = images, labels, indices, what
        self.size = max(1, min(size or chunks.CHUNK, len(indices)))
        self.out_images = np.empty((self.size, *images.shape[1:]), images.dtype)
        self.out_labels = np.empty(self.size, labels.dtype)
        self.spans = list(spans(len(indices), self.size))
        self._digest = hashlib.sha256()
        self._labels: list[np.ndarray] = []

    def clear(self) -> None:
        """Fill the output with values a read must overwrite (touching every page)."""
        self.out_images.fill(0)
        self.out_labels.fill(255)

    def restart(self) -> None:
        """Forget the chunks checked so far (a new repeat)."""
        self._digest = hashlib.sha256()
        self._labels = []

    def check(self, start: int, stop: int) -> None:
        """Validate the output against images ``indices[start:stop]``, then clear it."""
        count = stop - start
        images, labels = self.out_images[:count], self.out_labels[:count]
        wanted = self.indices[start:stop]
        validate(images, labels, gather(self.images, wanted), self.labels[wanted], self.what,
                 start)  # fmt: skip
        self._digest.update(images.data)
        self._labels.append(labels.copy())
        self.clear()

    def checksum(self) -> str:
        """:func:`checksum` of every image then every label read, in order."""
        digest = self._digest.copy()
        for labels in self._labels:
            digest.update(labels.data)
        return digest.hexdigest()


def measure_read(
    fmt: Format,
    store: Path,
    images: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    cache: str,
    repeats: int,
) -> dict[str, Any]:
    """Open the store, read ``indices`` into a preallocated buffer, close; ``repeats`` times.

    ``warm``: one untimed warm-up read first. ``cold``: before every repeat each
    file of the store is flushed and evicted from the page cache. Either way the
    fraction of the store's pages in the cache is measured (mincore) right before
    each timed read, and every read is validated after the clock stops.

    Above :data:`CHUNK` images the store is read a chunk of indices at a time into
    one chunk-sized buffer (the reader stays open); the clock stops while each
    chunk is validated.
    """
    if cache not in CACHES:
        raise StorebenchError(f"unknown cache state {cache!r}; choose one of {CACHES}")
    check = ChunkedCheck(images, labels, indices, f"read of {store}")
    files = fmt.files(store)
    samples: list[float] = []
    resident: list[float] = []
    warmup = 1 if cache == "warm" else 0
    for repeat in range(warmup + repeats):
        check.clear()
        check.restart()
        if cache == "cold":
            pagecache.evict(files)
        fraction = pagecache.residency(files)
        elapsed = 0
        start = time.perf_counter_ns()
        reader = fmt.open(store)
        try:
            for lo, hi in check.spans:
                reader.read_into(indices[lo:hi], check.out_images[: hi - lo],
                                 check.out_labels[: hi - lo])  # fmt: skip
                if hi < len(indices):  # stop the clock to validate this chunk
                    elapsed += time.perf_counter_ns() - start
                    check.check(lo, hi)
                    start = time.perf_counter_ns()
        finally:
            reader.close()
        elapsed = (elapsed + time.perf_counter_ns() - start) * NS
        if check.spans:
            check.check(*check.spans[-1])
        if repeat >= warmup:
            samples.append(elapsed)
            resident.append(fraction)
            log.info("%s read %d: %.4f s (%.1f%% cached before)", cache, repeat, elapsed,
                     100 * fraction)  # fmt: skip
    verified = cache_verified(cache, resident)
    return {
        "cache": cache,
        "cache_verified": verified,
        "residency_before": resident,
        "chunk_images": check.size,
        "samples": {"read_s": samples},
        "checksum": check.checksum(),
    }


def measure_latency(
    fmt: Format,
    store: Path,
    images: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
) -> dict[str, Any]:
    """Time single-image reads at ``indices`` (warm cache), two ways.

    ``open_read_close``: open the store, read one image, close (the article's
    single read). ``lookup``: read one image from a store opened once (what a
    data loader does). Every image read is validated after the clock stops.
    """
    image, label = np.empty((1, 32, 32, 3), np.uint8), np.empty(1, np.uint8)
    open_read_close: list[float] = []
    lookup: list[float] = []

    def check(index: np.ndarray) -> None:
        # gather: faulting scattered rows of the mapped dataset in would leave GBs resident
        validate(image, label, gather(images, index), labels[index], f"single read of {store}")

    with fmt.open(store) as reader:  # untimed warm-up: every sampled image is cached
        for index in indices.tolist():
            reader.read_into(np.array([index]), image, label)
    for index in indices.tolist():
        one = np.array([index])
        image.fill(0)
        start = time.perf_counter_ns()
        with fmt.open(store) as reader:
            reader.read_into(one, image, label)
        open_read_close.append((time.perf_counter_ns() - start) * NS)
        check(one)
    with fmt.open(store) as reader:
        for index in indices.tolist():
            one = np.array([index])
            image.fill(0)
            start = time.perf_counter_ns()
            reader.read_into(one, image, label)
            lookup.append((time.perf_counter_ns() - start) * NS)
            check(one)
    return {"samples": {"open_read_close_s": open_read_close, "lookup_s": lookup}}


def measure_single(
    fmt: Format,
    image: np.ndarray,
    label: np.ndarray,
    scratch: Path,
    repeats: int,
) -> dict[str, Any]:
    """The article's single-image case: store image 0 on its own, then read it back."""
    scratch = Path(scratch)
    images, labels = image[None], label[None]
    index = np.zeros(1, dtype=np.int64)
    out_images, out_labels = np.empty_like(images), np.empty_like(labels)
    store_s: list[float] = []
    read_s: list[float] = []
    for _ in range(repeats):
        target = _fresh_dir(scratch, "single.")
        start = time.perf_counter_ns()
        fmt.write(target, images, labels)
        store_s.append((time.perf_counter_ns() - start) * NS)
        out_images.fill(0)
        out_labels.fill(255)
        start = time.perf_counter_ns()
        with fmt.open(target) as reader:
            reader.read_into(index, out_images, out_labels)
        read_s.append((time.perf_counter_ns() - start) * NS)
        validate(out_images, out_labels, images, labels, f"single-image read of {target}")
    return {"samples": {"single_store_s": store_s, "single_read_s": read_s}}
