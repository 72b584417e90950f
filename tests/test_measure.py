"""The measuring jobs: samples kept, last store kept, validation fires."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from storebench import datasetfile, host, measure, single, stats, validation
from storebench.errors import StorebenchError
from storebench.formats import available_kinds, make_format
from storebench.formats.base import Reader
from storebench.formats.hdf5 import Hdf5Format
from storebench.results import read_json

N = 40


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return (
        rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, 10, N, dtype=np.uint8),
    )


def quiet(folder: Path) -> host.QuietFilesystem:
    return host.QuietFilesystem(folder, max_wait_s=0)


def test_store_keeps_every_sample_and_the_last_store(data, tmp_path: Path) -> None:
    images, labels = data
    fmt = make_format("png", {"kind": "png"})
    out, trash = tmp_path / "stores" / "png" / "40", tmp_path / "trash"
    # What a killed job left: a half-written copy; and a complete store from before.
    (out.parent / ".40.store.killed").mkdir(parents=True)
    (out.parent / ".40.store.killed" / "0.png").write_bytes(b"half")
    (out.parent / "4").mkdir()
    make_format("png", {"kind": "png"}).write(out.parent / "4", images[:4], labels[:4])
    out.mkdir()
    result, staged = measure.measure_store(fmt, images, labels, out, trash, 3, quiet(out.parent))
    assert not out.exists()  # the caller renames the kept copy, last
    assert staged.parent == out.parent and staged.name.startswith(".40.store.")
    staged.rename(out)
    assert len(result["samples"]["store_s"]) == 3
    assert all(
        d >= w > 0
        for w, d in zip(
            result["samples"]["store_s"], result["samples"]["store_durable_s"], strict=True
        )
    )
    assert len(result["filesystem_probe"]) == 3
    assert all(p["create_latency_us"] > 0 for p in result["filesystem_probe"])
    # Every pair: the format's store and the reference's, each timed.
    assert len(result["reference_samples"]["store_s"]) == 3
    assert set(result["first"]) <= {"format", "reference"} and len(result["first"]) == 3
    assert len(result["cpu_s"]) == 3 and min(result["cpu_s"]) > 0
    assert result["sampling"]["pairs"] == 3
    # The store holds the images; the other copies (few files each) were deleted now,
    # and nothing of the reference's copies is left beside the store.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{i}.png" for i in range(N)] + ["labels.csv"]
    )
    assert not trash.exists() or not list(trash.iterdir())
    assert sorted(p.name for p in out.parent.iterdir()) == ["4", "40"]  # "4" is not ours


def test_a_store_of_many_files_goes_to_the_trash(data, tmp_path: Path, monkeypatch) -> None:
    images, labels = data
    monkeypatch.setattr(host, "FEW_FILES", 10)  # 40 PNG files are "many" here
    fmt = make_format("png", {"kind": "png"})
    out, trash = tmp_path / "stores" / "png" / "40", tmp_path / "trash"
    reference = make_format("raw", {"kind": "npy"})  # 2 files: deleted at once
    _, staged = measure.measure_store(
        fmt, images, labels, out, trash, 3, quiet(out.parent), reference=reference
    )
    kept = list(trash.iterdir())
    # the format's 2 superseded copies and its untimed warm-up store; the floor's never
    assert len(kept) == 3
    sizes = sorted(len(list((k / "store").iterdir())) for k in kept)
    assert sizes == [min(N, measure.WARM_UP_STORE_IMAGES) + 1, N + 1, N + 1]
    assert sorted(p.name for p in out.parent.iterdir()) == [staged.name]


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs /dev/shm (a tmpfs)")
def test_stores_on_another_file_system_than_the_trash_are_deleted_not_renamed(
    data, tmp_path: Path, monkeypatch
) -> None:
    """results/stores linked to another disk (a cluster's scratch): no rename reaches the
    trash there, so a store of many files is deleted at once instead of failing the job."""
    import tempfile

    images, labels = data
    monkeypatch.setattr(host, "FEW_FILES", 10)  # 40 PNG files are "many" here
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        if Path(other).stat().st_dev == tmp_path.stat().st_dev:
            pytest.skip("/dev/shm is on the same file system as the tests' folder")
        (tmp_path / "stores").symlink_to(other, target_is_directory=True)
        out, trash = tmp_path / "stores" / "png" / "40", tmp_path / "trash"
        fmt = make_format("png", {"kind": "png"})
        _, staged = measure.measure_store(fmt, images, labels, out, trash, 3, quiet(out.parent))
        assert sorted(p.name for p in out.parent.iterdir()) == [staged.name]
        assert len(list(staged.iterdir())) == N + 1  # the kept copy, whole
        assert not trash.exists() or not list(trash.rglob("*.png"))


def test_both_sides_of_a_store_pair_find_the_same_disk(data, tmp_path: Path, monkeypatch) -> None:
    """The floor against itself came out 2-4% slower as the format than as the floor
    while only the format's last copy was kept and the older copies went format first:
    now each side keeps its last copy, and before a pair the older ones go in the order
    the sides will write, so nothing but a side's place in the pair tells them apart."""
    images, labels = data
    raw, floor = make_format("raw", {"kind": "npy"}), make_format("raw", {"kind": "npy"})
    out, trash = tmp_path / "stores" / "raw" / "40", tmp_path / "trash"
    deleted: list[str] = []
    real = measure.discard

    def side(name: str) -> str:
        return "format" if ".store." in name else "reference" if ".reference." in name else name

    def recorded(path: Path, bin_: Path) -> None:
        deleted.append(side(path.name)[:9])
        real(path, bin_)

    monkeypatch.setattr(measure, "discard", recorded)
    before: list[list[str]] = []
    real_wait = host.QuietFilesystem.wait

    def wait(self) -> dict:
        # what each side has on the disk when the pair starts: one copy each, after the
        # first pair
        names = [p.name for p in out.parent.iterdir()]
        before.append(sorted(side(n) for n in names))
        return real_wait(self)

    monkeypatch.setattr(host.QuietFilesystem, "wait", wait)
    result, staged = measure.measure_store(
        raw, images, labels, out, trash, 5, quiet(out.parent), reference=floor, first_side="format"
    )
    assert result["first"] == ["format", "reference"] * 2 + ["format"]
    assert before[0] == [] and all(b == ["format", "reference"] for b in before[1:])
    # the two warm-up stores; then pairs 3, 4 and 5 delete the copies of two pairs
    # before in their own order (format first, floor first, format first); the end
    # deletes the floor's last two and the format's but the last
    pairs = ["format", "reference", "reference", "format", "format", "reference"]
    assert deleted == [".warm-up.", ".warm-up.", *pairs, "reference", "reference", "format"]
    assert sorted(p.name for p in out.parent.iterdir()) == [staged.name]


def test_beside_a_long_store_the_floor_stores_several_times_a_pair(data, tmp_path: Path) -> None:
    # PNG encodes every image; the floor writes one file: tens of times faster. One floor
    # store slowed by the host would set the pair's ratio, so the floor runs several
    # times a pair (as many as fit in a quarter of the format's time, at most 5) and the
    # pair keeps their median; every copy is durable and none is left behind.
    images, labels = np.concatenate([data[0]] * 10), np.concatenate([data[1]] * 10)
    fmt, floor = make_format("png", {"kind": "png"}), make_format("raw", {"kind": "npy"})
    out, trash = tmp_path / "stores" / "png" / "400", tmp_path / "trash"
    result, staged = measure.measure_store(
        fmt, images, labels, out, trash, 3, quiet(out.parent), reference=floor
    )
    runs = result["reference_runs"]
    assert len(runs[0]["store_s"]) == 1 and max(len(block["store_s"]) for block in runs) > 1
    medians = [float(np.median(block["store_s"])) for block in runs]
    assert result["reference_samples"]["store_s"] == medians
    assert len(result["cpu_s"]) == len(runs)  # one CPU probe before each pair
    assert all("source_s" not in block for block in runs)
    assert sorted(p.name for p in out.parent.iterdir()) == [staged.name]


@pytest.mark.parametrize("kind", sorted(available_kinds()))
@pytest.mark.parametrize("cache", ["warm", "cold"])
@pytest.mark.parametrize("order", ["sequential", "random"])
def test_read_is_validated_and_repeated(kind, cache, order, data, tmp_path: Path) -> None:
    images, labels = data
    fmt = make_format(kind, {"kind": kind})
    fmt.write(tmp_path, images, labels)
    indices = measure.read_indices(N, order, seed=5)
    result = measure.measure_read(fmt, tmp_path, images, labels, indices, cache, repeats=4)
    assert len(result["samples"]["read_s"]) == 4
    assert result["checksum"] == validation.checksum(images[indices], labels[indices])
    assert result["cache"] == cache and len(result["residency_before"]) == 4
    if cache == "cold":
        assert result["cache_verified"] and max(result["residency_before"]) < 0.05
    else:
        assert min(result["residency_before"]) > 0.95


def test_read_orders() -> None:
    assert measure.read_indices(5, "sequential", 0).tolist() == [0, 1, 2, 3, 4]
    shuffled = measure.read_indices(1000, "random", 0)
    assert sorted(shuffled.tolist()) == list(range(1000)) and shuffled[:10].tolist() != list(
        range(10)
    )
    np.testing.assert_array_equal(shuffled, measure.read_indices(1000, "random", 0))


def test_cold_read_that_stays_cached_is_labelled_not_verified(
    data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storebench import pagecache, results
    from storebench.present import tables

    images, labels = data
    fmt = make_format("hdf5", {"kind": "hdf5"})
    (tmp_path / "store").mkdir()
    fmt.write(tmp_path / "store", images, labels)
    monkeypatch.setattr(pagecache, "evict", lambda files: None)  # a filesystem that ignores it
    indices = np.arange(N)
    result = measure.measure_read(fmt, tmp_path / "store", images, labels, indices, "cold", 2)
    assert not result["cache_verified"]
    results.write_json({"format": "hdf5", "kind": "hdf5", "n": N, **result}, tmp_path / "r.json")
    (row,) = tables.timing_rows([read_json(tmp_path / "r.json")])
    assert row["cache"] == "cold (not verified)" and row["residency_max"] > 0.95


def test_latency_percentiles(data, tmp_path: Path) -> None:
    from storebench import results
    from storebench.present import tables

    images, labels = data
    fmt = make_format("lmdb", {"kind": "lmdb", "value": "raw"})
    fmt.write(tmp_path, images, labels)
    indices = np.random.default_rng(0).integers(0, N, 200)
    result = single.measure_latency(fmt, tmp_path, images, labels, indices)
    assert {k: len(v) for k, v in result["samples"].items()} == {
        "open_read_close_s": 200,
        "lookup_s": 200,
    }
    results.write_json(
        {"format": "r", "kind": "lmdb", "n": N, "cache": "warm", **result}, tmp_path / "l.json"
    )
    rows = {r["mode"]: r for r in tables.latency_rows([read_json(tmp_path / "l.json")])}
    for row in rows.values():
        assert row["min"] <= row["p50"] <= row["p95"] <= row["p99"] <= row["max"]
    # Opening the store costs more than a lookup in an open one.
    assert rows["open_read_close"]["p50"] > rows["lookup"]["p50"]


def test_latency_validates(data, tmp_path: Path) -> None:
    images, labels = data
    fmt = make_format("hdf5", {"kind": "hdf5"})
    fmt.write(tmp_path, images, labels)
    wrong = images.copy()
    wrong[3] ^= 1
    with pytest.raises(StorebenchError, match="single read"):
        single.measure_latency(fmt, tmp_path, wrong, labels, np.array([1, 3]))


class _NoLabels(Reader):
    """Writes the images but leaves the labels as it found them."""

    def __init__(self, inner: Reader):
        self.inner = inner

    def read_into(self, indices, images, labels):
        kept = labels.copy()
        self.inner.read_into(indices, images, labels)
        labels[:] = kept

    def close(self):
        self.inner.close()


def test_latency_fails_a_reader_that_writes_no_label(
    data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The label buffer is reset before every read, so the previous read's label (here
    the same image's) cannot pass for this one."""
    images, labels = data
    fmt = make_format("hdf5", {"kind": "hdf5"})
    fmt.write(tmp_path, images, labels)
    real_open = type(fmt).open
    monkeypatch.setattr(type(fmt), "open", lambda self, d: _NoLabels(real_open(self, d)))
    with pytest.raises(StorebenchError, match="labels differ"):
        single.measure_latency(fmt, tmp_path, images, labels, np.array([3, 3, 3]))


class _Modulo(Reader):
    """A lazy reader: image i mod 10, which a plainly repeated dataset would not notice."""

    def __init__(self, inner: Reader):
        self.inner = inner

    def read_into(self, indices, images, labels):
        self.inner.read_into(indices % 10, images, labels)

    def close(self):
        self.inner.close()


def test_a_reader_that_serves_the_first_repeat_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    rng = np.random.default_rng(4)
    source = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    datasetfile.save_repeated(source, 30, tmp_path / "images.npy")
    datasetfile.save_repeated(np.arange(10, dtype=np.uint8) % 10, 30, tmp_path / "labels.npy")
    images, labels = np.load(tmp_path / "images.npy"), np.load(tmp_path / "labels.npy")
    fmt = make_format("npy", {"kind": "npy"})
    (tmp_path / "store").mkdir()
    fmt.write(tmp_path / "store", images, labels)
    real_open = type(fmt).open
    monkeypatch.setattr(type(fmt), "open", lambda self, d: _Modulo(real_open(self, d)))
    with pytest.raises(StorebenchError, match="differ from the dataset"):
        measure.measure_read(fmt, tmp_path / "store", images, labels, np.arange(30), "warm")


class _WrongOrder(Reader):
    """Reads the right images in the wrong order."""

    def __init__(self, inner: Reader):
        self.inner = inner

    def read_into(self, indices, images, labels):
        self.inner.read_into(indices[::-1].copy(), images, labels)

    def close(self):
        self.inner.close()


class _OneImageChanged(_WrongOrder):
    def read_into(self, indices, images, labels):
        self.inner.read_into(indices, images, labels)
        images[len(images) // 2, 0, 0, 0] ^= 1


class _ReadsNothing(_WrongOrder):
    def read_into(self, indices, images, labels):
        pass


@pytest.mark.parametrize(
    ("reader", "message"),
    [
        (_WrongOrder, "images differ"),
        (_OneImageChanged, "1 of 40 images differ"),
        (_ReadsNothing, "images differ"),
    ],
)
def test_a_broken_reader_fails_the_read(reader, message, data, tmp_path: Path) -> None:
    images, labels = data

    @dataclasses.dataclass(frozen=True)
    class Broken(Hdf5Format):
        def open(self, directory):
            return reader(super().open(directory))

    fmt = Broken()
    fmt.write(tmp_path, images, labels)
    with pytest.raises(StorebenchError, match=message):
        measure.measure_read(fmt, tmp_path, images, labels, np.arange(N), "warm", repeats=1)


def test_wrong_labels_fail_the_read(data, tmp_path: Path) -> None:
    images, labels = data
    fmt = make_format("lmdb", {"kind": "lmdb", "value": "raw"})
    fmt.write(tmp_path, images, (labels + 1) % 10)
    with pytest.raises(StorebenchError, match="40 of 40 labels differ"):
        measure.measure_read(fmt, tmp_path, images, labels, np.arange(N), "warm", repeats=1)


def test_single_image(data, tmp_path: Path) -> None:
    images, labels = data
    fmt = make_format("lmdb", {"kind": "lmdb"})
    result = single.measure_single(fmt, images[0], labels[0], tmp_path, repeats=3)
    assert len(result["samples"]["single_store_s"]) == 3
    assert len(result["samples"]["single_read_s"]) == 3


def test_summarize() -> None:
    summary = stats.summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert summary["median"] == 3.0 and summary["min"] == 1.0 and summary["max"] == 100.0
    assert summary["q1"] == 2.0 and summary["q3"] == 4.0


@pytest.mark.parametrize("size", [N, 16])  # one chunk (expected kept), three chunks
def test_check_checksums_only_a_complete_in_order_read(data, size: int) -> None:
    images, labels = data
    indices = np.random.default_rng(1).permutation(N)
    check = validation.ChunkedCheck(images, labels, indices, "test read", size)
    for _ in range(2):  # two repeats, the second served from what the first kept
        check.restart()
        for lo, hi in check.spans[:-1]:
            check.out_images[: hi - lo], check.out_labels[: hi - lo] = (
                images[indices[lo:hi]],
                labels[indices[lo:hi]],
            )
            check.check(lo, hi)
        with pytest.raises(StorebenchError, match="incomplete"):
            check.checksum()
        lo, hi = check.spans[-1]
        check.out_images[: hi - lo] = images[indices[lo:hi]]
        check.out_labels[: hi - lo] = labels[indices[lo:hi]]
        check.check(lo, hi)
        assert check.checksum() == validation.checksum(images[indices], labels[indices])
    check.restart()
    with pytest.raises(StorebenchError, match="out of order"):
        check.check(*check.spans[-1]) if len(check.spans) > 1 else check.check(1, N)
    check.restart()
    check.out_images[0] = 255 - images[indices[0]]  # a wrong image fails, kept or not
    with pytest.raises(StorebenchError, match="differ"):
        check.check(*check.spans[0])


def test_a_lossy_store_records_its_psnr_and_its_reads_are_validated(data, tmp_path: Path) -> None:
    """JPEG in LMDB: the store records how far its images are from the dataset's; reads
    pass against the decoded images, paired with the floor (which returns the originals),
    and a reader that returned the originals instead would fail."""
    from storebench.present import tables

    images, labels = data
    fmt = make_format("lmdb_jpeg", {"kind": "lmdb", "value": "raw", "payload": "jpeg"})
    floor = make_format("raw", {"kind": "npy"})
    out = tmp_path / "stores" / "lmdb_jpeg" / "40"
    out.parent.mkdir(parents=True)
    result, staged = measure.measure_store(
        fmt, images, labels, out, tmp_path / "trash", 2, quiet(out.parent), reference=floor
    )
    assert 5 < result["psnr_db"] < 40  # random pixels: the worst case for JPEG
    result.update(format="lmdb_jpeg", kind="lmdb", n=N)
    (row, _) = tables.timing_rows([result])
    assert row["psnr_db"] == result["psnr_db"]
    (tmp_path / "floor").mkdir()
    floor.write(tmp_path / "floor", images, labels)
    indices = measure.read_indices(N, "random", seed=3)
    read = measure.measure_read(
        fmt, staged, images, labels, indices, "warm", 2, reference=(floor, tmp_path / "floor")
    )
    decoded = fmt.decoded(images[indices])
    assert read["checksum"] == validation.checksum(decoded, labels[indices])
    # A store of the original pixels, read by a format that says it returns JPEG-decoded
    # images: its reads are the originals, so validation fails.
    raw = make_format("lmdb_raw", {"kind": "lmdb", "value": "raw"})
    (tmp_path / "raw").mkdir()
    raw.write(tmp_path / "raw", images, labels)

    class ClaimsLossy(type(raw)):
        lossy = True

        def decoded(self, chunk):
            return fmt.decoded(chunk)

    with pytest.raises(StorebenchError, match="differ from the dataset"):
        measure.measure_read(
            ClaimsLossy(value="raw"),
            tmp_path / "raw",
            images,
            labels,
            indices,
            "warm",
            1,
            reference=(floor, tmp_path / "floor"),
        )


def test_every_timed_store_and_cold_read_starts_with_warm_free_memory(
    data, tmp_path: Path, monkeypatch
) -> None:
    """Free memory this VM has not touched lately is slow to touch: a new store's page
    cache (or a cold read's) must find as many just-touched free pages as it needs."""
    images, labels = data
    sizes: list[int] = []
    monkeypatch.setattr(measure, "warm_free_memory", sizes.append)
    fmt = make_format("raw", {"kind": "npy"})
    out = tmp_path / "stores" / "raw" / str(N)
    _, staged = measure.measure_store(
        fmt, images, labels, out, tmp_path / "trash", 2, quiet(out.parent)
    )
    assert len(sizes) == 4 and min(sizes) >= N * 32 * 32 * 3  # both sides of 2 pairs, whole
    sizes.clear()
    indices = measure.read_indices(N, "random", 0)
    measure.measure_read(fmt, staged, images, labels, indices, "cold", repeats=2)
    on_disk = sum(p.stat().st_size for p in fmt.files(staged))
    assert sizes == [on_disk] * 4
    sizes.clear()
    measure.measure_read(fmt, staged, images, labels, indices, "warm", repeats=2)
    assert sizes == []  # a warm read allocates no page cache
