"""The raw floor: the images as one ``.npy`` file, read the fastest way this machine can.

No per-image framing, no decoding. Each read picks, by measurement on this VM
(docs/methods.md, "The floor reads the fastest way this machine can"), the fastest way to
move the rows:

* a contiguous range whose pages are cached: one copy from a memory map (a
  user-space copy runs about 2x the kernel's copy here);
* a contiguous range not cached, or dense scattered rows (a shuffled
  permutation): ``preadv`` in file order, each row scattered straight into its
  place (:func:`storebench.chunks.read_rows`), which the kernel reads ahead;
* sparse scattered rows (a small random batch): a gather from the memory map,
  one page fault instead of one system call per row.

So no format reads the same bytes faster (docs/runs.md says where one tied, and why).
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from storebench import pagecache
from storebench.chunks import Images, read_rows, read_spans, write_npy
from storebench.errors import StorebenchError
from storebench.formats.base import (
    Format,
    Reader,
    check_shape,
    image_chunks,
    is_range,
    wrong_size,
)
from storebench.ragged import Ragged

IMAGES, LABELS, OFFSETS = "images.npy", "labels.npy", "offsets.npy"


# Bytes read for a header: numpy's version 1 headers of our arrays take 128.
HEADER_BYTES = 4096


def _header(fd: int, path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a C-order ``.npy`` file, read through ``fd``.

    The header is read with the descriptor the data is read with: a first small
    read at the file's start, then the data following it, is a sequential stream
    the kernel reads ahead of. Measured here (cold, 10,000 images, median of 24):
    the data's one ``pread`` took 29.1 ms on a fresh descriptor and 21.5 ms after
    a read of the header through it, the pattern of HDF5's reader (23.5 ms).
    """
    handle = io.BytesIO(os.pread(fd, HEADER_BYTES, 0))
    version = np.lib.format.read_magic(handle)
    read = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, fortran, dtype = read(handle)
    if fortran or dtype.hasobject:
        raise StorebenchError(f"{path}: not a C-order array of plain values")
    return shape, dtype, handle.tell()


# Scattered reads covering at least this fraction of their span of rows are dense.
DENSE = 0.25
# A contiguous range with at least this fraction of its pages cached is copied from the map.
CACHED = 0.9


class NpyReader(Reader):
    def __init__(self, directory: Path):
        path = Path(directory) / IMAGES
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        try:
            self.shape, self.dtype, self.offset = _header(self.fd, path)
        except BaseException:
            os.close(self.fd)
            raise
        self.labels = np.load(Path(directory) / LABELS)  # one byte per image
        # mapped, not touched
        self.images = np.memmap(path, self.dtype, "r", self.offset, self.shape)
        self.row = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        # Images of their own sizes: images.npy holds their bytes one after another.
        offsets = Path(directory) / OFFSETS
        self.offsets = np.load(offsets) if offsets.exists() else None

    def _read_ragged(self, indices: np.ndarray, images: Ragged) -> None:
        """Each image's bytes straight into its slot, spans in file order (read_spans)."""
        if not isinstance(images, Ragged):
            raise StorebenchError(
                f"{self.path}: its images have different sizes, but the dataset's are one "
                "size; the store was written from another dataset: rerun its store job"
            )
        if indices.min() < 0 or indices.max() >= len(self.offsets) - 1:
            raise IndexError(f"index out of range 0..{len(self.offsets) - 2}")
        starts = self.offsets[indices]
        sizes = self.offsets[indices + 1] - starts
        if not np.array_equal(sizes, images.sizes):
            k = int(np.flatnonzero(sizes != images.sizes)[0])
            raise wrong_size(self.path, int(indices[k]), int(sizes[k]), int(images.sizes[k]))
        flat = images.flat()
        read_spans(
            self.fd, self.offset, starts, sizes, flat, images.offsets[:-1] - images.offsets[0]
        )

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        count = len(indices)
        if not count:
            return
        if self.offsets is not None or isinstance(images, Ragged):
            if self.offsets is None:
                raise StorebenchError(
                    f"{self.path}: its images are one size, but the dataset's differ; the "
                    "store was written from another dataset: rerun its store job"
                )
            self._read_ragged(indices, images)
            np.take(self.labels, indices, out=labels)
            return
        check_shape(self.path, self.shape[1:], images)
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= self.shape[0]:
            raise IndexError(f"index out of range 0..{self.shape[0] - 1}")
        span = high - low + 1
        if is_range(indices) and images.flags.c_contiguous:
            cached = pagecache.resident_fraction(
                self.fd, self.offset + low * self.row, span * self.row
            )
            if cached >= CACHED:
                images[:] = self.images[low : high + 1]
            else:
                read_rows(self.fd, self.offset, indices, images)
        elif count >= DENSE * span and images.flags.c_contiguous:
            read_rows(self.fd, self.offset, indices, images)
        else:
            np.take(self.images, indices, axis=0, out=images)
        np.take(self.labels, indices, out=labels)

    def close(self) -> None:
        os.close(self.fd)
        del self.images  # np.memmap has no close(); dropping it unmaps the file


