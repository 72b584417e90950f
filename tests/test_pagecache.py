"""Eviction works where it can, and residency is measured, not assumed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from storebench.pagecache import evict, load, residency


def _files(folder: Path, count: int, size: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"f{i}"
        path.write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        paths.append(path)
    return paths


def test_eviction_drops_residency_below_5_percent(tmp_path: Path) -> None:
    files = _files(tmp_path, 20, 1 << 20)
    for path in files:
        path.read_bytes()
    assert residency(files) > 0.95  # just written and read: cached
    evict(files)
    assert residency(files) < 0.05
    for path in files[:10]:  # reading half of it back brings exactly that half in
        path.read_bytes()
    assert 0.45 < residency(files) < 0.55


def test_empty_and_unwritten_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.touch()
    assert residency([empty]) == 0.0
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as handle:
        handle.truncate(1 << 20)
    os.sync()
    evict([sparse])
    assert residency([sparse]) < 0.05


def test_a_file_gone_since_it_was_listed_holds_no_pages(tmp_path: Path) -> None:
    # A server's own files come and go as it works (its metadata database compacts):
    # one listed a moment ago and gone now has nothing to evict, count or load.
    files = _files(tmp_path, 4, 1 << 20)
    gone = tmp_path / "gone.ldb"
    listed = [*files, gone]
    load(listed)
    assert residency(listed) > 0.95
    evict(listed)
    assert residency(listed) < 0.05
    # a path that is not a file (a folder) is still an error, not skipped
    with pytest.raises(IsADirectoryError):
        load([tmp_path])
