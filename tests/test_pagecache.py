"""Eviction works where it can, and residency is measured, not assumed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from storebench.pagecache import evict, residency


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
