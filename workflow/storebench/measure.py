"""Timed store, read and single-image jobs, following the measurement protocol.

Clock: ``time.perf_counter_ns`` around the operation only. Every sample is
kept. Every read is validated against the dataset outside the timed region.
Every job measures its format paired with a reference (the raw floor doing the
same work) in the same process, alternating (:mod:`storebench.sampling`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import hashlib
import json
import logging
import os
import shutil
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
from storebench.sampling import CpuProbe, Policy, run_pairs
from storebench.stats import summarize  # noqa: F401 - kept importable from here

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


def create_latency_us(folder: Path, files: int = 200, keep: Path | None = None) -> float:
    """Median time to create one empty file in ``folder``, in microseconds.

    ext4 creates files much more slowly for minutes after many files were
    deleted; this probe tells whether a store timing would measure that. Deleting
    the probe's own files does the same (here, probes 4 s apart that deleted their
    500 files went from 65 to 385 us), so with ``keep`` (a trash folder, emptied
    when the run is over) the files are moved there instead of deleted.
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
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            os.replace(probe, tempfile.mkdtemp(prefix="probe.", dir=keep) + "/files")
        else:
            shutil.rmtree(probe)
    return statistics.median(times) / 1e3


class QuietFilesystem:
    """Waits (a bounded total time) until file creation is back at this machine's quiet level.

    The quiet level is the lowest creation latency seen so far in this run (kept in
    ``baseline``, a small JSON file every store job of the run shares) or in this
    job; file creation counts as slow above ``factor`` times it (and at least
    ``QUIET_MARGIN_US`` above it). A store waits in short steps while it is slow,
    at most ``max_wait_s`` per job in all, then is timed anyway with the probe
    recorded (the paired reference store is taken in the same state). With
    ``trash``, the probe's files are kept there rather than deleted (see
    :func:`create_latency_us`).
    """

    QUIET_MARGIN_US = 50.0
    STEP_S = 0.5

    def __init__(self, folder: Path, max_wait_s: float, factor: float = 3.0,
                 baseline: Path | None = None, trash: Path | None = None) -> None:  # fmt: skip
        self.folder = Path(folder)
        self.trash = Path(trash) if trash else None
        self.factor = factor
        self.budget_s = max_wait_s
        self.baseline = Path(baseline) if baseline else None
        self.quiet_us = self._load()

    def _load(self) -> float:
        if self.baseline is None or not self.baseline.is_file():
            return float("inf")
        try:
            return float(json.loads(self.baseline.read_text())["create_latency_us"])
        except (ValueError, KeyError, TypeError):
            return float("inf")

    def _note(self, latency: float) -> None:
        if latency < self.quiet_us:
            self.quiet_us = latency
            if self.baseline is not None:
                self.baseline.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.baseline.with_name(f".{self.baseline.name}.{os.getpid()}")
                tmp.write_text(json.dumps({"create_latency_us": latency}))
                os.replace(tmp, self.baseline)

    def threshold_us(self) -> float:
        return max(self.factor * self.quiet_us, self.quiet_us + self.QUIET_MARGIN_US)

    def wait(self) -> dict[str, float]:
        """Probe (and wait while slow) just before a timed store; what was found."""
        waited = 0.0
        latency = create_latency_us(self.folder, keep=self.trash)
        self._note(latency)
        while latency > self.threshold_us() and self.budget_s > 0:
            pause = min(self.STEP_S, self.budget_s)
            time.sleep(pause)
            self.budget_s -= pause
            waited += pause
            latency = create_latency_us(self.folder, keep=self.trash)
            self._note(latency)
        slow = latency > self.threshold_us()
        if slow:
            log.warning("file creation is slow (%.0f us > %.0f us, %gx this run's quiet level) "
                        "and did not recover in time; timing the store anyway", latency,
                        self.threshold_us(), self.factor)  # fmt: skip
        return {"create_latency_us": latency, "threshold_us": self.threshold_us(),
                "waited_s": waited, "slow": slow}  # fmt: skip


