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
import math
import multiprocessing
import multiprocessing.connection
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from storebench import chunks, cifar, pagecache
from storebench.errors import StorebenchError
from storebench.formats import Format
from storebench.measure import CACHES, NS, ChunkedCheck, cache_verified

log = logging.getLogger(__name__)

BARRIER_TIMEOUT_S = 120.0


def shards(indices: np.ndarray, workers: int) -> list[np.ndarray]:
    """Split ``indices`` into ``workers`` disjoint, contiguous, near-equal shards."""
    return [np.ascontiguousarray(s) for s in np.array_split(indices, workers)]


def _worker(fmt: Format, store: Path, images_path: Path, labels_path: Path,
            shard: np.ndarray, size: int, barrier: Any,
            conn: multiprocessing.connection.Connection) -> None:  # fmt: skip
    """Serve timed rounds of reads of ``shard`` (``size`` indices each) until the parent
    sends ``None``; round 0 opens the store, the last round closes it."""
    try:
        images, labels = cifar.load_dataset(images_path, labels_path)
        check = ChunkedCheck(images, labels, shard, f"parallel read of {store}", size)
        reader = None
        conn.send(("ready", None))
        while (command := _next_command(conn)) is not None:
            round_, rounds = command
            lo, hi = check.spans[round_] if round_ < len(check.spans) else (len(shard),) * 2
            if round_ == 0:
                check.restart()
            check.clear()  # touches every page; a read that writes nothing fails below
            barrier.wait(BARRIER_TIMEOUT_S)
            start = time.perf_counter_ns()
            if round_ == 0:
                reader = fmt.open(store)
            assert reader is not None
            reader.read_into(shard[lo:hi], check.out_images[: hi - lo],
                             check.out_labels[: hi - lo])  # fmt: skip
            if round_ == rounds - 1:
                reader.close()
                reader = None
            end = time.perf_counter_ns()
            check.check(lo, hi)
            memory = chunks.memory_record() if round_ == rounds - 1 else None
            conn.send(("done", (start, end, check.checksum(), os.getpid(), memory)))
    except Exception as exc:  # noqa: BLE001 - any failure is reported to the parent
        message = str(exc) if isinstance(exc, StorebenchError) else f"{type(exc).__name__}: {exc}"
        barrier.abort()  # the other workers stop waiting
        with contextlib.suppress(OSError):  # the parent may be gone already
            conn.send(("error", message))


def _next_command(conn: multiprocessing.connection.Connection) -> Any:
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
    size = math.ceil(chunks.CHUNK / workers)  # all workers together hold about one chunk
    rounds = max(1, math.ceil(max(len(part) for part in parts) / size))
    pipes = [context.Pipe() for _ in parts]
    processes = []
    for part, (_, child) in zip(parts, pipes, strict=True):
        args = (fmt, Path(store), Path(images_path), Path(labels_path), part, size, barrier,
                child)  # fmt: skip
        processes.append(context.Process(target=_worker, args=args, daemon=True))
        processes[-1].start()
    samples: list[float] = []
    worker_s: list[list[float]] = []
    resident: list[float] = []
    sums: list[str] = []
    pids: set[int] = set()
    worker_memory: list[dict[str, float]] = []
    try:
        for parent, _ in pipes:
            _receive(parent, "ready")
        warmup = 1 if cache == "warm" else 0
        for repeat in range(warmup + repeats):
            if cache == "cold":
                pagecache.evict(files)
            fraction = pagecache.residency(files)
            wall, busy = 0.0, np.zeros(workers)
            for round_ in range(rounds):
                for parent, _ in pipes:
                    parent.send((round_, rounds))
                done = [_receive(parent, "done") for parent, _ in pipes]
                wall += (max(d[1] for d in done) - min(d[0] for d in done)) * NS
                busy += [(d[1] - d[0]) * NS for d in done]
            worker_memory = [d[4] for d in done]
            if repeat >= warmup:
                samples.append(wall)
                worker_s.append(busy.tolist())
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
        "rounds": rounds,
        "residency_before": resident,
        "samples": {"read_s": samples},
        "worker_read_s": worker_s,
        "shard_checksums": sums,
        "worker_pids": sorted(pids),
        "worker_memory": {key: max(m[key] for m in worker_memory) for key in worker_memory[0]}
        if worker_memory
        else {},
    }
