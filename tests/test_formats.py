"""Every format: write, read back any indices in any order, identical to the source."""

from __future__ import annotations

import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import lmdb
import numpy as np
import pytest
import yaml

from storebench.diskspace import store_bytes
from storebench.errors import StorebenchError
from storebench.formats import available_kinds, make_format
from storebench.usage import disk_usage

from conftest import ROOT

# Option variants worth testing on their own; every kind found in storebench/formats is
# added below with its defaults, so a new format's module is tested without an edit here.
VARIANTS = {
    "png": {"kind": "png"},
    "png_fast": {"kind": "png", "compress_level": 1},
    "lmdb_pickle": {"kind": "lmdb", "value": "pickle"},
    "lmdb_raw": {"kind": "lmdb", "value": "raw"},
    "lmdb_raw_writemap_append": {"kind": "lmdb", "value": "raw", "writemap": True, "append": True},
    "hdf5": {"kind": "hdf5"},
    "hdf5_chunked": {"kind": "hdf5", "chunk": 7},
    "hdf5_gzip": {"kind": "hdf5", "chunk": 16, "compression": "gzip", "level": 4},
    "hdf5_lzf": {"kind": "hdf5", "chunk": 100, "compression": "lzf"},
    "tfrecord": {"kind": "tfrecord"},
    "npy": {"kind": "npy"},
    "sqlite_mmap_8k": {"kind": "sqlite", "page_size": 8192, "mmap": True},
    "hdf5_zstd": {"kind": "hdf5", "chunk": 16, "compression": "zstd", "level": 3},
    "hdf5_blosc_lz4": {"kind": "hdf5", "chunk": 5, "compression": "blosc_lz4"},
    "zarr_sharded_blosc": {"kind": "zarr", "chunk": 4, "shard": 16, "compression": "blosc_zstd"},
    "zarr_zstd": {"kind": "zarr", "chunk": 7, "compression": "zstd", "level": 1},
    "parquet_zstd_mmap": {
        "kind": "parquet",
        "row_group": 5,
        "compression": "zstd",
        "memory_map": True,
    },
    "webdataset_small_shards": {"kind": "webdataset", "shard": 7},
    "arrayrecord": {"kind": "arrayrecord"},
    "arrayrecord_shards_zstd": {
        "kind": "arrayrecord",
        "shard": 7,
        "group_size": 4,
        "compression": "zstd",
    },
    "lance": {"kind": "lance"},
    "lance_small_files": {"kind": "lance", "rows_per_file": 10, "rows_per_group": 3},
    "litdata": {"kind": "litdata"},
    "litdata_auto_decode": {"kind": "litdata", "batch_decode": "auto"},
    "litdata_small_chunks_zstd": {"kind": "litdata", "chunk_bytes": 20_000, "compression": "zstd"},
    # Lossy payloads: a read returns the decoded images (fmt.decoded), not the originals.
    "lmdb_jpeg": {"kind": "lmdb", "value": "raw", "payload": "jpeg", "quality": 90},
    "webdataset_webp": {"kind": "webdataset", "shard": 10, "payload": "webp", "quality": 80},
    "jpeg_files": {"kind": "png", "payload": "jpeg", "quality": 90},  # an ImageFolder
    "lance_jpeg": {"kind": "lance", "payload": "jpeg", "quality": 90},
    "arrayrecord_webp": {"kind": "arrayrecord", "shard": 10, "payload": "webp", "quality": 80},
    "litdata_jpeg": {"kind": "litdata", "chunk_bytes": 50_000, "payload": "jpeg"},
    "mds": {"kind": "mds"},
    "mds_small_shards": {"kind": "mds", "size_limit": 20_000},
    "mds_webp": {"kind": "mds", "size_limit": 30_000, "payload": "webp", "quality": 80},
}
_TESTED = {spec["kind"] for spec in VARIANTS.values()}
SPECS = {**VARIANTS, **{k: {"kind": k} for k in available_kinds() if k not in _TESTED}}
N = 64


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, N, dtype=np.uint8)
    return images, labels


