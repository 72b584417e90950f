"""Parallel readers: P processes read disjoint shards of one shuffled index list at once.

Each worker is a fresh process (``spawn``): it opens its own handle to the store
after it starts, so no handle is ever shared across a fork. Per repeat, every
worker fills a preallocated, pre-touched buffer, waits at a barrier, then opens
the store, reads its shard and closes it; the sample is the time from the first
worker's start to the last worker's end. Each worker validates its shard after
the clock stops.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from storebench import cifar, pagecache
from storebench.errors import StorebenchError
from storebench.formats import Format
from storebench.measure import CACHES, NS, cache_verified, checksum, validate

log = logging.getLogger(__name__)

BARRIER_TIMEOUT_S = 120.0


def shards(indices: np.ndarray, workers: int) -> list[np.ndarray]:
    """Split ``indices`` into ``workers`` disjoint, contiguous, near-equal shards."""
    return [np.ascontiguousarray(s) for s in np.array_split(indices, workers)]


def _worker(fmt: Format, store: Path, images_path: Path, labels_path: Path, shard: np.ndarray,
            barrier: Any, conn: multiprocessing.connection.Connection) -> None:  # fmt: skip
    """Serve timed reads of ``shard`` until the parent sends ``None``."""
    try:
        images, labels = cifar.load_dataset(images_path, labels_path)
        expected_images, expected_labels = images[shard], labels[shard]
        out_images = np.empty_like(expected_images)
        out_labels = np.empty_like(expected_labels)
        conn.send(("ready", None))
        while _next_command(conn) is not None:
            out_images.fill(0)  # touches every page; a read that writes nothing fails below
            out_labels.fill(255)
            barrier.wait(BARRIER_TIMEOUT_S)
            start = time.perf_counter_ns()
            with fmt.open(store) as reader:
                reader.read_into(shard, out_images, out_labels)
            end = time.perf_counter_ns()
            validate(out_images, out_labels, expected_images, expected_labels,
                     f"parallel read of {store}")  # fmt: skip
            conn.send(("done", (start, end, checksum(out_images, out_labels), os.getpid())))
    except Exception as exc:  # noqa: BLE001 - any failure is reported to the parent
        message = str(exc) if isinstance(exc, StorebenchError) else f"{type(exc).__name__}: {exc}"
        barrier.abort()  # the other workers stop waiting
        with contextlib.suppress(OSError):  # the parent may be gone already
            conn.send(("error", message))


def _next_command(conn: multiprocessing.connection.Connection) -> str | None:
    """The parent's next command; ``None`` to stop (also when the parent went away)."""
    try:
        return conn.recv()
    except EOFError:
        return None


def _receive(conn: multiprocessing.connection.Connection, expect: str) -> Any:
    try:
        status, value = conn.recv()
    except EOFError:
        raise StorebenchError("a parallel reader died without a word (killed?)") from None
    if status == "error":
        raise StorebenchError(value)
    if status != expect:
        raise StorebenchError(f"parallel reader sent {status!r}, expected {expect!r}")
    return value


def measure_parallel(
    fmt: Format,
    store: Path,
    images_path: Path,
    labels_path: Path,
    indices: np.ndarray,
    workers: int,
    cache: str,
    repeats: int,
) -> dict[str, Any]:
    """Time ``workers`` processes reading disjoint shards of ``indices`` together."""
    if cache not in CACHES:
        raise StorebenchError(f"unknown cache state {cache!r}; choose one of {CACHES}")
    if workers < 1:
        raise StorebenchError(f"workers must be at least 1, not {workers}")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    files = fmt.files(store)
    parts = shards(indices, workers)
    pipes = [context.Pipe() for _ in parts]
    processes = []
    for part, (_, child) in zip(parts, pipes, strict=True):
        args = (fmt, Path(store), Path(images_path), Path(labels_path), part, barrier, child)
        processes.append(context.Process(target=_worker, args=args, daemon=True))
        processes[-1].start()
    samples: list[float] = []
    worker_s: list[list[float]] = []
    resident: list[float] = []
    sums: list[str] = []
    pids: set[int] = set()
    try:
        for parent, _ in pipes:
            _receive(parent, "ready")
        warmup = 1 if cache == "warm" else 0
        for repeat in range(warmup + repeats):
            if cache == "cold":
                pagecache.evict(files)
            fraction = pagecache.residency(files)
            for parent, _ in pipes:
                parent.send("go")
            done = [_receive(parent, "done") for parent, _ in pipes]
            wall = (max(d[1] for d in done) - min(d[0] for d in done)) * NS
            if repeat >= warmup:
                samples.append(wall)
                worker_s.append([(d[1] - d[0]) * NS for d in done])
                resident.append(fraction)
                sums = [d[2] for d in done]
                pids = {d[3] for d in done}
                log.info("%s read with %d workers %d: %.4f s (%.1f%% cached before)", cache,
                         workers, repeat, wall, 100 * fraction)  # fmt: skip
        for parent, _ in pipes:
            parent.send(None)
    finally:
        for parent, child in pipes:
            parent.close()  # a worker still waiting for a command sees EOF and exits
            child.close()
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
    return {
        "cache": cache,
        "cache_verified": cache_verified(cache, resident),
        "workers": workers,
        "start_method": "spawn",
        "residency_before": resident,
        "samples": {"read_s": samples},
        "worker_read_s": worker_s,
        "shard_checksums": sums,
        "worker_pids": sorted(pids),
    }
