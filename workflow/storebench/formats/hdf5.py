"""One HDF5 file (h5py) with an ``images`` and a ``labels`` dataset.

Compression: HDF5's own ``gzip`` and ``lzf``, or the modern codecs of hdf5plugin
(``zstd``, ``blosc_zstd``, ``blosc_lz4``: Blosc with byte shuffle), the same ones
the zarr format offers, so "compression does not pay" is tested against codecs
better than gzip. Importing hdf5plugin registers their filters for reading.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from storebench.chunks import Images
from storebench.formats.base import (
    Format,
    Reader,
    check_shape,
    check_unit,
    image_chunks,
    is_range,
    one_size_only,
    reused_buffer,
)

FILE = "data.h5"


# Scattered reads go through a reused buffer of at most this many bytes (1,024 CIFAR
# images; 16 at 256 px) ...
BLOCK_BYTES = 3 << 20
# ... and wanted rows at most this far apart are read as one span.
GAP = 16


class Hdf5Reader(Reader):
    """``source``: a file-like object to read the store's file through (on an object
    store, a :class:`storebench.remote.RangeFile`), else the file in ``directory``."""

    def __init__(self, directory: Path, source: Any = None):
        self.path = Path(directory) / FILE
        self.source = source
        self.file = h5py.File(self.path if source is None else source, "r")
        self.images = self.file["images"]
        self.labels = self.file["labels"]

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        one_size_only("hdf5", images)
        if len(indices):
            check_shape(self.path, self.images.shape[1:], images)
        if is_range(indices):
            if len(indices):
                source = np.s_[int(indices[0]) : int(indices[-1]) + 1]
                self.images.read_direct(images, source_sel=source)
                self.labels.read_direct(labels, source_sel=source)
            return
        # h5py reads selections in increasing order only, builds one hyperslab per
        # scattered row (slow for many rows) and returns a new array. Instead, visit
        # the wanted rows in increasing order, read each run of nearby rows (at most
        # a buffer of BLOCK_BYTES) with one call into it, and copy the wanted rows out.
        order = np.argsort(indices, kind="stable")
        wanted = indices[order]
        first, last = int(wanted[0]), int(wanted[-1]) + 1
        if first < 0 or last > len(self.images):
            raise IndexError(f"index out of range 0..{len(self.images) - 1}")
        span_labels = np.empty(last - first, self.labels.dtype)
        self.labels.read_direct(span_labels, source_sel=np.s_[first:last])
        labels[order] = span_labels[wanted - first]
        rows = max(1, BLOCK_BYTES // max(1, images[0].nbytes))  # as the zarr reader sizes it
        block = reused_buffer(rows, self.images.shape[1:], self.images.dtype)
        rows = len(block)
        breaks = (np.diff(wanted) > GAP) | (np.diff(wanted // rows) != 0)
        bounds = np.flatnonzero(breaks) + 1
        if len(wanted) <= rows and len(bounds) >= len(wanted) // 2:
            # A batch of mostly lone rows: one h5py selection reads it faster than a
            # call per row, and its array is only batch-sized.
            unique, inverse = np.unique(wanted, return_inverse=True)
            images[order] = self.images[unique][inverse]
            return
        for lo, hi in zip(
            np.r_[0, bounds].tolist(), np.r_[bounds, len(wanted)].tolist(), strict=True
        ):
            start, stop = int(wanted[lo]), int(wanted[hi - 1]) + 1
            self.images.read_direct(
                block, source_sel=np.s_[start:stop], dest_sel=np.s_[0 : stop - start]
            )
            images[order[lo:hi]] = block[wanted[lo:hi] - start]

    def close(self) -> None:
        self.file.close()
        if self.source is not None:
            self.source.close()


COMPRESSIONS = (None, "gzip", "lzf", "zstd", "blosc_zstd", "blosc_lz4")


def _filter(compression: str | None, level: int | None) -> dict:
    """h5py's keyword arguments for ``compression`` at ``level``."""
    if compression in (None, "gzip", "lzf"):
        return {"compression": compression, "compression_opts": level}
    if compression == "zstd":
        return dict(hdf5plugin.Zstd(clevel=level or 3))
    cname = compression.removeprefix("blosc_")
    return dict(hdf5plugin.Blosc(cname=cname, clevel=level or 5, shuffle=hdf5plugin.Blosc.SHUFFLE))


@dataclasses.dataclass(frozen=True)
class Hdf5Format(Format):
    """``chunk``: images per chunk (``null``: one contiguous dataset, the classic
    layout); ``compression``: ``null``, ``gzip``, ``lzf``, ``zstd``, ``blosc_zstd`` or
    ``blosc_lz4`` (needs chunks); ``level``: gzip 0..9, the others 1..9."""

    kind = "hdf5"
    libraries = ("numpy", "h5py", "hdf5plugin")
    overhead_bytes_per_image = 1  # the label
    blocks_per_image = False
    chunk: int | None = None
    compression: str | None = None
    level: int | None = None

    def __post_init__(self) -> None:
        if self.chunk is not None and (not isinstance(self.chunk, int) or self.chunk < 1):
            raise ValueError(f"chunk must be a positive integer or null, not {self.chunk!r}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, not {self.compression!r}")
        if self.compression and self.chunk is None:
            raise ValueError("compression needs chunk (images per chunk)")
        if self.level is not None:
            lowest = 0 if self.compression == "gzip" else 1
            if self.compression in (None, "lzf") or not lowest <= self.level <= 9:
                raise ValueError(f"level is {lowest}..9 and needs a compression that takes one")

    def unit(self) -> tuple[str, int] | None:
        return None if self.chunk is None else ("chunk", self.chunk)

    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        one_size_only(self.kind, images)
        check_unit(f"{self.kind} store", self, images.shape[1:], len(images))
        layout = {}
        if self.chunk is not None:
            layout = {
                "chunks": (min(self.chunk, max(1, len(images))), *images.shape[1:]),
                **_filter(self.compression, self.level),
            }
        with h5py.File(Path(directory) / FILE, "w") as file:
            dataset = file.create_dataset(
                "images", shape=images.shape, dtype=images.dtype, **layout
            )
            for start, chunk in image_chunks(images):
                dataset.write_direct(
                    np.ascontiguousarray(chunk), dest_sel=np.s_[start : start + len(chunk)]
                )
            file.create_dataset("labels", data=labels)

    def open(self, directory: Path) -> Reader:
        return Hdf5Reader(directory)

    remote_way = "range"

    def open_remote(self, location: Any, scratch: Path) -> Reader:
        """h5py reads the file through range requests (a file-like object over them)."""
        from storebench import remote

        size = remote.manifest(location)[FILE]
        return Hdf5Reader(Path(location.prefix), remote.RangeFile(location, FILE, size))
