"""Your own images: an image folder (and CIFAR-10 resized) becomes the dataset every job
reads; bad images are refused with one line naming the file, leaving nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from storebench import chunks, dataset, datasetfile, imagefolder
from storebench.errors import StorebenchError

from conftest import ROOT, make_folder, marked, training_set_of


def _expected(folder: Path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    _, files = imagefolder.scan(folder)
    images = np.stack([imagefolder.load(path, size) for path, _ in files])
    return images, np.array([label for _, label in files], np.uint8)


@pytest.mark.parametrize("chunk", [None, 5], ids=["one-chunk", "chunks-of-5"])
def test_an_image_folder_becomes_the_dataset(
    chunk: int | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if chunk:
        monkeypatch.setattr(chunks, "CHUNK_BYTES", chunk * 24 * 32 * 3)
    folder = make_folder(tmp_path / "images")
    out = tmp_path / "dataset"
    out.mkdir()
    identity = dataset.build(
        "imagefolder", folder, 30, out / "images.npy", out / "labels.npy", size=(24, 32)
    )
    images, labels = np.load(out / "images.npy"), np.load(out / "labels.npy")
    expected, expected_labels = _expected(folder, (24, 32))
    assert len(expected) == 13 and images.shape == (30, 24, 32, 3)
    np.testing.assert_array_equal(images[:13], expected)
    np.testing.assert_array_equal(images[13:26], marked(expected, 1))  # repeated, marked
    np.testing.assert_array_equal(labels[:13], expected_labels)
    assert list(np.unique(labels)) == [0, 1, 2]
    assert labels[0] == 0 and labels[-1] == expected_labels[30 - 27]
    assert json.loads((out / "dataset.json").read_text()) == identity
    assert identity["shape"] == [24, 32, 3] and identity["classes"] == 3
    assert identity["source_images"] == 13 and identity["n_images"] == 30
    assert sorted(p.name for p in out.iterdir()) == [
        "dataset.json",
        "images.npy",
        "labels.npy",
        "shapes.npy",  # empty: every image has the shape dataset.json records
    ]


def test_conversions_are_the_documented_ones(tmp_path: Path) -> None:
    grey = np.arange(20 * 20, dtype=np.uint8).reshape(20, 20)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    deep = (np.arange(20 * 20, dtype=np.uint16) * 100).reshape(20, 20)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    np.testing.assert_array_equal(
        imagefolder.load(tmp_path / "grey.png", None), np.dstack([grey] * 3)
    )
    np.testing.assert_array_equal(
        imagefolder.load(tmp_path / "deep.png", None), np.dstack([(deep >> 8).astype(np.uint8)] * 3)
    )
    assert (imagefolder.load(tmp_path / "alpha.png", None) == [200, 0, 0]).all()  # alpha dropped


def test_native_sizes_one_size_or_each_its_own(tmp_path: Path) -> None:
    """Native size: one array when every image has one size; add one of another size and
    the dataset keeps each image at its own size (ragged, see test_ragged.py)."""
    from storebench.ragged import Ragged

    folder = tmp_path / "same"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        for k in range(3):
            Image.new("RGB", (40, 30), (k, 2, 3)).save(folder / name / f"{k}.png")
    out = tmp_path / "out"
    out.mkdir()
    identity = dataset.build("imagefolder", folder, 6, out / "i.npy", out / "l.npy")
    assert identity["shape"] == [30, 40, 3] and np.load(out / "i.npy").shape == (6, 30, 40, 3)
    Image.new("RGB", (41, 30), (9, 9, 9)).save(folder / "b" / "odd.png")
    identity = dataset.build("imagefolder", folder, 7, out / "i.npy", out / "l.npy")
    images, _ = datasetfile.load_first(out / "i.npy", out / "l.npy", 7)
    assert identity["shape"] is None and isinstance(images, Ragged)
    assert [tuple(s) for s in images.shapes] == [(30, 40, 3)] * 6 + [(30, 41, 3)]
    assert (images[6] == 9).all()  # b/odd.png sorts after b/0.png .. b/2.png


def _break(folder: Path, case: str) -> str:
    """Spoil an image folder in one way; the message expected."""
    cat = folder / "cat"
    if case == "truncated":
        data = (cat / "0.png").read_bytes()
        (cat / "0.png").write_bytes(data[: len(data) // 2])
        return r"cat/0\.png: not a readable JPEG, PNG or WebP image"
    if case == "text_named_jpg":
        (cat / "zz.jpg").write_text("not an image")
        return r"cat/zz\.jpg: not a readable JPEG, PNG or WebP image"
    if case == "gif_named_png":
        Image.new("RGB", (8, 8)).save(cat / "zz.png", format="GIF")
        return r"cat/zz\.png: not a readable JPEG, PNG or WebP image"
    if case == "non_image":
        (cat / "notes.txt").write_text("hello")
        return r"cat/notes\.txt: not an image file"
    if case == "empty_class":
        (folder / "fox").mkdir()
        return r"fox: the class folder holds no images"
    if case == "link_out":
        outside = folder.parent / "secret.png"
        Image.new("RGB", (8, 8)).save(outside)
        (cat / "link.png").symlink_to(outside)
        return r"cat/link\.png: a symbolic link out of the image folder"
    if case == "link_loop":
        (cat / "loop.png").symlink_to(cat / "loop.png")
        return r"cat/loop\.png: a symbolic link that loops or leads nowhere"
    if case == "named_pipe":
        os.mkfifo(cat / "pipe.png")  # reading it would wait for a writer forever
        return r"cat/pipe\.png: not a regular file"
    if case == "name_not_utf8":
        Image.new("RGB", (8, 8)).save(os.fsdecode(bytes(cat) + b"/\xff.png"), format="PNG")
        return r"cat/\\xff\.png: a name that is not valid UTF-8"
    if case == "class_links_class":
        (folder / "kitten").symlink_to(cat, target_is_directory=True)
        return r"kitten: a class folder that links to .*cat, inside the image folder"
    if case == "no_classes":
        for child in folder.iterdir():
            if not child.name.startswith("."):
                child.rename(folder.parent / f"moved-{child.name}")
        return "no class subfolders"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "truncated",
        "text_named_jpg",
        "gif_named_png",
        "non_image",
        "empty_class",
        "link_out",
        "no_classes",
        "link_loop",
        "named_pipe",
        "name_not_utf8",
        "class_links_class",
    ],
)
def test_bad_image_folders_are_refused_in_one_line(case: str, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images")
    expected = _break(folder, case)
    out = tmp_path / "dataset"
    out.mkdir()
    with pytest.raises(StorebenchError, match=expected) as error:
        dataset.build("imagefolder", folder, 20, out / "images.npy", out / "labels.npy", (16, 16))
    assert "\n" not in str(error.value)
    assert list(out.iterdir()) == []  # nothing half built, no staging file


def test_cifar_resized_is_the_bicubic_resize_of_the_training_set(
    sample: Path, sample_md5: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storebench import cifar

    monkeypatch.setattr(chunks, "CHUNK_BYTES", 700 * 48 * 40 * 3)  # chunks end mid-batch
    extracted = cifar.extract(sample, tmp_path / "x", sample_md5)
    out = tmp_path / "dataset"
    out.mkdir()
    identity = dataset.build(
        "cifar10", extracted, 5100, out / "images.npy", out / "labels.npy", size=(48, 40)
    )
    images = np.load(out / "images.npy", mmap_mode="r")
    originals, labels = training_set_of(sample)
    assert images.shape == (5100, 48, 40, 3) and identity["shape"] == [48, 40, 3]
    for k in (0, 699, 700, len(originals) - 1):
        resized = Image.fromarray(originals[k]).resize((40, 48), Image.Resampling.BICUBIC)
        np.testing.assert_array_equal(images[k], np.asarray(resized))
    np.testing.assert_array_equal(images[len(originals) :][:1], marked(images[:1], 1))
    np.testing.assert_array_equal(np.load(out / "labels.npy")[: len(labels)], labels)
    assert sorted(p.name for p in out.iterdir()) == [
        "dataset.json",
        "images.npy",
        "labels.npy",
        "shapes.npy",  # empty: every image has the shape dataset.json records
    ]


# --- the workflow on your own images ------------------------------------------------


def _folder_config(work: Path, folder: Path, size: list[int] | None, n_images: int) -> Path:
    from conftest import write_config

    formats = yaml.safe_load((ROOT / "config.yaml").read_text())["formats"]
    return write_config(
        work,
        dataset={"kind": "imagefolder", "path": str(folder), "size": size},
        formats={name: formats[name] for name in ("raw", "png", "lmdb_raw", "hdf5_gzip")},
        n_images=n_images,
        cutoffs=[10, 100],
        repeats=2,
        filesystem_probe={"slow_factor": 3, "max_wait_s": 0},
        latency_samples=20,
        parallel={"cutoffs": [], "workers": [1], "caches": ["warm"]},
        dataloader={"cutoffs": [], "batch_size": 8, "num_workers": [0]},
    )


@pytest.mark.slow
def test_the_workflow_runs_on_an_image_folder_resized(tmp_path: Path) -> None:
    """A few hundred images of mixed sizes and kinds, resized to 24x32: every store holds
    the folder's images, every table and figure is drawn."""
    from conftest import snakemake

    folder = make_folder(tmp_path / "images", per_class=70)  # 211 files
    work = tmp_path / "run"
    work.mkdir()
    config = _folder_config(work, folder, [24, 32], 300)
    snakemake(work, "--cores", "2", "--configfile", str(config))
    results = work / "results"
    meta = json.loads((results / "dataset/dataset.json").read_text())
    assert meta["kind"] == "imagefolder" and meta["shape"] == [24, 32, 3]
    assert meta["source_images"] == 211 and meta["classes"] == 3
    expected, expected_labels = _expected(folder, (24, 32))
    images = np.load(results / "dataset/images.npy")
    np.testing.assert_array_equal(images[:211], expected)
    np.testing.assert_array_equal(images[211:300], marked(expected[:89], 1))
    labels = np.load(results / "dataset/labels.npy")
    np.testing.assert_array_equal(labels[:211], expected_labels)
    png = Image.open(results / "stores/png/100/42.png")
    np.testing.assert_array_equal(np.asarray(png), expected[42])
    reads = {
        (r["format"], r["n"], r["cache"], r["order"]) for r in _csv(results / "tables/read.csv")
    }
    assert len(reads) == 4 * 2 * 2 * 2
    usage = _csv(results / "tables/usage.csv")
    assert {int(r["image_bytes"]) for r in usage} == {24 * 32 * 3}
    for name in ("read_time_log", "disk_bytes_per_image", "latency"):
        assert (results / f"figures/{name}.png").stat().st_size > 10_000


