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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from storebench import chunks, datasetfile, pagecache
from storebench.errors import StorebenchError
from storebench.formats import Format
from storebench.measure import CACHES, NS, cache_verified, warm_up_read
from storebench.sampling import Policy, kept_calls, run_pairs
from storebench.validation import ChunkedCheck

log = logging.getLogger(__name__)

BARRIER_TIMEOUT_S = 120.0


def shards(indices: np.ndarray, workers: int) -> list[np.ndarray]:
    """Split ``indices`` into ``workers`` disjoint, contiguous, near-equal shards."""
    return [np.ascontiguousarray(s) for s in np.array_split(indices, workers)]


def _worker(
    targets: list[tuple[Format, Path]],
    images_path: Path,
    labels_path: Path,
    shard: np.ndarray,
    size: int,
    barrier: Any,
    conn: multiprocessing.connection.Connection,
) -> None:
    """Serve timed rounds of reads of ``shard`` (``size`` indices each) from one of
    ``targets`` (the format's store, the reference's) until the parent sends ``None``;
    a read's round 0 opens its store, its last round closes it. A ``"warm"`` command
    reads the start of the shard, untimed (:func:`~storebench.measure.warm_up_read`)."""
    try:
        images, labels = datasetfile.load_dataset(images_path, labels_path)
        # One check (and buffer) for both stores, unless a lossy format returns other images.
        checks: dict[object, ChunkedCheck] = {}

        def check_of(fmt: Any) -> ChunkedCheck:
            key = fmt if fmt.lossy else None
            if key not in checks:
                decoded = fmt.decoded if fmt.lossy else None
                checks[key] = ChunkedCheck(images, labels, shard, "", size, decoded)
            return checks[key]

        reader = None
        conn.send(("ready", None))
        while (command := _next_command(conn)) is not None:
            kind, target, round_, rounds = command
            fmt, store = targets[target]
            check = check_of(fmt)
            check.what = f"parallel read of {store}"
            if kind == "warm":
                warm_up_read(fmt, store, shard, check)
                conn.send(("warm", None))
                continue
            lo, hi = check.spans[round_] if round_ < len(check.spans) else (len(shard),) * 2
            if round_ == 0:
                check.restart()
            check.clear()  # touches every page; a read that writes nothing fails below
            barrier.wait(BARRIER_TIMEOUT_S)
            start = time.perf_counter_ns()
            if round_ == 0:
                reader = fmt.open(store)
            assert reader is not None
            reader.read_into(shard[lo:hi], *check.out(lo, hi))
            if round_ == rounds - 1:
                reader.close()
                reader = None
            end = time.perf_counter_ns()
            check.check(lo, hi)
            last = round_ == rounds - 1
            memory = chunks.memory_record() if last else None
            checksum = check.checksum() if last else None
            conn.send(("done", (start, end, checksum, os.getpid(), memory)))
    except threading.BrokenBarrierError:
        # another worker failed (and broke the barrier) or one never came: not the cause
        with contextlib.suppress(OSError):
            conn.send(("aborted", None))
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


def _receive_all(pipes: list[Any], expect: str, barrier: Any) -> list[Any]:
    """Every worker's answer to one command. When some fail, the error reported is a
    worker's own failure, never a neighbour's broken barrier that it caused."""
    answers = []
    for parent, _ in pipes:
        try:
            answers.append(parent.recv())
        except EOFError:
            barrier.abort()  # the others must not wait for the dead one
            answers.append(("died", None))
    statuses = [status for status, _ in answers]
    for status, value in answers:
        if status == "error":
            raise StorebenchError(value)
    if "died" in statuses:
        raise StorebenchError("a parallel reader died without a word (killed?)")
    if "aborted" in statuses:
        raise StorebenchError(
            f"parallel readers gave up waiting for each other after {BARRIER_TIMEOUT_S:.0f} s "
            "(a worker stalled; is the machine overloaded?)"
        )
    if any(status != expect for status in statuses):
        raise StorebenchError(f"parallel readers sent {statuses}, expected {expect!r}")
    return [value for _, value in answers]


