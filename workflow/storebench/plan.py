"""What a run is about to do, said once before its first job: jobs per stage, disk
needed against free, and how long the jobs took when they last ran here."""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from storebench.diskspace import GiB
from storebench.errors import StorebenchError
from storebench.present.cost import read_table_tsv


def platform_notice(platform: str = sys.platform) -> str | None:
    """One line for a machine that is not Linux, or None on Linux."""
    if platform.startswith("linux"):
        return None
    return (
        f"storebench: this is {platform}, not Linux: it lacks posix_fadvise, mincore, syncfs "
        "or /proc, so cold reads cannot evict the page cache and stores cannot be synced "
        "the way the README describes; expect jobs to fail or numbers not to compare"
    )


def benchmark_seconds(path: Path | str | None) -> float | None:
    """Wall seconds a job took the last time it ran, from its Snakemake benchmark
    file (the mean of its rows), or None if there is no readable record."""
    if path is None or not Path(path).is_file():
        return None
    try:
        values = [float(row["s"]) for row in read_table_tsv(Path(path))]
    except (OSError, KeyError, ValueError):
        return None
    return sum(values) / len(values) if values else None


def describe(
    counts: Mapping[str, int],
    need_bytes: int,
    free_bytes: int,
    last_seconds: Iterable[float | None],
    where: Path,
) -> list[str]:
    """The lines said at the start of a run.

    ``counts``: planned jobs per stage; ``last_seconds``: for each planned job, how
    long it took when it last ran here (None: never).
    """
    total = sum(counts.values())
    stages = ", ".join(f"{stage} {n}" for stage, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    lines = [f"storebench: {total} jobs planned: {stages}"]
    lines.append(
        f"storebench: disk: about {need_bytes / GiB:.1f} GiB needed at most, "
        f"{free_bytes / GiB:.1f} GiB free at {Path(where).absolute()}"
    )
    known = [s for s in last_seconds if s is not None]
    if known:
        minutes = sum(known) / 60
        rest = total - len(known)
        lines.append(
            f"storebench: time: {len(known)} of these jobs took {minutes:.1f} min when they "
            f"last ran here" + (f"; {rest} have no record" if rest else "")
        )
    else:
        lines.append(
            "storebench: time: no job of this plan has run here before; the default run "
            "took 35 min of jobs on a 2-core VM (docs/scaling.md, 'What a default run costs')"
        )
    return lines


LOCK = ".storebench.lock"


def lock_run(results: Path) -> IO[str]:
    """Hold the run lock of ``results`` for as long as the returned file stays open (the
    whole run); refuse, in one line, a second run started in the same folder.

    Snakemake locks the outputs two runs share, but two runs with different targets
    would time jobs at the same moment (neither knowing) and one could empty the
    other's trash.
    """
    path = Path(results) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held open for the run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StorebenchError(
            f"another storebench run ({holder}) is using {results}; wait for it to finish, "
            "or run in another folder (--directory)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle
