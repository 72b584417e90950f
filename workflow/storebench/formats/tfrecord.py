"""One TFRecord file of ``tf.train.Example`` records, as TensorFlow users store images.

Each record holds the features ``height``, ``width``, ``depth``, ``label``
(int64) and ``image_raw`` (bytes), framed as TensorFlow frames records:
length (uint64 LE), masked CRC32C of the length, data, masked CRC32C of the
data. The ``tfrecord`` package writes the records (its ``example_pb2`` is
TensorFlow's ``example.proto``; ``crc32c`` computes the checksums). Offsets of
the records are saved at write time, so any record can be read directly;
reading in file order streams the file. Reads check both CRCs, as
TensorFlow's reader does.
"""

from __future__ import annotations

import dataclasses
import mmap
import struct
import sys
from pathlib import Path
from typing import Any

import crc32c
import numpy as np

from storebench.chunks import Images, slots
from storebench.formats.base import Format, Reader, damaged, image_chunks, wrong_size

# The tfrecord package imports its PyTorch integration whenever torch is installed
# (1.3 s of start-up in every job). We use only its writer and protobuf schema, so
# mark that submodule unavailable; tfrecord skips it on ImportError.
sys.modules.setdefault("tfrecord.torch", None)  # type: ignore[arg-type]
from tfrecord import TFRecordWriter, example_pb2  # noqa: E402

RECORDS, OFFSETS = "data.tfrecord", "offsets.npy"
MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes | memoryview) -> int:
    """TensorFlow's masked CRC32C of ``data``."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


class TfrecordReader(Reader):
    def __init__(self, directory: Path):
        self.path = Path(directory) / RECORDS
        self.offsets = np.load(Path(directory) / OFFSETS)
        self.file = open(self.path, "rb")  # noqa: SIM115 (held open until close())
        size = self.path.stat().st_size
        self.map = mmap.mmap(self.file.fileno(), size, access=mmap.ACCESS_READ) if size else b""
        self.view = memoryview(self.map)

    def _record(self, offset: int) -> memoryview:
        view = self.view
        if offset < 0 or offset + 12 > len(view):
            raise damaged(self.path.parent, f"no record at byte {offset} of {self.path.name}")
        (length,) = struct.unpack_from("<Q", view, offset)
        (length_crc,) = struct.unpack_from("<I", view, offset + 8)
        end = offset + 12 + length
        sound = end + 4 <= len(view) and masked_crc(view[offset : offset + 8]) == length_crc
        if sound:
            data = view[offset + 12 : end]
            (data_crc,) = struct.unpack_from("<I", view, end)
            if masked_crc(data) == data_crc:
                return data
            data.release()  # an exported slice would keep close() from unmapping
        raise damaged(
            self.path.parent, f"CRC mismatch in the record at byte {offset} of {self.path.name}"
        )

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        if not len(indices):
            return
        flat, starts = slots(images)  # image k: flat[starts[k]:starts[k + 1]]
        example = example_pb2.Example()
        offsets = self.offsets
        for k, index in enumerate(indices.tolist()):
            example.ParseFromString(self._record(int(offsets[index])))
            feature = example.features.feature
            image = feature["image_raw"].bytes_list.value[0]
            lo, hi = starts[k], starts[k + 1]
            if len(image) != hi - lo:
                raise wrong_size(self.path, index, len(image), hi - lo)
            flat[lo:hi] = image
            labels[k] = feature["label"].int64_list.value[0]

    def close(self) -> None:
        self.view.release()
        if isinstance(self.map, mmap.mmap):
            self.map.close()
        self.file.close()


@dataclasses.dataclass(frozen=True)
class TfrecordFormat(Format):
    """One ``data.tfrecord`` file plus ``offsets.npy`` (record offsets)."""

    kind = "tfrecord"
    variable_size = True
    libraries = ("numpy", "tfrecord", "protobuf", "crc32c")
    overhead_bytes_per_image = 120  # label, shape and record framing
    blocks_per_image = False

    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        offsets = np.empty(len(images), dtype=np.int64)
        writer = TFRecordWriter(str(Path(directory) / RECORDS))
        try:
            for start, chunk in image_chunks(images):
                for index, image in enumerate(chunk, start):
                    offsets[index] = writer.file.tell()
                    height, width, depth = image.shape
                    writer.write(
                        {
                            "height": (height, "int"),
                            "width": (width, "int"),
                            "depth": (depth, "int"),
                            "label": (int(labels[index]), "int"),
                            "image_raw": (image.tobytes(), "byte"),
                        }
                    )
        finally:
            writer.close()
        np.save(Path(directory) / OFFSETS, offsets)

    def open(self, directory: Path) -> Reader:
        return TfrecordReader(directory)

    remote_way = "stream"

    def open_remote(self, location: Any, scratch: Path) -> Reader:
        """The record file streamed whole (one request), as TensorFlow reads it, with its
        offsets; then records by offset as from a local file."""
        for name in (RECORDS, OFFSETS):
            location.fetch(name, Path(scratch) / name)
        return TfrecordReader(scratch)
