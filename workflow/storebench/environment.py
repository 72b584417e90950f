"""The context of a run: machine, filesystem under results/, OS and library versions."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from storebench.provenance import versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


def filesystem(path: Path) -> dict[str, Any]:
    """Type, device and block size of the filesystem holding ``path``."""
    real = Path(path).resolve()
    best: tuple[str, str, str, str] | None = None
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, fstype, options, *_ = line.split()
            inside = real == Path(mount) or Path(mount) in real.parents
            if inside and (best is None or len(mount) > len(best[1])):
                best = (device, mount, fstype, options)
    except OSError:
        pass
    stat = os.statvfs(real)
    device, mount, fstype, options = best or ("unknown", "unknown", "unknown", "")
    return {
        "path": str(real),
        "type": fstype,
        "device": device,
        "mount_point": mount,
        "mount_options": options,
        "block_size": stat.f_bsize,
        "free_bytes": stat.f_bavail * stat.f_frsize,
    }


def library_details() -> dict[str, str]:
    """The C libraries behind the Python packages (zlib, LMDB, HDF5)."""
    import h5py
    import lmdb
    from PIL import features

    return {
        "pillow_zlib": features.version("zlib") or "unknown",
        "pillow_png_codec": "Pillow's own PNG codec, compressing with zlib",
        "lmdb_c": ".".join(map(str, lmdb.version())),
        "hdf5": h5py.version.hdf5_version,
    }


def describe(results_dir: Path) -> dict[str, Any]:
    """Everything a reader needs to know about where the numbers come from."""
    uname = platform.uname()
    return {
        "machine": {
            "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)),
            "memory_bytes": _memory_bytes(),
            "architecture": uname.machine,
        },
        "os": {"system": uname.system, "release": uname.release, "version": uname.version},
        "filesystem": filesystem(results_dir),
        "python": platform.python_version(),
        "versions": versions(),
        "libraries": library_details(),
    }
