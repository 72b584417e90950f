"""One Parquet file (pyarrow): the images in a binary column, the labels beside them.

What the Hugging Face Hub serves. Each image is one value of a fixed-size binary
column (``image``, the pixels) and a ``label`` column (uint8), written a row group
at a time (``row_group``: images per row group). A read visits the row groups that
hold the wanted rows, in file order, reading each one's two columns once and
copying the wanted rows into place; a contiguous range reads exactly its row
groups. ``compression``: Parquet's page codec (``none``, ``snappy``, ``zstd``).
``memory_map``: read the file through a memory map instead of file reads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storebench.chunks import Images, chunk_images, row_bytes
from storebench.errors import StorebenchError
from storebench.formats.base import (
    Format,
    Reader,
    any_to_read,
    image_chunks,
    one_size_only,
    wrong_size,
)

FILE = "images.parquet"
COMPRESSIONS = ("none", "snappy", "zstd")


class ParquetReader(Reader):
    """``source``: a file to read through (on an object store, pyarrow's S3 file system's
    input file: row groups by range), else the file in ``directory``."""

    def __init__(self, directory: Path, memory_map: bool, source: Any = None):
        self.path = Path(directory) / FILE
        if source is None and not self.path.is_file():
            raise StorebenchError(f"{self.path}: missing; the store is incomplete")
        self.source = source
        self.file = pq.ParquetFile(self.path if source is None else source, memory_map=memory_map)
        meta = self.file.metadata
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        self.starts = np.cumsum([0, *sizes])  # first row of each row group, then the total
        self.count = int(self.starts[-1])

    def _group(self, group: int) -> tuple[np.ndarray, np.ndarray]:
        """Row group ``group``'s images as bytes (rows, image bytes) and labels."""
        table = self.file.read_row_group(group, columns=["image", "label"])
        image = table.column("image").combine_chunks()
        if not pa.types.is_fixed_size_binary(image.type):
            raise StorebenchError(f"{self.path}: the image column is not fixed-size binary")
        rows = len(image)
        width = image.type.byte_width
        data = np.frombuffer(image.buffers()[1], np.uint8, rows * width, image.offset * width)
        labels = table.column("label").to_numpy()
        return data.reshape(rows, width), labels

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        one_size_only("parquet", images)
        if not any_to_read(indices, self.count):
            return
        count = len(indices)
        row = images[0].nbytes
        flat = images.reshape(count, row)
        order = np.argsort(indices, kind="stable")
        wanted = indices[order]
        groups = np.searchsorted(self.starts, wanted, side="right") - 1
        bounds = np.flatnonzero(np.diff(groups)) + 1
        for lo, hi in zip(np.r_[0, bounds].tolist(), np.r_[bounds, count].tolist(), strict=True):
            group = int(groups[lo])
            data, group_labels = self._group(group)
            if data.shape[1] != row:
                raise wrong_size(self.path, int(wanted[lo]), data.shape[1], row)
            rows = wanted[lo:hi] - self.starts[group]
            flat[order[lo:hi]] = data[rows]
            labels[order[lo:hi]] = group_labels[rows]

    def close(self) -> None:
        self.file.close()
        if self.source is not None:
            self.source.close()


@dataclasses.dataclass(frozen=True)
class ParquetFormat(Format):
    """``images.parquet``: columns ``image`` (fixed-size binary: the pixels) and ``label``
    (uint8). ``row_group``: images per row group (``null``: one chunk of images);
    ``compression``: ``none``, ``snappy`` or ``zstd``; ``memory_map``: read through a
    memory map."""

    kind = "parquet"
    libraries = ("numpy", "pyarrow")
    overhead_bytes_per_image = 2  # the label, and page headers spread over the rows
    blocks_per_image = False
    row_group: int | None = 1000
    compression: str = "none"
    memory_map: bool = False

    def __post_init__(self) -> None:
        if self.row_group is not None and (
            not isinstance(self.row_group, int) or self.row_group < 1
        ):
            raise ValueError(f"row_group must be a positive integer or null: {self.row_group!r}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, not {self.compression!r}")
        if not isinstance(self.memory_map, bool):
            raise ValueError("memory_map must be true or false")

    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        one_size_only(self.kind, images)
        width = row_bytes(images)
        schema = pa.schema([("image", pa.binary(width)), ("label", pa.uint8())])
        group = self.row_group or chunk_images(width)
        with pq.ParquetWriter(
            Path(directory) / FILE, schema, compression=self.compression, use_dictionary=False
        ) as writer:
            for start, chunk in image_chunks(images):
                pixels = np.ascontiguousarray(chunk).reshape(-1)
                column = pa.FixedSizeBinaryArray.from_buffers(
                    pa.binary(width), len(chunk), [None, pa.py_buffer(pixels)]
                )
                label = pa.array(labels[start : start + len(chunk)], pa.uint8())
                writer.write_table(
                    pa.Table.from_arrays([column, label], schema=schema), row_group_size=group
                )

    def open(self, directory: Path) -> Reader:
        return ParquetReader(directory, self.memory_map)

    remote_way = "range"

    def open_remote(self, location: Any, scratch: Path) -> Reader:
        """pyarrow's S3 file system: the footer, then each row group, by range."""
        from pyarrow import fs

        endpoint = location.endpoint
        s3 = fs.S3FileSystem(
            access_key=endpoint.access_key,
            secret_key=endpoint.secret_key,
            region=endpoint.region,
            endpoint_override=location.url.split("://", 1)[1],
            scheme=location.url.split("://", 1)[0],
        )
        source = s3.open_input_file(f"{location.bucket}/{location.key(FILE)}")
        return ParquetReader(Path(location.prefix), False, source)