def _read(fmt, store: Path, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images = np.zeros((len(indices), 32, 32, 3), np.uint8)
    labels = np.full(len(indices), 255, np.uint8)
    with fmt.open(store) as reader:
        reader.read_into(indices, images, labels)
    return images, labels


ORDERS = {
    "all": np.arange(N),
    "reversed": np.arange(N)[::-1].copy(),
    "shuffled": np.random.default_rng(1).permutation(N),
    "repeats": np.array([5, 5, 0, 63, 5, 17]),
    "one": np.array([N - 1]),
    "middle_range": np.arange(10, 30),
    "none": np.array([], dtype=np.int64),
}


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("order", ORDERS)
def test_round_trip(name: str, order: str, data, tmp_path: Path) -> None:
    images, labels = data
    fmt = make_format(name, SPECS[name])
    fmt.write(tmp_path, images, labels)
    indices = ORDERS[order]
    got_images, got_labels = _read(fmt, tmp_path, indices)
    np.testing.assert_array_equal(got_images, fmt.decoded(images)[indices])
    np.testing.assert_array_equal(got_labels, labels[indices])


@pytest.mark.parametrize("name", SPECS)
def test_any_image_shape_round_trips_and_another_dataset_is_refused(
    name: str, tmp_path: Path
) -> None:
    """Nothing assumes CIFAR's 32x32x3: a store of 17x23 images reads back exactly; read
    with the buffers of another image size (a store from another dataset), it fails
    with one line naming the store. (Raw bytes of the same size in another shape are
    caught by validation: their pixels differ from the dataset's.)"""
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (9, 17, 23, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 9, dtype=np.uint8)
    fmt = make_format(name, SPECS[name])
    fmt.write(tmp_path, images, labels)
    indices = np.array([8, 0, 3, 3, 5])
    out, out_labels = np.zeros((5, 17, 23, 3), np.uint8), np.zeros(5, np.uint8)
    with fmt.open(tmp_path) as reader:
        reader.read_into(indices, out, out_labels)
        np.testing.assert_array_equal(out, fmt.decoded(images)[indices])
        np.testing.assert_array_equal(out_labels, labels[indices])
        for shape in ((32, 32, 3), (17, 23, 1)):
            with pytest.raises(StorebenchError, match="another dataset"):
                reader.read_into(indices, np.zeros((5, *shape), np.uint8), out_labels)


@pytest.mark.parametrize("name", SPECS)
def test_a_reader_reads_its_store_and_nothing_else(name: str, data, tmp_path: Path) -> None:
    """A lazy reader fails: one that keeps what it read across opens (a module-level
    cache keyed by path) returns the old store's images after the store at that path was
    replaced; one that serves the dataset file it was written from (remembered through
    the memory map it was given) finds that file gone."""
    images, labels = data
    source = tmp_path / "dataset.npy"
    np.save(source, images)
    store = tmp_path / "store"
    fmt = make_format(name, SPECS[name])
    mapped = np.load(source, mmap_mode="r")
    store.mkdir()
    fmt.write(store, mapped, labels)
    del mapped
    source.unlink()  # the dataset file is gone: only the store can answer
    everything = np.arange(N)
    first, first_labels = _read(fmt, store, everything)
    np.testing.assert_array_equal(first, fmt.decoded(images))
    np.testing.assert_array_equal(first_labels, labels)
    other, other_labels = 255 - images[::-1], (labels[::-1] + 1) % 10
    shutil.rmtree(store)
    store.mkdir()
    fmt.write(store, other, other_labels)  # another store at the same path
    second, second_labels = _read(fmt, store, everything)
    np.testing.assert_array_equal(second, fmt.decoded(other))
    np.testing.assert_array_equal(second_labels, other_labels)


@pytest.mark.parametrize("name", SPECS)
def test_files_are_the_store(name: str, data, tmp_path: Path) -> None:
    images, labels = data
    fmt = make_format(name, SPECS[name])
    fmt.write(tmp_path, images, labels)
    (tmp_path / ".snakemake_timestamp").touch()
    files = fmt.files(tmp_path)
    assert files and all(p.is_file() for p in files)
    assert tmp_path / ".snakemake_timestamp" not in files
    lossy = fmt.lossy  # JPEG or WebP files and records hold less than the pixels
    assert sum(p.stat().st_size for p in files) >= images.nbytes or name.startswith("png") or lossy
    if fmt.kind == "png":
        assert len(files) == N + 1


def test_every_kind_in_config_yaml_exists() -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for name, spec in config["formats"].items():
        assert make_format(name, spec).kind in available_kinds()
    assert {"png", "lmdb", "hdf5", "tfrecord", "npy"} <= set(available_kinds())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "orc"}, r"formats\.x\.kind: unknown kind 'orc'"),
        ({"kind": "png", "level": 3}, r"formats\.x: unknown option\(s\) \['level'\]"),
        ({"kind": "png", "compress_level": 12}, "compress_level must be an integer 0..9"),
        ({"kind": "lmdb", "value": "json"}, "value must be 'pickle' or 'raw'"),
        ({"kind": "lmdb", "append": "yes"}, "append must be true or false"),
        ({"kind": "hdf5", "compression": "gzip"}, "compression needs chunk"),
        ({"kind": "hdf5", "chunk": 0}, "chunk must be a positive integer"),
        ({"kind": "hdf5", "chunk": 8, "compression": "brotli"}, "compression must be one of"),
        ({"kind": "zarr", "chunk": 10, "shard": 15}, "shard must be a multiple of chunk"),
        ({"kind": "zarr", "compression": "gzip"}, "compression must be one of"),
        ({"kind": "parquet", "row_group": 0}, "row_group must be a positive integer"),
        ({"kind": "parquet", "compression": "lz4"}, "compression must be one of"),
        ({"kind": "lmdb", "payload": "jpeg"}, "payload 'jpeg' needs value: raw"),
        ({"kind": "webdataset", "payload": "gif"}, "payload must be one of"),
        ({"kind": "webdataset", "payload": "jpeg", "quality": 0}, "quality must be a whole number"),
        (
            {"kind": "hdf5", "chunk": 8, "compression": "lzf", "level": 3},
            "level is 1..9 and needs a compression",
        ),
    ],
)
def test_bad_format_specs_are_named(spec: dict, message: str) -> None:
    with pytest.raises(StorebenchError, match=message):
        make_format("x", spec)