def measure_parallel(
    fmt: Format,
    store: Path,
    images_path: Path,
    labels_path: Path,
    indices: np.ndarray,
    workers: int,
    cache: str,
    repeats: int | None = None,
    *,
    reference: tuple[Format, Path] | None = None,
    policy: Policy | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time ``workers`` processes reading disjoint shards of ``indices`` together, in
    pairs with the same parallel read of a ``reference`` store (the floor; default:
    the store itself), by the same worker processes."""
    if cache not in CACHES:
        raise StorebenchError(f"unknown cache state {cache!r}; choose one of {CACHES}")
    if workers < 1:
        raise StorebenchError(f"workers must be at least 1, not {workers}")
    policy = policy or Policy.exactly(repeats or 1)
    targets = [(fmt, Path(store)), reference or (fmt, Path(store))]
    targets = [(f, Path(s)) for f, s in targets]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    parts = shards(indices, workers)
    # all workers together hold about one chunk
    size = math.ceil(
        chunks.chunk_of(datasetfile.load_dataset(images_path, labels_path)[0]) / workers
    )
    rounds = max(1, math.ceil(max(len(part) for part in parts) / size))
    pipes = [context.Pipe() for _ in parts]
    processes = []
    for part, (_, child) in zip(parts, pipes, strict=True):
        args = (targets, Path(images_path), Path(labels_path), part, size, barrier, child)
        processes.append(context.Process(target=_worker, args=args, daemon=True))
        processes[-1].start()
    record: list[dict[str, Any]] = [
        {"worker_s": [], "resident": [], "sums": [], "pids": set(), "memory": []} for _ in targets
    ]

    def trial_of(target: int) -> Callable[[], dict[str, float]]:
        files = targets[target][0].cache_files(targets[target][1])
        seen = record[target]

        def trial() -> dict[str, float]:
            if cache == "cold":
                pagecache.evict(files)
            fraction = pagecache.residency(files)
            wall, busy = 0.0, np.zeros(workers)
            for round_ in range(rounds):
                for parent, _ in pipes:
                    parent.send(("read", target, round_, rounds))
                done = _receive_all(pipes, "done", barrier)
                wall += (max(d[1] for d in done) - min(d[0] for d in done)) * NS
                busy += [(d[1] - d[0]) * NS for d in done]
            seen["memory"] = [d[4] for d in done]
            seen["worker_s"].append(busy.tolist())
            seen["resident"].append(fraction)
            seen["sums"] = [d[2] for d in done]
            seen["pids"] |= {d[3] for d in done}
            log.info(
                "%s read of %s with %d workers: %.4f s (%.1f%% cached before)",
                cache,
                targets[target][1],
                workers,
                wall,
                100 * fraction,
            )
            return {"read_s": wall}

        return trial

    try:
        _receive_all(pipes, "ready", barrier)
        trial, floor = trial_of(0), trial_of(1)
        if cache == "warm":  # untimed: the stores cached, each worker's reader initialised
            for target, (target_fmt, target_store) in enumerate(targets):
                pagecache.load(target_fmt.cache_files(target_store))
                for parent, _ in pipes:
                    parent.send(("warm", target, 0, 0))
                _receive_all(pipes, "warm", barrier)
        result = run_pairs(trial, floor, policy, seed)
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
    mine, ref = record
    # The same shards read from both stores; a lossy store returns other pixels (each
    # worker has checked them against the images decoded once) and other sums.
    if mine["sums"] != ref["sums"] and not fmt.lossy:
        raise StorebenchError(f"parallel read of {store}: the reference read other images")
    memory = mine["memory"] + ref["memory"]
    retaken = result["retaken"]
    resident = kept_calls(mine["resident"], retaken, "format")
    ref_resident = kept_calls(ref["resident"], retaken, "reference")
    return {
        "cache": cache,
        "cache_verified": cache_verified(cache, resident + ref_resident),
        "workers": workers,
        "start_method": "spawn",
        "rounds": rounds,
        "residency_before": resident,
        "reference_residency_before": ref_resident,
        **result,
        "worker_read_s": kept_calls(mine["worker_s"], retaken, "format"),
        "shard_checksums": mine["sums"],
        "worker_pids": sorted(mine["pids"]),
        "worker_memory": {key: max(m[key] for m in memory) for key in memory[0]} if memory else {},
    }
