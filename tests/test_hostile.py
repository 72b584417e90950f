"""Hostile input through the path a user takes: ``snakemake`` on a config. One case per
family of faults (a batch that is not CIFAR's, an archive that is not a tar, a download
that goes wrong, a config value that passes the schema's types but not its sense, a
result file that is not what its path says, a second run in the same folder). Each
ends with one line naming the problem and the fix, no traceback, and nothing built
that a rerun would trust. (Unit tests of every case are beside the code's other tests:
test_data.py, test_config.py, test_results.py, test_formats.py, test_measure.py.)"""

from __future__ import annotations

import io
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from storebench import plan
from storebench.download import md5sum

from conftest import ROOT, make_archive, official_pickle, serve, snakemake, write_config

DATASET_TARGET = "results/dataset/dataset.json"


def _config(work: Path, cifar10: dict, **changes: object) -> Path:
    """Two formats at 20 images, no parallel or DataLoader runs: small and quick."""
    formats = yaml.safe_load((ROOT / "config.yaml").read_text())["formats"]
    settings = {
        "cifar10": cifar10,
        "formats": {name: formats[name] for name in ("raw", "png")},
        "n_images": 20,
        "cutoffs": [20],
        "repeats": 2,
        "filesystem_probe": {"slow_factor": 3, "max_wait_s": 0},
        "latency_samples": 10,
        "parallel": {"cutoffs": [], "workers": [1], "caches": ["warm"]},
        "dataloader": {"cutoffs": [], "batch_size": 16, "num_workers": [0]},
        **changes,
    }
    return write_config(work, **settings)


def _local(archive: Path) -> dict:
    return {
        "url": "https://example.invalid/cifar-10-python.tar.gz",
        "md5": md5sum(archive),
        "archive": str(archive),
    }


def _refused(proc, *needles: str) -> str:
    """The run failed with exactly one storebench error line holding ``needles``."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    text = proc.stdout + proc.stderr
    # A job's error, or one raised before any job runs (a config value, the run lock).
    lines = [line for line in text.splitlines() if line.startswith("storebench: error:")]
    assert len(lines) >= 1, text
    assert len(set(lines)) == 1, lines  # one message (Snakemake may echo the log once more)
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in text, text
    return lines[0]


def _files(folder: Path) -> list[str]:
    """Every file under ``folder`` but logs, benchmarks and Snakemake's own bookkeeping."""
    if not folder.exists():
        return []
    skip = {"logs", "benchmarks", ".snakemake", plan.LOCK}
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and not skip & set(p.relative_to(folder).parts)
    )