@pytest.mark.slow
def test_the_workflow_keeps_native_sizes_and_refuses_array_formats_once_they_differ(
    tmp_path: Path,
) -> None:
    from conftest import snakemake

    folder = tmp_path / "same"
    rng = np.random.default_rng(8)
    for c in range(2):
        (folder / f"c{c}").mkdir(parents=True)
        for k in range(30):
            pixels = rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"c{c}" / f"{k}.png")
    work = tmp_path / "run"
    work.mkdir()
    config = _folder_config(work, folder, None, 100)
    snakemake(work, "results/tables/read.csv", "--cores", "2", "--configfile", str(config))
    images = np.load(work / "results/dataset/images.npy")
    assert images.shape == (100, 20, 28, 3)
    np.testing.assert_array_equal(images[:60], _expected(folder, None)[0])
    assert len(_csv(work / "results/tables/read.csv")) == 4 * 2 * 2 * 2

    # One image of another size: the images now differ, and hdf5_gzip stores one size.
    Image.new("RGB", (30, 20)).save(folder / "c1" / "wide.png")
    built = (work / "results/dataset/images.npy").stat().st_mtime_ns
    failed = snakemake(work, "--cores", "2", "--configfile", str(config), check=False)
    assert failed.returncode != 0
    assert "formats hdf5_gzip store images of one size" in failed.stdout + failed.stderr
    assert (work / "results/dataset/images.npy").stat().st_mtime_ns == built  # nothing ran


