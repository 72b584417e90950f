"""Storage tiers: the experiment again where the data lives when people train from it.

The run itself is the ``local`` tier. Every tier of config ``tiers`` runs the whole
experiment again (the same Snakefile, a derived config: :func:`sub_config`) in a folder
of its own, started by one job of the outer run that holds every core, so no timed job
of either run overlaps another, and the floor is measured on the same tier as the
formats it is paired with. Its tables, verdict and a description of where it ran
(``tier.json``: the kind, the path, the file system type) are copied back into
``results/tiers/{name}/``, and the tiers table puts the tiers side by side.

``kind: directory`` runs the experiment in ``path/storebench/{name}/`` on a mount the
user names (NFS, Lustre, a FUSE file system): the dataset, stores and scratch all live
there, as they would for training from it. Cold reads evict there as everywhere (the
kernel drops a file's cached pages; a network or FUSE file system may keep its own
cache, which the residency check cannot see: ``tier.json`` names the file system so the
tables say which).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from storebench import results, subrun
from storebench.errors import StorebenchError

# What a tier's run must make, and what is copied back (paths below its results/).
COPIED = (
    "tables/store.csv",
    "tables/read.csv",
    "tables/usage.csv",
    "tables/latency.csv",
    "tables/summary.md",
    "tables/verdict.rst",
    "environment.json",
)
TARGETS = ("results/tables/summary.md",)
# What the outer run's job declares (the rest of COPIED when the run made it).
DECLARED = (
    "tier.json",
    "tables/store.csv",
    "tables/read.csv",
    "tables/usage.csv",
    "tables/verdict.rst",
)
# The tables the tiers table is made from, per tier.
TABLES = ("store", "read", "usage")
LOCAL = "local"


def work_folder(name: str, spec: Mapping[str, Any]) -> Path:
    """Where a tier's run works (its results/ is below it)."""
    if spec["kind"] == "directory":
        return Path(spec["path"]).resolve() / "storebench" / name
    raise StorebenchError(f"tiers.{name}.kind: {spec['kind']!r} is not a known tier kind")


def check(config: Mapping[str, Any]) -> None:
    """One line naming the tier and the fix for a tier that cannot run: the name of the
    run's own tier, formats or cutoffs the run does not have, a directory that is not
    there or cannot be written."""
    formats, cutoffs = config["formats"], config["cutoffs"]
    for name, spec in (config.get("tiers") or {}).items():
        if name == LOCAL:
            raise StorebenchError(
                f"tiers.{name}: {LOCAL!r} is the run itself (its own tables); name the "
                "tier after where it stores (e.g. nfs, lustre, s3-lan)"
            )
        unknown = [f for f in spec.get("formats") or [] if f not in formats]
        if unknown:
            raise StorebenchError(
                f"tiers.{name}.formats: {unknown} are not in formats {list(formats)}"
            )
        unknown = [c for c in spec.get("cutoffs") or [] if c not in cutoffs]
        if unknown:
            raise StorebenchError(
                f"tiers.{name}.cutoffs: {unknown} are not in cutoffs {cutoffs}; a tier "
                "measures some of the run's cutoffs"
            )
        if spec["kind"] == "directory":
            _check_directory(name, Path(spec["path"]))


def _check_directory(name: str, path: Path) -> None:
    key = f"tiers.{name}.path"
    if not path.is_absolute():
        raise StorebenchError(f"{key}: {str(path)!r} is relative; give the mount's full path")
    if not path.is_dir():
        raise StorebenchError(
            f"{key}: {path} is not a directory; mount it (or create it) or fix the path"
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise StorebenchError(
            f"{key}: {path} cannot be written by this user; grant write access or pick "
            "a folder you own on that mount"
        )


def sub_config(config: Mapping[str, Any], name: str, archive: str | None) -> dict[str, Any]:
    """The config of one tier's run: the outer config with no tiers and no size sweep,
    the tier's formats (the floor always kept) and cutoffs, and the dataset read from
    the outer run's archive or folder (absolute paths: the run works elsewhere)."""
    spec = config["tiers"][name]
    sub = subrun.derived(config, archive, spec.get("formats"))
    cutoffs = spec.get("cutoffs") or sub["cutoffs"]
    sub["cutoffs"] = list(cutoffs)
    sub["n_images"] = max(cutoffs)
    for section in ("parallel", "dataloader"):
        part = sub.get(section)
        if isinstance(part, dict):
            part["cutoffs"] = [c for c in part.get("cutoffs") or [] if c in cutoffs]
    return sub


def filesystem(path: Path) -> dict[str, str]:
    """The mount that holds ``path``: its mount point, file system type and source
    (from /proc/self/mounts; the longest mount point that is a prefix of it)."""
    path = Path(path).resolve()
    found = {"mount": "", "type": "unknown", "source": ""}
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return found
    best = -1
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].encode().decode("unicode_escape")
        if (path == Path(mount) or Path(mount) in path.parents) and len(mount) > best:
            best = len(mount)
            found = {"mount": mount, "type": fields[2], "source": fields[0]}
    return found


def describe(name: str, spec: Mapping[str, Any], work: Path) -> dict[str, Any]:
    """What ``tier.json`` says of a tier: its name, kind, where its run worked and the
    file system there."""
    return {
        "tier": name,
        "kind": spec["kind"],
        "work": str(work),
        "filesystem": filesystem(work),
    }


def where(described: Mapping[str, Any]) -> str:
    """Where a tier ran, in words: its file system type and folder."""
    fs = described.get("filesystem") or {}
    return f"{fs.get('type', 'unknown')} at {described.get('work', '?')}"


def run(
    name: str,
    spec: Mapping[str, Any],
    config: Mapping[str, Any],
    out: Path,
    cores: int,
    snakefile: Path,
    log: Path,
) -> None:
    """Run the experiment on tier ``name`` (``spec``: its entry in config ``tiers``;
    ``config``: its run's own, :func:`sub_config`) and copy its tables, verdict and
    environment into ``out`` with ``tier.json``."""
    work = work_folder(name, spec)
    subrun.run(f"on tier {name}", config, work, TARGETS, cores, snakefile, log)
    out = Path(out)
    for relative in COPIED:
        source = work / "results" / relative
        if source.exists():
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = target.with_name(f".{target.name}.part")
            shutil.copyfile(source, staged)
            os.replace(staged, target)
    results.write_text(json.dumps(describe(name, spec, work), indent=2) + "\n", out / "tier.json")