def test_lmdb_grows_its_map(data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A map sized too small is grown, never a MapFullError."""
    images, labels = data
    real_open = lmdb.open
    monkeypatch.setattr(
        lmdb,
        "open",
        lambda path, **kw: (
            real_open(path, **{**kw, "map_size": 4096 * 4})
            if "map_size" in kw
            else real_open(path, **kw)
        ),
    )
    fmt = make_format("lmdb", {"kind": "lmdb", "value": "raw"})
    fmt.write(tmp_path, images, labels)
    got_images, _ = _read(fmt, tmp_path, np.arange(N))
    np.testing.assert_array_equal(got_images, images)


@pytest.mark.parametrize("writemap", [False, True])
def test_lmdb_disk_usage_is_the_data_not_the_map(writemap: bool, data, tmp_path: Path) -> None:
    images, labels = data
    fmt = make_format("lmdb", {"kind": "lmdb", "value": "raw", "writemap": writemap})
    fmt.write(tmp_path, images, labels)
    env = lmdb.open(str(tmp_path), readonly=True, lock=False)
    info, page = env.info(), env.stat()["psize"]
    env.close()
    in_use = (info["last_pgno"] + 1) * page
    assert info["map_size"] >= 2 * in_use  # the map is sized generously ...
    allocated = disk_usage(fmt, tmp_path)["allocated_bytes"]
    assert in_use <= allocated <= in_use + 16 * page  # ... the disk holds the pages in use
    assert allocated <= store_bytes(fmt, N)  # and the free-space estimate covers it


def test_lmdb_pickle_reader_refuses_foreign_globals(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            import os

            return os.system, (f"touch {marker}",)

    env = lmdb.open(str(tmp_path), map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b"00000000", pickle.dumps(Payload()))
    env.close()
    fmt = make_format("lmdb", {"kind": "lmdb", "value": "pickle"})
    with pytest.raises(StorebenchError, match="refused to unpickle"):
        _read(fmt, tmp_path, np.array([0]))
    assert not marker.exists()


def test_hdf5_options_shape_the_file(data, tmp_path: Path) -> None:
    import h5py

    images, labels = data
    make_format("h", SPECS["hdf5_gzip"]).write(tmp_path, images, labels)
    with h5py.File(tmp_path / "data.h5") as file:
        dataset = file["images"]
        assert dataset.chunks == (16, 32, 32, 3)
        assert dataset.compression == "gzip" and dataset.compression_opts == 4


def test_lmdb_missing_image_is_named(data, tmp_path: Path) -> None:
    images, labels = data
    fmt = make_format("lmdb", SPECS["lmdb_raw"])
    fmt.write(tmp_path, images[:5], labels[:5])
    for indices in (np.array([7]), np.arange(3, 8)):
        with pytest.raises(StorebenchError, match=r"no image [57]"):
            _read(fmt, tmp_path, indices)


@pytest.mark.parametrize("name", ["hdf5", "hdf5_chunked", "hdf5_lzf"])
def test_hdf5_scattered_reads_across_many_blocks(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs of nearby rows, lone rows, repeats and block edges, into the caller's buffer."""
    from storebench.formats import hdf5

    monkeypatch.setattr(hdf5, "BLOCK_BYTES", 50 * 32 * 32 * 3)  # 50 images: many blocks
    rng = np.random.default_rng(3)
    n = 700
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    fmt = make_format(name, SPECS[name])
    fmt.write(tmp_path, images, labels)
    cases = [
        rng.permutation(n)[: n // 2],  # a dense shard: runs of nearby rows
        rng.permutation(n)[:20],  # a sparse batch: lone rows far apart
        rng.permutation(n)[:120],  # sparse, but more rows than a block
        np.r_[49, 50, 99, 100, 0, 699, 50],  # block edges and a repeat
        rng.permutation(n),  # every row, shuffled
    ]
    for indices in cases:
        got_images, got_labels = _read(fmt, tmp_path, indices)
        np.testing.assert_array_equal(got_images, images[indices])
        np.testing.assert_array_equal(got_labels, labels[indices])
    with pytest.raises(IndexError):
        _read(fmt, tmp_path, np.array([3, n]))


@pytest.mark.parametrize("name", ["lmdb_jpeg", "webdataset_webp", "jpeg_files"])
def test_a_lossy_payload_is_smaller_close_to_the_original_and_validated(
    name: str, tmp_path: Path
) -> None:
    """Smooth images (as photographs are) stored as JPEG/WebP: under half their pixels'
    bytes per image, a PSNR in the range such codecs reach, and a read that returns
    exactly the images decoded once (fmt.decoded), not the originals."""
    from storebench import payload

    y, x = np.mgrid[0:32, 0:32]
    images = np.stack(
        [np.stack([(x * 8 + k) % 256, (y * 8) % 256, (x + y) * 4 % 256], -1) for k in range(N)]
    ).astype(np.uint8)
    labels = (np.arange(N) % 10).astype(np.uint8)
    fmt = make_format(name, SPECS[name])
    assert fmt.lossy and not make_format("raw", {"kind": "npy"}).lossy
    fmt.write(tmp_path, images, labels)
    encoded = [payload.encode(image, fmt.payload, fmt.quality) for image in images]
    assert sum(map(len, encoded)) < images.nbytes / 2  # what the store holds per image
    got, got_labels = _read(fmt, tmp_path, np.arange(N))
    decoded = fmt.decoded(images)
    np.testing.assert_array_equal(got, decoded)
    np.testing.assert_array_equal(got_labels, labels)
    assert not np.array_equal(decoded, images)  # lossy indeed
    assert 25 < payload.psnr_db([(images, decoded)]) < 60


def test_a_damaged_shard_is_named_in_one_line(data, tmp_path: Path) -> None:
    """Reads go through the index written with the shards (no header is parsed): a shard
    cut short, a label overwritten, or a missing index is named in one line."""
    images, labels = data
    fmt = make_format("w", {"kind": "webdataset", "shard": 20})
    fmt.write(tmp_path, images, labels)
    shard = tmp_path / "shard-000001.tar"
    whole = shard.read_bytes()
    damaged = bytearray(whole)
    damaged[512:513] = b"x"  # the first sample's label (its .cls member comes first)
    shard.write_bytes(bytes(damaged))
    with pytest.raises(StorebenchError, match=r"shard-000001\.tar: the label of image 20") as info:
        _read(fmt, tmp_path, np.arange(N))
    assert "\n" not in str(info.value)
    shard.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(StorebenchError, match=r"shard-000001\.tar: shorter than its index"):
        _read(fmt, tmp_path, np.arange(N))
    assert _read(fmt, tmp_path, np.arange(20))[1].tolist() == labels[:20].tolist()  # shard 0
    (tmp_path / "index.npy").unlink()
    with pytest.raises(StorebenchError, match=r"index\.npy: missing or unreadable"):
        _read(fmt, tmp_path, np.arange(3))


@pytest.mark.parametrize("name", ["lmdb_pickle", "lmdb_raw", "lmdb_raw_writemap_append"])
def test_a_truncated_lmdb_store_is_named_not_a_sigbus(name: str, data, tmp_path: Path) -> None:
    """LMDB maps data.mdb: a read past the end of a truncated file dies by SIGBUS, so the
    reader checks the file against LMDB's own page count when it opens. Run in a child
    process, so a SIGBUS fails this test instead of killing the test run."""
    images, labels = data
    store = tmp_path / name
    store.mkdir()
    make_format(name, SPECS[name]).write(store, images, labels)
    mdb = store / "data.mdb"
    with lmdb.open(str(store), readonly=True, lock=False) as env:
        used = (env.info()["last_pgno"] + 1) * env.stat()["psize"]  # a writemap file is longer
    for cut in (used // 2, 8192, 100):
        with open(mdb, "r+b") as handle:
            handle.truncate(cut)
        script = (
            "import sys, numpy as np\n"
            "from storebench.errors import StorebenchError\n"
            "from storebench.formats import make_format\n"
            f"fmt = make_format({name!r}, {SPECS[name]!r})\n"
            "out = np.zeros((40, 32, 32, 3), np.uint8), np.zeros(40, np.uint8)\n"
            "try:\n"
            f"    reader = fmt.open({str(store)!r})\n"
            "    reader.read_into(np.arange(40)[::-1].copy(), *out)\n"
            "    reader.close()\n"
            "except StorebenchError as error:\n"
            "    print(error); sys.exit(1)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 1, (cut, proc.returncode, proc.stderr)
        assert proc.stdout.startswith(f"{store}: damaged store"), proc.stdout
        assert f"--force {store}" in proc.stdout and "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", ["hdf5", "zarr"])
def test_a_scattered_read_buffer_is_bounded_in_bytes_and_touched_off_the_clock(
    name: str, tmp_path: Path
) -> None:
    """The buffer a scattered read goes through holds about 3 MiB whatever the image
    size (1,024 images of 256 px asked for 200 MB, filled inside every timed read), and
    is made once per process: a second reader (the next timed read) reuses it."""
    from storebench.formats import base

    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (40, 256, 256, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 40, dtype=np.uint8)
    fmt = make_format(name, {"kind": name, **({"chunk": 4} if name == "zarr" else {})})
    fmt.write(tmp_path, images, labels)
    indices = rng.permutation(40)

    def read() -> np.ndarray:
        out = np.zeros_like(images), np.zeros_like(labels)
        with fmt.open(tmp_path) as reader:
            reader.read_into(indices, *out)
        np.testing.assert_array_equal(out[1], labels[indices])
        return out[0]

    np.testing.assert_array_equal(read(), images[indices])  # the warm-up read makes it
    (first,) = base.reused_buffers().values()
    assert first.nbytes <= 4 << 20 and len(first) < 1024
    np.testing.assert_array_equal(read(), images[indices])
    (second,) = base.reused_buffers().values()
    assert second is first  # reused, not allocated inside the timed read


def test_a_format_unit_larger_than_a_job_holds_is_refused_in_bytes(tmp_path: Path) -> None:
    """An HDF5 chunk or a Zarr shard is held in memory whole: 64 images of 2048 px is
    768 MiB, against the 384 MiB a job holds at once (docs/scaling.md)."""
    from storebench.formats.base import check_unit, check_units

    hdf5 = make_format("hdf5_gzip", {"kind": "hdf5", "chunk": 64, "compression": "gzip"})
    big = (2048, 2048, 3)
    with pytest.raises(
        StorebenchError,
        match=r"^formats\.hdf5_gzip: chunk = 64 images of 2048 x 2048 px is 768 MiB held in "
        r"memory at once, more than a job holds \(384 MiB\); set chunk to 32 or fewer images$",
    ):
        check_unit("formats.hdf5_gzip", hdf5, big, 100_000)
    check_unit("formats.hdf5_gzip", hdf5, big, 32)  # a store of 32 images: one 384 MiB chunk
    check_unit("formats.hdf5_gzip", hdf5, (32, 32, 3), 100_000)  # CIFAR: 192 KiB
    sharded = make_format("zarr_blosc", {"kind": "zarr", "chunk": 64, "shard": 8192})
    with pytest.raises(StorebenchError, match=r"shard = 8,192 images of 256 x 256 px is 1,536 MiB"):
        check_units({"zarr_blosc": sharded}, [((32, 32, 3), 100_000), ((256, 256, 3), 20_000)])
    with pytest.raises(StorebenchError, match=r"set shard to 2,048 or fewer images$"):
        check_units({"zarr_blosc": sharded}, [((256, 256, 3), 20_000)])
    check_units({"zarr_blosc": sharded}, [((256, 256, 3), 320)])  # the sweep's 60 MiB at 256 px
    huge_chunk = make_format("z", {"kind": "zarr", "chunk": 4096, "shard": 8192})
    with pytest.raises(StorebenchError, match=r"set chunk and shard to 2,048 or fewer images$"):
        check_units({"z": huge_chunk}, [((256, 256, 3), 20_000)])
    for fmt in (make_format("hdf5", {"kind": "hdf5"}), make_format("raw", {"kind": "npy"})):
        check_unit("formats.x", fmt, big, 10**6)  # no unit: read and written in bounded blocks
    # the store job refuses it too (an image folder's own sizes are known only then),
    # before it writes anything; a view of one image stands for 40, allocating nothing
    images = np.broadcast_to(np.zeros((1, *big), np.uint8), (40, *big))
    for fmt in (hdf5, make_format("zarr", {"kind": "zarr", "chunk": 1000})):
        store = tmp_path / fmt.kind
        store.mkdir()
        with pytest.raises(StorebenchError, match=rf"^{fmt.kind} store: chunk = "):
            fmt.write(store, images, np.zeros(40, np.uint8))
        assert not any(store.iterdir())


@pytest.mark.parametrize(
    "name",
    [
        "arrayrecord_shards_zstd",
        "lance_small_files",
        "litdata_small_chunks_zstd",
        "mds_small_shards",
    ],
)
def test_a_damaged_loader_format_store_is_named_in_one_line(name: str, data, tmp_path) -> None:
    """An ArrayRecord shard, a Lance fragment or a LitData chunk cut short, and a store missing a file, are
    named in one line (run in a child process: a crash in the library fails the test
    instead of the test run)."""
    images, labels = data
    fmt = make_format(name, SPECS[name])
    fmt.write(tmp_path, images, labels)
    files = fmt.files(tmp_path)
    data_files = [p for p in files if p.suffix in (".array_record", ".lance", ".bin", ".mds")]
    assert len(data_files) > 1  # the options make several shards or fragments
    script = (
        "import sys, numpy as np\n"
        "from storebench.errors import StorebenchError\n"
        "from storebench.formats import make_format\n"
        f"fmt = make_format({name!r}, {SPECS[name]!r})\n"
        f"out = np.zeros(({N}, 32, 32, 3), np.uint8), np.zeros({N}, np.uint8)\n"
        "try:\n"
        f"    with fmt.open({str(tmp_path)!r}) as reader:\n"
        f"        reader.read_into(np.arange({N})[::-1].copy(), *out)\n"
        "except StorebenchError as error:\n"
        "    print(error); sys.exit(3)\n"
    )

    def read() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=False
        )

    assert read().returncode == 0  # sound, it reads
    victim = data_files[1]
    whole = victim.read_bytes()
    victim.write_bytes(whole[: len(whole) // 3])
    cut = read()
    assert cut.returncode == 3, cut.stderr[-2000:]
    assert cut.stdout.count("\n") == 1 and re.search("rerun its store job|rebuild it", cut.stdout)
    victim.unlink()
    gone = read()
    assert gone.returncode == 3, gone.stderr[-2000:]
    assert gone.stdout.count("\n") == 1 and re.search("rerun its store job|rebuild", gone.stdout)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "arrayrecord", "group_size": 0}, "group_size must be a positive integer"),
        ({"kind": "arrayrecord", "shard": 2.5}, "shard: 2.5 is not a whole number"),
        ({"kind": "arrayrecord", "compression": "lz4"}, "compression must be one of"),
        ({"kind": "lance", "rows_per_file": True}, "rows_per_file: True is not a whole number"),
        ({"kind": "lance", "rows_per_group": -1}, "rows_per_group must be a positive integer"),
        ({"kind": "lance", "payload": "gif"}, "payload must be one of"),
        ({"kind": "litdata", "chunk_bytes": 0}, "chunk_bytes must be a positive integer"),
        ({"kind": "litdata", "compression": "lz4"}, "compression must be one of"),
        ({"kind": "mds", "size_limit": 0}, "size_limit must be a positive integer"),
        ({"kind": "mds", "size_limit": 2**32}, "size_limit must be below 2\\*\\*32"),
        ({"kind": "litdata", "batch_decode": -1}, "batch_decode must be a number >= 0, 'auto'"),
        ({"kind": "litdata", "batch_decode": "some"}, "batch_decode must be a number >= 0"),
        (
            {"kind": "litdata", "chunk_bytes": "64MB"},
            "chunk_bytes must be a positive integer, not '64MB'",
        ),
    ],
)
def test_a_loader_formats_bad_option_is_one_line(spec: dict, message: str) -> None:
    with pytest.raises(StorebenchError, match=message) as info:
        make_format("x", spec)
    assert "\n" not in str(info.value) and str(info.value).startswith("formats.x")


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("arrayrecord", "array_record.python.array_record_module"),
        ("lance", "lance"),
        ("litdata", "litdata"),
        ("mds", "streaming"),
    ],
)
def test_a_format_that_imports_its_library_late_can_load_it_first(name, module) -> None:
    """load_reader imports the library a store's open would (run in a fresh process: this
    one may have imported it already)."""
    script = (
        "import sys\nfrom storebench.formats import make_format\n"
        f"fmt = make_format({name!r}, {SPECS[name]!r})\n"
        f"assert {module!r} not in sys.modules\n"
        "fmt.load_reader()\n"
        f"assert {module!r} in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
