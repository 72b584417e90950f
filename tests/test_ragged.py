"""Images of their own sizes (a folder kept at native sizes that differ): the ragged
dataset, every format that stores one record per image, the floor's reads, the
measuring protocol, and the workflow end to end on a mixed folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from storebench import dataset, datasetfile, imagefolder, measure, validation
from storebench.chunks import read_spans
from storebench.errors import StorebenchError
from storebench.formats import available_kinds, make_format
from storebench.ragged import Ragged

from conftest import ROOT, make_folder, snakemake, write_config

VARIABLE = sorted(k for k, cls in available_kinds().items() if cls.variable_size)
FIXED = sorted(k for k, cls in available_kinds().items() if not cls.variable_size)


def _ragged(n: int, seed: int = 4) -> tuple[Ragged, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = [
        rng.integers(0, 256, (int(rng.integers(3, 19)), int(rng.integers(3, 19)), 3), np.uint8)
        for _ in range(n)
    ]
    return Ragged.of(images), rng.integers(0, 10, n, dtype=np.uint8)


def test_ragged_images_slice_take_and_compare() -> None:
    images, _ = _ragged(9)
    assert len(images) == 9 and images.nbytes == int(np.prod(images.shapes, axis=1).sum())
    part = images[2:5]
    assert len(part) == 3 and np.array_equal(part[0], images[2])
    taken = images.take(np.array([4, 0, 4]))
    assert np.array_equal(taken[0], images[4]) and np.array_equal(taken[2], images[4])
    assert taken.same_as(images.take(np.array([4, 0, 4])))
    other = images.take(np.arange(9))
    other[3] = 255 - other[3]
    assert other.differing(images).tolist() == [3]
    with pytest.raises(StorebenchError, match="another dataset"):
        other[1] = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(IndexError):
        images.take(np.array([9]))


def test_read_spans_puts_every_span_in_its_place(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, 5000, dtype=np.uint8)
    (tmp_path / "f").write_bytes(b"HEAD" + data.tobytes())
    starts = np.array([0, 10, 37, 37, 4000, 11, 4990], np.int64)
    sizes = np.array([10, 27, 3, 3, 990, 5, 10], np.int64)  # some follow each other
    at = np.r_[0, np.cumsum(sizes)[:-1]]
    out = np.zeros(int(sizes.sum()), np.uint8)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        read_spans(fd, 4, starts, sizes, out, at)
    finally:
        os.close(fd)
    expected = np.concatenate([data[s : s + z] for s, z in zip(starts, sizes, strict=True)])
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("kind", VARIABLE)
def test_every_record_format_stores_images_of_their_own_sizes(kind: str, tmp_path: Path) -> None:
    images, labels = _ragged(23)
    fmt = make_format(kind, {"kind": kind})
    fmt.write(tmp_path, images, labels)
    for indices in (np.arange(23), np.array([22, 0, 5, 5, 13]), np.array([], np.int64)):
        out = Ragged.empty(images.shapes[indices])
        out_labels = np.full(len(indices), 255, np.uint8)
        with fmt.open(tmp_path) as reader:
            reader.read_into(indices, out, out_labels)
        assert out.same_as(images.take(indices)), kind
        np.testing.assert_array_equal(out_labels, labels[indices])


@pytest.mark.parametrize("kind", FIXED)
def test_array_formats_refuse_images_of_different_sizes_in_one_line(
    kind: str, tmp_path: Path
) -> None:
    images, labels = _ragged(5)
    with pytest.raises(StorebenchError, match=f"kind '{kind}' stores images of one size") as info:
        make_format(kind, {"kind": kind}).write(tmp_path, images, labels)
    assert "\n" not in str(info.value)


def test_reads_of_a_ragged_dataset_are_paired_and_validated(tmp_path: Path) -> None:
    images, labels = _ragged(40)
    floor = make_format("raw", {"kind": "npy"})
    fmt = make_format("lmdb_raw", {"kind": "lmdb", "value": "raw"})
    for name, f in (("floor", floor), ("lmdb", fmt)):
        (tmp_path / name).mkdir()
        f.write(tmp_path / name, images, labels)
    indices = measure.read_indices(40, "random", 2)
    for cache in ("warm", "cold"):
        result = measure.measure_read(
            fmt,
            tmp_path / "lmdb",
            images,
            labels,
            indices,
            cache,
            2,
            reference=(floor, tmp_path / "floor"),
        )
        assert result["checksum"] == validation.checksum(images.take(indices), labels[indices])
    tampered = images.take(np.arange(40))
    tampered[7] = 255 - tampered[7]
    (tmp_path / "bad").mkdir()
    fmt.write(tmp_path / "bad", tampered, labels)
    with pytest.raises(StorebenchError, match="1 of 40 images differ"):
        measure.measure_read(
            fmt,
            tmp_path / "bad",
            images,
            labels,
            indices,
            "warm",
            1,
            reference=(floor, tmp_path / "floor"),
        )


def test_a_folder_of_mixed_sizes_kept_native_becomes_a_ragged_dataset(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images")  # 13 files of mixed sizes and modes
    out = tmp_path / "dataset"
    out.mkdir()
    identity = dataset.build("imagefolder", folder, 30, out / "images.npy", out / "labels.npy")
    images, _ = datasetfile.load_first(out / "images.npy", out / "labels.npy", 30)
    assert isinstance(images, Ragged) and len(images) == 30
    _, files = imagefolder.scan(folder)
    originals = [imagefolder.load(path, None) for path, _ in files]
    for k, original in enumerate(originals):
        np.testing.assert_array_equal(images[k], original)
        repeat = images[k + 13].copy()  # the second repeat: marked in its first byte
        repeat[0, 0, 0] ^= 1
        np.testing.assert_array_equal(repeat, original)
    assert identity["shape"] is None and identity["n_images"] == 30
    assert identity["image_bytes_mean"] == pytest.approx(np.mean([o.nbytes for o in originals]))
    assert sorted(p.name for p in out.iterdir()) == [
        "dataset.json",
        "images.npy",
        "labels.npy",
        "shapes.npy",
    ]
    assert dataset.planned_variable({"kind": "imagefolder", "path": str(folder), "size": None})


# --- the workflow on a folder of mixed sizes, at native size ---------------------------


def _config(work: Path, folder: Path, formats: list[str]) -> Path:
    shipped = {
        **yaml.safe_load((ROOT / "config.yaml").read_text())["formats"],
        **yaml.safe_load((ROOT / "workflow/configs/modern.yaml").read_text())["formats"],
    }
    return write_config(
        work,
        dataset={"kind": "imagefolder", "path": str(folder), "size": None},
        formats={name: shipped[name] for name in formats},
        n_images=300,
        cutoffs=[10, 300],
        repeats=2,
        filesystem_probe={"slow_factor": 3, "max_wait_s": 0},
        latency_samples=20,
        parallel={"cutoffs": [300], "workers": [2], "caches": ["warm"]},
        dataloader={"cutoffs": [300], "batch_size": 8, "num_workers": [0]},
    )


@pytest.mark.slow
def test_the_workflow_runs_on_a_folder_of_mixed_sizes_at_native_size(tmp_path: Path) -> None:
    """A few hundred JPEG/PNG/WebP files of mixed sizes and modes, kept at their own
    sizes: every store holds them exactly, reads are validated, every table is made; the
    DataLoader jobs are left out with a notice; array formats are refused in one line."""
    folder = make_folder(tmp_path / "images", per_class=70)  # 211 files
    work = tmp_path / "run"
    work.mkdir()
    refused = snakemake(
        work,
        "--cores",
        "2",
        "--configfile",
        str(_config(work, folder, ["raw", "png", "hdf5", "zarr"])),
        check=False,
    )
    assert refused.returncode != 0 and not (work / "results").exists()
    assert "formats hdf5, zarr store images of one size" in refused.stdout + refused.stderr
    formats = ["raw", "png", "lmdb_raw", "tfrecord", "webdataset"]
    config = _config(work, folder, formats)
    proc = snakemake(work, "--cores", "2", "--configfile", str(config))
    assert "DataLoader jobs are left out" in proc.stdout + proc.stderr
    results = work / "results"
    meta = json.loads((results / "dataset/dataset.json").read_text())
    assert meta["shape"] is None and meta["source_images"] == 211
    images, _ = datasetfile.load_first(
        results / "dataset/images.npy", results / "dataset/labels.npy", 300
    )
    _, files = imagefolder.scan(folder)
    np.testing.assert_array_equal(images[42], imagefolder.load(files[42][0], None))
    np.testing.assert_array_equal(
        np.asarray(Image.open(results / "stores/png/300/42.png")), images[42]
    )
    reads = {
        (r["format"], r["n"], r["cache"], r["order"]) for r in _csv(results / "tables/read.csv")
    }
    assert len(reads) == len(formats) * 2 * 2 * 2
    assert len(_csv(results / "tables/parallel.csv")) == len(formats)
    assert not (results / "tables/dataloader.csv").exists()


def _csv(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_lossy_payload_of_images_of_their_own_sizes(tmp_path: Path) -> None:
    images, labels = _ragged(12)
    fmt = make_format("w", {"kind": "webdataset", "shard": 5, "payload": "jpeg"})
    fmt.write(tmp_path, images, labels)
    indices = np.array([11, 3, 3, 0])
    out = Ragged.empty(images.shapes[indices])
    with fmt.open(tmp_path) as reader:
        reader.read_into(indices, out, np.zeros(4, np.uint8))
    assert out.same_as(fmt.decoded(images).take(indices))
    assert 5 < measure.psnr_of(fmt, images) < 60
