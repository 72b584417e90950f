"""Result files (JSON) written by the measuring jobs and read by the tables."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import storebench

PACKAGES = ("numpy", "pillow", "lmdb", "h5py")


def versions() -> dict[str, str]:
    """Versions of Python, storebench and the storage libraries."""
    found = {"python": platform.python_version(), "storebench": storebench.__version__}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def write_json(data: dict[str, Any], path: Path) -> None:
    """Write ``data`` as JSON atomically (a killed job leaves no half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
