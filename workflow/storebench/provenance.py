"""Provenance: what made a result, built in one place.

Every result file records the format and its options, n, the reference (the
floor) it was paired with, the versions of Python, storebench and every library
a format declares (``Format.libraries``), the fingerprint of the code its numbers
depend on, where it ran and with which settings. The fingerprint is also a rule
parameter, so a change to the measuring code, a format's module or its
libraries reruns exactly the jobs it affects.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import storebench
from storebench import chunks

# What the measuring code itself runs on, whatever the format: numpy everywhere, Pillow
# in the CPU probe. Each format declares its own libraries (Format.libraries).
CORE_LIBRARIES = ("numpy", "pillow")
# Modules that measure nothing: the presentation (the folder present/, skipped whole),
# and what a run says or checks before it starts, and the user's own commands.
PRESENTATION_FOLDER = "present/"
NOT_MEASURING = frozenset({"plan.py", "diskspace.py", "benchmarks.py", "cli_results.py"})


def measures(name: str) -> bool:
    """Whether a module (its path under the package, e.g. ``measure.py`` or
    ``present/tables.py``) is part of what measures, and so of the fingerprint."""
    return not name.startswith(PRESENTATION_FOLDER) and name not in NOT_MEASURING


@functools.cache
def code_version() -> str:
    """A fingerprint of the code that measures: every module of the package but
    :func:`measures`. Results made by different code get different fingerprints."""
    root = Path(storebench.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if measures(name):
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def package_version(package: str) -> str:
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
    own = {f"formats/{Path(sys.modules[_kind(f).__module__].__file__ or '').name}" for f in formats}
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if not measures(name):
            continue
        if name.startswith("formats/") and name not in own | FORMAT_SHARED:
            continue
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    for package in sorted({*CORE_LIBRARIES, *(p for f in formats for p in f.libraries)}):
        digest.update(f"{package}={package_version(package)}\0".encode())
    return digest.hexdigest()[:12]


FORMAT_SHARED = frozenset({"formats/__init__.py", "formats/base.py"})


def _kind(fmt: Any) -> type:
    """The class of a format's kind (of the format itself on an object-store tier)."""
    return type(getattr(fmt, "inner", fmt))


def versions(*formats: Any) -> dict[str, str]:
    """Versions of Python, storebench (and the fingerprint of the code ``formats`` run),
    the core libraries and the libraries ``formats`` declare; of all code and every
    format's libraries when none is given (the environment). Versions are read from
    package metadata: nothing is imported, so a job does not pay for importing libraries
    it never runs (webdataset imports torch)."""
    found = {
        "python": platform.python_version(),
        "storebench": storebench.__version__,
        # a job's results: what its formats' numbers depend on; the environment: all code
        "storebench_code": fingerprint(*formats) if formats else code_version(),
    }
    if formats:
        kinds: list[Any] = list(formats)
    else:
        from storebench.formats import available_kinds

        kinds = list(available_kinds().values())
    for package in dict.fromkeys([*CORE_LIBRARIES, *(p for kind in kinds for p in kind.libraries)]):
        found[package] = package_version(package)
    return found


# The versions every result of one table must share; a format's own libraries are in
# its fingerprint (compared per format).
SHARED_VERSIONS = ("python", "storebench", *CORE_LIBRARIES)


# The version of the result files' structure (results.TimedResult). 1: no stamp (before
# 2026-12-02); 2: stamped. A table refuses a result of another version in one line that
# names the command remaking it, rather than reading it through a compatibility shim.
RESULT_SCHEMA = 2


def describe(
    name: str,
    fmt: Any,
    n: int,
    reference: tuple[str, Any] | None = None,
    dataset: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance of one result: format ``name`` (a Format) at ``n`` images, paired
    with ``reference`` (its name and Format), made from ``dataset`` (its identity) with
    the run's ``settings`` (repeats, sampling, seed)."""
    ref_name, ref_fmt = reference or (None, None)
    formats = [f for f in (fmt, ref_fmt) if f is not None]
    return {
        "schema": RESULT_SCHEMA,
        "format": name,
        "kind": fmt.kind,
        "options": fmt.options(),
        "n": n,
        "reference": {"format": ref_name, "kind": ref_fmt.kind, "options": ref_fmt.options()}
        if ref_fmt is not None
        else None,
        "versions": versions(*formats),
        "where": {"host": socket.gethostname(), "pid": os.getpid()},
        "memory": chunks.memory_record(),
        "run": {"dataset": dataset, **(settings or {})},
        # an object-store tier: where, read which way, and the link as measured
        **({"tier": fmt.describe()} if getattr(fmt, "remote", False) else {}),
        # a format run in an environment of its own (its versions are that environment's)
        **({"environment": fmt.environment} if getattr(fmt, "environment", None) else {}),
    }


def run_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The run's sampling settings as every paired result records them (``run``): one
    run's results must all say the same (:func:`storebench.results.check_one_run`)."""
    sampling = config.get("sampling") or {}
    return {
        "repeats": config.get("repeats"),
        "sampling": {
            key: sampling.get(key) for key in ("max_pairs", "precision", "time_cap_s", "max_steal")
        },
        "seed": config.get("seed"),
        "rounds": config.get("rounds") or {},
    }
