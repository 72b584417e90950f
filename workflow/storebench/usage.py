"""Disk usage of a store: allocated and apparent bytes, and the file count."""

from __future__ import annotations

from pathlib import Path

from storebench.formats import Format


def disk_usage(fmt: Format, store: Path) -> dict[str, int]:
    """Sum ``st_blocks * 512`` (allocated) and ``st_size`` (apparent) over the store's files."""
    allocated = apparent = count = 0
    for path in fmt.files(store):
        stat = path.stat()
        allocated += stat.st_blocks * 512
        apparent += stat.st_size
        count += 1
    return {"files": count, "apparent_bytes": apparent, "allocated_bytes": allocated}
