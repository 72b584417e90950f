"""Bounded memory: every format, read, parallel round and DataLoader epoch works a chunk
at a time, gives the same images, labels and checksums as one big buffer, and holds
about one chunk whatever n is."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from test_formats import SPECS

from storebench import chunks, host, measure, parallel, validation
from storebench.errors import StorebenchError
from storebench.formats import make_format
from storebench.formats.base import Reader

from conftest import ROOT

CHUNK = 7
N = 30  # four full chunks and a partial one


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(chunks, "CHUNK_BYTES", CHUNK * 3072)
    return CHUNK


def _dataset(folder: Path, n: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """A memory-mapped dataset of n random images, as the workflow's dataset job leaves it."""
    rng = np.random.default_rng(seed)
    np.save(folder / "images.npy", rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))
    np.save(folder / "labels.npy", rng.integers(0, 10, n, dtype=np.uint8))
    return np.load(folder / "images.npy", mmap_mode="r"), np.load(folder / "labels.npy")


def quiet(folder: Path) -> host.QuietFilesystem:
    return host.QuietFilesystem(folder, max_wait_s=0)


def test_spans_cover_everything_once() -> None:
    assert list(chunks.spans(10, 4)) == [(0, 4), (4, 8), (8, 10)]
    assert list(chunks.spans(0, 4)) == []


@pytest.mark.parametrize("shape", [(10, 32, 32, 3), (10,), (0, 32, 32, 3)])
def test_write_npy_in_parts_is_np_save(shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    expected, got = io.BytesIO(), io.BytesIO()
    np.save(expected, array)
    chunks.write_npy(got, array.shape, array.dtype, (array[i : i + 3] for i in range(0, 10, 3)))
    assert got.getvalue() == expected.getvalue()


def test_gather_reads_the_rows_from_the_file(tmp_path: Path) -> None:
    images, _ = _dataset(tmp_path, 200)
    plain = np.array(images)
    for view in (images, images[13:170]):
        for indices in (
            np.arange(len(view)),
            np.array([5, 6, 7, 2, 2, 99, 0]),
            np.random.default_rng(0).permutation(len(view)),
            np.array([], int),
        ):
            got = chunks.gather(view, indices)
            assert type(got) is np.ndarray
            assert np.array_equal(
                got, plain[: len(images)][13:170][indices] if view is not images else plain[indices]
            )
    with pytest.raises(IndexError):
        chunks.gather(images, np.array([200]))


def test_gather_does_not_map_the_dataset_into_the_job(tmp_path: Path) -> None:
    """Scattered rows faulted in through the map would leave much of the file resident."""
    n = 40_000  # 123 MB
    images, _ = _dataset(tmp_path, n)

    def file_mb() -> float:
        status = Path("/proc/self/status").read_text()
        return int(status.split("RssFile:")[1].split()[0]) / 1024

    before = file_mb()
    got = chunks.gather(images, np.random.default_rng(0).permutation(n)[:4000])
    assert got.shape == (4000, 32, 32, 3)
    assert file_mb() - before < 5  # 4,000 rows are 12 MB; none of it stays mapped


@pytest.mark.parametrize("name", SPECS)
def test_every_format_is_written_and_read_in_chunks(
    name: str, small_chunks: int, tmp_path: Path
) -> None:
    images, labels = _dataset(tmp_path, N)
    fmt = make_format(name, SPECS[name])
    out = tmp_path / "store"
    result, staged = measure.measure_store(
        fmt, images, labels, out, tmp_path / "trash", 1, quiet(tmp_path)
    )
    assert len(result["source_s"]) == 1 and result["source_s"][0] > 0
    assert result["samples"]["store_s"][0] > 0
    for order in ("sequential", "random"):
        indices = measure.read_indices(N, order, seed=4)
        read = measure.measure_read(fmt, staged, images, labels, indices, "warm", repeats=1)
        assert read["chunk_images"] == CHUNK
        # The checksum of the chunked read is that of the whole read in one buffer.
        expected = fmt.decoded(np.array(images)[indices])
        assert read["checksum"] == validation.checksum(expected, labels[indices])


class CorruptsOneImage(Reader):
    """Reads correctly, except image ``bad`` comes back inverted."""

    def __init__(self, inner: Reader, bad: int):
        self.inner, self.bad = inner, bad

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        self.inner.read_into(indices, images, labels)
        for k in np.flatnonzero(indices == self.bad):
            images[k] = 255 - images[k]

    def close(self) -> None:
        self.inner.close()


def test_a_wrong_image_in_a_later_chunk_fails_the_read(small_chunks: int, tmp_path: Path) -> None:
    images, labels = _dataset(tmp_path, N)
    fmt = make_format("npy", {"kind": "npy"})
    store = tmp_path / "store"
    store.mkdir()
    fmt.write(store, images, labels)

    class Broken(type(fmt)):
        def open(self, directory: Path) -> Reader:
            return CorruptsOneImage(super().open(directory), bad=23)

    broken = Broken()
    with pytest.raises(StorebenchError, match=r"1 of 7 images differ .*first at position 23\)"):
        measure.measure_read(broken, store, images, labels, np.arange(N), "warm", repeats=1)


def test_parallel_reads_run_in_rounds_and_match_one_buffer(
    small_chunks: int, tmp_path: Path
) -> None:
    images, labels = _dataset(tmp_path, N)
    fmt = make_format("lmdb_raw", {"kind": "lmdb", "value": "raw"})
    store = tmp_path / "store"
    store.mkdir()
    fmt.write(store, images, labels)
    indices = measure.read_indices(N, "random", seed=2)
    result = parallel.measure_parallel(
        fmt, store, tmp_path / "images.npy", tmp_path / "labels.npy", indices, 2, "warm", 2
    )
    # Shards of 15 and 15 indices, 4 per worker per round (ceil(7 / 2)): 4 rounds.
    assert result["rounds"] == 4
    whole = np.array(images)
    assert result["shard_checksums"] == [
        validation.checksum(whole[s], labels[s]) for s in parallel.shards(indices, 2)
    ]
    assert len(result["samples"]["read_s"]) == 2


def test_dataloader_epochs_fill_the_buffer_several_times(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    torchdata = pytest.importorskip("storebench.torchdata")
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 40 * 3072)  # 5 batches of 8 per buffer
    images, labels = _dataset(tmp_path, 203)
    fmt = make_format("hdf5", {"kind": "hdf5"})
    store = tmp_path / "store"
    store.mkdir()
    fmt.write(store, images, labels)
    indices = measure.read_indices(203, "random", seed=9)
    result = torchdata.measure_epochs(
        fmt, store, images, labels, indices, batch_size=8, num_workers=0, repeats=1
    )
    assert result["chunk_images"] == 40
    assert result["checksum"] == validation.checksum(np.array(images)[indices], labels[indices])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["npy", "hdf5", "tfrecord", "png", "lmdb_raw"])
