"""Result files (JSON) written by the measuring jobs and read by the tables."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import storebench
from storebench.errors import StorebenchError

PACKAGES = ("numpy", "pillow", "lmdb", "h5py")
# Modules that only present or compare results: editing them changes no measurement.
# Modules that measure nothing: presentation, and what a run says or checks before it starts.
PRESENTATION = frozenset(
    {
        "figures.py",
        "tables.py",
        "benchmarks.py",
        "publish.py",
        "compare.py",
        "plan.py",
        "diskspace.py",
        "catalog.py",
    }
)


@functools.cache
def code_version() -> str:
    """A fingerprint of the code that measures: every module of the package but
    :data:`PRESENTATION`. Results made by different code get different fingerprints."""
    root = Path(storebench.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name not in PRESENTATION:
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def fingerprint(*formats: Any) -> str:
    """What a timed job's numbers depend on: the measuring code (every module but the
    presentation and the other formats' modules), the modules of ``formats`` (a job's
    format and its reference) and the versions of the libraries they declare.

    Rules pass it as a param, so Snakemake reruns exactly the jobs it changes.
    """
    root = Path(storebench.__file__).parent
    own = {f"formats/{Path(sys.modules[type(f).__module__].__file__ or '').name}" for f in formats}
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name in PRESENTATION:
            continue
        if name.startswith("formats/") and name not in own | FORMAT_SHARED:
            continue
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    for package in sorted({"numpy", "pillow", *(p for f in formats for p in type(f).libraries)}):
        digest.update(f"{package}={_version(package)}\0".encode())
    return digest.hexdigest()[:12]


FORMAT_SHARED = frozenset({"formats/__init__.py", "formats/base.py"})


def versions() -> dict[str, str]:
    """Versions of Python, storebench (and its code's fingerprint) and the storage libraries."""
    found = {
        "python": platform.python_version(),
        "storebench": storebench.__version__,
        "storebench_code": code_version(),
    }
    from storebench.formats import available_kinds

    libraries = [p for kind in available_kinds().values() for p in kind.libraries]
    for package in dict.fromkeys([*PACKAGES, *libraries]):
        found[package] = _version(package)
    return found


def write_text(text: str, path: Path) -> None:
    """Write ``text`` atomically (a killed job leaves no half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(data: dict[str, Any], path: Path) -> None:
    write_text(json.dumps(data, indent=1) + "\n", path)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def _provenance(result: dict[str, Any]) -> dict[str, Any]:
    """What must be the same for every result of one table (the code fingerprint is
    per format: a change to one format's module reruns that format's jobs only)."""
    versions = {k: v for k, v in (result.get("versions") or {}).items() if k != "storebench_code"}
    return {"versions": versions, "run": result.get("run")}


def _format_provenance(result: dict[str, Any]) -> dict[str, Any]:
    """What must be the same for every result of one format in one table."""
    code = (result.get("versions") or {}).get("storebench_code")
    return {
        "kind": result.get("kind"),
        "options": result.get("options"),
        "versions": {"storebench_code": code},
    }


def _differences(a: Any, b: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in dict.fromkeys([*a, *b]):
            found += _differences(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
        return found
    return [] if a == b else [(prefix, a, b)]


def check_one_run(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Load results for one table and refuse them if they come from different runs.

    One run means the same versions and code fingerprint, the same dataset, repeats
    and seed, and per format the same kind and options. The older file of the first
    mismatch is named, with the command that remakes it.
    """
    loaded = [(Path(p), read_json(p)) for p in paths]
    first_of: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path, result in loaded:
        wanted = {
            "*": _provenance(result),
            result.get("format", "?"): _format_provenance(result),
        }
        for group, value in wanted.items():
            seen = first_of.setdefault(group, (path, value))
            found = _differences(seen[1], value, "")
            if found:
                _refuse(seen[0], path, *found[0])
    return [result for _, result in loaded]


def _refuse(a: Path, b: Path, field: str, value_a: Any, value_b: Any) -> None:
    older, newer = sorted((a, b), key=lambda p: p.stat().st_mtime)
    values = {a: value_a, b: value_b}
    parts = older.parts
    rule = parts[parts.index("measurements") + 1] if "measurements" in parts else "all"
    raise StorebenchError(
        f"results from different runs cannot share a table: {field} is {values[older]!r} in "
        f"{older} but {values[newer]!r} in {newer}; remake the older results with "
        f"`snakemake --cores 4 --forcerun {rule}`"
    )
