"""The TFRecord store is byte-compatible with TensorFlow's format.

Checked without TensorFlow: every record's framing and both masked CRC32Cs
are recomputed here from the TFRecord specification, and each record parses
with TensorFlow's example.proto schema into the expected features.
"""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import numpy as np
import pytest
from tfrecord import example_pb2

from storebench.errors import StorebenchError
from storebench.formats import make_format


def _masked(data: bytes) -> int:
    # tensorflow/core/lib/hash/crc32c.h: rotate right by 15 bits, add a constant.
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) % 2**32


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    images = rng.integers(0, 256, (25, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 25, dtype=np.uint8)
    make_format("t", {"kind": "tfrecord"}).write(tmp_path, images, labels)
    return tmp_path, images, labels


def test_records_are_tensorflow_framed_examples(store) -> None:
    folder, images, labels = store
    data = (folder / "data.tfrecord").read_bytes()
    offsets = np.load(folder / "offsets.npy")
    position, seen = 0, []
    while position < len(data):
        seen.append(position)
        length_bytes = data[position : position + 8]
        (length,) = struct.unpack("<Q", length_bytes)
        (length_crc,) = struct.unpack("<I", data[position + 8 : position + 12])
        record = data[position + 12 : position + 12 + length]
        (record_crc,) = struct.unpack("<I", data[position + 12 + length : position + 16 + length])
        assert length_crc == _masked(length_bytes)
        assert record_crc == _masked(record)
        example = example_pb2.Example.FromString(record)
        features = example.features.feature
        k = len(seen) - 1
        assert set(features) == {"height", "width", "depth", "label", "image_raw"}
        assert [features[f].int64_list.value[0] for f in ("height", "width", "depth")] == [
            32,
            32,
            3,
        ]
        assert features["label"].int64_list.value[0] == labels[k]
        assert features["image_raw"].bytes_list.value[0] == images[k].tobytes()
        position += 16 + length
    assert position == len(data) and seen == offsets.tolist() and len(seen) == len(images)


def test_a_flipped_byte_is_caught_by_the_crc(store) -> None:
    folder, _, _ = store
    path = folder / "data.tfrecord"
    data = bytearray(path.read_bytes())
    data[np.load(folder / "offsets.npy")[3] + 200] ^= 0x01
    path.write_bytes(bytes(data))
    fmt = make_format("t", {"kind": "tfrecord"})
    out = np.zeros((1, 32, 32, 3), np.uint8), np.zeros(1, np.uint8)
    with fmt.open(folder) as reader:
        reader.read_into(np.array([2]), *out)  # the records around it still read
        with pytest.raises(StorebenchError, match="CRC mismatch"):
            reader.read_into(np.array([3]), *out)


@pytest.mark.parametrize("damage", ["flipped", "truncated", "length"])
def test_a_damaged_store_is_named_while_the_reader_closes(store, damage: str) -> None:
    """The read job closes its reader in a ``finally`` while the error is in flight: the
    error must stay the store's (not "cannot close exported pointers", not a struct
    error from a length that runs past the file) and name the job that rebuilds it."""
    folder, _, _ = store
    path = folder / "data.tfrecord"
    data = bytearray(path.read_bytes())
    offset = int(np.load(folder / "offsets.npy")[3])
    if damage == "flipped":
        data[offset + 200] ^= 0x01
    elif damage == "truncated":
        del data[offset + 100 :]
    else:  # a length field that runs past the end of the file
        data[offset : offset + 8] = struct.pack("<Q", 10**9)
    path.write_bytes(bytes(data))
    fmt = make_format("t", {"kind": "tfrecord"})
    out = np.zeros((1, 32, 32, 3), np.uint8), np.zeros(1, np.uint8)
    reader = fmt.open(folder)
    with pytest.raises(StorebenchError, match="damaged store") as info:
        try:
            reader.read_into(np.array([3]), *out)
        finally:
            reader.close()
    assert f"snakemake --cores 4 --force {folder}" in str(info.value)