def test_memory_held_does_not_grow_with_n(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Peak Python/numpy allocation of a store job and a read job at n and at 8 n.

    With chunks of 500 images, both allocate about the same at 1,000 and 8,000
    images; a job holding all n images (as the workflow did before) allocates
    8 times more.
    """
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 500 * 3072)
    # Before each timed store or cold read, free memory as large as the store is
    # touched and freed (host.warm_free_memory): transient, and the page cache the
    # store takes anyway. Not images held, so left out here.
    monkeypatch.setattr(host, "WARM_MAX_BYTES", 0)
    fmt = make_format(name, SPECS[name])
    peaks = {}
    for n in (1_000, 8_000):
        folder = tmp_path / str(n)
        folder.mkdir()
        images, labels = _dataset(folder, n)
        tracemalloc.start()
        _, staged = measure.measure_store(
            fmt, images, labels, folder / "store", folder / "trash", 1, quiet(folder)
        )
        store_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        indices = measure.read_indices(n, "random", seed=0)
        measure.measure_read(fmt, staged, images, labels, indices, "warm", repeats=1)
        peaks[n] = (store_peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    image_mb = 500 * 3072 / 2**20
    # The labels (one byte per image), a TFRecord's offsets (8 bytes) and the list of a
    # PNG store's files (a Path per image, for page-cache eviction) grow with n; the
    # images held must not.
    per_image = 1024 if name == "png" else 16
    for job, small, large in zip(("store", "read"), peaks[1_000], peaks[8_000], strict=True):
        assert large < small * 1.3 + 8_000 * per_image, (job, small, large)
        assert large < 6 * image_mb * 2**20 + 8_000 * per_image, (job, large)


def test_the_contributing_example_format_round_trips_in_chunks(
    small_chunks: int, tmp_path: Path
) -> None:
    """CONTRIBUTING.md's "Add your own format" example works as printed."""
    readme = (ROOT / "CONTRIBUTING.md").read_text()
    section = readme.split("## Add your own format", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "CONTRIBUTING.md", "exec"), namespace)
    fmt = namespace["FlatFormat"]()
    images, labels = _dataset(tmp_path, N)
    _, staged = measure.measure_store(
        fmt, images, labels, tmp_path / "store", tmp_path / "trash", 1, quiet(tmp_path)
    )
    indices = measure.read_indices(N, "random", seed=1)
    read = measure.measure_read(fmt, staged, images, labels, indices, "cold", repeats=1)
    assert read["checksum"] == validation.checksum(np.array(images)[indices], labels[indices])
