"""A disk that fills during a store job (round three, family 1): one line saying the
disk is full and where, exit 1, no death by signal, and nothing staged left on the
full disk. The disk is a small tmpfs, which needs root (CI runs as root)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT

SPECS = {
    **yaml.safe_load((ROOT / "config.yaml").read_text())["formats"],
    **yaml.safe_load((ROOT / "workflow/configs/modern.yaml").read_text())["formats"],
}
N = 2000  # 6 MB of CIFAR-sized images: more than the disk holds


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory: pytest.TempPathFactory):
    """A 3 MiB tmpfs, mounted for this module and unmounted after it."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mountpoint = tmp_path_factory.mktemp("full")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {proc.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("dataset")
    rng = np.random.default_rng(0)
    np.save(folder / "images.npy", rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8))
    np.save(folder / "labels.npy", rng.integers(0, 10, N, dtype=np.uint8))
    return folder / "images.npy", folder / "labels.npy"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SPECS))
def test_a_store_job_on_a_full_disk_says_so_in_one_line_and_leaves_nothing(
    name: str, full_disk: Path, dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    images, labels = dataset
    out = full_disk / "stores" / name / str(N)
    command = [
        sys.executable,
        "-m",
        "storebench",
        "--log",
        str(tmp_path / "job.log"),
        "store",
        "--format",
        name,
        "--spec",
        json.dumps(SPECS[name]),
        "--n",
        str(N),
        "--images",
        str(images),
        "--labels",
        str(labels),
        "--seed",
        "0",
        "--out",
        str(out),
        "--result",
        str(tmp_path / "result.json"),
        "--reference-format",
        "raw",
        "--reference-spec",
        json.dumps({"kind": "npy"}),
        "--repeats",
        "1",
        "--max-pairs",
        "1",
        "--trash",
        str(full_disk / ".trash"),
        "--baseline",
        str(tmp_path / "baseline.json"),
        "--slow-factor",
        "3",
        "--max-wait-s",
        "0",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    log = (tmp_path / "job.log").read_text() if (tmp_path / "job.log").exists() else ""
    assert proc.returncode == 1, (proc.returncode, proc.stderr, log)  # not a signal
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("storebench: error: the disk is full"), (
        proc.stderr,
        log,
    )
    assert str(full_disk) in lines[0] and "Traceback" not in proc.stderr + log
    left = [p for p in full_disk.rglob("*") if p.is_file()]
    assert left == [], left  # no staged store, no copy in the trash
    assert not (tmp_path / "result.json").exists()
