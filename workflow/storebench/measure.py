"""The protocols of the timed store, read and single-image jobs.

Clock: ``time.perf_counter_ns`` around the operation only. Every sample is
kept. Every read is validated against the dataset outside the timed region
(:mod:`storebench.validation`). Every job measures its format paired with a
reference (the raw floor doing the same work) in the same process, alternating
(:mod:`storebench.sampling`); stores start from a prepared host
(:mod:`storebench.host`).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from storebench import diskspace, pagecache, payload
from storebench.chunks import Images, chunk_of, gather, row_bytes, sample_memory, spans
from storebench.errors import StorebenchError
from storebench.formats import Format
from storebench.host import QuietFilesystem, discard, fresh_dir, sync_filesystem, warm_free_memory
from storebench.protocol import ORDERS as ORDERS
from storebench.protocol import SHARD_IMAGES as SHARD_IMAGES
from storebench.protocol import SHUFFLE_BUFFER as SHUFFLE_BUFFER
from storebench.protocol import read_indices as read_indices
from storebench.protocol import shard_order as shard_order
from storebench.sampling import Policy, kept_calls, run_pairs, slowed
from storebench.validation import ChunkedCheck

log = logging.getLogger(__name__)

NS = 1e-9


def _store_trial(
    fmt: Format, source: Images, labels: np.ndarray, parent: Path, prefix: str, copies: list[Path]
) -> Callable[[], dict[str, float]]:
    """One timed store of ``fmt`` into a new empty folder under ``parent`` (kept in ``copies``)."""
    fmt.load_writer()

    def trial() -> dict[str, float]:
        target = fresh_dir(parent, prefix)
        warm_free_memory(diskspace.store_bytes(fmt, len(source), row_bytes(source)))
        source.load_ns = 0
        start = time.perf_counter_ns()
        fmt.write(target, source, labels)
        written = time.perf_counter_ns()
        sync_filesystem(target)
        durable = time.perf_counter_ns()
        sample_memory()  # what the job still maps after a write (a writemap LMDB: its pages)
        copies.append(target)
        return {
            "store_s": (written - start - source.load_ns) * NS,
            "store_durable_s": (durable - start - source.load_ns) * NS,
            "source_s": source.load_ns * NS,
        }

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
    first_side: str | None = None,
    slowdown: float = 1.0,
    format_hint_s: float | None = None,
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
    for old in [
        out,
        *out.parent.glob(f".{out.name}.store.*"),
        *out.parent.glob(f".{out.name}.reference.*"),
    ]:
        if old.exists():
            log.info("discarding %s (an earlier or interrupted store)", old)
            fmt.forget(old)
            discard(old, trash)
    # Beside a long store (PNG, WebDataset, compressed HDF5 at 100,000 images: seconds)
    # the floor's store (about 0.1 s) runs several times a pair and the pair takes their
    # median: one floor store slowed 3 to 7x by the host (seen in runs B and C of
    # 2026-12-01) would otherwise set the ratio of a job of two or three pairs. Each
    # copy is durable before the next starts; all but the last go before the next pair.
    policy = policy or Policy.exactly(repeats or 1)
    source = Images(images)  # its chunk buffer is allocated and touched once, here
    kept: list[Path] = []
    references: list[Path] = []
    trial = slowed(
        _store_trial(fmt, source, labels, out.parent, f".{out.name}.store.", kept), slowdown
    )
    floor = _store_trial(
        reference or fmt, source, labels, out.parent, f".{out.name}.reference.", references
    )

    def drop(path: Path, side: Format) -> None:
        side.forget(path)  # its objects on an object-store tier
        discard(path, trash)

    def before_pair(order: tuple[str, str]) -> dict[str, Any]:
        # Each side keeps its last copy until the next pair, and the older ones go in
        # the order the sides will write: what a side's store finds (its own last copy,
        # the other's, pages just freed) then depends on its place in the pair, which
        # alternates, and never on which side it is. Keeping the format's copy only and
        # deleting format-then-floor made the floor measured against itself 2-4% slower
        # as the format than as the floor, in every job (a 200-pair experiment).
        for side in order:
            copies, writer = (kept, fmt) if side == "format" else (references, reference or fmt)
            while len(copies) > 1:
                drop(copies.pop(0), writer)
        sync_filesystem(out.parent)  # start with no dirty pages of earlier work
        return quiet.wait()

    try:
        warm_up_store(fmt, images, labels, out.parent, trash)
        warm_up_store(reference or fmt, images, labels, out.parent, trash)
        result = run_pairs(
            trial,
            floor,
            policy,
            seed,
            before_pair=before_pair,
            first_side=first_side,
            format_hint_s=format_hint_s,
        )
    except BaseException:
        # A full disk, a bug, Ctrl-C: no copy left, and its space (and the trash's, kept
        # only so that deleting does not slow the timing of later stores) freed now.
        staged = [*out.parent.glob(f".{out.name}.*.*"), *out.parent.glob(".warm-up.*")]
        for path in kept:
            fmt.forget(path)
        for path in references:
            (reference or fmt).forget(path)
        for path in {*kept, *references, *staged, trash}:
            shutil.rmtree(path, ignore_errors=True)
        raise
    while references:
        drop(references.pop(), reference or fmt)
    while len(kept) > 1:
        drop(kept.pop(0), fmt)
    result["filesystem_probe"] = result.pop("before_pair")
    result["source_s"] = result["samples"].pop("source_s")
    result["reference_samples"].pop("source_s")
    for block in result["reference_runs"]:
        block.pop("source_s")
    if fmt.lossy:  # off the clock: how far the stored images are from the dataset's
        result["psnr_db"] = psnr_of(fmt, images)
    return result, kept[0]


WARM_UP_STORE_IMAGES = 256


def warm_up_store(
    fmt: Format, images: np.ndarray, labels: np.ndarray, parent: Path, trash: Path
) -> None:
    """One untimed store of the first :data:`WARM_UP_STORE_IMAGES` images, deleted at
    once, so the writer's code and libraries are not first run on the clock (the first
    LMDB store of 10,000 images in a fresh process took 0.24 s, later ones 0.08 s)."""
    count = min(len(images), WARM_UP_STORE_IMAGES)
    target = fresh_dir(parent, ".warm-up.")
    try:
        fmt.write(target, Images(images[:count]), labels[:count])
    finally:
        fmt.forget(target)
        discard(target, trash)


def psnr_of(fmt: Format, images: np.ndarray) -> float:
    """PSNR (dB) of the images a read of ``fmt`` returns against ``images``, a chunk at
    a time."""
    pairs = (
        (part, fmt.decoded(part))
        for part in (
            gather(images, np.arange(lo, hi)) for lo, hi in spans(len(images), chunk_of(images))
        )
    )
    return round(payload.psnr_db(pairs), 3)


CACHES = ("warm", "cold")
COLD_RESIDENCY_MAX = 0.05  # a cold read with more of the store cached is not cold


def cache_verified(cache: str, resident: list[float]) -> bool:
    """Whether reads in ``cache`` state really were: cold ones must start (almost) uncached."""
    if cache != "warm" and any(math.isnan(r) for r in resident):
        log.warning("cold not verified: this machine cannot evict the store's cache")
        return False
    verified = cache == "warm" or max(resident) <= COLD_RESIDENCY_MAX
    if not verified:
        log.warning("eviction did not take (%.0f%% cached): cold not verified", 100 * max(resident))
    return verified


def _read_trial(
    fmt: Format,
    store: Path,
    indices: np.ndarray,
    cache: str,
    check: ChunkedCheck,
    resident: list[float],
    sums: list[str],
    files: list[Path],
    traffic: list[dict[str, float]],
) -> Callable[[], dict[str, float]]:
    """One timed read of ``indices`` from ``store``: open, read into the check's buffer, close.

    Cold: every file of the store is evicted first. The residency right before the
    read goes to ``resident``; the read is validated (off the clock) and its
    checksum goes to ``sums``. ``files``: the files its cache state is set on
    (``fmt.cache_files(store)``; none: a cache this machine cannot evict, and the
    residency is NaN). On an object-store tier, what the link carried during the read
    (requests, bytes) goes to ``traffic``, counted off the clock.
    """

    size = sum(path.stat().st_size for path in files)

    def trial() -> dict[str, float]:
        check.clear()
        check.restart()
        # an object store's server writes and compacts its own files as it works: the
        # files it has now, not at the first trial
        now = fmt.cache_files(store) if fmt.remote and files else files
        if cache == "cold":
            pagecache.evict(now)
            warm_free_memory(size)  # the page cache the read fills: warm pages, every time
        fraction = pagecache.residency(now) if now else float("nan")
        before = fmt.traffic()
        elapsed = 0
        start = time.perf_counter_ns()
        reader = fmt.open(store)
        try:
            for lo, hi in check.spans:
                reader.read_into(indices[lo:hi], *check.out(lo, hi))
                if hi < len(indices):  # stop the clock to validate this chunk
                    elapsed += time.perf_counter_ns() - start
                    check.check(lo, hi)
                    start = time.perf_counter_ns()
        finally:
            reader.close()
        elapsed += time.perf_counter_ns() - start
        if before is not None:
            after = fmt.traffic() or {}
            traffic.append({k: after[k] - before[k] for k in before if k in after})
        if check.spans:
            check.check(*check.spans[-1])
        resident.append(fraction)
        sums.append(check.checksum())
        return {"read_s": elapsed * NS}

    return trial


WARM_UP_IMAGES = 256


def warm_up_read(fmt: Format, store: Path, indices: np.ndarray, check: ChunkedCheck) -> None:
    """One untimed read of the first :data:`WARM_UP_IMAGES` of ``indices`` (into
    ``check``'s buffer), so the reader's code and libraries are initialised."""
    count = min(len(indices), WARM_UP_IMAGES, check.size)
    reader = fmt.open(store)
    try:
        reader.read_into(indices[:count], *check.out(0, count))
    finally:
        reader.close()


def _warm_up(
    fmt: Format, store: Path, files: list[Path], indices: np.ndarray, check: ChunkedCheck
) -> None:
    """Make a warm read warm, untimed: every file of ``store`` into the page cache, then
    :func:`warm_up_read`. A full read would do the same at up to ten seconds a time
    (PNG at 100,000 images); the residency recorded before each timed read shows the
    store was cached.
    """
    pagecache.load(files)
    warm_up_read(fmt, store, indices, check)


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
    first_side: str | None = None,
    slowdown: float = 1.0,
    format_hint_s: float | None = None,
) -> dict[str, Any]:
    """Open the store, read ``indices`` into a preallocated buffer, close: in pairs with
    the same read of a ``reference`` store (the floor; default: the store itself).

    ``warm``: both stores are loaded into the page cache and read in part first
    (:func:`_warm_up`). ``cold``: both are read in part first, so their code paths
    are not first run on the clock, and before every timed read each file of its
    store is flushed and evicted from the page cache. Either way the
    fraction of the store's pages in the cache is measured (mincore) right before
    each timed read, and every read is validated after the clock stops.

    Above one chunk of images (:data:`~storebench.chunks.CHUNK_BYTES`) the store is read a chunk of
    indices at a time into one chunk-sized buffer (the reader stays open); the clock
    stops while each chunk is validated.
    """
    if cache not in CACHES:
        raise StorebenchError(f"unknown cache state {cache!r}; choose one of {CACHES}")
    policy = policy or Policy.exactly(repeats or 1)
    ref_fmt, ref_store = reference or (fmt, store)
    # One check (one buffer) for both sides, unless a lossy format returns other images.
    check = ChunkedCheck(images, labels, indices, f"read of {store}")
    ref_check = check
    if fmt.lossy or ref_fmt.lossy:
        check.decoded = fmt.decoded if fmt.lossy else None
        decoded = ref_fmt.decoded if ref_fmt.lossy else None
        ref_check = ChunkedCheck(images, labels, indices, f"read of {ref_store}", None, decoded)
    resident: list[float] = []
    ref_resident: list[float] = []
    sums: list[str] = []
    ref_sums: list[str] = []
    traffic: list[dict[str, float]] = []
    ref_traffic: list[dict[str, float]] = []
    files = fmt.cache_files(Path(store))  # one list when the store is its own reference
    ref_files = files if Path(ref_store) == Path(store) else ref_fmt.cache_files(Path(ref_store))
    trial = slowed(
        _read_trial(fmt, Path(store), indices, cache, check, resident, sums, files, traffic),
        slowdown,
    )
    floor = _read_trial(
        ref_fmt,
        Path(ref_store),
        indices,
        cache,
        ref_check,
        ref_resident,
        ref_sums,
        ref_files,
        ref_traffic,
    )
    if cache == "warm":
        _warm_up(fmt, Path(store), files, indices, check)
        _warm_up(ref_fmt, Path(ref_store), ref_files, indices, ref_check)
    else:  # the readers' code paths run once, off the clock; each timed read evicts first
        warm_up_read(fmt, Path(store), indices, check)
        warm_up_read(ref_fmt, Path(ref_store), indices, ref_check)
    result = run_pairs(
        trial, floor, policy, seed, first_side=first_side, format_hint_s=format_hint_s
    )
    resident = kept_calls(resident, result["retaken"], "format")
    ref_resident = kept_calls(ref_resident, result["retaken"], "reference")
    same = ref_check is not check or set(sums) == set(ref_sums)  # a lossy side: its own images
    if not same or len(set(sums)) != 1 or len(set(ref_sums)) != 1:
        raise StorebenchError(
            f"read of {store}: reads of the same images gave different checksums; a reader is wrong"
        )
    found = {
        "cache": cache,
        "cache_verified": cache_verified(cache, resident + ref_resident),
        "residency_before": resident,
        "reference_residency_before": ref_resident,
        "chunk_images": check.size,
        **result,
        "checksum": sums[-1],
    }
    if traffic:  # an object-store tier: what each kept read carried over its link
        found["traffic"] = kept_calls(traffic, result["retaken"], "format")
        found["reference_traffic"] = kept_calls(ref_traffic, result["retaken"], "reference")
    return found
