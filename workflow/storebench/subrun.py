"""A run of the workflow inside a job of another: the experiment again with a derived
config (one image size of the size sweep, one storage tier), in its own folder, started
by one job of the outer run that holds every core, so no timed job of either overlaps
another."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from storebench.errors import StorebenchError


def derived(
    config: Mapping[str, Any], archive: str | None, formats: Sequence[str] | None
) -> dict[str, Any]:
    """What every inner run's config shares: the outer config with no size sweep and no
    storage tiers of its own, the dataset read from the outer run's ``archive`` or
    folder by absolute path (the inner run works in another folder), and only
    ``formats`` (None: all; the floor, of kind npy, is always kept)."""
    sub = copy.deepcopy(dict(config))
    sub["tiers"] = {}
    sub["size_sweep"] = {**sub["size_sweep"], "sizes": []}
    if sub["dataset"]["kind"] == "imagefolder":
        sub["dataset"]["path"] = str(Path(sub["dataset"]["path"]).resolve())
    elif archive:
        sub["cifar10"] = {**sub["cifar10"], "archive": str(Path(archive).resolve())}
    if formats:
        floors = [f for f, spec in sub["formats"].items() if spec.get("kind") == "npy"]
        keep = set(formats) | set(floors[:1])
        sub["formats"] = {f: spec for f, spec in sub["formats"].items() if f in keep}
        slowed = sub.get("test_slowdown") or {}
        sub["test_slowdown"] = {f: v for f, v in slowed.items() if f in keep}
    return sub


def run(
    what: str,
    config: Mapping[str, Any],
    work: Path,
    targets: Sequence[str],
    cores: int,
    snakefile: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run the workflow on ``config`` in ``work`` for ``targets`` (paths below it); its
    output goes to ``log``; ``env``: variables its jobs get beside this process's. ``what``
    names the run in the error a failure raises."""
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
        # a job of this run killed with its outer job (Ctrl-C) is redone, not refused
        "--rerun-incomplete",
        *targets,
    ]
    with open(log, "a") as handle:
        done = subprocess.run(
            command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=False,
            env={**os.environ, **(env or {})},
        )
    if done.returncode != 0:
        raise StorebenchError(f"the run {what} failed; see {log} and {work}/.snakemake/log")