def checksum(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 over images then labels, in the order given."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images).data)
    digest.update(np.ascontiguousarray(labels).data)
    return digest.hexdigest()


EQUAL_BLOCK_BYTES = 2**21


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    """``np.array_equal`` of two arrays of one shape, a block of rows at a time: the
    whole-array comparison allocates a boolean array as large as the images (300 MB
    at 100,000 images), which cost 0.1 s a read here, once per read of every pair."""
    rows = max(1, EQUAL_BLOCK_BYTES // max(1, a[:1].nbytes))
    return all(np.array_equal(a[i : i + rows], b[i : i + rows]) for i in range(0, len(a), rows))


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
    if not _equal(images, expected_images):
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


# A store of at most this many files is deleted at once; a bigger one goes to the trash.
FEW_FILES = 64


def _discard(path: Path, trash: Path) -> None:
    """Remove a store ``path`` without slowing later stores down.

    Deleting many files slows file creation for minutes (ext4), so a store of many
    files (PNG) is moved into ``trash``, emptied when the whole workflow is done; a
    store of a few files (one big file, an LMDB environment) is deleted now, so that
    repeated copies of large stores do not fill the disk.
    """
    path = Path(path)
    if sum(1 for _ in zip(path.rglob("*"), range(FEW_FILES + 1), strict=False)) <= FEW_FILES:
        shutil.rmtree(path)
        return
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


def _store_trial(fmt: Format, source: Images, labels: np.ndarray, parent: Path,
                 prefix: str, copies: list[Path]) -> Callable[[], dict[str, float]]:  # fmt: skip
    """One timed store of ``fmt`` into a new empty folder under ``parent`` (kept in ``copies``)."""

    def trial() -> dict[str, float]:
        target = _fresh_dir(parent, prefix)
        warm_free_memory(diskspace.store_bytes(fmt, min(len(source), chunks.CHUNK)))
        source.load_ns = 0
        start = time.perf_counter_ns()
        fmt.write(target, source, labels)
        written = time.perf_counter_ns()
        sync_filesystem(target)
        durable = time.perf_counter_ns()
        sample_memory()  # what the job still maps after a write (a writemap LMDB: its pages)
        copies.append(target)
        return {"store_s": (written - start - source.load_ns) * NS,
                "store_durable_s": (durable - start - source.load_ns) * NS,
                "source_s": source.load_ns * NS}  # fmt: skip

    return trial


def measure_store(
    fmt: Format,
    images: np.ndarray,
    labels: np.ndarray,
    out: Path,
    trash: Path,
    repeats: int | None,
    quiet: QuietFilesystem,
    *,
    reference: Format | None = None,
    policy: Policy | None = None,
    seed: int = 0,
) -> tuple[dict[str, Any], Path]:
    """Write the store in pairs with a ``reference`` store (the floor; default: the
    format itself), each into a new empty folder; keep the format's last copy.

    Before each pair, every earlier write is made durable (syncfs) and file creation
    is probed (and waited for, bounded) until it is at this run's quiet level. The
    format pulls the images a chunk at a time (:class:`Images`); the time it takes to
    load them from the dataset is recorded as ``source_s`` and left out of
    ``store_s`` and ``store_durable_s``.

    Returns the result and the hidden folder holding the kept copy: the caller
    saves the result and then renames that folder to ``out``, so the store
    appears last and a job killed at any point leaves no ``out`` to trust.
    An existing ``out`` and folders left by a killed job go to the trash first.
    """
    out, trash = Path(out), Path(trash)
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in [out, *out.parent.glob(f".{out.name}.store.*"),
                *out.parent.glob(f".{out.name}.reference.*")]:  # fmt: skip
        if old.exists():
            log.info("discarding %s (an earlier or interrupted store)", old)
            _discard(old, trash)
    # One reference store per pair: every store is written after the same sync and
    # file-creation probe, and copies of the floor do not pile up on the disk.
    policy = dataclasses.replace(policy or Policy.exactly(repeats or 1), max_reference_runs=1)
    source = Images(images)  # its chunk buffer is allocated and touched once, here
    kept: list[Path] = []
    references: list[Path] = []
    trial = _store_trial(fmt, source, labels, out.parent, f".{out.name}.store.", kept)
    floor = _store_trial(reference or fmt, source, labels, out.parent,
                         f".{out.name}.reference.", references)  # fmt: skip

    def before_pair() -> dict[str, Any]:
        while len(kept) > 1:  # only the last copy of the format is kept
            _discard(kept.pop(0), trash)
        while references:
            _discard(references.pop(), trash)
        sync_filesystem(out.parent)  # start with no dirty pages of earlier work
        return quiet.wait()

    result = run_pairs(trial, floor, policy, seed, before_pair=before_pair)
    while references:
        _discard(references.pop(), trash)
    while len(kept) > 1:
        _discard(kept.pop(0), trash)
    result["filesystem_probe"] = result.pop("before_pair")
    result["source_s"] = result["samples"].pop("source_s")
    result["reference_samples"].pop("source_s")
    for block in result["reference_runs"]:
        block.pop("source_s")
    return result, kept[0]


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
    checking, the expected chunk gathered from the (memory-mapped) dataset. When
    the whole read fits in one chunk, the expected images are gathered once and
    kept for every repeat. The checksum covers the whole read, as if it had been
    one buffer: every image is validated to equal the dataset's, so it is the
    checksum of the expected images, computed once per job rather than once per
    read (a sha256 of 300 MB took about 0.5 s a read here).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray,
                 what: str, size: int | None = None) -> None:  # fmt: skip
        self.images, self.labels, self.indices, self.what = images, labels, indices, what
        self.size = max(1, min(size or chunks.CHUNK, len(indices)))
        self.out_images = np.empty((self.size, *images.shape[1:]), images.dtype)
        self.out_labels = np.empty(self.size, labels.dtype)
        self.spans = list(spans(len(indices), self.size))
        self._checked = 0
        self._whole: tuple[np.ndarray, np.ndarray] | None = None
        self._checksum: str | None = None

    def clear(self) -> None:
        """Fill the output with values a read must overwrite (touching every page)."""
        self.out_images.fill(0)
        self.out_labels.fill(255)

    def restart(self) -> None:
        """Forget the chunks checked so far (a new repeat)."""
        self._checked = 0

    def _expected(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        if (start, stop) != (0, len(self.indices)):
            wanted = self.indices[start:stop]
            return gather(self.images, wanted), self.labels[wanted]
        if self._whole is None:  # the whole read is one chunk: gather it once
            self._whole = gather(self.images, self.indices), self.labels[self.indices]
        return self._whole

    def check(self, start: int, stop: int) -> None:
        """Validate the output against images ``indices[start:stop]``, then clear it.

        Chunks must be checked in order, each starting where the last one stopped.
        """
        if start != self._checked:
            raise StorebenchError(f"{self.what}: chunk {start}..{stop} checked out of order "
                                  f"(expected one starting at {self._checked})")  # fmt: skip
        count = stop - start
        validate(self.out_images[:count], self.out_labels[:count], *self._expected(start, stop),
                 self.what, start)  # fmt: skip
        self._checked = stop
        if stop < len(self.indices):  # the next chunk must overwrite (the next read clears)
            self.clear()

    def checksum(self) -> str:
        """:func:`checksum` of every image then every label read, in order."""
        if self._checked != len(self.indices):
            raise StorebenchError(f"{self.what}: {self._checked} of {len(self.indices)} images "
                                  "were read and checked; the read is incomplete")  # fmt: skip
        if self._checksum is None:
            digest = hashlib.sha256()
            for lo, hi in self.spans:
                digest.update(self._expected(lo, hi)[0].data)
            digest.update(np.ascontiguousarray(self.labels[self.indices]).data)
            self._checksum = digest.hexdigest()
        return self._checksum


def _read_trial(
    fmt: Format,
    store: Path,
    indices: np.ndarray,
    cache: str,
    check: ChunkedCheck,
    resident: list[float],
    sums: list[str],
    files: list[Path],
) -> Callable[[], dict[str, float]]:
    """One timed read of ``indices`` from ``store``: open, read into the check's buffer, close.

    Cold: every file of the store is evicted first. The residency right before the
    read goes to ``resident``; the read is validated (off the clock) and its
    checksum goes to ``sums``. ``files``: the store's files (``fmt.files(store)``).
    """

    def trial() -> dict[str, float]:
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
        elapsed += time.perf_counter_ns() - start
        if check.spans:
            check.check(*check.spans[-1])
        resident.append(fraction)
        sums.append(check.checksum())
        return {"read_s": elapsed * NS}

    return trial


WARM_UP_IMAGES = 256


def _warm_up(fmt: Format, store: Path, files: list[Path], indices: np.ndarray,
             check: ChunkedCheck) -> None:  # fmt: skip
    """Make a warm read warm, untimed: every file of ``store`` into the page cache, then
    one read of the first :data:`WARM_UP_IMAGES` of ``indices`` (the reader's code and
    libraries initialised). A full read would do the same at up to ten seconds a time
    (PNG at 100,000 images); the residency recorded before each timed read shows the
    store was cached.
    """
    pagecache.load(files)
    count = min(len(indices), WARM_UP_IMAGES, check.size)
    reader = fmt.open(store)
    try:
        reader.read_into(indices[:count], check.out_images[:count], check.out_labels[:count])
    finally:
        reader.close()


def measure_read(
    fmt: Format,
    store: Path,
    images: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    cache: str,
    repeats: int | None = None,
    *,
    reference: tuple[Format, Path] | None = None,
    policy: Policy | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Open the store, read ``indices`` into a preallocated buffer, close: in pairs with
    the same read of a ``reference`` store (the floor; default: the store itself).

    ``warm``: both stores are loaded into the page cache and read in part first
    (:func:`_warm_up`). ``cold``: before every read each
    file of its store is flushed and evicted from the page cache. Either way the
    fraction of the store's pages in the cache is measured (mincore) right before
    each timed read, and every read is validated after the clock stops.

    Above :data:`CHUNK` images the store is read a chunk of indices at a time into
    one chunk-sized buffer (the reader stays open); the clock stops while each
    chunk is validated.
    """
    if cache not in CACHES:
        raise StorebenchError(f"unknown cache state {cache!r}; choose one of {CACHES}")
    policy = policy or Policy.exactly(repeats or 1)
    ref_fmt, ref_store = reference or (fmt, store)
    check = ChunkedCheck(images, labels, indices, f"read of {store}")
    resident: list[float] = []
    ref_resident: list[float] = []
    sums: list[str] = []
    ref_sums: list[str] = []
    files = fmt.files(Path(store))  # one list when the store is its own reference
    ref_files = files if Path(ref_store) == Path(store) else ref_fmt.files(Path(ref_store))
    trial = _read_trial(fmt, Path(store), indices, cache, check, resident, sums, files)
    floor = _read_trial(ref_fmt, Path(ref_store), indices, cache, check, ref_resident, ref_sums,
                        ref_files)  # fmt: skip
    if cache == "warm":
        _warm_up(fmt, Path(store), files, indices, check)
        _warm_up(ref_fmt, Path(ref_store), ref_files, indices, check)
    result = run_pairs(trial, floor, policy, seed)
    if set(sums) != set(ref_sums) or len(set(sums)) != 1:
        raise StorebenchError(f"read of {store}: reads of the same images gave different "
                              "checksums; a reader is wrong")  # fmt: skip
    return {
        "cache": cache,
        "cache_verified": cache_verified(cache, resident + ref_resident),
        "residency_before": resident,
        "reference_residency_before": ref_resident,
        "chunk_images": check.size,
        **result,
        "checksum": sums[-1],
    }


def measure_latency(
    fmt: Format,
    store: Path,
    images: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    *,
    reference: tuple[Format, Path] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time single-image reads at ``indices`` (warm cache), two ways, each paired with
    the same read from a ``reference`` store (the floor; default: the store itself).

    ``open_read_close``: open the store, read one image, close (the article's
    single read). ``lookup``: read one image from a store opened once (what a
    data loader does). For every index the format and the reference read it one
    after the other, in a random order. Every image read is validated after the
    clock stops. The CPU probe is timed every :data:`CPU_EVERY` images.
    """
    ref_fmt, ref_store = reference or (fmt, store)
    sides = {"format": (fmt, Path(store)), "reference": (ref_fmt, Path(ref_store))}
    image = np.empty((1, *images.shape[1:]), np.uint8)
    label = np.empty(1, np.uint8)
    rng = np.random.default_rng(seed)
    orders = [("format", "reference") if rng.random() < 0.5 else ("reference", "format")
              for _ in range(len(indices))]  # fmt: skip
    cpu = CpuProbe()
    cpu_s: list[float] = []
    times: dict[str, dict[str, list[float]]] = {side: {} for side in sides}

    def check(index: np.ndarray, what: str) -> None:
        # gather: faulting scattered rows of the mapped dataset in would leave GBs resident
        validate(image, label, gather(images, index), labels[index], f"single read of {what}")

    for side_fmt, side_store in sides.values():  # untimed warm-up: every image cached
        with side_fmt.open(side_store) as reader:
            for index in indices.tolist():
                reader.read_into(np.array([index]), image, label)

    def one(reader_of: Any, mode: str) -> None:
        for k, index in enumerate(indices.tolist()):
            if k % CPU_EVERY == 0:
                cpu_s.append(cpu())
            single = np.array([index])
            for side in orders[k]:
                image.fill(0)
                elapsed = reader_of(side, single)
                times[side].setdefault(mode, []).append(elapsed)
                check(single, str(sides[side][1]))

    def open_read_close(side: str, single: np.ndarray) -> float:
        side_fmt, side_store = sides[side]
        start = time.perf_counter_ns()
        with side_fmt.open(side_store) as reader:
            reader.read_into(single, image, label)
        return (time.perf_counter_ns() - start) * NS

    one(open_read_close, "open_read_close_s")
    readers = {"format": fmt.open(store)}
    # One store paired with itself shares one reader (LMDB opens an environment once).
    same = sides["reference"] == sides["format"]
    readers["reference"] = readers["format"] if same else ref_fmt.open(ref_store)
    try:

        def lookup(side: str, single: np.ndarray) -> float:
            start = time.perf_counter_ns()
            readers[side].read_into(single, image, label)
            return (time.perf_counter_ns() - start) * NS

        one(lookup, "lookup_s")
    finally:
        for reader in {id(r): r for r in readers.values()}.values():
            reader.close()
    return {
        "samples": times["format"],
        "reference_samples": times["reference"],
        "first": [order[0] for order in orders],
        "cpu_s": cpu_s,
    }


CPU_EVERY = 100


def measure_single(
    fmt: Format,
    image: np.ndarray,
    label: np.ndarray,
    scratch: Path,
    repeats: int | None = None,
    *,
    reference: Format | None = None,
    policy: Policy | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The article's single-image case: store image 0 on its own, then read it back;
    in pairs with the same for a ``reference`` format (the floor; default: itself)."""
    scratch = Path(scratch)
    images, labels = image[None], label[None]
    index = np.zeros(1, dtype=np.int64)
    out_images, out_labels = np.empty_like(images), np.empty_like(labels)

    def single(side_fmt: Format) -> Callable[[], dict[str, float]]:
        def trial() -> dict[str, float]:
            target = _fresh_dir(scratch, "single.")
            start = time.perf_counter_ns()
            side_fmt.write(target, images, labels)
            stored = (time.perf_counter_ns() - start) * NS
            out_images.fill(0)
            out_labels.fill(255)
            start = time.perf_counter_ns()
            with side_fmt.open(target) as reader:
                reader.read_into(index, out_images, out_labels)
            read = (time.perf_counter_ns() - start) * NS
            validate(out_images, out_labels, images, labels, f"single-image read of {target}")
            shutil.rmtree(target)
            return {"single_store_s": stored, "single_read_s": read}

        return trial

    return run_pairs(single(fmt), single(reference or fmt),
                     policy or Policy.exactly(repeats or 1), seed)
