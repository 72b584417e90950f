"""Command line entry points; each Snakemake rule calls one subcommand.

The subcommands live beside what they do: :mod:`storebench.cli_jobs` (what the
data and measuring jobs run) and :mod:`storebench.cli_results` (tables, figures,
the summary, and the checks a person runs). Errors a user can cause print one
line (``storebench: error: ...``) and exit 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from storebench import cli_jobs, cli_results
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
    except Exception:
        log.exception("unexpected failure (a bug: please report it with this log)")
        raise
    return 0