class _Alloc:
    """A pickled 'array' made by numpy's own _reconstruct with a shape and no data: it
    passes the allow-list of the official batches' globals."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def __reduce__(self) -> tuple[object, tuple]:
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (np.ndarray, self.shape, b"B"))


def _tar_of(text: bytes) -> bytes:
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("notes.txt")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    return buffer.getvalue()


# family 1 and 2: archives whose md5 the config matches, so only their contents can tell
ARCHIVES = {
    "batch-from-nothing": (
        lambda path: make_archive(
            path,
            replace={
                "data_batch_1": official_pickle({b"data": _Alloc((10_000, 3072)), b"labels": [0]})
            },
        ),
        ("data_batch_1", "made from nothing"),
    ),
    "batch-of-huge-shape": (
        lambda path: make_archive(
            path,
            replace={
                "data_batch_3": official_pickle({b"data": _Alloc((10**9, 3072)), b"labels": [0]})
            },
        ),
        ("data_batch_3",),
    ),
    "html-page": (
        lambda path: path.write_bytes(b"<!DOCTYPE html><html><body>Moved</body></html>"),
        ("not a readable tar archive",),
    ),
    "empty-file": (lambda path: path.write_bytes(b""), ("not a readable tar archive",)),
    "tar-without-cifar": (
        lambda path: path.write_bytes(_tar_of(b"hello")),
        ("cifar-10-batches-py",),
    ),
}


@pytest.mark.parametrize("case", ARCHIVES)
def test_a_hostile_archive_is_refused_by_the_workflow(case: str, tmp_path: Path) -> None:
    build, needles = ARCHIVES[case]
    archive = tmp_path / "given" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    build(archive)
    work = tmp_path / "run"
    work.mkdir()
    config = _config(work, _local(archive))
    proc = snakemake(work, DATASET_TARGET, "--cores", "1", "--configfile", str(config), check=False)
    _refused(proc, *needles)
    left = _files(work / "results")
    if case.startswith("batch"):
        # The archive is a sound tar: its extraction stands, the dataset job failed and
        # left nothing; a rerun fails the same way.
        assert left and all(p.startswith("data/extracted/") for p in left)
        again = snakemake(
            work, DATASET_TARGET, "--cores", "1", "--configfile", str(config), check=False
        )
        _refused(again, *needles)
    else:
        assert left == []  # nothing extracted, no dataset


# family 3: the download
def test_a_download_the_server_refuses_is_named_and_leaves_nothing(tmp_path: Path) -> None:
    with serve(b"") as server:
        server.busy_first = [404] * 3
        config = _config(tmp_path, {"url": server.url, "md5": "0" * 32, "archive": None})
        proc = snakemake(
            tmp_path, DATASET_TARGET, "--cores", "1", "--configfile", str(config), check=False
        )
    _refused(proc, server.url, "404", "cifar10.archive")
    assert server.ranges == [None]  # asked once: a 404 is not retried
    assert _files(tmp_path / "results") == []  # no archive, no partial file


def test_a_busy_server_then_a_gzip_encoded_answer_gives_the_archive(
    tmp_path: Path, sample: Path, sample_md5: str
) -> None:
    """An honest server that is busy at first (503) and labels the archive with
    ``Content-Encoding: gzip``: retried, stored as sent, the md5 matches, the dataset is
    built."""
    with serve(sample.read_bytes()) as server:
        server.busy_first = [503]
        server.headers = {"Content-Encoding": "gzip", "Content-Type": "application/x-gzip"}
        config = _config(tmp_path, {"url": server.url, "md5": sample_md5, "archive": None})
        snakemake(tmp_path, DATASET_TARGET, "--cores", "1", "--configfile", str(config))
    assert md5sum(tmp_path / "results/data/cifar-10-python.tar.gz") == sample_md5
    meta = json.loads((tmp_path / DATASET_TARGET).read_text())
    assert meta["n_images"] == 20


# family 4: config values that pass a loose schema but would break jobs
CONFIGS = {
    "float-for-integer": ({"n_images": 100.0}, "n_images"),
    "boolean-for-integer": ({"repeats": True}, "repeats"),
    "infinite-wait": (
        {"filesystem_probe": {"slow_factor": 3, "max_wait_s": math.inf}},
        "max_wait_s",
    ),
    "nan-threshold": ({"noise_threshold": math.nan}, "noise_threshold"),
    "md5-with-newline": (
        {"cifar10": {"url": "https://example.invalid/x.tar.gz", "md5": "0" * 32 + "\n"}},
        "md5",
    ),
    "huge-repeats": ({"repeats": 10**6}, "repeats"),
    # names the outputs would misread (round three, family 4): a number, a markup link
    "format-name-a-number": ({"formats": {"1e3": {"kind": "npy"}}}, "'1e3'"),
    "format-name-a-link": ({"formats": {"raw_": {"kind": "npy"}}}, "'raw_'"),
    # memory no option bounds (family 3): a unit a format holds whole, in bytes
    "hdf5-chunk-of-768-mib": (
        {
            "dataset": {"kind": "cifar10", "path": None, "size": [2048, 2048]},
            "formats": {
                "raw": {"kind": "npy"},
                "hdf5_gzip": {"kind": "hdf5", "chunk": 64, "compression": "gzip"},
            },
            "n_images": 100,
            "cutoffs": [10, 100],
        },
        "formats.hdf5_gzip: chunk = 64 images of 2048 x 2048 px is 768 MiB",
    ),
    "zarr-shard-of-1.5-gib-in-the-sweep": (
        {
            "formats": {
                "raw": {"kind": "npy"},
                "zarr_blosc": {"kind": "zarr", "chunk": 64, "shard": 8192},
            },
            "size_sweep": {"sizes": [32, 256], "megabytes": 2000, "formats": None},
        },
        "formats.zarr_blosc: shard = 8,192 images of 256 x 256 px",
    ),
}


@pytest.mark.parametrize("case", CONFIGS)
def test_a_bad_config_value_stops_the_workflow_before_any_job(case: str, tmp_path: Path) -> None:
    changes, key = CONFIGS[case]
    cifar10 = changes.pop("cifar10", {"url": "https://example.invalid/x.tar.gz", "md5": "0" * 32})
    config = _config(tmp_path, cifar10, **changes)
    proc = snakemake(tmp_path, "--cores", "1", "--configfile", str(config), check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    lines = [
        line for line in text.splitlines() if line.startswith("storebench: error: config.yaml:")
    ]
    assert len(lines) == 1 and key in lines[0], text
    assert "Traceback" not in text
    assert not (tmp_path / "results").exists()


def test_a_config_file_with_a_key_twice_stops_the_workflow_before_any_job(
    tmp_path: Path,
) -> None:
    """YAML keeps the last of two equal keys silently; the workflow refuses the file."""
    config = _config(tmp_path, {"url": "https://example.invalid/x.tar.gz", "md5": "0" * 32})
    text = config.read_text()
    config.write_text(text + "repeats: 5\n")  # a second top-level repeats
    proc = snakemake(tmp_path, "--cores", "1", "--configfile", str(config), check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    lines = [line for line in text.splitlines() if line.startswith("storebench: error:")]
    assert len(lines) == 1 and "the key 'repeats' is given twice" in lines[0], text
    assert "Traceback" not in text and not (tmp_path / "results").exists()


# family 5: results and runs, on one small run in a folder whose path has spaces
@pytest.fixture(scope="module")
def spaced_run(tmp_path_factory: pytest.TempPathFactory, sample: Path) -> Path:
    """A run of two formats at 20 images up to the read table, in a folder (and
    from an archive) whose paths hold spaces: every rule quotes them."""
    base = tmp_path_factory.mktemp("hostile")
    archive = base / "my data" / "cifar 10.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(sample.read_bytes())
    work = base / "a run with spaces"
    work.mkdir()
    config = _config(work, _local(archive))
    snakemake(
        work,
        "results/tables/read.csv",
        "results/tables/store.csv",
        "--cores",
        "2",
        "--configfile",
        str(config),
    )
    return work


def test_paths_with_spaces_run_end_to_end(spaced_run: Path) -> None:
    rows = (spaced_run / "results/tables/read.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 * 2  # two formats, warm/cold x sequential/random
    assert len(list((spaced_run / "results/stores/png/20").glob("*.png"))) == 20


def test_a_result_that_is_not_what_its_path_says_is_refused_by_the_table(
    spaced_run: Path,
) -> None:
    result = spaced_run / "results/measurements/read/png/20/warm-sequential.json"
    saved = result.read_bytes()
    table = spaced_run / "results/tables/read.csv"
    try:
        data = json.loads(saved)
        data["n"] = 10  # a result of n=10 put where n=20 belongs
        result.write_text(json.dumps(data))
        config = str(spaced_run / "config.yaml")
        proc = snakemake(
            spaced_run,
            "results/tables/read.csv",
            "--cores",
            "1",
            "--configfile",
            config,
            check=False,
        )
        _refused(proc, "warm-sequential.json", "not n=20", "delete the file and rerun its job")
        assert not table.exists()  # Snakemake removes a failed job's output
        assert not [p.name for p in table.parent.iterdir() if p.name.startswith(".")]
    finally:
        result.write_bytes(saved)
        snakemake(
            spaced_run,
            "results/tables/read.csv",
            "--cores",
            "1",
            "--configfile",
            str(spaced_run / "config.yaml"),
        )


def test_a_second_run_in_the_same_folder_is_refused_before_any_job(spaced_run: Path) -> None:
    table = spaced_run / "results/tables/store.csv"
    before = table.stat().st_mtime_ns
    logs = set((spaced_run / "results/logs").rglob("*"))
    held = plan.lock_run(spaced_run / "results")  # a run in progress
    try:
        time.sleep(0.05)
        proc = snakemake(
            spaced_run,
            "results/tables/store.csv",
            "--forcerun",
            "table",
            "--cores",
            "1",
            "--configfile",
            str(spaced_run / "config.yaml"),
            check=False,
        )
    finally:
        held.close()
    _refused(proc, f"pid {os.getpid()}", "another storebench run", "--directory")
    assert table.stat().st_mtime_ns == before  # the job did not run
    assert set((spaced_run / "results/logs").rglob("*")) == logs
