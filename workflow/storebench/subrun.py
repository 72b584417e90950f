"""A run of the workflow inside a job of another: the experiment again with a derived
config (one image size of the size sweep, one storage tier), in its own folder, started
by one job of the outer run that holds every core, so no timed job of either overlaps
another."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from storebench.errors import StorebenchError


def run(
    what: str,
    config: Mapping[str, Any],
    work: Path,
    targets: Sequence[str],
    cores: int,
    snakefile: Path,
    log: Path,
) -> None:
    """Run the workflow on ``config`` in ``work`` for ``targets`` (paths below it); its
    output goes to ``log``. ``what`` names the run in the error a failure raises."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile),
        "--directory",
        str(work),
        "--configfile",
        str(path),
        "--cores",
        str(cores),
        *targets,
    ]
    with open(log, "a") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise StorebenchError(f"the run {what} failed; see {log} and {work}/.snakemake/log")
