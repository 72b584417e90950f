"""The measuring jobs: samples kept, last store kept, validation fires."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from storebench import measure
from storebench.errors import StorebenchError
from storebench.formats import make_format
from storebench.formats.base import Reader
from storebench.formats.hdf5 import Hdf5Format

N = 40


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return (
        rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, 10, N, dtype=np.uint8),
    )


def quiet(folder: Path) -> measure.QuietFilesystem:
    return measure.QuietFilesystem(folder, max_create_us=1e9, max_wait_s=0)


def test_store_keeps_every_sample_and_the_last_store(data, tmp_path: Path) -> None:
    images, labels = data
    fmt = make_format("png", {"kind": "png"})
    out, trash = tmp_path / "stores" / "png" / "40", tmp_path / "trash"
    result = measure.measure_store(fmt, images, labels, out, trash, 3, quiet(out.parent))
    assert len(result["samples"]["store_s"]) == 3
    assert all(
        d >= w > 0
        for w, d in zip(
            result["samples"]["store_s"], result["samples"]["store_durable_s"], strict=True
        )
    )
    assert len(result["filesystem_probe"]) == 3
    assert all(p["create_latency_us"] > 0 for p in result["filesystem_probe"])
    # The store holds the images; the other repeats went to the trash, not deleted.
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{i}.png" for i in range(N)] + ["labels.csv"])  # fmt: skip
    assert len(list(trash.iterdir())) == 2
    assert [p.name for p in out.parent.iterdir()] == ["40"]


def test_read_is_validated_and_repeated(data, tmp_path: Path) -> None:
    images, labels = data
    fmt = make_format("hdf5", {"kind": "hdf5"})
    fmt.write(tmp_path, images, labels)
    result = measure.measure_read(fmt, tmp_path, images, labels, repeats=4)
    assert len(result["samples"]["read_s"]) == 4
    assert result["checksum"] == measure.checksum(images, labels)


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
    [(_WrongOrder, "images differ"), (_OneImageChanged, "1 of 40 images differ"),
     (_ReadsNothing, "images differ")],
)  # fmt: skip
def test_a_broken_reader_fails_the_read(reader, message, data, tmp_path: Path) -> None:
    images, labels = data

    @dataclasses.dataclass(frozen=True)
    class Broken(Hdf5Format):
        def open(self, directory):
            return reader(super().open(directory))

    fmt = Broken()
    fmt.write(tmp_path, images, labels)
    with pytest.raises(StorebenchError, match=message):
        measure.measure_read(fmt, tmp_path, images, labels, repeats=1)


def test_wrong_labels_fail_the_read(data, tmp_path: Path) -> None:
    images, labels = data
    fmt = make_format("lmdb", {"kind": "lmdb", "value": "raw"})
    fmt.write(tmp_path, images, (labels + 1) % 10)
    with pytest.raises(StorebenchError, match="40 of 40 labels differ"):
        measure.measure_read(fmt, tmp_path, images, labels, repeats=1)


def test_single_image(data, tmp_path: Path) -> None:
    images, labels = data
    fmt = make_format("lmdb", {"kind": "lmdb"})
    result = measure.measure_single(fmt, images[0], labels[0], tmp_path, repeats=3)
    assert len(result["samples"]["single_store_s"]) == 3
    assert len(result["samples"]["single_read_s"]) == 3


def test_summarize() -> None:
    stats = measure.summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert stats["median"] == 3.0 and stats["min"] == 1.0 and stats["max"] == 100.0
    assert stats["q1"] == 2.0 and stats["q3"] == 4.0