# A remote read fetches the rows' spans in parts of at most this many bytes, several
# at a time, and fetches a gap between two spans rather than pay another request when
# the gap is at most GAP_BYTES (about what a round trip of 1 ms moves at 1 Gbit/s).
PART_BYTES = 8 << 20
GAP_BYTES = 128 * 1024


def spans(rows: np.ndarray, row: int, gap_rows: int) -> list[tuple[int, int]]:
    """Runs ``(first, last + 1)`` of the sorted distinct ``rows``, a run joined to the
    next when at most ``gap_rows`` rows lie between them, split into parts of at most
    :data:`PART_BYTES`."""
    if len(rows) == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) > gap_rows + 1)
    starts = np.concatenate(([rows[0]], rows[breaks + 1]))
    ends = np.concatenate((rows[breaks], [rows[-1]])) + 1
    per_part = max(1, PART_BYTES // max(1, row))
    out = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        out += [(s, min(end, s + per_part)) for s in range(start, end, per_part)]
    return out


class NpyRemoteReader(Reader):
    """The floor on an object store: the rows a read needs fetched as few, large range
    requests, several at a time, then copied into place."""

    def __init__(self, location: Any) -> None:
        self.location = location
        head = location.get_range(IMAGES, 0, HEADER_BYTES)
        handle = io.BytesIO(head)
        version = np.lib.format.read_magic(handle)
        read = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        self.shape, fortran, self.dtype = read(handle)
        if fortran or self.dtype.hasobject:
            raise StorebenchError(f"{location.prefix}: not a C-order array of plain values")
        self.offset = handle.tell()
        self.labels = np.load(io.BytesIO(location.get(LABELS)))
        self.row = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        if not len(indices):
            return
        if isinstance(images, Ragged):
            raise StorebenchError(
                f"{self.location.prefix}: a remote read of images of their own sizes is not "
                "supported; use images of one size on an object-store tier"
            )
        check_shape(Path(self.location.prefix), self.shape[1:], images)
        if int(indices.min()) < 0 or int(indices.max()) >= self.shape[0]:
            raise IndexError(f"index out of range 0..{self.shape[0] - 1}")
        rows = np.unique(indices)
        parts = spans(rows, self.row, GAP_BYTES // max(1, self.row))
        fetched = self.location.get_ranges(
            IMAGES,
            [self.offset + a * self.row for a, _ in parts],
            [self.offset + b * self.row for _, b in parts],
        )
        flat = images.reshape(len(indices), -1)
        for (first, last), data in zip(parts, fetched, strict=True):
            block = np.frombuffer(data, np.uint8).reshape(last - first, self.row)
            inside = (indices >= first) & (indices < last)
            flat[inside] = block[indices[inside] - first]
        np.take(self.labels, indices, out=labels)

    def close(self) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class NpyFormat(Format):
    """Two ``.npy`` files (images, labels), memory-mapped for reading."""

    kind = "npy"
    overhead_bytes_per_image = 1  # the label
    blocks_per_image = False
    variable_size = True

    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        ragged = images.array if isinstance(images, Images) else images
        if isinstance(ragged, Ragged):  # images of their own sizes: bytes and offsets
            with open(Path(directory) / IMAGES, "wb") as handle:
                parts = (chunk.flat() for _, chunk in image_chunks(images))
                write_npy(handle, (ragged.nbytes,), np.dtype(np.uint8), parts)
            np.save(Path(directory) / OFFSETS, ragged.offsets - ragged.offsets[0])
            np.save(Path(directory) / LABELS, labels)
            return
        with open(Path(directory) / IMAGES, "wb") as handle:
            write_npy(
                handle, images.shape, images.dtype, (chunk for _, chunk in image_chunks(images))
            )
        np.save(Path(directory) / LABELS, labels)

    def open(self, directory: Path) -> Reader:
        return NpyReader(directory)

    remote_way = "range"

    def open_remote(self, location: Any, scratch: Path) -> Reader:
        return NpyRemoteReader(location)
