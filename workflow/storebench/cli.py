"""Command line entry points; each Snakemake rule calls one subcommand.

The subcommands live beside what they do: :mod:`storebench.cli_jobs` (what the
data and measuring jobs run) and :mod:`storebench.cli_results` (tables, figures,
the summary, and the checks a person runs). Errors a user can cause print one
line (``storebench: error: ...``) and exit 1.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from storebench import cli_jobs, cli_results, diskspace, formatenv
from storebench.errors import StorebenchError

log = logging.getLogger("storebench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="storebench",
        description="The workflow's jobs run these subcommands; stages, compare, benchmark, "
        "examples and figure are for you. Errors print one line and exit 1.",
    )
    parser.add_argument("--log", type=Path, help="write progress to this file, not stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_jobs.add_commands(sub)
    cli_results.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:  # a job of a format with an environment of its own runs whole in it
        environment = formatenv.of_spec(getattr(args, "spec", None))
        if environment:
            formatenv.run_in(environment, sys.argv[1:] if argv is None else argv)
    except StorebenchError as exc:
        print(f"storebench: error: {exc}", file=sys.stderr)
        return 1
    handler = logging.FileHandler(args.log, mode="w") if args.log else logging.StreamHandler()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", handlers=[handler]
    )
    try:
        args.func(args)
    except StorebenchError as exc:
        # One line, in the rule's log and on the terminal where snakemake runs.
        log.error("error: %s", exc)
        if args.log:
            print(f"storebench: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (| head): no traceback, no more output
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        full = full_disk(exc, args)
        if full is None:
            log.exception("unexpected failure (a bug: please report it with this log)")
            raise
        log.error("error: %s", full)
        if args.log:
            print(f"storebench: error: {full}", file=sys.stderr)
        return 1
    return 0


# Below this many free bytes a failed write is put down to a full disk, whatever the
# library called it (LMDB says "Input/output error", HDF5 "file write failed").
NEARLY_FULL = 16 << 20
FULL_TEXTS = ("No space left on device", "Disk quota exceeded")


def full_disk(exc: BaseException, args: argparse.Namespace) -> str | None:
    """One line for a failure caused by a full disk or quota (ENOSPC, EDQUOT), naming
    where and what to do; None if the failure was something else."""
    places = [Path(v) for v in vars(args).values() if isinstance(v, str | Path) and "/" in str(v)]
    where = None
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = exc.filename
    elif not any(text in str(exc) for text in FULL_TEXTS):
        where = next((p for p in places if diskspace.free_bytes(p) < NEARLY_FULL), None)
        if where is None:
            return None
    if where is None:  # the error names no file: the fullest of the job's places
        where = min(places or [Path()], key=diskspace.free_bytes)
    place = Path(where).absolute()
    free = diskspace.free_bytes(place)
    return (
        f"the disk is full (or over quota) at {place} ({free / 2**20:.0f} MiB free): free "
        "space there or point results/ at a bigger disk, then rerun (the job left nothing "
        "half-written)"
    )