def _csv(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_an_image_of_more_pixels_than_storebench_decodes_is_refused_from_its_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small file can decode to gigabytes: the header's size is checked first."""
    folder = make_folder(tmp_path / "images")
    monkeypatch.setattr(imagefolder, "MAX_PIXELS", 100)  # the folder's images are larger
    out = tmp_path / "dataset"
    out.mkdir()
    with pytest.raises(
        StorebenchError, match=r"\d+ x \d+ pixels, more than storebench decodes \(100\)"
    ):
        dataset.build("imagefolder", folder, 20, out / "images.npy", out / "labels.npy", None)
    assert list(out.iterdir()) == []


@pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None,
    reason="as root every folder is readable, and setpriv (to drop root) is missing",
)
def test_an_unreadable_folder_inside_a_class_is_refused_not_skipped() -> None:
    """os.walk skips a folder it cannot list, so every number would come from a subset
    of the images without a word; the scan refuses it. Run as an unprivileged user
    (root reads every folder)."""
    base = Path(tempfile.mkdtemp(prefix="storebench-unreadable-", dir="/tmp"))
    try:
        base.chmod(0o755)
        folder = make_folder(base / "images")
        hidden = folder / "cat" / "more"
        hidden.mkdir()
        Image.new("RGB", (40, 30)).save(hidden / "x.png")
        for path in [base, *base.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        hidden.chmod(0o000)
        script = (
            "import sys\n"
            "from storebench import imagefolder\n"
            "from storebench.errors import StorebenchError\n"
            "try:\n"
            f"    imagefolder.scan({str(folder)!r})\n"
            "except StorebenchError as error:\n"
            "    print(error); sys.exit(1)\n"
        )
        command = [sys.executable, "-c", script]
        if os.geteuid() == 0:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
        proc = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert proc.stdout.startswith(f"{hidden}: cannot be read"), proc.stdout
    finally:
        if base.exists():
            hidden.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_a_payload_that_cannot_encode_the_images_is_refused_before_any_job() -> None:
    """WebP encodes at most 16,383 px a side, JPEG 65,500: a folder of wider images
    with such a payload would kill the store job after the dataset was built."""
    from storebench import payload
    from storebench.formats import make_format

    formats = {
        "raw": make_format("raw", {"kind": "npy"}),
        "lmdb_webp": make_format("lmdb_webp", {"kind": "lmdb", "value": "raw", "payload": "webp"}),
        "wds_jpeg": make_format("wds_jpeg", {"kind": "webdataset", "payload": "jpeg"}),
    }
    payload.check_sides(formats, (16_383, 300, 3))  # at the limit: fine
    with pytest.raises(StorebenchError, match=r"formats\.lmdb_webp: payload webp encodes at"):
        payload.check_sides(formats, (200, 16_384, 3))
    del formats["lmdb_webp"]
    payload.check_sides(formats, (200, 16_384, 3))
    with pytest.raises(StorebenchError, match=r"formats\.wds_jpeg: payload jpeg"):
        payload.check_sides(formats, (65_501, 10, 3))
