"""Preparing the host for a timed job: durable writes, a quiet file system, warm memory.

A store time means "written into a file system with no earlier writes pending and
file creation at this run's quiet level"; these helpers put the machine in that
state (and say when they could not), and get rid of old stores without slowing
the next ones down.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from storebench.protocol import TICKS_PER_S as TICKS_PER_S
from storebench.protocol import job_steal as job_steal

log = logging.getLogger(__name__)


def _libc_syncfs() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    func = getattr(ctypes.CDLL(name, use_errno=True), "syncfs", None)
    return func


_SYNCFS = _libc_syncfs()


def cpu_ticks(stat: Path = Path("/proc/stat")) -> tuple[int, int] | None:
    """(stolen, total) CPU ticks of the whole machine since boot, from /proc/stat's
    ``cpu`` line; None where there is no such file (not Linux).

    Steal is time the hypervisor ran another guest on this VM's vCPUs: a job
    measured while the host was contended runs slower for reasons no format has.
    """
    try:
        with open(stat, encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    ticks = [int(value) for value in fields[1:9]]  # user .. steal; guest is inside user
    return ticks[7], sum(ticks)


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of all CPU time between two :func:`cpu_ticks` readings that was stolen."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def ticks_between(
    before: tuple[int, int] | None, after: tuple[int, int] | None
) -> tuple[int, int] | None:
    """(stolen, total) ticks between two :func:`cpu_ticks` readings."""
    if before is None or after is None:
        return None
    return after[0] - before[0], after[1] - before[1]


def stolen_seconds(ticks: tuple[int, int] | None) -> float | None:
    """Seconds of CPU time the host stole in ``ticks`` (:func:`ticks_between`)."""
    return None if ticks is None else ticks[0] / TICKS_PER_S


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
            to_trash(probe, keep, "probe.", "files")
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

    def __init__(
        self,
        folder: Path,
        max_wait_s: float,
        factor: float = 3.0,
        baseline: Path | None = None,
        trash: Path | None = None,
    ) -> None:
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
            log.warning(
                "file creation is slow (%.0f us > %.0f us, %gx this run's quiet level) "
                "and did not recover in time; timing the store anyway",
                latency,
                self.threshold_us(),
                self.factor,
            )
        return {
            "create_latency_us": latency,
            "threshold_us": self.threshold_us(),
            "waited_s": waited,
            "slow": slow,
        }


def fresh_dir(parent: Path, prefix: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


# A store of at most this many files is deleted at once; a bigger one goes to the trash.
FEW_FILES = 64


def discard(path: Path, trash: Path) -> None:
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
    to_trash(path, trash, "old.", "store")


def to_trash(path: Path, trash: Path, prefix: str, name: str) -> None:
    """Move ``path`` into a new folder in ``trash`` (as ``name``); where ``trash`` is on
    another file system (``results/stores`` or the scratch linked to another disk, as on clusters),
    no rename reaches it, so ``path`` is deleted now instead."""
    trash.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix=prefix, dir=trash))
    try:
        os.replace(path, target / name)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        target.rmdir()
        log.info("%s is on another file system than %s: deleted now", path, trash)
        shutil.rmtree(path)


WARM_MAX_BYTES = 2**30


def warm_free_memory(size: int) -> None:
    """Touch ``size`` bytes of fresh memory and free them again.

    On this VM memory that has not been used for a while is slow to touch the
    first time (about 0.5 GB/s, REFERENCE.md), and a new store's page cache is
    such memory: a 300 MB store took 0.08 or 0.35 s depending on whether the
    kernel had recently freed pages at hand. Freeing just-touched pages right
    before the clock starts gives every store, and every cold read, the same,
    warm, start. At most :data:`WARM_MAX_BYTES`, so a job's memory stays bounded.
    """
    scratch = np.empty(min(size, WARM_MAX_BYTES), np.uint8)
    scratch.fill(1)
    del scratch
