"""The free-space estimate made before a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from storebench import diskspace
from storebench.errors import StorebenchError
from storebench.formats import make_format

PNG = make_format("png", {"kind": "png"})
HDF5 = make_format("hdf5", {"kind": "hdf5"})


def test_plan_counts_every_copy_until_the_trash_is_emptied() -> None:
    one_png, one_hdf5 = diskspace.store_bytes(PNG, 1000), diskspace.store_bytes(HDF5, 1000)
    assert one_hdf5 < one_png  # per-kind estimates: a page or block per image vs packed rows
    need, count = diskspace.plan_bytes([(PNG, 1000, False), (HDF5, 1000, True)], 3, None)
    assert count == 2
    assert need == 3 * one_png + 4 * one_hdf5  # 3 repeats; an existing store is replaced too
    with_dataset, _ = diskspace.plan_bytes([], 3, 100_000)
    assert with_dataset == 100_000 * 3073 + 2 * diskspace.ARCHIVE_BYTES


def test_check_refuses_naming_need_and_free(tmp_path: Path) -> None:
    free = diskspace.free_bytes(tmp_path / "not" / "yet")  # the nearest existing folder counts
    diskspace.check(free // 2, 1, 3, tmp_path / "results")
    with pytest.raises(StorebenchError) as info:
        diskspace.check(2 * free, 40, 3, tmp_path / "results")
    message = str(info.value)
    assert "40 store jobs (3 copies each" in message
    assert f"need about {2 * free / diskspace.GiB:.1f} GiB" in message
    assert f"has {free / diskspace.GiB:.1f} GiB free" in message
    assert not (tmp_path / "results").exists()
